"""proxy-sync coalescing route changes against a real Traefik, NATS and Postgres: a burst is applied in a
few batches (few Traefik reloads and polls), each command answered once, generations kept inside a batch,
a bad command failing alone, and a killed service losing nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from berth_common.catalogue import ApplyRoutes, RemoveRoute
from berth_proxy_sync import bootstrap
from berth_proxy_sync.usecases.routes import Routes
from tests.proxy.support import ProxySync, RouteClient
from tests.proxy.test_concurrent_routes import servers

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def made_routes(monkeypatch) -> list[Routes]:
    """The use case objects the service wires (to read their batch and poll counters)."""
    made: list[Routes] = []

    class Recorded(Routes):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(bootstrap, "Routes", Recorded)
    return made


@pytest.fixture
async def coalescing(proxy_settings, made_routes) -> AsyncIterator[Routes]:
    svc = await ProxySync(proxy_settings.model_copy(update={"route_live_timeout_s": 3.0})).start()
    for _ in range(500):
        if made_routes:
            break
        await asyncio.sleep(0.02)
    yield made_routes[0]
    await svc.stop()


def answers(routes: RouteClient, rid: str, gen: int) -> list[dict[str, Any]]:
    """The distinct answers (by event id: a plain subscriber also sees an outbox relay's second publish)."""
    found = {e["id"]: e for e in routes.events if e["data"]["route_id"] == rid and e["data"]["generation"] == gen}
    return list(found.values())


async def all_answered(routes: RouteClient, keys: list[tuple[str, int]], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        have = {(e["data"]["route_id"], e["data"]["generation"]) for e in routes.events}
        missing = [k for k in keys if k not in have]
        if not missing:
            return
        assert time.monotonic() < deadline, f"not answered: {missing[:5]} ({len(missing)})"
        await asyncio.sleep(0.05)


def assert_applied_or_superseded(routes: RouteClient, answer: dict[str, Any]) -> None:
    """Applied, or refused as stale only once a newer generation of its route was live (answered before)."""
    d = answer["data"]
    if answer["type"] == "evt.route.applied":
        return
    assert answer["type"] == "evt.route.failed" and d["reason"].startswith("stale"), d
    newer = [
        e
        for e in routes.events
        if e["type"] == "evt.route.applied"
        and e["data"]["route_id"] == d["route_id"]
        and e["data"]["generation"] > d["generation"]
        and e["_received"] <= answer["_received"]
    ]
    assert newer, d


class Steady:
    """Asks a route that does not change through Traefik while a burst runs; collects every other answer."""

    def __init__(self, traefik, host: str, body: bytes) -> None:
        self.traefik, self.host, self.body = traefik, host, body
        self.misses: list[tuple[int, bytes]] = []
        self.asked = 0
        self._on = True
        self._task: asyncio.Task[None] | None = None

    async def _probe(self) -> None:
        while self._on:
            answer = await asyncio.to_thread(self.traefik.get, self.host)
            self.asked += 1
            if answer != (200, self.body):
                self.misses.append(answer)
            await asyncio.sleep(0.005)

    def __enter__(self) -> Steady:
        self._task = asyncio.create_task(self._probe())
        return self

    async def stop(self) -> None:
        self._on = False
        if self._task:
            await self._task

    def __exit__(self, *exc: object) -> None:
        self._on = False


async def test_a_burst_is_applied_in_a_few_batches_each_answered_once(traefik, upstream, coalescing, routes, unique):
    ups = [upstream(f"U{i}") for i in range(3)]
    steady = f"steady-{unique}"
    await routes.apply(steady, [f"{steady}.localhost"], [ups[0].url], generation=1)
    assert (await routes.wait(steady, 1))["type"] == "evt.route.applied"
    site = coalescing.sites.local
    batches_before, polls_before = coalescing.batches, site.traefik.polls

    ids = [f"b{k}-{unique}" for k in range(40)]
    keys: list[tuple[str, int]] = []
    last: dict[str, list[str]] = {}
    probe = Steady(traefik, f"{steady}.localhost", b"U0")
    with probe:
        for gen in (1, 2, 3):
            for k, rid in enumerate(ids):
                target = [ups[(k + gen) % 3].url] if gen % 2 else [ups[(k + gen) % 3].url, ups[(k + gen + 1) % 3].url]
                last[rid] = target
                keys.append((rid, gen))
                await routes.apply(rid, [f"{rid}.localhost"], target, generation=gen)
        await all_answered(routes, keys)
        await asyncio.sleep(0.3)
        await probe.stop()

    changes = len(keys)
    for rid, gen in keys:
        got = answers(routes, rid, gen)
        assert len(got) == 1, got  # answered exactly once
        assert_applied_or_superseded(routes, got[0])
    for rid in ids:
        assert answers(routes, rid, 3)[0]["type"] == "evt.route.applied"
    for rid in ids:
        assert servers(traefik, rid) == sorted(last[rid])
    batches = coalescing.batches - batches_before
    polls = site.traefik.polls - polls_before
    print(f"\n{changes} changes: {batches} batches, {polls} polls of Traefik's API, probe asked {probe.asked}")
    # Each batch writes one change per route, so a route with n generations applied needs n batches at least
    # (a generation superseded inside a window is answered without one); one at a time 120 changes would take
    # 120 batches and at least as many polls.
    applied = max(sum(answers(routes, rid, gen)[0]["type"] == "evt.route.applied" for gen in (1, 2, 3)) for rid in ids)
    assert applied <= batches <= changes // 8
    assert polls <= changes // 2
    assert probe.asked > 20 and probe.misses == []  # the unchanged route never failed, never 404


async def test_generations_inside_one_window(traefik, upstream, coalescing, routes, unique):
    a, b, c = upstream("A"), upstream("B"), upstream("C")
    filler = [f"f{k}-{unique}" for k in range(20)]
    up, down = f"up-{unique}", f"down-{unique}"
    batches_before = coalescing.batches
    # Published back to back: they arrive within one window.
    for rid in filler:
        await routes.apply(rid, [f"{rid}.localhost"], [a.url], generation=1)
    await routes.apply(up, [f"{up}.localhost"], [a.url], generation=1)
    await routes.apply(up, [f"{up}.localhost"], [b.url], generation=2)  # after 1: applied after it
    await routes.apply(down, [f"{down}.localhost"], [b.url], generation=5)
    await routes.apply(down, [f"{down}.localhost"], [c.url], generation=4)  # older, later: stale
    await all_answered(routes, [(up, 1), (up, 2), (down, 5), (down, 4), *((r, 1) for r in filler)])

    first, second = answers(routes, up, 1)[0], answers(routes, up, 2)[0]
    assert second["type"] == "evt.route.applied"
    if first["type"] == "evt.route.applied":  # in separate windows: applied in order
        assert first["_received"] <= second["_received"]
    else:  # in one window: 2 wins, 1 is stale once 2 is live
        assert_applied_or_superseded(routes, first)
    assert traefik.get(f"{up}.localhost") == (200, b"B")
    assert answers(routes, down, 5)[0]["type"] == "evt.route.applied"
    stale = answers(routes, down, 4)[0]
    assert stale["type"] == "evt.route.failed" and stale["data"]["reason"].startswith("stale"), stale["data"]
    assert traefik.get(f"{down}.localhost") == (200, b"B")
    assert coalescing.batches - batches_before <= 6  # 24 changes, not one batch each


async def test_a_bad_command_in_a_batch_fails_alone(traefik, upstream, coalescing, routes, unique):
    a, b = upstream("A"), upstream("B")
    owner = f"owner-{unique}"
    await routes.apply(owner, [f"{owner}.localhost"], [a.url], generation=1)
    assert (await routes.wait(owner, 1))["type"] == "evt.route.applied"
    # A change Traefik never shows as enabled (its router names an entry point Traefik does not have): it
    # is written, not confirmed, and its previous file comes back.
    clash = f"clash-{unique}"
    await routes.apply(clash, [f"{clash}.localhost"], [a.url], generation=1)
    assert (await routes.wait(clash, 1))["type"] == "evt.route.applied"
    before = (traefik.dynamic_dir / f"{clash}.yml").read_text()
    good = [f"g{k}-{unique}" for k in range(12)]
    batches_before = coalescing.batches
    for rid in good[:6]:
        await routes.apply(rid, [f"{rid}.localhost"], [a.url], generation=1)
    await routes.apply(f"bad-{unique}", [f"bad-{unique}.localhost"], ["ftp://127.0.0.1:21"], generation=1)
    await routes.apply(f"thief-{unique}", [f"{owner}.localhost"], [b.url], generation=1)
    await routes.apply(owner, [f"{owner}.localhost"], [b.url], generation=0)  # stale
    assert routes.bus is not None
    unknown = ApplyRoutes(
        route_id=clash, hosts=[f"{clash}.localhost"], upstreams=[b.url], generation=2, entry_point="nosuch"
    )
    await routes.bus.publish(unknown)
    for rid in good[6:]:
        await routes.apply(rid, [f"{rid}.localhost"], [a.url], generation=1)
    await all_answered(routes, [(r, 1) for r in good] + [(f"bad-{unique}", 1), (f"thief-{unique}", 1), (clash, 2)])
    await all_answered(routes, [(owner, 0)])

    for rid in good:
        assert answers(routes, rid, 1)[0]["type"] == "evt.route.applied"
        assert traefik.get(f"{rid}.localhost") == (200, b"A")
    bad = answers(routes, f"bad-{unique}", 1)[0]
    assert bad["type"] == "evt.route.failed" and "invalid upstream" in bad["data"]["reason"]
    thief = answers(routes, f"thief-{unique}", 1)[0]
    assert thief["type"] == "evt.route.failed" and "hosts already routed" in thief["data"]["reason"]
    stale = answers(routes, owner, 0)[0]
    assert stale["type"] == "evt.route.failed" and stale["data"]["reason"].startswith("stale")
    clashed = answers(routes, clash, 2)[0]
    assert clashed["type"] == "evt.route.failed" and "not confirmed by Traefik" in clashed["data"]["reason"]
    assert (traefik.dynamic_dir / f"{clash}.yml").read_text() == before  # its file restored
    assert traefik.get(f"{clash}.localhost") == (200, b"A")
    for rid in (f"bad-{unique}", f"thief-{unique}"):
        assert not (traefik.dynamic_dir / f"{rid}.yml").exists()
    assert traefik.get(f"{owner}.localhost") == (200, b"A")
    assert coalescing.batches - batches_before <= 5  # 17 commands


async def test_a_server_without_a_site_fails_every_command_of_its_batches(
    traefik, upstream, coalescing, routes, unique
):
    a = upstream("A")
    server = f"nosuch-{unique}"
    ids = [f"n{k}-{unique}" for k in range(10)]
    assert routes.bus is not None
    keys: list[tuple[str, int]] = []
    for gen in (1, 2):  # back to back: batches with riders
        for rid in ids:
            msg = ApplyRoutes(
                route_id=rid, hosts=[f"{rid}.localhost"], upstreams=[a.url], generation=gen, server_id=server
            )
            await routes.bus.publish(msg)
            keys.append((rid, gen))
    await routes.bus.publish(RemoveRoute(route_id=ids[0], generation=3, server_id=server))
    keys.append((ids[0], 3))
    await all_answered(routes, keys)
    for rid, gen in keys:
        got = answers(routes, rid, gen)
        assert len(got) == 1, got
        d = got[0]["data"]
        assert got[0]["type"] == "evt.route.failed" and d["server_id"] == server, d
        assert f"server {server} is not known" in d["reason"], d
    for rid in ids:  # nothing written: no file, nothing served, the hosts still free for the local server
        assert not (traefik.dynamic_dir / f"{rid}.yml").exists()
        assert traefik.get(f"{rid}.localhost")[0] == 404
    here = f"here-{unique}"
    await routes.apply(here, [f"{ids[0]}.localhost"], [a.url], generation=1)
    evt = await routes.wait(here, 1)
    assert evt["type"] == "evt.route.applied" and evt["data"]["server_id"] == "local", evt
    assert traefik.get(f"{ids[0]}.localhost") == (200, b"A")


def _service_env(settings, data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "BERTH_NATS_URL": settings.nats_url,
        "BERTH_DATABASE_URL": settings.database_url.get_secret_value(),
        "BERTH_HTTP_PORT": "0",
        "BERTH_DATA_DIR": str(data_dir),
        "BERTH_TRAEFIK_DYNAMIC_DIR": str(settings.traefik_dynamic_dir),
        "BERTH_TRAEFIK_API_URL": settings.traefik_api_url,
        "BERTH_ACK_WAIT_S": "3",
        "BERTH_LOG_FORMAT": "json",
    }


async def test_a_killed_service_loses_nothing(traefik, upstream, proxy_settings, routes, tmp_path, unique):
    ups = [upstream(f"U{i}") for i in range(3)]
    out = (tmp_path / "proxy-sync.out").open("ab")
    argv = [sys.executable, "-c", "from berth_proxy_sync.bootstrap import main; main()"]
    proc = subprocess.Popen(
        argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=_service_env(proxy_settings, tmp_path)
    )
    svc: ProxySync | None = None
    try:
        probe = f"probe-{unique}"
        await routes.apply(probe, [f"{probe}.localhost"], [ups[0].url], generation=1)
        assert (await routes.wait(probe, 1, timeout=60))["type"] == "evt.route.applied"

        ids = [f"k{k}-{unique}" for k in range(30)]
        keys = [(rid, gen) for gen in range(1, 9) for rid in ids]
        last = {rid: [ups[(8 + k) % 3].url] for k, rid in enumerate(ids)}

        async def publish() -> None:
            for rid, gen in keys:
                k = ids.index(rid)
                await routes.apply(rid, [f"{rid}.localhost"], [ups[(gen + k) % 3].url], generation=gen)
                await asyncio.sleep(0.003)

        publishing = asyncio.create_task(publish())
        deadline = time.monotonic() + 30
        while not any(answers(routes, *k) for k in keys):  # killed once the burst is being applied
            assert time.monotonic() < deadline, (tmp_path / "proxy-sync.out").read_text()[-3000:]
            await asyncio.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        await publishing  # the rest of the burst waits in the queue
        answered_before = sum(1 for k in keys if answers(routes, *k))
        assert answered_before < len(keys), "the burst was over before the kill: nothing tested"

        svc = await ProxySync(proxy_settings.model_copy(update={"ack_wait_s": 3.0})).start()
        await all_answered(routes, keys, timeout=90)
        for rid, gen in keys:
            got = answers(routes, rid, gen)
            assert len(got) == 1, got
            d = got[0]["data"]
            assert got[0]["type"] == "evt.route.applied" or d["reason"].startswith("stale"), d
        for rid in ids:  # every route at its last generation, in Traefik and in its file
            assert servers(traefik, rid) == last[rid]
            assert answers(routes, rid, 8)[0]["type"] == "evt.route.applied"
            assert last[rid][0] in (traefik.dynamic_dir / f"{rid}.yml").read_text()
        assert not [p for p in traefik.dynamic_dir.iterdir() if p.name.startswith(".berth-")]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if svc is not None:
            await svc.stop()
