"""Shared fixtures for the book tests (run after the book is built: `make book-test`).

* ``book_html``: the built site, ``_build/html``;
* ``toc_pages``: every page in ``_toc.yml``, in reading order;
* ``browser``: headless Debian Chromium driven by Playwright (never a
  downloaded browser);
* ``site_url``: the site served over HTTP on 127.0.0.1 by a server the test
  starts and stops.

Anything missing (the build, Chromium, Playwright) skips the tests locally with
the reason, and *fails* them when ``CI`` is set, so CI cannot pass by skipping.
"""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "_build"
HTML = BUILD / "html"
SCREENSHOTS = BUILD / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",                      # we run as root in containers
    "--disable-gpu",
    "--disable-background-networking",   # no update checks, no phoning home
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--no-first-run",
    "--metrics-recording-only",
    "--mute-audio",
]


def missing(reason: str) -> None:
    """Skip locally; fail on CI, where everything must be there."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def book_html() -> Path:
    if not (HTML / "book" / "intro.html").is_file():
        missing(f"the book is not built ({HTML / 'book' / 'intro.html'} is missing): run `make book-test`")
    return HTML


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest's output clean
        pass


@pytest.fixture(scope="session")
def site_url(book_html: Path):
    handler = functools.partial(_QuietHandler, directory=str(book_html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # loopback only, any free port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def browser():
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        missing(f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("the playwright Python package is not installed (pip install playwright)")
    with sync_playwright() as pw:
        # Playwright gives the browser a fresh temporary profile of its own.
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def screenshots_dir() -> Path:
    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
    SCREENSHOTS.mkdir(parents=True)
    return SCREENSHOTS
