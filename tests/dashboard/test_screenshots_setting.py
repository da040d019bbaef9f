"""The browser tests' screenshots are left out with BERTH_TEST_SCREENSHOTS=0 (`make test`'s default) and saved
otherwise; the page is the same either way."""

from __future__ import annotations

import uuid

from tests.support import browser as support
from tests.support.browser import chromium, screenshot, screenshots_wanted


async def test_screenshots_are_saved_unless_set_to_0(monkeypatch, tmp_path):
    monkeypatch.setattr(support, "ARTIFACTS", tmp_path / "artifacts")
    for value, wanted in (("0", False), ("false", False), ("1", True), (None, True)):
        if value is None:
            monkeypatch.delenv(support.SCREENSHOTS_VARIABLE, raising=False)
        else:
            monkeypatch.setenv(support.SCREENSHOTS_VARIABLE, value)
        assert screenshots_wanted() is wanted, value
    async with chromium() as b:
        ctx = await b.context(viewport={"width": 320, "height": 200})
        page = await ctx.new_page()
        await page.set_content("<main><p>berth</p></main>")
        name = f"setting-{uuid.uuid4().hex[:8]}"
        monkeypatch.setenv(support.SCREENSHOTS_VARIABLE, "0")
        path = await screenshot(page, name)
        assert path == tmp_path / "artifacts" / f"{name}.png" and not path.exists()
        monkeypatch.setenv(support.SCREENSHOTS_VARIABLE, "1")
        path = await screenshot(page, name)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        await ctx.close()
