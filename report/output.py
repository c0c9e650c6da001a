"""Writing the report's files: atomic writes, and PDF printing in a second process.

WeasyPrint is single-threaded and spends about half a second importing itself. A ``Printer`` starts it
in its own process before the HTML exists, so that start-up runs on another core while this process
fills the templates; the finished page then goes over a pipe. Run as ``python -m report.output`` it is
that second process. This module imports neither pandas nor the templates, to start fast.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from report.core.atomic import atomic_write
from report.core.errors import ReportError

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
OUTPUTS = ("report.html", "report.pdf")
CACHE = ".report-cache"  # the build's own folder in --out: figures, math, templates, forms, stamps
TAG = "CACHEDIR.TAG"  # the Cache Directory Tagging Specification's file: marks the folder as the build's
SIGNATURE = b"Signature: 8a477f597d28d172789f06886806bc55"
MARK = b"# the report builder's cache"  # after the signature: ours, not another tool's


# what a render keeps in its cache folder: report/render.py's figures, math and templates, and the
# figures and formulas printed as PDF forms (report/pdfforms.py)
ENTRIES = ("figures", "math.json", "jinja", "forms")
STAMPS = tuple(f"{n}.sha256" for n in OUTPUTS)  # in --out's own cache folder: what each report was made from
CACHE_FIX = "pass a writable --out, or --cache where one is given"  # the advice for a cache that fails


def cache_dir(out: Path) -> Path:
    """The build's cache folder in ``out``, tagged (as backup tools expect) so ``clean`` knows it is ours."""
    return _tagged(out / CACHE, "build.py clean removes it")


def drawings(out: Path, shared: Path | None) -> Path:
    """Where figures, typeset math, compiled templates and PDF forms are cached: ``shared`` (``--cache``)
    when given, else the build's own folder in ``out``. One folder serves any number of outputs and builds
    at once, because each entry is named by a hash of what made it and written atomically. A folder that
    holds anything else (another tool's cache included) is refused: the build would mix its files with
    them."""
    if shared is None:
        return cache_dir(out)
    if shared.is_symlink() or _foreign(shared):
        raise ReportError(
            f"--cache {shared} holds files this build did not write (or is a link): give a new or empty "
            "folder"
        )
    return _tagged(shared, "build.py clean --cache empties it")


def check_apart(shared: Path, said: str, **folders: Path) -> None:
    """A ``--cache`` folder is a folder of its own: not the output folder, the store or the data, nor
    inside or around one (``clean`` empties it), though ``.report-cache`` in ``--out`` may be named.
    ``said`` is how the cache was given (``--cache X``, ``REPORT_CACHE=X`` or a report.toml line)."""
    mine = shared.resolve()
    for option, folder in folders.items():
        other = folder.resolve()
        if option == "out" and mine == other / CACHE:
            continue
        if mine == other or other in mine.parents or mine in other.parents:
            raise ReportError(
                f"{said} overlaps --{option.replace('_', '-')} {folder}: give the cache a folder of its own"
            )


def foreign_report(out: Path) -> Path | None:
    """A report file in ``out`` that no build wrote (no tagged cache folder of ours beside it), which a
    render would overwrite and ``clean`` then delete: None when there is none."""
    if _ours(out / CACHE):
        return None
    return next((out / n for n in OUTPUTS if (out / n).exists()), None)


def _foreign(folder: Path) -> bool:
    """Whether ``folder`` holds anything but what the builds write there: their entries, the tag, and
    the temporary files of writes in progress (a build starting beside another sees those)."""
    if not folder.is_dir():
        return False
    return any(
        e.name not in (*ENTRIES, TAG, *STAMPS) and not (e.name.startswith(".") and e.name.endswith(".tmp"))
        for e in folder.iterdir()
    )


def _tagged(folder: Path, note: str) -> Path:
    if not (folder / TAG).is_file():
        atomic_write(folder / TAG, SIGNATURE + f"\n{MARK.decode()}; {note}\n".encode(), CACHE_FIX)
    return folder


def _ours(folder: Path) -> bool:
    """A real folder (not a link) whose tag this build wrote."""
    try:
        tag = (folder / TAG).read_bytes()
    except OSError:
        return False
    return not folder.is_symlink() and tag.startswith(SIGNATURE) and MARK in tag


def clean(out: Path, shared: Path | None = None) -> list[Path]:
    """Delete what the build wrote in ``out``, and what the builds wrote in the ``--cache`` folder
    ``shared``, and nothing else; returns what was removed.

    The build's files in ``out`` are its tagged cache folder and the report files it stamped there. A
    folder without that tag was not written by the build (or is the wrong folder): refused, nothing
    deleted. Each folder itself goes only when nothing else is left in it.
    """
    check_clean(out, shared)
    removed = _clean_out(out) if out.exists() else []
    if shared is not None and shared.is_dir():
        for entry in [shared / n for n in ENTRIES if (shared / n).exists()]:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        (shared / TAG).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            shared.rmdir()  # only when empty
            removed.append(shared)
    return removed


def discard_if_empty(out: Path) -> None:
    """Remove ``out`` if it holds nothing but an empty cache folder of ours (a render that failed before
    it drew or wrote anything); anything else in it stays."""
    folder = out / CACHE
    if _ours(folder) and [e.name for e in folder.iterdir()] == [TAG]:
        (folder / TAG).unlink()
    for empty in (folder, out):
        with contextlib.suppress(OSError):  # only when empty
            empty.rmdir()


def check_clean(out: Path, shared: Path | None = None) -> None:
    """Refuse, before anything is deleted (or asked), an ``out`` or ``--cache`` folder this build did not
    write."""
    if (
        shared is not None
        and shared.exists()
        and (shared.is_symlink() or _foreign(shared) and not _ours(shared))
    ):
        raise ReportError(
            f"--cache {shared} holds files this build did not write and no {TAG} of ours, so nothing was "
            "deleted; pass the folder the builds were given as --cache"
        )
    if out.exists() and not _ours(out / CACHE):
        raise ReportError(
            f"{out} holds no report written by this build (no {CACHE}/{TAG} in it), so nothing was "
            f"deleted; pass the folder the report was written to as --out"
        )


def _clean_out(out: Path) -> list[Path]:
    folder = out / CACHE
    removed = [out / n for n in OUTPUTS if (out / n).is_file() and (folder / f"{n}.sha256").is_file()]
    for path in removed:
        path.unlink()
    shutil.rmtree(folder)
    with contextlib.suppress(OSError):
        out.rmdir()  # only when empty: a folder that holds anything else stays
    return [*removed, folder]


def write_outputs(
    page: str, out: Path, formats: list[str], printer: Printer | None = None, drawings: Path | None = None
) -> list[Path]:
    """Write ``report.html`` / ``report.pdf`` from ``page``, skipping any whose source is unchanged.

    The page is a pure function of the store, the templates and the paper size, so an output whose
    recorded source digest matches is already current (as ``make`` would judge it). The PDF goes to
    ``printer`` when one is given, else it is printed in this process; its figures and formulas are
    kept as PDF forms in ``drawings/forms`` when a cache folder is given.
    """
    forms = drawings / "forms" if drawings is not None else None
    from report.provenance import for_print  # here: the printer process never needs it

    digest = hashlib.sha256(page.encode("utf-8")).hexdigest()
    written = []
    for kind in formats:
        target = out / f"report.{kind}"
        stamp = cache_dir(out) / f"{target.name}.sha256"
        if target.exists() and stamp.exists() and stamp.read_text() == digest:
            continue
        if kind == "html":
            atomic_write(target, page.encode("utf-8"))
        elif printer is not None:
            printer.print(for_print(page), target, forms)
        else:
            write_pdf(for_print(page), target, forms)
        atomic_write(stamp, digest.encode())
        written.append(target)
    return written


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Run the block with Python's cycle collector off, as it was after.

    A render builds hundreds of thousands of objects that live until it ends (imported modules, tables,
    the page, WeasyPrint's box tree) and frees few, so each collection walks a growing heap to find
    next to nothing: about a tenth of the HTML's and of the PDF's time. What a render leaves behind
    is left to the collector once the block has ended.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _weasyprint():  # noqa: ANN202 - the module, imported quietly
    for name in ("weasyprint", "fontTools"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with warnings.catch_warnings():  # "install HarfBuzz-Subset": a packaging hint, printed on every run
        warnings.simplefilter("ignore", DeprecationWarning)
        import weasyprint

    return weasyprint


# The white space between a word and the emphasis, code or link after it, as Markdown writes them
_SPACE_BEFORE_INLINE = re.compile(r"(?<=[^\s>])[ \n]+(?=<(?:em|strong|code|a)\b)")


def inline_spaces(page: str) -> str:
    """``page`` with the space between a word and the emphasis, code or link after it put in a span of its
    own, which prints the same (the span takes the font of the text around it). WeasyPrint 70 breaks a
    line after its first word when the text before an inline element overflows the line by its trailing
    space alone (``split_first_line`` counts the space in the width it compares, then takes the line for
    unbreakable); with the space in its own box the text before it ends in a word. The report's own spans
    (numbers, verdicts, inline math: about 300) are left as they are: a span before each cost 6% of the
    edit loop's re-render. tests/test_render.py says when WeasyPrint no longer needs this."""
    return _SPACE_BEFORE_INLINE.sub("<span> </span>", page)


def write_pdf(page: str, path: Path, forms: Path | None = None) -> None:
    """Print the HTML with WeasyPrint as a tagged PDF (PDF/UA-1: structure tree, language, outline); with
    ``forms``, a folder, its SVGs are placed as PDF forms printed once and cached there."""
    weasyprint = _weasyprint()
    page = inline_spaces(page)
    pdf = None
    if forms is not None:
        from report import pdfforms

        with contextlib.suppress(pdfforms.NotPrinted):  # then printed the plain way, below
            stand_ins = pdfforms.Forms(forms, weasyprint, str(TEMPLATES))
            html = weasyprint.HTML(string=stand_ins.page(page), base_url=str(TEMPLATES))
            pdf = html.write_pdf(pdf_variant="pdf/ua-1", finisher=stand_ins.finisher())
    if pdf is None:
        pdf = weasyprint.HTML(string=page, base_url=str(TEMPLATES)).write_pdf(pdf_variant="pdf/ua-1")
    atomic_write(path, pdf)


class Printer:
    """A WeasyPrint process that prints the pages handed to it, one at a time, until closed; a context
    manager, so it never outlives its user. ``build.py render`` prints one page with it; ``preview`` and
    ``watch`` keep one for the whole session, so each print after the first finds WeasyPrint imported, its
    fonts loaded and its caches warm. A process that died is started again for the next page."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115 - its stderr, closed by close()
        self._start()

    def _start(self) -> None:
        self._code = _printer_code()
        self._errors.seek(0)
        self._errors.truncate()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "report.output"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._errors,
            # ``-m`` imports from the working folder first: this project's, not whichever checkout the
            # command was typed in or is installed
            cwd=TEMPLATES.parent,
        )

    def print(self, page: str, target: Path, forms: Path | None = None) -> None:
        """Hand ``page`` over and wait until ``target`` is written (``write_pdf``, with ``forms``); a
        failure there is raised here, in one line."""
        if self._proc is not None and self._code != _printer_code():  # edited since: print with the edit
            self._proc.kill()
            self._proc.wait()
        if self._proc is None or self._proc.poll() is not None:
            self._start()
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        data = page.encode("utf-8")
        head = {"target": str(target.resolve()), "forms": str(forms.resolve()) if forms else None}
        try:
            proc.stdin.write(json.dumps({**head, "bytes": len(data)}).encode() + b"\n" + data)
            proc.stdin.flush()
        except BrokenPipeError:
            pass  # it died: its reply below is empty, and its stderr says why
        reply = proc.stdout.readline().decode("utf-8", "replace").strip()
        if reply == "ok":
            return
        if not reply:  # no reply: the process ended
            proc.wait()
            self._errors.seek(0)
            lines = self._errors.read().decode("utf-8", "replace").strip().splitlines()
            reply = lines[-1] if lines else f"the printer stopped (exit status {proc.returncode})"
        raise ReportError(f"printing the PDF failed: {reply}")

    def close(self) -> None:
        """Stop the process. Between prints it holds nothing worth waiting for (each PDF is written
        atomically before its reply), so it is killed, not asked to tidy up."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
        self._errors.close()

    def __enter__(self) -> Printer:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


def _printer_code() -> list[int]:
    """When the printer's own modules last changed: a session's printer restarts after an edit of them."""
    here = Path(__file__).resolve().parent
    return [(here / name).stat().st_mtime_ns for name in ("output.py", "pdfforms.py")]


def _main() -> int:
    """The printer process: read pages (a JSON line, then the page's bytes) and print each, replying
    ``ok`` or the one-line reason it failed, until the input ends."""
    gc.disable()  # see gc_paused: it collects between pages instead, once each reply is sent
    stdin, replies = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever else writes to stdout goes to stderr: stdout carries the replies alone
    sys.stdout = sys.stderr
    _weasyprint()  # the slow part, done while the parent renders the HTML
    while head := stdin.readline():
        job = json.loads(head)
        data = stdin.read(job["bytes"])
        if len(data) < job["bytes"]:  # the input ended inside the page: its sender is gone
            return 1
        try:
            write_pdf(data.decode("utf-8"), Path(job["target"]), Path(job["forms"]) if job["forms"] else None)
            reply = "ok"
        except ReportError as e:
            reply = str(e)
        except Exception as e:  # said in one line, and the process stays up for the next page
            reply = f"{type(e).__name__}: {e}"
        reply = " ".join(reply.split())
        replies.write(reply.encode() + b"\n")
        replies.flush()
        gc.collect()
    return 0


if __name__ == "__main__":
    code = _main()
    sys.stderr.flush()
    os._exit(code)  # the PDF is on disk: skip freeing WeasyPrint's layout tree at exit (~0.3 s)
