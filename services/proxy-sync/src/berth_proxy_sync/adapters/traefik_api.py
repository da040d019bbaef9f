"""Confirm through Traefik's API that a route change is live (or gone), polling until a deadline.

Writing a file is not enough: Traefik applies it after its throttle, and rejects the whole update if any
file does not parse. A route counts as live when ``/api/http/services/<name>@file`` lists exactly the
expected server URLs and ``/api/http/routers/<name>@file`` is enabled with the expected rule and entry
point; it counts as removed when both answer 404.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from berth_proxy_sync.domain.routes import Route, router_name


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


class TraefikApi:
    def __init__(self, base_url: str, *, poll_interval_s: float = 0.01, request_timeout_s: float = 2.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.poll_interval_s = poll_interval_s
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=request_timeout_s, trust_env=False)

    async def close(self) -> None:
        await self._client.aclose()

    async def _get(self, kind: str, name: str) -> tuple[int, dict[str, Any]]:
        resp = await self._client.get(f"/api/http/{kind}/{quote(name + '@file', safe='@')}")
        body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
        return resp.status_code, body if isinstance(body, dict) else {}

    async def ping(self) -> bool:
        try:
            return (await self._client.get("/ping")).status_code == 200
        except httpx.HTTPError:
            return False

    async def observe_live(self, route: Route) -> Observation:
        name = router_name(route.route_id)
        status, body = await self._get("services", name)
        if status != 200:
            return Observation(False, f"service {name}@file: HTTP {status}")
        if problem := _check_service(route, body):
            return Observation(False, problem)
        status, body = await self._get("routers", name)
        if status != 200:
            return Observation(False, f"router {name}@file: HTTP {status}")
        if problem := _check_router(route, body):
            return Observation(False, problem)
        return Observation(True, "live")

    async def observe_gone(self, route_id: str) -> Observation:
        name = router_name(route_id)
        for kind in ("routers", "services"):
            status, _ = await self._get(kind, name)
            if status != 404:
                return Observation(False, f"{kind[:-1]} {name}@file still answers HTTP {status}")
        return Observation(True, "gone")

    async def _poll(self, observe: Callable[[], Awaitable[Observation]], timeout_s: float, what: str) -> float:
        start = time.monotonic()
        deadline = start + timeout_s
        last = "no answer from Traefik's API"
        while True:
            try:
                obs = await observe()
                if obs.ok:
                    return time.monotonic() - start
                last = obs.detail
            except (httpx.HTTPError, ValueError) as exc:
                last = f"Traefik API at {self.base_url} not reachable: {type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                raise NotLiveError(f"{what} not confirmed by Traefik within {timeout_s:g}s: {last}")
            await asyncio.sleep(self.poll_interval_s)

    async def wait_live(self, route: Route, timeout_s: float) -> float:
        """Seconds until Traefik showed ``route`` as live; NotLiveError after ``timeout_s``."""
        return await self._poll(lambda: self.observe_live(route), timeout_s, f"route {route.route_id}")

    async def wait_gone(self, route_id: str, timeout_s: float) -> float:
        return await self._poll(lambda: self.observe_gone(route_id), timeout_s, f"removal of route {route_id}")
