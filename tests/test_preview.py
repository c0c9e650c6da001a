"""``build.py preview`` in a real browser (Chromium through Playwright): an edit appears without a manual
reload, a template error shows over the page with its file and line and goes away with the fix, the scroll
position survives a reload; and the server listens on 127.0.0.1 only unless told otherwise."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import copy_project
from tests.test_publish import CHROMIUM

pytestmark = pytest.mark.slow


@contextmanager
def preview(project: Path, store: Path, out: Path, *extra: str) -> Iterator[int]:
    """A running ``build.py preview`` of the smoke profile; yields its port."""
    proc = subprocess.Popen(
        [sys.executable, str(project / "build.py"), "preview", "--no-browser", "--port", "0",
         "--profile", "smoke", "--store", str(store), "--out", str(out), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        seen = ""
        while not (match := re.search(r"serving http://[\d.]+:(\d+)/", seen)):
            line = proc.stdout.readline()
            assert line, f"the preview stopped before serving:\n{seen}"
            seen += line
        yield int(match.group(1))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _outside_address() -> str | None:
    """This machine's address on its first non-loopback interface (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if address.startswith("127.") else address


@pytest.mark.browser
def test_the_page_follows_each_save_shows_errors_and_recovers(smoke_build, tmp_path):
    from playwright import sync_api

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed; .ci/run installs it")
    project = copy_project(tmp_path)
    template = project / "templates" / "q1.md.j2"
    original = template.read_text(encoding="utf-8")
    with preview(project, smoke_build.store, tmp_path / "out") as port, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        page.get_by_role("heading", name=re.compile("Question 1")).wait_for()
        place = _scroll_as_a_reader(page, 1500)  # maybe before the page has loaded: the place holds

        template.write_text(original + "\n\nA sentence the author just added.\n", encoding="utf-8")
        page.get_by_text("A sentence the author just added.").wait_for(timeout=30_000)
        page.wait_for_load_state("load")  # the figures are decoded: the page has its full height
        try:  # the client restores the place once more on load; give that handler its turn
            page.wait_for_function(f"Math.abs(window.scrollY - {place}) <= 5", timeout=5_000)
        except sync_api.TimeoutError:
            pytest.fail(
                f"the reload lost the place: scrollY is {page.evaluate('window.scrollY')}, not {place}"
            )

        template.write_text(original + "\n\n{% if %}\n", encoding="utf-8")
        overlay = page.locator("#preview-error")
        overlay.wait_for(timeout=30_000)
        assert re.search(r"templates/q1\.md\.j2:\d+", overlay.inner_text()), overlay.inner_text()

        template.write_text(original + "\n\nThe fixed sentence.\n", encoding="utf-8")
        page.get_by_text("The fixed sentence.").wait_for(timeout=30_000)
        assert page.locator("#preview-error").count() == 0

        q3 = project / "experiments" / "q3.py"  # what status judges, the page flags: an experiment's code
        assert page.get_by_text("q3 (code changed)").count() == 0
        q3.write_text(q3.read_text(encoding="utf-8") + "\n# an edit\n", encoding="utf-8")
        page.get_by_text("q3 (code changed)").first.wait_for(timeout=30_000)

        page.locator("#preview-pdf").wait_for(timeout=120_000)  # printed in the background, then linked
        pdf = page.request.get(
            f"http://127.0.0.1:{port}" + page.locator("#preview-pdf").get_attribute("href")
        )
        assert pdf.ok and pdf.body().startswith(b"%PDF")
        browser.close()


def _scroll_as_a_reader(page, dy: int) -> int:  # noqa: ANN001 - a Playwright page
    """Scroll with the mouse wheel, as a reader would (a script's scrollTo is no reader's input), and
    return where the page came to rest."""
    start = page.evaluate("window.scrollY")
    page.mouse.move(300, 300)
    page.mouse.wheel(0, dy)
    page.wait_for_function(f"window.scrollY >= {start + dy // 2}", timeout=10_000)
    settled = "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(window.scrollY))))"
    y, last = page.evaluate(settled), None
    while y != last:  # a wheel scroll may be animated: wait until it stops
        y, last = page.evaluate(settled), y
    return y


@pytest.mark.browser
def test_a_reader_who_scrolls_before_the_page_has_loaded_keeps_their_place(tmp_path):
    """After a reload the client returns to the reader's place, and once more when the page has loaded
    (figures give it its height); a reader who scrolled in between keeps where they scrolled to."""
    import threading

    from playwright import sync_api

    from report import preview as live

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed; .ci/run installs it")
    (tmp_path / "report.html").write_text(
        '<html><body><div style="height:8000px">a long report</div><img src="/figure.png"></body></html>'
    )
    state = live.Live()
    state.rendered(None)
    httpd = live.server(tmp_path, state, "127.0.0.1", 0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    held: list[sync_api.Route] = []  # a request answered when the test says (the figure's: the load waits)
    png = bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8ffff3f0005"
        "fe02fea7d6a4f70000000049454e44ae426082"
    )

    def answer() -> None:
        held.pop().fulfill(body=png, content_type="image/png", headers={"Cache-Control": "no-store"})

    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM)
            page = browser.new_page(viewport={"width": 800, "height": 600})
            page.route("**/figure.png", lambda route: held.append(route))
            base = f"http://127.0.0.1:{httpd.server_address[1]}"
            page.goto(base + "/", wait_until="domcontentloaded")
            page.wait_for_function("document.readyState === 'interactive'")
            answer()
            page.wait_for_load_state("load")
            page.evaluate("window.scrollTo(0, 1500)")

            state.rendered(None)  # a save: the client keeps its place and reloads
            page.wait_for_function("document.readyState === 'interactive' && window.scrollY === 1500")
            assert page.evaluate("document.readyState") == "interactive"  # the figure is still held
            place = _scroll_as_a_reader(page, 700)
            assert place > 1500
            answer()
            page.wait_for_load_state("load")
            rest = "new Promise(r => requestAnimationFrame(() => r(window.scrollY)))"
            assert page.evaluate(rest) == place, (
                "the page went back to where it was before the reader scrolled"
            )

            # and the next reload returns to the reader's place, even when the reader presses a key
            # while the new page is on its way (the document's request is held meanwhile)
            page.route(base + "/", lambda route: held.append(route))
            state.rendered(None)
            while not held:
                page.wait_for_timeout(20)
            page.keyboard.press("End")  # on the page being left: it must not drop the place it handed on
            page.unroute(base + "/")
            held.pop().continue_()
            page.wait_for_function("document.readyState === 'interactive'")
            answer()
            page.wait_for_load_state("load")
            assert page.evaluate(rest) == place
            browser.close()
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_server_listens_on_loopback_only_unless_told(smoke_build, tmp_path):
    outside = _outside_address()
    if outside is None:
        pytest.skip("this machine has no interface but loopback to try from")
    with preview(copy_project(tmp_path), smoke_build.store, tmp_path / "out") as port:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((outside, port), timeout=5)
    with preview(
        copy_project(tmp_path / "b"), smoke_build.store, tmp_path / "out-b", "--host", "0.0.0.0"
    ) as port:
        socket.create_connection(
            (outside, port), timeout=5
        ).close()  # asked for: reachable, so the check can fail


def test_a_python_error_in_an_edited_module_is_shown_and_the_preview_goes_on(tmp_path):
    from report import preview as live

    def broken() -> None:
        raise NameError("name 'undefined_fact' is not defined")

    session = live.Session(broken, [tmp_path], log=lambda message: None)
    assert session.once() is False
    assert (
        session.live.error.startswith("test_preview.py:")
        and "NameError: name 'undefined_fact'" in session.live.error
    )
    (tmp_path / "report.html").write_text("<html><body>last good</body></html>")
    shown = live.page(tmp_path / "report.html", session.live)
    assert "last good" in shown and 'id="preview-error"' in shown
    assert (
        f"since={session.live.version}&pdf={session.live.pdf_version}" in shown
    )  # no reload lost in between


def test_until_the_first_render_is_done_the_page_says_so_then_reloads_into_the_report(tmp_path):
    import threading
    import urllib.request

    from report import preview as live

    (tmp_path / "report.html").write_text("<html><body>a report from an earlier session</body></html>")
    state = live.Live()
    httpd = live.server(tmp_path, state, "127.0.0.1", 0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        first = urllib.request.urlopen(url + "/", timeout=10).read().decode()
        assert 'id="preview-rendering"' in first and "Rendering the report" in first
        assert "earlier session" not in first
        assert "since=0&pdf=0" in first  # its client asks for a reload when version 0 is left behind

        (tmp_path / "report.html").write_text("<html><body>the rendered report</body></html>")
        state.rendered(None)
        with urllib.request.urlopen(url + "/__preview/events?since=0&pdf=0", timeout=10) as events:
            assert events.readline() == b"event: reload\n"
        shown = urllib.request.urlopen(url + "/", timeout=10).read().decode()
        assert "the rendered report" in shown and "preview-rendering" not in shown
    finally:
        httpd.shutdown()


def test_a_malformed_events_request_is_a_400_not_a_traceback(tmp_path, capfd):
    import threading
    import urllib.error
    import urllib.request

    from report import preview as live

    httpd = live.server(tmp_path, live.Live(), "127.0.0.1", 0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/__preview/events?since=abc"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=10)
        assert refused.value.code == 400
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert "Traceback" not in capfd.readouterr().err
