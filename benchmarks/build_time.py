"""The README's build command on a fresh clone, timed as a new user meets it: wall time, its parts, memory.

It clones the project's committed HEAD into a temporary folder, puts the given ``report.toml`` beside
``build.py`` (the README's offline one, say), and runs ``python build.py all`` there with the installed
packages (the install itself is not timed). While it runs, the whole process tree's memory is sampled
every second (resident and proportional set size, from /proc), so worker processes count too. It
prints the total, each experiment's and the render's own times (from the build's log), and the peaks.

    python benchmarks/build_time.py --settings report.toml [--budget 300] [--keep]

Exits with status 1 when the build fails or takes longer than ``--budget`` seconds.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tree(pid: int) -> list[int]:
    """``pid`` and every process below it, from each thread's ``children`` list (no scan of /proc)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for children in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in children.read_text().split()]
            except OSError:
                continue
    return out


def memory(pids: list[int]) -> tuple[int, int]:
    """Summed RSS and PSS, in bytes, of ``pids`` (those that still exist)."""
    rss = pss = 0
    for p in pids:
        try:
            text = Path(f"/proc/{p}/smaps_rollup").read_text()
        except OSError:
            continue
        values = dict(re.findall(r"^(Rss|Pss):\s+(\d+) kB", text, re.M))
        rss += int(values.get("Rss", 0)) * 1024
        pss += int(values.get("Pss", 0)) * 1024
    return rss, pss


def absolute(settings: Path) -> str:
    """The settings file's text with its relative paths made absolute: they are relative to the file,
    which moves into the clone."""

    def fix(m: re.Match[str]) -> str:
        return f'{m.group(1)} = "{(settings.parent / m.group(2)).resolve()}"'

    text = settings.read_text(encoding="utf-8")
    return re.sub(r'^(data_dir|store|out) = "([^/"][^"]*)"', fix, text, flags=re.M)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", type=Path, help="a report.toml to put beside build.py in the clone")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds the build may take")
    parser.add_argument("--keep", action="store_true", help="keep the clone (its report and store)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="build-time-"))
    clone = folder / "project"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    if args.settings:
        (clone / "report.toml").write_text(absolute(args.settings), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPORT_")}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "build.py", "all"], cwd=clone, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    peak = [0, 0]

    def sample() -> None:
        while proc.poll() is None:
            rss, pss = memory(tree(proc.pid))
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
            time.sleep(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    log = proc.stdout.read() if proc.stdout else ""
    proc.wait()
    wall = time.perf_counter() - t0
    sampler.join()
    print(log)
    named = [f"{name} {float(s):.0f} s" for name, s in re.findall(r"✓ (q\d+): .* in ([\d.]+) s", log)]
    named += [f"render {float(s):.1f} s" for s in re.findall(r"✓ wrote .* in ([\d.]+) s", log)]
    gib = [f"{b / 2**30:.2f} GiB" for b in peak]
    print(f"build: exit {proc.returncode}, {wall:.0f} s ({', '.join(named)}); process tree peak {gib[0]} "
          f"RSS, {gib[1]} PSS; {os.cpu_count()} cores")  # fmt: skip
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        print(f"kept {clone}")
    sys.exit(0 if proc.returncode == 0 and wall <= args.budget else 1)


if __name__ == "__main__":
    main()
