"""Shared browser-test helpers: Debian's Chromium driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

__all__ = ["CHROMIUM", "ARGS", "PHONE", "DESKTOP", "SCREENSHOTS", "launch", "phone", "desktop", "playwright"]

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
