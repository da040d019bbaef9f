"""A headless Debian ``chromium`` driven by Playwright (the ``playwright`` wheel; its own browser download is
never used), and the console errors every page logged, so a test can assert there were none."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
NETWORK_CHANGED = "net::ERR_NETWORK_CHANGED"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
# BERTH_TEST_SCREENSHOTS=0: no screenshots (what the pages are checked for stays the same). Encoding them is a
# fifth of the accessibility crawl's time; `make test` leaves them out unless asked (SCREENSHOTS=1).
SCREENSHOTS_VARIABLE = "BERTH_TEST_SCREENSHOTS"


def screenshots_wanted() -> bool:
    """Whether the browser tests save their screenshots under ``tests/artifacts/`` (yes unless set to 0)."""
    return os.environ.get(SCREENSHOTS_VARIABLE, "1").strip() not in ("0", "false", "no")


@dataclass
class Browser:
    """The browser, and every console error and page error seen so far (``"<url>: <text>"``)."""

    browser: object
    errors: list[str] = field(default_factory=list)
    network_changes: list[str] = field(default_factory=list)

    async def context(self, **options: object):
        ctx = await self.browser.new_context(**options)  # type: ignore[attr-defined]
        ctx.on("page", self.watch)
        return ctx

    def watch(self, page) -> None:
        page.on("console", lambda m: self.console(page.url, m.type, m.text))
        page.on("pageerror", lambda e: self.errors.append(f"{page.url}: {e}"))

    def console(self, url: str, kind: str, text: str) -> None:
        """Record an error the page logged; a load that Chromium aborted because the machine's network
        interfaces changed (other tests make and remove Docker networks meanwhile) is the machine's, not the
        page's, and is kept apart."""
        if kind != "error":
            return
        (self.network_changes if NETWORK_CHANGED in text else self.errors).append(f"{url}: {text}")


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Launch ``/usr/bin/chromium`` headless (skip the test where it is not installed)."""
    import pytest

    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is not installed (deploy/install.sh --test installs it)")
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield Browser(browser)
        finally:
            await browser.close()


async def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot under ``tests/artifacts/`` (ignored by git) for a person to look at (unless
    screenshots are not wanted: its path, unwritten)."""
    path = ARTIFACTS / f"{name}.png"
    if not screenshots_wanted():
        return path
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(path), full_page=True)
    return path
