"""Save-to-page latency of ``build.py preview``: from writing a template to the new text on screen.

Starts the preview of a store (in a copy of the project, so the real templates are never touched), opens
it in Chromium through Playwright, then saves a template ``--saves`` times, each with a new sentence, and
times how long each takes to appear in the open page without a manual reload: from the write to the
moment the reloaded page's document was complete, read from the browser's own navigation timing. Prints
each latency, the median and the largest.

    python benchmarks/preview_latency.py --store results --profile smoke [--saves 10] [--target 1.0]
    python benchmarks/preview_latency.py --store results --profile smoke --edit code

With ``--edit code`` each save edits ``experiments/q1.py`` instead (a comment added, then taken away), and
the latency is until the page shows, then drops, Q1's stale flag: what ``status`` says, on the page.

Exits with status 1 when the median is above ``--target`` seconds (1 s by default, issue #16).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the wall-clock time at which the current document's DOM (the new text) was complete
SHOWN = "performance.timeOrigin + performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd"
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", type=Path, required=True, help="a results store holding the profile")
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--saves", type=int, default=10)
    parser.add_argument("--target", type=float, default=1.0, help="largest acceptable median, seconds")
    parser.add_argument(
        "--edit", choices=("template", "code"), default="template", help="what each save edits"
    )
    args = parser.parse_args()

    from playwright import sync_api

    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        ignore = shutil.ignore_patterns(".git", "results", "build", "data", "__pycache__")
        shutil.copytree(ROOT, project, ignore=ignore)
        store = str(args.store.resolve())
        command = [sys.executable, str(project / "build.py"), "preview", "--no-browser", "--port", "0",
                   "--profile", args.profile, "--store", store, "--out", f"{tmp}/out"]  # fmt: skip
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            seen = ""
            while not (match := re.search(r"serving (http://\S+)", seen)):
                line = proc.stdout.readline()
                if not line:
                    print(seen, file=sys.stderr)
                    return 2
                seen += line
            template = project / ("experiments/q1.py" if args.edit == "code" else "templates/q1.md.j2")
            original = template.read_text(encoding="utf-8")
            flag = "q1 (code changed)"
            latencies = []
            with sync_api.sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM)
                page = browser.new_page()
                page.goto(match.group(1))
                page.get_by_role("heading", name=re.compile("Question 1")).wait_for(timeout=120_000)
                for i in range(args.saves + 1):  # the first save warms the caches and is not counted
                    marker = f"Benchmark sentence number {i}."
                    t0 = time.time()
                    if args.edit == "code":  # odd saves restore the code, so the flag goes away again
                        template.write_text(
                            original if i % 2 else f"{original}\n# {marker}\n", encoding="utf-8"
                        )
                        page.get_by_text(flag).first.wait_for(
                            state="hidden" if i % 2 else "visible", timeout=60_000
                        )
                    else:
                        template.write_text(f"{original}\n\n{marker}\n", encoding="utf-8")
                        page.get_by_text(marker).wait_for(timeout=60_000)
                    # when the reloaded page had its text (Playwright's own polling would add up to 0.5 s)
                    shown = page.evaluate(SHOWN) / 1000
                    if i:
                        latencies.append(shown - t0)
                        print(f"save {i}: {latencies[-1]:.3f} s")
                    time.sleep(0.5)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    median = statistics.median(latencies)
    print(f"median {median:.3f} s, largest {max(latencies):.3f} s over {len(latencies)} saves")
    print(f"target: a median of at most {args.target} s")
    return 0 if median <= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
