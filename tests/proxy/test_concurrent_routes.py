"""proxy-sync handling route commands concurrently against a real Traefik: routes do not wait for each
other, one route's commands never overlap, one host is never claimed twice, a burst converges."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator

import asyncpg
import pytest

from berth_proxy_sync.adapters.traefik_api import TraefikApi
from berth_proxy_sync.domain.routes import Route
from tests.proxy.support import API_PASSWORD, ProxySync


@pytest.fixture
async def concurrent_sync(proxy_settings) -> AsyncIterator[ProxySync]:
    svc = await ProxySync(proxy_settings.model_copy(update={"route_concurrency": 4})).start()
    yield svc
    await svc.stop()


@pytest.fixture
async def pg(proxy_settings) -> AsyncIterator[asyncpg.Connection]:
    url = proxy_settings.database_url.get_secret_value()
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    yield conn
    await conn.close()


def servers(traefik, rid: str) -> list[str] | None:
    try:
        with traefik.api_get(f"/api/http/services/route-{rid}@file") as r:
            return sorted(s["url"] for s in json.loads(r.read())["loadBalancer"]["servers"])
    except urllib.error.HTTPError:
        return None


async def test_a_blocked_route_does_not_hold_up_another(traefik, upstream, concurrent_sync, routes, pg, unique):
    a = upstream("A")
    slow, fast = f"slow-{unique}", f"fast-{unique}"
    await pg.execute("SELECT pg_advisory_lock(hashtext($1))", f"berth-route:{slow}")  # as if a command ran
    try:
        await routes.apply(slow, [f"{slow}.localhost"], [a.url], generation=1)
        await routes.apply(fast, [f"{fast}.localhost"], [a.url], generation=1)
        assert (await routes.wait(fast, 1, timeout=20))["type"] == "evt.route.applied"
        await asyncio.sleep(0.5)
        assert traefik.get(f"{slow}.localhost")[0] == 404  # still waiting for its route's lock
        assert not [e for e in routes.events if e["data"]["route_id"] == slow]
    finally:
        await pg.execute("SELECT pg_advisory_unlock(hashtext($1))", f"berth-route:{slow}")
    assert (await routes.wait(slow, 1, timeout=20))["type"] == "evt.route.applied"
    assert traefik.get(f"{slow}.localhost") == (200, b"A")


async def test_a_claimed_host_waits_for_the_claim_in_progress(traefik, upstream, concurrent_sync, routes, pg, unique):
    a = upstream("A")
    host = f"shared-{unique}.localhost"
    await pg.execute("SELECT pg_advisory_lock(hashtext($1))", f"berth-host:{host}")
    try:
        await routes.apply(f"one-{unique}", [host], [a.url], generation=1)
        await routes.apply(f"other-{unique}", [f"other-{unique}.localhost"], [a.url], generation=1)
        assert (await routes.wait(f"other-{unique}", 1, timeout=20))["type"] == "evt.route.applied"
        await asyncio.sleep(0.3)
        assert traefik.get(host)[0] == 404
    finally:
        await pg.execute("SELECT pg_advisory_unlock(hashtext($1))", f"berth-host:{host}")
    assert (await routes.wait(f"one-{unique}", 1, timeout=20))["type"] == "evt.route.applied"


async def test_two_routes_racing_for_one_host_leave_exactly_one_owner(
    traefik, upstream, concurrent_sync, routes, unique
):
    a, b = upstream("A"), upstream("B")
    pairs = [(f"a{i}-{unique}", f"b{i}-{unique}", f"race{i}-{unique}.localhost") for i in range(6)]
    for ra, rb, host in pairs:  # published back to back: handled in the same batch, at once
        await routes.apply(ra, [host], [a.url], generation=1)
        await routes.apply(rb, [host], [b.url], generation=1)
    for ra, rb, host in pairs:
        ea, eb = await routes.wait(ra, 1), await routes.wait(rb, 1)
        outcomes = sorted([ea["type"], eb["type"]])
        assert outcomes == ["evt.route.applied", "evt.route.failed"], (ea["data"], eb["data"])
        loser, winner, body = (rb, ra, b"A") if ea["type"] == "evt.route.applied" else (ra, rb, b"B")
        failed = eb if loser == rb else ea
        assert "hosts already routed" in failed["data"]["reason"]
        assert not (traefik.dynamic_dir / f"{loser}.yml").exists()
        assert (traefik.dynamic_dir / f"{winner}.yml").exists()
        assert traefik.get(host) == (200, body)


async def test_a_burst_converges_to_each_routes_last_generation(traefik, upstream, concurrent_sync, routes, unique):
    ups = [upstream(f"U{i}") for i in range(3)]
    steady = f"steady-{unique}"
    await routes.apply(steady, [f"{steady}.localhost"], [ups[0].url], generation=1)
    await routes.wait(steady, 1)
    misses: list[tuple[int, bytes]] = []
    probing = True

    async def probe() -> None:
        while probing:
            answer = await asyncio.to_thread(traefik.get, f"{steady}.localhost")
            if answer != (200, b"U0"):
                misses.append(answer)
            await asyncio.sleep(0.005)

    prober = asyncio.create_task(probe())
    ids = [f"burst{k}-{unique}" for k in range(6)]
    last: dict[str, list[str]] = {}
    for gen in range(1, 6):
        for k, rid in enumerate(ids):
            target = [ups[(k + gen) % 3].url] if gen % 2 else [ups[(k + gen) % 3].url, ups[(k + gen + 1) % 3].url]
            last[rid] = target
            await routes.apply(rid, [f"{rid}.localhost"], target, generation=gen)
    answers = [await routes.wait(rid, gen, timeout=60) for gen in range(1, 6) for rid in ids]
    probing = False
    await prober
    for e in answers:
        assert e["type"] == "evt.route.applied" or e["data"]["reason"].startswith("stale"), e["data"]
    assert misses == []
    for rid in ids:
        assert servers(traefik, rid) == sorted(last[rid])
        assert any(
            e["type"] == "evt.route.applied" and e["data"]["generation"] == 5
            for e in answers
            if e["data"]["route_id"] == rid
        )


async def test_many_waiters_share_one_look_at_traefik(traefik, unique):
    from berth_proxy_sync.adapters.files import DynamicDir
    from berth_proxy_sync.domain.routes import render

    api = TraefikApi(traefik.api_url, password=API_PASSWORD)
    traefik.open_api()
    files = DynamicDir(traefik.dynamic_dir)
    made = [Route.create(f"w{i}-{unique}", [f"w{i}-{unique}.localhost"], ["http://127.0.0.1:1001"]) for i in range(8)]
    try:
        waits = [asyncio.create_task(api.wait_live(r, 10)) for r in made]
        await asyncio.sleep(0.05)
        for r in made:
            files.write(r.file_name, render(r))
        assert all(0 <= s < 10 for s in await asyncio.gather(*waits))
        assert api.rawdata_reads > 0
        wrong = Route.create(made[0].route_id, list(made[0].hosts), ["http://127.0.0.1:1002"])
        results = await asyncio.gather(
            *(api.wait_live(r, 0.5) for r in made[1:4]), api.wait_live(wrong, 0.5), return_exceptions=True
        )
        assert all(isinstance(x, float) for x in results[:3])
        assert "service servers" in str(results[3])
    finally:
        for r in made:
            files.delete(r.file_name)
        await api.close()
