"""Helpers for the browser tests: a third-party static site and Debian's Chromium driven by Playwright."""

import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Debian's package: Playwright never downloads a browser here. A missing binary fails the tests.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@contextmanager
def static_site(root: Path, *, pages: dict[str, str], replacements: dict[str, str]) -> Iterator[str]:
    """Serve `pages` (fixture name -> served name) from `root` on a free port of 127.0.0.1; yield its origin."""
    for fixture, served in pages.items():
        text = (HERE / fixture).read_text()
        for placeholder, value in replacements.items():
            text = text.replace(placeholder, value)
        (root / served).write_text(text)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def console_note(notes: list[str], page, message) -> None:
    """Keep errors and warnings (a blocked resource logs one). Not Chromium's "verbose" DOM lint (autocomplete
    hints), nor the 404 of the /favicon.ico it may or may not ask for, depending on timing."""
    if message.type in ("error", "warning") and not message.location.get("url", "").endswith("/favicon.ico"):
        notes.append(f"{page.url} {message.text}")


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def poll(page, predicate: Callable[[], object], *, timeout: float = 30, message: str = "condition"):
    """Like `wait_until`, but lets Playwright dispatch page events while it waits (time.sleep would not)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        if page is not None and not page.is_closed():
            page.wait_for_timeout(100)
        else:
            time.sleep(0.1)
