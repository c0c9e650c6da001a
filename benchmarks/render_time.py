"""Wall time of a full re-render, HTML and PDF, from an existing store: what an author waits for.

Two ways an author re-renders, each after deleting the output stamps so both files are really rewritten
(figure, math and PDF-form caches stay warm, as they are after a template edit):

- the edit loop: ``watch`` (and ``preview``) re-render on every save in a process that stays up, with a
  printer process that stays up beside it; this runs that loop's own function (``steps.rerender``) with
  one printer, and times every render after the first. ``--target`` applies to its median.
- one ``python build.py render`` in a fresh process, as a user types it: both processes start cold.

It reports the minimum and median wall times, the one-shot renders' CPU time (both processes; steadier
than wall time on a shared machine), and where a single render spends it.

    python benchmarks/render_time.py [--profile quick] [--set q4.dataset=fashion-mnist] [--store results]
                                     [--repeats 5] [--target 3]

Exits with status 1 when the edit loop's median is above ``--target`` seconds.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one_render(profile: str, sets: list[str], store: Path, out: Path) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, both processes) of one ``build.py render``."""
    for stamp in (out / ".report-cache").glob("report.*.sha256"):
        stamp.unlink()
    cmd = [sys.executable, str(ROOT / "build.py"), "render", "--profile", profile, "--store", str(store)]
    cmd += ["--out", str(out), *(a for s in sets for a in ("--set", s))]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"render failed: {done.stdout.strip()} {done.stderr.strip()}")
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def edit_loop(profile: str, sets: list[str], store: Path, out: Path, repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` re-renders as ``watch`` does them, after one that warms the printer."""
    sys.path.insert(0, str(ROOT))
    from report import output, steps
    from report.options import Options, console

    opts = Options(profile=profile, store=store, out=out, sets=sets)
    walls = []
    console.quiet = True  # its "wrote ..." lines
    with output.Printer() as printer:
        for _ in range(repeats + 1):
            for stamp in (out / ".report-cache").glob("report.*.sha256"):
                stamp.unlink()
            t0 = time.perf_counter()
            steps.rerender(opts, printer)
            walls.append(time.perf_counter() - t0)
    return walls[1:]


def phases(profile: str, sets: list[str], store: Path, out: Path) -> dict[str, float]:
    """One render split into its parts, in this process and one after another (no overlap), with the
    collector paused as ``build.py`` and the printer pause it."""
    sys.path.insert(0, str(ROOT))
    t0 = time.perf_counter()
    from report import output, pdfforms, render
    from report.core.config import parse_overrides
    from report.core.freshness import Request
    from report.core.store import Store
    from report.provenance import for_print  # as build.py prints it: without the number spans

    with output.gc_paused():
        t1 = time.perf_counter()
        request = Request(profile, parse_overrides(sets))
        page = render.render_html(Store(store), request, cache_dir=output.cache_dir(out))
        t2 = time.perf_counter()
        weasyprint = output._weasyprint()
        t3 = time.perf_counter()
        forms = pdfforms.Forms(output.cache_dir(out) / "forms", weasyprint, str(output.TEMPLATES))
        html = weasyprint.HTML(string=forms.page(for_print(page)), base_url=str(output.TEMPLATES))
        doc = html.render(pdf_variant="pdf/ua-1")
        t4 = time.perf_counter()
        doc.write_pdf(pdf_variant="pdf/ua-1", finisher=forms.finisher())
        t5 = time.perf_counter()
    return {
        "import report": t1 - t0,
        "HTML": t2 - t1,
        "import WeasyPrint": t3 - t2,
        f"PDF layout ({len(doc.pages)} pages)": t4 - t3,
        f"PDF drawing ({len(forms.by_url)} forms)": t5 - t4,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="EXPERIMENT.FIELD=VALUE")
    parser.add_argument("--store", type=Path, default=ROOT / "results")
    parser.add_argument("--out", type=Path, default=ROOT / "build")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--target", type=float, default=3.0, help="seconds, for the edit loop's median")
    args = parser.parse_args()

    one_render(args.profile, args.sets, args.store, args.out)  # fills the figure, math and form caches
    parts = phases(args.profile, args.sets, args.store, args.out)  # first: it times the imports
    runs = [one_render(args.profile, args.sets, args.store, args.out) for _ in range(args.repeats)]
    walls = [wall for wall, _ in runs]
    cpu = statistics.median(cpu for _, cpu in runs)
    loop = edit_loop(args.profile, args.sets, args.store, args.out, args.repeats)
    median = statistics.median(loop)
    print(
        f"edit loop (watch, preview), HTML + PDF, {args.repeats} re-renders: min {min(loop):.2f} s, "
        f"median {median:.2f} s"
    )
    print(
        f"build.py render in a fresh process, HTML + PDF, {args.repeats} runs: min {min(walls):.2f} s, "
        f"median {statistics.median(walls):.2f} s (CPU {cpu:.2f} s, both processes)"
    )
    print("one render, sequential parts (build.py overlaps the WeasyPrint import with the HTML):")
    for name, seconds in parts.items():
        print(f"  {name:<24} {seconds:5.2f} s")
    if median > args.target:
        print(f"the edit loop's median is above the {args.target:.1f} s target")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
