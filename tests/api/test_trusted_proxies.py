"""Forwarded headers are believed from trusted proxies only (``BERTH_TRUSTED_PROXIES``, CIDRs, empty by
default): from any other peer, ``X-Forwarded-For`` neither writes the audit log's source address nor spreads
failed attempts over made-up addresses, and ``X-Forwarded-Proto`` does not change the scheme. One api for the
module trusts 127.0.0.2 only; clients on other loopback addresses stand for other hosts."""

from __future__ import annotations

import secrets

import httpx
import pydantic
import pytest

from berth_api.domain import forwarded
from berth_api.settings import ApiSettings
from tests.api.conftest import bearer
from tests.api.module_api import api, api_urls, base_api_settings, members  # noqa: F401

PROXY = "127.0.0.2"


@pytest.fixture(scope="module")
def api_settings(base_api_settings):  # noqa: F811
    return base_api_settings.model_copy(update={"trusted_proxies": [f"{PROXY}/32"]})


def _from(api, address: str) -> httpx.AsyncClient:  # noqa: F811
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=api.url, timeout=10, transport=transport)


async def _last_source(c: httpx.AsyncClient, admin: dict[str, str]) -> str:
    rows = (await c.get("/v1/audit", headers=admin, params={"limit": 1})).json()
    return rows[0]["source"]


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(api, members):  # noqa: F811
    async with _from(api, "127.0.0.1") as c:
        spoof = {**members.admin, "X-Forwarded-For": "203.0.113.9"}
        r = await c.post("/v1/projects", headers=spoof, json={"name": "spoofed"})
        assert r.status_code == 201, r.text
        assert await _last_source(c, members.admin) == "127.0.0.1"


async def test_forwarded_for_from_a_trusted_proxy_names_the_client(api, members):  # noqa: F811
    async with _from(api, PROXY) as c:
        # The client may prepend anything; the proxy appends what it saw: the last hop not a proxy counts.
        hops = {**members.admin, "X-Forwarded-For": "198.51.100.1, 203.0.113.7, 127.0.0.2"}
        r = await c.post("/v1/projects", headers=hops, json={"name": "proxied"})
        assert r.status_code == 201, r.text
        assert await _last_source(c, members.admin) == "203.0.113.7"


async def test_made_up_addresses_do_not_escape_the_address_limit(api, members):  # noqa: F811
    async with _from(api, "127.0.0.3") as c:
        for i in range(20):
            wrong = {**bearer(f"berth_{secrets.token_hex(6)}_{'A' * 43}"), "X-Forwarded-For": f"198.51.100.{i}"}
            assert (await c.get("/v1/me", headers=wrong)).status_code == 401
        wrong = {**bearer(f"berth_{secrets.token_hex(6)}_{'A' * 43}"), "X-Forwarded-For": "198.51.100.99"}
        assert (await c.get("/v1/me", headers=wrong)).status_code == 429


def test_forwarded_rules():
    none: tuple[forwarded.Network, ...] = ()
    proxies = forwarded.networks(["10.0.0.0/8", "::1", " "])
    assert forwarded.client_address("10.1.2.3", "192.0.2.1", none) == "10.1.2.3"  # the default: nobody trusted
    assert forwarded.client_address("10.1.2.3", "192.0.2.1, 10.9.9.9", proxies) == "192.0.2.1"
    assert forwarded.client_address("::1", "2001:db8::5", proxies) == "2001:db8::5"
    assert forwarded.client_address("192.0.2.8", "10.0.0.1", proxies) == "192.0.2.8"  # not a proxy: peer
    assert forwarded.client_address("10.1.2.3", None, proxies) == "10.1.2.3"  # nothing forwarded
    assert forwarded.client_address("::ffff:10.0.0.4", "192.0.2.2", proxies) == "192.0.2.2"  # v4-mapped peer
    assert forwarded.scheme("192.0.2.8", "http", "https", proxies) == "http"
    assert forwarded.scheme("10.0.0.4", "http", "https, http", proxies) == "https"
    assert forwarded.scheme("10.0.0.4", "http", "gopher", proxies) == "http"
    assert forwarded.scheme("10.0.0.4", "http", "https", none) == "http"


def test_trusted_proxies_must_be_networks():
    assert ApiSettings(trusted_proxies=["10.0.0.0/8", "127.0.0.1"]).proxy_networks[1].prefixlen == 32
    with pytest.raises(pydantic.ValidationError, match="not an address or CIDR network"):
        ApiSettings(trusted_proxies=["proxy.example"])
