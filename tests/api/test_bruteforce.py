"""Brute force: failed authentications are limited per source address (20/min) and per token prefix (10/min)
with 429 problem+json and Retry-After; successful requests are never counted and a valid token is never
refused; other addresses and other tokens are unaffected. Clients on other loopback addresses (127.0.0.x) stand for other hosts."""

from __future__ import annotations

import secrets

import httpx
import pytest

from berth_api.domain.problems import MEDIA_TYPE
from berth_api.domain.ratelimit import FailureLimiter, SlidingWindow
from tests.api.conftest import bearer


def _from(api, address: str) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=api.url, timeout=10, transport=transport)


def _unknown_token() -> str:
    return f"berth_{secrets.token_hex(6)}_{'A' * 43}"


def assert_429(r: httpx.Response) -> int:
    assert r.status_code == 429, r.text
    assert r.headers["content-type"] == MEDIA_TYPE
    assert r.json()["type"] == "urn:berth:problem:too-many-requests"
    wait = int(r.headers["retry-after"])
    assert 1 <= wait <= 60
    return wait


async def test_failures_from_one_address_are_limited(api, members):
    async with _from(api, "127.0.0.1") as attacker, _from(api, "127.0.0.3") as bystander:
        for i in range(20):  # distinct prefixes: only the address counts up
            r = await attacker.get("/v1/me", headers=bearer(_unknown_token()))
            assert r.status_code == 401, (i, r.text)
        assert_429(await attacker.get("/v1/me", headers=bearer(_unknown_token())))
        assert_429(await attacker.get("/v1/me", headers=bearer("garbage")))
        # A valid token from the blocked address is still taken: others' failures never lock it out.
        assert (await attacker.get("/v1/me", headers=members.admin)).status_code == 200
        assert_429(await attacker.get("/v1/me", headers=bearer(_unknown_token())))  # a wrong one: still refused
        # No token at all is not a failed authentication: still the plain 401.
        assert (await attacker.get("/v1/me")).status_code == 401
        # Another address is unaffected, with a good token and with a bad one.
        assert (await bystander.get("/v1/me", headers=members.admin)).status_code == 200
        assert (await bystander.get("/v1/me", headers=bearer(_unknown_token()))).status_code == 401


async def test_failures_on_one_token_prefix_are_limited_across_addresses(api, members):
    _, prefix, secret = api.admin_token().split("_", 2)
    wrong = bearer(f"berth_{prefix}_{'B' if secret[0] != 'B' else 'C'}{secret[1:]}")
    for i in range(10):  # one failure per address: far below the address limit
        async with _from(api, f"127.0.0.{10 + i}") as c:
            assert (await c.get("/v1/me", headers=wrong)).status_code == 401
    async with _from(api, "127.0.0.30") as c:
        assert_429(await c.get("/v1/me", headers=wrong))
        # The prefix is blocked for wrong secrets only: its owner's valid token is still taken.
        assert (await c.get("/v1/me", headers=members.admin)).status_code == 200
        assert_429(await c.get("/v1/me", headers=wrong))
        # Other tokens are unaffected.
        assert (await c.get("/v1/me", headers=members.developer)).status_code == 200


async def test_successful_requests_are_never_counted(api, members):
    async with _from(api, "127.0.0.1") as c:
        for _ in range(19):
            assert (await c.get("/v1/me", headers=bearer(_unknown_token()))).status_code == 401
        for _ in range(300):  # well past any limit: successes do not count
            assert (await c.get("/v1/me", headers=members.viewer)).status_code == 200
        assert (await c.get("/v1/me", headers=bearer(_unknown_token()))).status_code == 401  # the 20th failure
        assert_429(await c.get("/v1/me", headers=bearer(_unknown_token())))


async def test_invitation_codes_count_as_failed_authentications(api, members):
    async with _from(api, "127.0.0.5") as c:
        for _ in range(20):
            r = await c.post("/v1/invitations/accept", json={"code": f"berthinv_{secrets.token_hex(6)}_{'x' * 43}"})
            assert r.status_code == 404
        assert_429(await c.post("/v1/invitations/accept", json={"code": "anything"}))


# --- the windows themselves (a clock under the test's control) -----------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sliding_window_blocks_at_the_limit_and_slides():
    clock = Clock()
    limiter = FailureLimiter(per_address=3, per_prefix=2, window_s=60, clock=clock)
    for _ in range(3):
        assert limiter.retry_after("1.2.3.4", None) is None
        limiter.failed("1.2.3.4", None)
        clock.now += 10
    # Failures at 1000, 1010, 1020; now 1030: blocked until the first leaves the window at 1060.
    assert limiter.retry_after("1.2.3.4", None) == 30
    assert limiter.retry_after("5.6.7.8", None) is None
    clock.now = 1060.5
    assert limiter.retry_after("1.2.3.4", None) is None  # one slid out: 2 of 3 left
    limiter.failed("1.2.3.4", None)
    assert limiter.retry_after("1.2.3.4", None) == pytest.approx(10, abs=1)  # 1010 leaves at 1070


def test_prefix_window_and_the_longer_wait_wins():
    clock = Clock()
    limiter = FailureLimiter(per_address=100, per_prefix=2, window_s=60, clock=clock)
    limiter.failed("a", "p1")
    clock.now += 30
    limiter.failed("b", "p1")
    assert limiter.retry_after("c", "p1") == 30
    assert limiter.retry_after("c", "p2") is None and limiter.retry_after("c", None) is None


def test_disabled_limits_and_bounded_memory():
    off = FailureLimiter(per_address=0, per_prefix=0, window_s=60)
    for _ in range(1000):
        off.failed("x", "p")
    assert off.retry_after("x", "p") is None and len(off.addresses) == 0
    window = SlidingWindow(limit=5, window_s=60, max_keys=100)
    for i in range(1000):
        window.hit(f"10.0.{i // 256}.{i % 256}", 1.0)
    assert len(window) == 100  # the least recently failed were forgotten
