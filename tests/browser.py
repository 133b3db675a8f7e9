"""Headless Chromium (Debian's package, never a downloaded browser) for the report and UI screenshot tests."""

from __future__ import annotations

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
