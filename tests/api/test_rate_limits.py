"""Rate limits that cannot lock out the innocent: once an address (every client behind one proxy shares it)
or a token prefix failed too often, wrong tokens and codes are answered 429 and not counted, while a valid
token or invitation code is still taken. Clients on other loopback addresses stand for other hosts."""

from __future__ import annotations

import secrets

import httpx

from tests.api.conftest import bearer
from tests.api.module_api import api, api_settings, api_urls, base_api_settings, members  # noqa: F401


def _from(api, address: str) -> httpx.AsyncClient:  # noqa: F811
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=api.url, timeout=10, transport=transport)


def _unknown() -> dict[str, str]:
    return bearer(f"berth_{secrets.token_hex(6)}_{'A' * 43}")


async def _block(c: httpx.AsyncClient) -> None:
    for _ in range(20):
        assert (await c.get("/v1/me", headers=_unknown())).status_code == 401
    assert (await c.get("/v1/me", headers=_unknown())).status_code == 429


async def test_a_valid_token_is_taken_from_a_blocked_address(api, members):  # noqa: F811
    async with _from(api, "127.0.0.41") as shared:
        await _block(shared)
        for headers in (members.admin, members.developer, members.viewer):
            assert (await shared.get("/v1/me", headers=headers)).status_code == 200
        r = await shared.post("/v1/projects", headers=members.developer, json={"name": "behind-proxy"})
        assert r.status_code == 201, r.text
        # Guessing is still stopped: wrong and malformed tokens get 429, whatever else succeeded.
        assert (await shared.get("/v1/me", headers=_unknown())).status_code == 429
        assert (await shared.get("/v1/me", headers=bearer("garbage"))).status_code == 429
        assert (await shared.get("/v1/me")).status_code == 401  # no token: not an attempt


async def test_a_valid_token_is_taken_while_its_prefix_is_blocked(api, members):  # noqa: F811
    _, prefix, secret = members.viewer["Authorization"].removeprefix("Bearer ").split("_", 2)
    wrong = bearer(f"berth_{prefix}_{'B' if secret[0] != 'B' else 'C'}{secret[1:]}")
    for i in range(10):
        async with _from(api, f"127.0.0.{50 + i}") as c:
            assert (await c.get("/v1/me", headers=wrong)).status_code == 401
    async with _from(api, "127.0.0.60") as c:
        assert (await c.get("/v1/me", headers=wrong)).status_code == 429
        assert (await c.get("/v1/me", headers=members.viewer)).status_code == 200


async def test_a_valid_invitation_is_taken_from_a_blocked_address(api, members):  # noqa: F811
    async with _from(api, "127.0.0.42") as shared:
        await _block(shared)
        r = await shared.post(
            "/v1/invitations", headers=members.admin, json={"email": "late@example.com", "role": "viewer"}
        )
        assert r.status_code == 201, r.text
        code = r.json()["code"]
        wrong = f"berthinv_{secrets.token_hex(6)}_{'x' * 43}"
        assert (await shared.post("/v1/invitations/accept", json={"code": wrong})).status_code == 429
        r = await shared.post("/v1/invitations/accept", json={"code": code})
        assert r.status_code == 201, r.text
        assert (await shared.get("/v1/me", headers=bearer(r.json()["token"]["token"]))).status_code == 200
