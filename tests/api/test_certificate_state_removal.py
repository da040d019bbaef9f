"""An application's certificate state goes with it: once it is deleted, no row of its hosts' certificates
is left (another application's stay)."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from tests.api.conftest import WEB_APP, make_app
from tests.api.test_certificate_state import _issued, proxy_sync  # noqa: F401  (the fixture)

SHOP = "shop.example.com"


def _app(name: str, domain: str) -> dict:
    return {**WEB_APP, "name": name, "services": [{**WEB_APP["services"][0], "domains": [domain]}]}


async def _rows(api_urls) -> dict[str, str]:
    conn = await asyncpg.connect(api_urls["api"].replace("+asyncpg", ""))
    try:
        found = await conn.fetch("SELECT host, application_id FROM api.certificate_states")
    finally:
        await conn.close()
    return {r["host"]: r["application_id"] for r in found}


async def _until_rows(api_urls, wanted: set[str]) -> dict[str, str]:
    deadline = time.monotonic() + 10
    while (rows := await _rows(api_urls)).keys() != wanted:
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.05)
    return rows


async def test_deleting_an_application_deletes_its_certificate_state(client, members, proxy_sync, api_urls):  # noqa: F811
    shop = await make_app(client, members.developer, _app("shop", SHOP))
    blog = await make_app(client, members.developer, _app("blog", "blog.example.com"))
    team = (await client.get("/v1/me", headers=members.viewer)).json()["team"]["id"]
    await proxy_sync.publish(_issued(team, shop["id"], SHOP))
    await proxy_sync.publish(_issued(team, blog["id"], "blog.example.com"))
    rows = await _until_rows(api_urls, {SHOP, "blog.example.com"})
    assert rows == {SHOP: shop["id"], "blog.example.com": blog["id"]}

    r = await client.delete(f"/v1/applications/{shop['id']}", headers=members.admin)
    assert r.status_code == 204, r.text  # never deployed: deleted at once
    assert await _rows(api_urls) == {"blog.example.com": blog["id"]}
