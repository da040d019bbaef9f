"""Confirm through Traefik's API that a route change is live (or gone), polling until a deadline.

Writing a file is not enough: Traefik applies it after its throttle, and rejects the whole update if any
file does not parse. A route counts as live when ``/api/http/services/<name>@file`` lists exactly the
expected server URLs and ``/api/http/routers/<name>@file`` is enabled with the expected rule and entry
point; it counts as removed when both answer 404.

Every waiting change shares one poller: with one or two changes waiting, each tick asks their two
endpoints; with more (proxy-sync handles route commands concurrently), one ``/api/rawdata`` per tick
answers for all of them, so the load on Traefik does not grow with the number of changes in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from berth_proxy_sync.domain.routes import API_USER, Route, router_name

# (kind: "routers" | "services", name without provider) -> (HTTP status, body)
Lookup = Callable[[str, str], Awaitable[tuple[int, dict[str, Any]]]]
PER_ROUTE_MAX = 2  # waiters asked one endpoint each; above this, one /api/rawdata per tick


class NotLiveError(RuntimeError):
    """Traefik did not show the expected state before the deadline; the message says what it showed."""


@dataclass
class Observation:
    ok: bool
    detail: str


def _check_service(route: Route, body: dict[str, Any]) -> str | None:
    lb = body.get("loadBalancer") or {}
    urls = sorted(s.get("url", "") for s in lb.get("servers") or [])
    if urls != sorted(route.upstreams):
        return f"service servers {urls} != {sorted(route.upstreams)}"
    if lb.get("passHostHeader") is not True:
        return "service passHostHeader is not true"
    if body.get("status") != "enabled":
        return f"service status {body.get('status')!r}: {body.get('error')}"
    return None


def _check_router(route: Route, body: dict[str, Any]) -> str | None:
    if body.get("rule") != route.rule:
        return f"router rule {body.get('rule')!r} != {route.rule!r}"
    if body.get("entryPoints") != [route.entry_point]:
        return f"router entry points {body.get('entryPoints')} != {[route.entry_point]}"
    if body.get("status") != "enabled":
        return f"router status {body.get('status')!r}: {body.get('error')}"
    return None


async def observe_live(route: Route, lookup: Lookup, extra_routers: tuple[str, ...] = ()) -> Observation:
    """``extra_routers``: the route's other routers (HTTPS, redirects), each present and enabled."""
    name = router_name(route.route_id)
    status, body = await lookup("services", name)
    if status != 200:
        return Observation(False, f"service {name}@file: HTTP {status}")
    if problem := _check_service(route, body):
        return Observation(False, problem)
    status, body = await lookup("routers", name)
    if status != 200:
        return Observation(False, f"router {name}@file: HTTP {status}")
    if problem := _check_router(route, body):
        return Observation(False, problem)
    for extra in extra_routers:
        status, body = await lookup("routers", extra)
        if status != 200:
            return Observation(False, f"router {extra}@file: HTTP {status}")
        if body.get("status") != "enabled":
            return Observation(False, f"router {extra} status {body.get('status')!r}: {body.get('error')}")
    return Observation(True, "live")


async def observe_gone(route_id: str, lookup: Lookup) -> Observation:
    name = router_name(route_id)
    for kind in ("routers", "services"):
        status, _ = await lookup(kind, name)
        if status != 404:
            return Observation(False, f"{kind[:-1]} {name}@file still answers HTTP {status}")
    return Observation(True, "gone")


def snapshot_lookup(raw: dict[str, Any]) -> Lookup:
    """A lookup answering from one ``/api/rawdata`` body (absent: 404, like the per-name endpoints)."""

    async def lookup(kind: str, name: str) -> tuple[int, dict[str, Any]]:
        body = (raw.get(kind) or {}).get(f"{name}@file")
        return (200, body) if isinstance(body, dict) else (404, {})

    return lookup


@dataclass
class _Waiter:
    observe: Callable[[Lookup], Awaitable[Observation]]
    what: str
    timeout_s: float
    start: float = field(default_factory=time.monotonic)
    last: str = "no answer from Traefik's API"
    done: asyncio.Future[float] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def deadline(self) -> float:
        return self.start + self.timeout_s


class TraefikApi:
    """Traefik's API as proxy-sync reads it: with ``password`` (the sentinel's API router asks for it)."""

    def __init__(
        self, base_url: str, *, password: str, poll_interval_s: float = 0.01, request_timeout_s: float = 2.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.password = password
        self.poll_interval_s = poll_interval_s
        self.request_timeout_s = request_timeout_s
        self._http: httpx.AsyncClient | None = None
        self._waiters: list[_Waiter] = []
        self._wake = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        self.rawdata_reads = 0  # how often one read answered for several waiters (observability, tests)
        self.polls = 0  # looks at Traefik for the waiting changes, one per tick (observability, tests)

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        for w in self._waiters:
            if not w.done.done():
                w.done.set_exception(NotLiveError(f"{w.what}: proxy-sync is stopping"))
        if self._http is not None:
            await self._http.aclose()

    @property
    def _client(self) -> httpx.AsyncClient:
        """The HTTP client, made at the first request: a client holds a parsed CA bundle, which proxy-sync does
        not need until a route change is confirmed or a site is pinged."""
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.base_url,
                timeout=self.request_timeout_s,
                trust_env=False,
                auth=httpx.BasicAuth(API_USER, self.password),
            )
        return self._http

    async def _get(self, kind: str, name: str) -> tuple[int, dict[str, Any]]:
        """(status, body); a 404 that is not the API's own (``{"message": ...}``: the API router is not
        loaded yet) answers 503, so it never confirms a removal."""
        resp = await self._client.get(f"/api/http/{kind}/{quote(name + '@file', safe='@')}")
        if resp.status_code == 404 and not resp.text.lstrip().startswith("{"):
            return 503, {}
        body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
        return resp.status_code, body if isinstance(body, dict) else {}

    async def _rawdata(self) -> Lookup:
        resp = await self._client.get("/api/rawdata")
        resp.raise_for_status()
        body = resp.json()
        self.rawdata_reads += 1
        return snapshot_lookup(body if isinstance(body, dict) else {})

    async def ping(self) -> bool:
        try:
            return (await self._client.get("/ping")).status_code == 200
        except httpx.HTTPError:
            return False

    async def observe_live(self, route: Route) -> Observation:
        return await observe_live(route, self._get)

    async def observe_gone(self, route_id: str) -> Observation:
        return await observe_gone(route_id, self._get)

    async def _tick(self, waiters: list[_Waiter]) -> None:
        """One look at Traefik for every waiter; resolves those that see what they wait for."""
        self.polls += 1
        try:
            lookup = self._get if len(waiters) <= PER_ROUTE_MAX else await self._rawdata()
            for w in waiters:
                obs = await w.observe(lookup)
                if obs.ok:
                    if not w.done.done():
                        w.done.set_result(time.monotonic() - w.start)
                else:
                    w.last = obs.detail
        except (httpx.HTTPError, ValueError) as exc:
            for w in waiters:
                w.last = f"Traefik API at {self.base_url} not reachable: {type(exc).__name__}: {exc}"
        now = time.monotonic()
        for w in waiters:
            if not w.done.done() and now >= w.deadline:
                w.done.set_exception(
                    NotLiveError(f"{w.what} not confirmed by Traefik within {w.timeout_s:g}s: {w.last}")
                )

    async def _poll_loop(self) -> None:
        while self._waiters:
            self._wake.clear()
            await self._tick([w for w in self._waiters if not w.done.done()])
            self._waiters = [w for w in self._waiters if not w.done.done()]
            if self._waiters:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)

    async def _wait(self, observe: Callable[[Lookup], Awaitable[Observation]], timeout_s: float, what: str) -> float:
        waiter = _Waiter(observe, what, timeout_s)
        self._waiters.append(waiter)
        self._wake.set()  # a new waiter is looked at in the next tick, without waiting out the interval
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll_loop(), name="traefik-api-poller")
        try:
            return await asyncio.shield(waiter.done)
        finally:
            if waiter in self._waiters and not waiter.done.done():
                waiter.done.cancel()

    async def wait_live(self, route: Route, timeout_s: float, extra_routers: tuple[str, ...] = ()) -> float:
        """Seconds until Traefik showed ``route`` (and its ``extra_routers``) as live; NotLiveError after
        ``timeout_s``."""
        return await self._wait(
            lambda lookup: observe_live(route, lookup, extra_routers), timeout_s, f"route {route.route_id}"
        )

    async def wait_gone(self, route_id: str, timeout_s: float) -> float:
        return await self._wait(
            lambda lookup: observe_gone(route_id, lookup), timeout_s, f"removal of route {route_id}"
        )
