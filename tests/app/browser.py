"""Shared browser-test helpers: Debian's Chromium driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

__all__ = ["CHROMIUM", "ARGS", "PHONE", "DESKTOP", "SCREENSHOTS", "launch", "phone", "desktop", "camera_phone",
           "playwright"]

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"


@pytest.fixture(scope="module")
def playwright():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: install Debian's 'chromium' package "
                    "(or set CHROMIUM_PATH). The browser tests need a real browser and do not skip.")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - the dev requirements install it
        pytest.fail(f"the 'playwright' Python package is missing ({exc}); pip install -r requirements-dev.txt")
    with sync_playwright() as p:
        yield p


def launch(playwright, *extra_args: str):
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[*ARGS, *extra_args])


def phone(browser, **options):
    options.setdefault("locale", "vi-VN")
    return browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2, **options)


def desktop(browser, **options):
    options.setdefault("locale", "vi-VN")
    return browser.new_context(viewport=DESKTOP, **options)


@contextlib.contextmanager
def camera_phone(playwright, video: Path | None = None):
    """A page on a phone whose camera is Chromium's fake one, allowed: playing ``video`` (a .y4m
    file, test_browser.write_y4m), else Chromium's own moving pattern, with no code in it. The
    browser is its own (the camera is a launch option) and is closed after."""
    flags = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
    if video is not None:
        flags.append(f"--use-file-for-fake-video-capture={video}")
    browser = launch(playwright, *flags)
    try:
        yield phone(browser, permissions=["camera"]).new_page()
    finally:
        browser.close()
