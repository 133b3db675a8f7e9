"""Headless Chromium (Debian's package, never a downloaded browser) for the report and UI screenshot tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import av
import numpy as np
import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--force-device-scale-factor=1", "--mute-audio"]
#: where a person finds the committed pictures; set UPDATE_DOC_IMAGES=1 to refresh them from a test run
DOC_IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"


def chromium() -> str:
    """The browser, or a failure that says how to install it (the tests never skip for want of it)."""
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if not path:
        pytest.fail("Chromium is not installed: `sudo apt-get install chromium` (./scripts/test installs it "
                    "when it runs as root). The report and UI tests check pages in a real browser.")
    return path


def run_chromium(url: str, *args: str, window: tuple[int, int] = (1280, 2000), timeout: float = 120) -> str:
    """Load `url` in a fresh profile with the given extra flags; returns stdout (the DOM with --dump-dom)."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        proc = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", f"--window-size={window[0]},{window[1]}",
                               *args, url], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def screenshot(url: str, out: Path, window: tuple[int, int] = (1280, 2000), budget_ms: int = 5000) -> np.ndarray:
    """A PNG of the page after `budget_ms` of virtual time; returns its pixels (height × width × RGB)."""
    run_chromium(url, f"--screenshot={out}", f"--virtual-time-budget={budget_ms}", window=window)
    assert out.exists() and out.stat().st_size > 0, f"Chromium wrote no screenshot to {out}"
    return png_pixels(out)


def png_pixels(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return frame.to_ndarray(format="rgb24")


def region_stats(pixels: np.ndarray, rect: dict) -> tuple[int, float]:
    """(distinct colours, share of pixels that are not near-white) inside a CSS-pixel rectangle."""
    x, y = max(int(rect["x"]), 0), max(int(rect["y"]), 0)
    crop = pixels[y:y + int(rect["height"]), x:x + int(rect["width"])]
    assert crop.size, f"rectangle {rect} is outside the {pixels.shape[1]}x{pixels.shape[0]} screenshot"
    flat = crop.reshape(-1, 3)
    distinct = len(np.unique(flat, axis=0))
    not_white = float((flat.min(axis=1) < 235).mean())
    return distinct, not_white


def keep_doc_image(src: Path, name: str) -> None:
    """Refresh docs/images/<name> from a test's screenshot when UPDATE_DOC_IMAGES=1."""
    if os.environ.get("UPDATE_DOC_IMAGES") == "1":
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, DOC_IMAGES / name)


class DevToolsPage:
    """One page of headless Chromium driven over the DevTools protocol (for pages that need a key press or a
    wait for content before the picture): navigate, evaluate, press, screenshot."""

    def __init__(self, window: tuple[int, int] = (1600, 1000)):
        self.window = window

    def __enter__(self) -> "DevToolsPage":
        import re
        import select
        import time

        import httpx
        from websockets.sync.client import connect

        self._profile = tempfile.TemporaryDirectory(prefix="chromium-profile-")
        self.proc = subprocess.Popen(
            [chromium(), *FLAGS, f"--user-data-dir={self._profile.name}", "--remote-debugging-port=0",
             "--remote-allow-origins=*", f"--window-size={self.window[0]},{self.window[1]}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
        deadline, port, seen = time.monotonic() + 60, None, ""
        while port is None and time.monotonic() < deadline:
            if select.select([self.proc.stderr], [], [], 1)[0]:
                line = self.proc.stderr.readline()
                seen += line
                match = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
                port = int(match.group(1)) if match else None
            if self.proc.poll() is not None:
                break
        assert port, f"Chromium did not open its DevTools port: {seen[-2000:]}"
        pages = [t for t in httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json() if t["type"] == "page"]
        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=30))
        self._id = 0
        self.call("Page.enable")
        self.call("Runtime.enable")
        return self

    def __exit__(self, *exc) -> None:
        import os
        import signal

        try:
            self._stack.close()
        finally:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
            self._profile.cleanup()

    def call(self, method: str, **params) -> dict:
        import json

        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == self._id:
                assert "error" not in message, message
                return message.get("result", {})

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 60) -> None:
        """Until `expression` is truthy in the page (content fetched and drawn), or fail saying what was awaited."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.evaluate(expression):
                return
            time.sleep(0.5)
        raise AssertionError(f"page never satisfied {expression!r}; it shows: "
                             f"{(self.evaluate('document.body && document.body.innerText') or '')[:1500]}")

    def press(self, code: str, key: str, alt: bool = False) -> None:
        modifiers = 1 if alt else 0
        for kind in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", type=kind, code=code, key=key, modifiers=modifiers)

    def screenshot(self, out: Path) -> np.ndarray:
        import base64

        data = self.call("Page.captureScreenshot", format="png")["data"]
        out.write_bytes(base64.b64decode(data))
        return png_pixels(out)
