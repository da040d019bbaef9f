"""proxy-sync against a real Traefik: apply, switch under load, remove, refuse bad input."""

from __future__ import annotations

import asyncio
import http.client
import threading
from dataclasses import dataclass, field

import pytest

from berth_proxy_sync.domain.certificate import DEFAULT_CERT_FILE
from berth_proxy_sync.domain.routes import SENTINEL_FILE


def host_for(unique: str, name: str = "web") -> str:
    return f"{name}-{unique}.localhost"


def files(traefik) -> list[str]:
    return sorted(p.name for p in traefik.dynamic_dir.iterdir())


async def test_apply_routes_host_to_upstream(traefik, upstream, proxy_sync, routes, unique):
    a = upstream("A")
    host = host_for(unique)
    assert traefik.get(host)[0] == 404  # nothing routes this host yet
    rid = f"web-{unique}"
    await routes.apply(rid, [host, f"alias-{unique}.localhost"], [a.url], generation=1)
    evt = await routes.wait(rid, 1)
    assert evt["type"] == "evt.route.applied"
    assert evt["data"]["upstreams"] == [a.url]
    assert evt["data"]["hosts"] == sorted([host, f"alias-{unique}.localhost"])
    assert 0 < evt["data"]["live_ms"] < 10_000
    assert traefik.get(host) == (200, b"A")
    assert traefik.get(f"alias-{unique}.localhost", method="POST", body=b"x" * 1000) == (200, b"A")
    assert files(traefik) == [DEFAULT_CERT_FILE, SENTINEL_FILE, f"{rid}.yml"]


async def test_applied_event_only_after_route_is_live(traefik, upstream, proxy_sync, routes, unique):
    """At the instant each applied event arrives, a request through Traefik already reaches the new upstream."""
    ups = [upstream(f"U{i}") for i in range(3)]
    host = host_for(unique)
    routes.on_event = lambda env: traefik.get(host) if env["type"] == "evt.route.applied" else None
    rid = f"web-{unique}"
    for gen in range(1, 10):
        target = ups[gen % 3]
        await routes.apply(rid, [host], [target.url], generation=gen)
        evt = await routes.wait(rid, gen)
        assert evt["type"] == "evt.route.applied"
        assert evt["_probe"] == (200, target.name.encode()), f"generation {gen}"


@dataclass
class Load:
    """A bounded request loop through Traefik: keep-alive GETs, fresh-connection POSTs."""

    traefik: object
    host: str
    bodies: list[bytes] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    max_requests: int = 20_000

    def _keepalive(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.traefik.web_port, timeout=5)
        while not self.stop.is_set() and len(self.bodies) < self.max_requests:
            try:
                conn.request("GET", "/", headers={"Host": self.host})
                resp = conn.getresponse()
                body = resp.read()
                if resp.status != 200:
                    self.errors.append(f"GET {resp.status} {body[:80]!r}")
                self.bodies.append(body)
            except Exception as exc:
                self.errors.append(f"GET {type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.traefik.web_port, timeout=5)
        conn.close()

    def _fresh(self) -> None:
        while not self.stop.is_set() and len(self.bodies) < self.max_requests:
            try:
                status, body = self.traefik.get(self.host, method="POST", body=b"payload" * 100)
                if status != 200:
                    self.errors.append(f"POST {status} {body[:80]!r}")
                self.bodies.append(body)
            except Exception as exc:
                self.errors.append(f"POST {type(exc).__name__}: {exc}")

    def __enter__(self) -> Load:
        self.threads = [threading.Thread(target=self._keepalive), threading.Thread(target=self._fresh)]
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)


async def test_switch_upstream_under_load_without_a_failed_request(traefik, upstream, proxy_sync, routes, unique):
    a, b = upstream("A"), upstream("B")
    host, rid = host_for(unique), f"web-{unique}"
    await routes.apply(rid, [host], [a.url], generation=1)
    assert (await routes.wait(rid, 1))["type"] == "evt.route.applied"
    with Load(traefik, host) as load:
        await asyncio.sleep(0.3)
        gen = 1
        for target in (b, a, b, a, b):  # a rolling deploy adds the new upstream, then drops the old one
            previous = a if target is b else b
            for ups in ([previous.url, target.url], [target.url]):
                gen += 1
                await routes.apply(rid, [host], ups, generation=gen)
                assert (await routes.wait(rid, gen))["type"] == "evt.route.applied"
            await asyncio.sleep(0.2)
    assert load.errors == []
    assert len(load.bodies) > 100, "the load loop did not run"
    assert set(load.bodies) == {b"A", b"B"}
    assert load.bodies[-1] == b"B"


async def test_remove_route_gives_404_and_keeps_the_sentinel(traefik, upstream, proxy_sync, routes, unique):
    a = upstream("A")
    host, rid = host_for(unique), f"web-{unique}"
    await routes.apply(rid, [host], [a.url], generation=1)
    await routes.wait(rid, 1)
    assert traefik.get(host) == (200, b"A")
    routes.on_event = lambda env: traefik.get(host) if env["type"] == "evt.route.removed" else None
    await routes.remove(rid, generation=2)
    evt = await routes.wait(rid, 2)
    assert evt["type"] == "evt.route.removed"
    assert evt["_probe"][0] == 404  # already gone when the event arrives
    assert files(traefik) == [DEFAULT_CERT_FILE, SENTINEL_FILE]
    # removing the last route must not leave Traefik with the old config: the host stays unrouted
    await asyncio.sleep(0.3)
    assert traefik.get(host)[0] == 404
    # removing again is harmless and answered
    await routes.remove(rid, generation=3)
    assert (await routes.wait(rid, 3))["type"] == "evt.route.removed"


@pytest.mark.parametrize("bad_host", ["bad_host.localhost", "*.localhost", "a.localhost`) || Host(`b"])
async def test_invalid_host_is_never_written(traefik, upstream, proxy_sync, routes, unique, bad_host):
    a = upstream("A")
    rid = f"web-{unique}"
    await routes.apply(rid, [host_for(unique)], [a.url], generation=1)
    await routes.wait(rid, 1)
    before = (traefik.dynamic_dir / f"{rid}.yml").read_bytes()
    seen: set[tuple[str, ...]] = set()
    watching = True

    async def watch() -> None:
        while watching:
            seen.add(tuple(files(traefik)))
            await asyncio.sleep(0.001)

    watcher = asyncio.create_task(watch())
    await routes.apply(rid, [host_for(unique), bad_host], [a.url], generation=2)
    await routes.apply(f"new-{unique}", [bad_host], [a.url], generation=1)
    evt, evt_new = await routes.wait(rid, 2), await routes.wait(f"new-{unique}", 1)
    watching = False
    await watcher
    for e in (evt, evt_new):
        assert e["type"] == "evt.route.failed"
        assert "invalid host name" in e["data"]["reason"]
    assert seen == {(DEFAULT_CERT_FILE, SENTINEL_FILE, f"{rid}.yml")}
    assert (traefik.dynamic_dir / f"{rid}.yml").read_bytes() == before
    assert traefik.get(host_for(unique)) == (200, b"A")


async def test_stale_generation_and_claimed_host_are_refused(traefik, upstream, proxy_sync, routes, unique):
    a, b = upstream("A"), upstream("B")
    host, rid = host_for(unique), f"web-{unique}"
    await routes.apply(rid, [host], [b.url], generation=5)
    await routes.wait(rid, 5)
    await routes.apply(rid, [host], [a.url], generation=4)  # a late, older command
    evt = await routes.wait(rid, 4)
    assert evt["type"] == "evt.route.failed" and "stale" in evt["data"]["reason"]
    await routes.apply(f"other-{unique}", [host], [a.url], generation=1)
    evt = await routes.wait(f"other-{unique}", 1)
    assert evt["type"] == "evt.route.failed" and f"route {rid}" in evt["data"]["reason"]
    await routes.remove(rid, generation=3)
    assert (await routes.wait(rid, 3))["type"] == "evt.route.failed"
    assert traefik.get(host) == (200, b"B")
    # once removed (generation 6), an older apply cannot bring it back
    await routes.remove(rid, generation=6)
    await routes.wait(rid, 6)
    await routes.apply(rid, [host], [a.url], generation=5)
    assert (await routes.wait(rid, 5))["type"] == "evt.route.failed"
    assert traefik.get(host)[0] == 404
    await routes.apply(f"other-{unique}", [host], [a.url], generation=2)  # the host is free again
    assert (await routes.wait(f"other-{unique}", 2))["type"] == "evt.route.applied"
    assert traefik.get(host) == (200, b"A")


async def test_changing_one_route_never_disturbs_another(traefik, upstream, proxy_sync, routes, unique):
    """Every reload rebuilds all of Traefik's routers: a route that does not change must never miss a request."""
    a, b, c = upstream("A"), upstream("B"), upstream("C")
    steady, busy = f"steady-{unique}", f"busy-{unique}"
    await routes.apply(steady, [f"{steady}.localhost"], [a.url], generation=1)
    await routes.wait(steady, 1)
    with Load(traefik, f"{steady}.localhost") as load:
        gen = 0
        for i in range(8):
            gen += 1
            await routes.apply(busy, [f"{busy}.localhost"], [(b if i % 2 else c).url], generation=gen)
            assert (await routes.wait(busy, gen))["type"] == "evt.route.applied"
            if i % 3 == 2:
                gen += 1
                await routes.remove(busy, generation=gen)
                assert (await routes.wait(busy, gen))["type"] == "evt.route.removed"
    assert load.errors == []
    assert len(load.bodies) > 100 and set(load.bodies) == {b"A"}
