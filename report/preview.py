"""Live preview: re-render on every save, serve the page on 127.0.0.1, and reload the open tab.

``Session.run`` watches the templates, the context layer, the manifest and the store's run pointers with
``watchfiles`` (file-system events, a burst of saves grouped into one), re-renders through the function it
is given (the same one ``render`` uses), and tells every open page over Server-Sent Events; the page then
reloads itself and keeps its scroll position. A render error is shown over the last good page, with the
file and line the message names, and the next good save clears it; the server itself never stops on a
bad edit. The PDF is printed in the background after each good render and linked from the page when
ready. ``watch`` runs the same loop without the server.
"""

from __future__ import annotations

import errno
import html
import http.server
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from report.core.errors import ReportError

EVENTS = "/__preview/events"
QUIET = 1.0  # seconds without a save before the PDF is printed

CLIENT = """<script>
(() => {
  const key = "preview-scroll:" + location.pathname;
  // The place to return to after a reload: kept until the page has loaded, so a reload that comes
  // before then (two saves in a row) carries the place on instead of wherever the page was clamped.
  let place = sessionStorage.getItem(key);
  const watching = new AbortController();  // the reader's moves, watched only until the page has loaded
  const settled = () => { watching.abort(); place = null; sessionStorage.removeItem(key); };
  if (place !== null) {
    // Now, so the page does not flash at the top, and again once the figures are decoded: until then
    // the page is too short and the browser clamps the scroll.
    history.scrollRestoration = "manual";
    window.scrollTo(0, Number(place));
    // A reader who scrolls (wheel, touch, a scrolling key, a link to a section) before then has moved
    // on: their place wins.
    const keys = ["ArrowUp", "ArrowDown", "PageUp", "PageDown", "Home", "End", " "];
    const options = { passive: true, signal: watching.signal };
    for (const type of ["wheel", "touchmove", "hashchange"]) window.addEventListener(type, settled, options);
    window.addEventListener("keydown", (e) => { if (keys.includes(e.key)) settled(); }, options);
    window.addEventListener("load", () => {
      if (place !== null) window.scrollTo(0, Number(place));
      settled();
    }, { once: true });
  }
  const events = new EventSource("%(events)s?since=%(version)d&pdf=%(pdf)d");
  events.addEventListener("reload", () => {
    watching.abort();  // from now on the place to carry over is this one
    sessionStorage.setItem(key, place ?? String(window.scrollY));
    location.reload();
  });
  events.addEventListener("pdf", (e) => {
    const link = document.getElementById("preview-pdf");
    if (link) { link.textContent = "PDF ready"; link.href = "/report.pdf?v=" + e.data; link.hidden = false; }
  });
})();
</script>"""

BAR = (
    '<div id="preview-bar" style="position:fixed;right:8px;bottom:8px;z-index:10000;font:12px sans-serif;'
    'background:#eef;border:1px solid #99c;padding:4px 8px;border-radius:4px">preview · '
    '<a id="preview-pdf" %(hidden)s href="/report.pdf?v=%(pdf)d">PDF ready</a>'
    "<span>%(pending)s</span></div>"
)

OVERLAY = (
    '<div id="preview-error" style="position:fixed;inset:0;z-index:10001;background:rgba(40,0,0,.85);'
    'color:#fff;font:14px monospace;padding:2em;white-space:pre-wrap;overflow:auto">'
    "<strong>The report could not be rendered</strong> (the page below is the last good one; save a fix "
    "and this goes away):\n\n%(message)s</div>"
)


RENDERING = (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="color-scheme" '
    'content="light dark"><title>Rendering the report…</title></head><body style="font:16px sans-serif;'
    'margin:3em"><p id="preview-rendering">Rendering the report… it appears here as soon as it is '
    "ready.</p></body></html>"
)


@dataclass
class Live:
    """What the open pages should show: the render version, the last render's error, the PDF's version."""

    version: int = 0
    error: str | None = None
    pdf_version: int = 0
    pdf_pending: bool = False
    changed: threading.Condition = field(default_factory=threading.Condition)

    def rendered(self, error: str | None) -> None:
        with self.changed:
            self.version += 1
            self.error = error
            self.pdf_pending = error is None
            self.changed.notify_all()

    def printed(self) -> None:
        with self.changed:
            self.pdf_version = self.version
            self.pdf_pending = False
            self.changed.notify_all()

    def wait(self, seen: tuple[int, int], timeout: float) -> tuple[int, int]:
        """Block until the version or the PDF version differs from ``seen`` (or ``timeout`` passes)."""
        with self.changed:
            self.changed.wait_for(lambda: (self.version, self.pdf_version) != seen, timeout)
            return self.version, self.pdf_version


def page(html_file: Path, live: Live) -> str:
    """The last good page with the live-reload client, the PDF link and, after a failed render, the error.

    Until the first render is done it is a page that says so (a report left from an earlier session may
    no longer match the sources), and its client reloads it into the report.
    """
    if live.version == 0:
        body = RENDERING
    elif html_file.is_file():
        body = html_file.read_text(encoding="utf-8")
    else:
        body = "<html><body></body></html>"
    extra = CLIENT % {"events": EVENTS, "version": live.version, "pdf": live.pdf_version}
    extra += BAR % {
        "hidden": "" if live.pdf_version else "hidden",
        "pdf": live.pdf_version,
        "pending": " · printing the PDF…" if live.pdf_pending else "",
    }
    if live.error:
        extra += OVERLAY % {"message": html.escape(live.error)}
    at = body.rfind("</body>")
    return body[:at] + extra + body[at:] if at >= 0 else body + extra


def server(out: Path, live: Live, host: str, port: int) -> http.server.ThreadingHTTPServer:
    """An HTTP server for the preview, bound to ``host`` only (127.0.0.1 unless the user asks)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server interface
            path = self.path.split("?")[0]
            if path in ("/", "/report.html"):
                self._send(200, "text/html; charset=utf-8", page(out / "report.html", live).encode())
            elif path == "/report.pdf" and (out / "report.pdf").is_file():
                self._send(200, "application/pdf", (out / "report.pdf").read_bytes())
            elif path == EVENTS:
                self._events()
            else:
                self._send(404, "text/plain", b"not found")

        def _send(self, code: int, kind: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _events(self) -> None:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            # from the versions the page was served with: a render finished before this connection counts
            try:
                seen = (
                    int(query.get("since", [live.version])[0]),
                    int(query.get("pdf", [live.pdf_version])[0]),
                )
            except ValueError:  # not a page of ours: say so, no traceback on the author's console
                self._send(400, "text/plain; charset=utf-8", b"since and pdf must be integers\n")
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            try:
                while True:
                    now = live.wait(seen, timeout=15)
                    if now == seen:
                        self.wfile.write(b": keep-alive\n\n")
                    elif now[0] != seen[0]:
                        self.wfile.write(f"event: reload\ndata: {now[0]}\n\n".encode())
                    else:
                        self.wfile.write(f"event: pdf\ndata: {now[1]}\n\n".encode())
                    self.wfile.flush()
                    seen = now
            except (BrokenPipeError, ConnectionResetError):  # the tab was closed or reloaded
                return

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet: the console is ours
            return

    httpd = http.server.ThreadingHTTPServer((host, port), Handler)
    httpd.daemon_threads = True
    return httpd


@dataclass
class Session:
    """The preview loop: render, then re-render on every relevant change until stopped."""

    render: Callable[[], None]  # writes report.html (raises ReportError on a bad template or result)
    watched: list[Path]  # folders and files whose changes trigger a render
    data: tuple[Path, ...] = ()  # data folders among them: any file edited there counts (freshness)
    live: Live = field(default_factory=Live)
    print_pdf: Callable[[], None] | None = None  # writes report.pdf from the last render
    log: Callable[[str], None] = print
    stop: threading.Event = field(default_factory=threading.Event)
    _want_pdf: threading.Event = field(default_factory=threading.Event)

    def once(self) -> bool:
        """Render now; a failure is shown, not raised. True when the render succeeded."""
        try:
            self.render()
        except Exception as e:  # a bad template or an edited context module: shown, and the preview goes on
            message = str(e) if isinstance(e, ReportError) else _located(e)
            self.log(f"error: {message}")
            self.live.rendered(message)
            return False
        self.live.rendered(None)
        self._want_pdf.set()
        return True

    def _printer(self) -> None:
        """Print the PDF of the latest good render once the saves pause for ``QUIET`` seconds: one print at a
        time, so a burst of saves never queues prints that compete with the HTML for the CPU."""
        while not self.stop.is_set():
            if not self._want_pdf.wait(timeout=0.5):
                continue
            version = self.live.version
            while not self.stop.wait(QUIET) and version != self.live.version:
                version = self.live.version
            self._want_pdf.clear()
            if self.stop.is_set() or self.live.error:
                continue
            try:
                self.print_pdf()
            except Exception as e:  # the printer thread reports and waits for the next good render
                if not self.stop.is_set():  # else the preview is closing its printer under it
                    self.log(f"error: the PDF: {e if isinstance(e, ReportError) else _located(e)}")
                continue
            if version == self.live.version:  # else a newer render asks for its own print
                self.live.printed()

    def run(self) -> None:
        """Render, then watch and re-render until ``stop`` is set (Ctrl-C in the CLI)."""
        from watchfiles import watch

        if self.print_pdf is not None:
            threading.Thread(target=self._printer, daemon=True).start()
        first = True
        # The watcher starts before the first render, so a save during it is not lost; a change is acted on
        # 30 ms after the last event of a burst (an editor's save is several events).
        events = watch(*self.watched, debounce=400, step=30, stop_event=self.stop, yield_on_timeout=True,
                       rust_timeout=100)  # fmt: skip
        for changes in events:
            if first or relevant((path for _, path in changes), self.data):
                first = False
                self.once()


def forget_rendering_modules() -> None:
    """Drop the context layer and renderer from ``sys.modules`` (not the base layer, the printer or this
    module), so a render after an edit imports the edited context modules and drawings afresh."""
    import sys

    import report

    for name in [m for m in sys.modules if m.startswith("report.")]:
        if not name.startswith(("report.core", "report.output", "report.preview")):
            del sys.modules[name]
            parent, _, child = name.rpartition(".")
            if parent == "report":
                vars(report).pop(child, None)


def serve(
    session: Session, out: Path, host: str, port: int, browser: bool, say: Callable[[str], None]
) -> None:
    """Serve ``out`` with live reload on ``host:port`` and run ``session`` until Ctrl-C."""
    import webbrowser

    try:
        httpd = server(out, session.live, host, port)
    except OSError as e:  # no such address here, or no such name: the host; else the port (taken, privileged)
        host_at_fault = isinstance(e, socket.gaierror) or e.errno == errno.EADDRNOTAVAIL
        fix = "a --host of this machine (127.0.0.1 is always one)" if host_at_fault else "another --port"
        raise ReportError(f"cannot serve on {host}:{port}: {e.strerror}; pass {fix}") from None
    url = f"http://{host}:{httpd.server_address[1]}/"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    say(f"serving {url} (Ctrl-C stops); the page reloads on every save")
    if browser:
        webbrowser.open(url)
    try:
        session.run()
    except KeyboardInterrupt:
        session.stop.set()
        say("stopped the preview")
    finally:
        httpd.shutdown()


def _located(e: BaseException) -> str:
    """An unexpected error as "file:line: Type: message", at the innermost frame of the project's code."""
    import traceback

    frames = [f for f in traceback.extract_tb(e.__traceback__) if "site-packages" not in f.filename]
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}: " if frames else ""
    if isinstance(e, SyntaxError) and e.filename:
        where = f"{Path(e.filename).name}:{e.lineno}: "
    return f"{where}{type(e).__name__}: {e}"


def relevant(paths: Iterable[str], data: tuple[Path, ...] = ()) -> bool:
    """Edits to sources, data files and new results count; editor swap files, caches and temporaries
    do not."""
    for p in map(Path, paths):
        if p.name.startswith(".") or p.suffix in (".tmp", ".swp", ".pyc") or "__pycache__" in p.parts:
            continue
        if p.name == "current" or p.suffix in (".j2", ".css", ".py", ".toml"):
            return True
        if any(p.is_relative_to(folder) for folder in data):
            return True
    return False
