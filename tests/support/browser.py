"""A real server on loopback and a real headless Chromium, for the console's browser tests.

Chromium comes from Debian (``apt-get install chromium``, done by ``.ci/run``);
Playwright for Python drives it through ``executable_path`` and never downloads
a browser. Without Chromium the browser tests are skipped with the reason,
unless ``SISONG_REQUIRE_BROWSER=1`` (set by CI), where a missing browser fails.

Screenshots go to ``tests/artifacts/`` (or ``SISONG_ARTIFACTS``) and are kept.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

ARTIFACTS = Path(os.environ.get("SISONG_ARTIFACTS") or Path(__file__).resolve().parents[1] / "artifacts")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]
PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 900}


def chromium_path() -> str | None:
    explicit = os.environ.get("SISONG_CHROMIUM")
    if explicit:
        return explicit
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on a free loopback port; yields the base URL."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("live server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Debian Chromium driven by Playwright (skips, or fails under CI, when absent)."""
    path = chromium_path()
    if path is None:
        if os.environ.get("SISONG_REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium is required (SISONG_REQUIRE_BROWSER=1) but not installed: apt-get install chromium")
        pytest.skip("no Chromium on this machine (apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Any, name: str) -> Path:
    """Keep a full-page screenshot as a test artifact: tests/artifacts/<name>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / (re.sub(r"[^\w.-]+", "_", name) + ".png")
    page.screenshot(path=str(target), full_page=True)
    return target


def log_in(page: Any, base_url: str, name: str, password: str) -> None:
    """Log in through the real login form and wait for the console."""
    page.goto(f"{base_url}/console/login")
    page.fill("#name", name)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/console/(?!login).*"))
