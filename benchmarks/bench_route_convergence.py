"""Route convergence: readiness to a live route, and a burst of route changes that never disturbs the others.

The platform runs as a user runs it (``berth up``).

1. Readiness -> live: ``APPS`` first deploys of busybox httpd applications through the REST API. For
   each, from the moment its replica passed Berth's readiness check (the envelope time of the
   ``replica ready`` event) to the first 200 through Traefik with its Host header (polled every 5 ms),
   to proxy-sync's confirmation (``evt.route.applied``, after Traefik's API showed the route) and to
   the scheduler recording the new version live. ``live_ms_*`` are readiness -> first 200, and
   ``single_change_p99_ms`` their 99th percentile: a change alone is not held back by coalescing.
2. Burst: ``CHANGES`` route changes across ``ROUTES`` routes, published back to back on the bus as the
   scheduler publishes them (``cmd.route.apply``, generations 1..N per route, upstreams taken from the
   deployed applications' replicas), handled by the real proxy-sync writing for the real Traefik.
   Meanwhile a separate process keeps asking the applications of part 1 (routes that do not change)
   through Traefik, 200 requests/s: ``unchanged_404`` counts their 404s (a reload that dropped them),
   ``unchanged_errors`` any other non-200. Every change is answered (applied, or refused as stale when
   a newer generation of the same route was already live); at the end every route must serve exactly
   its last generation, checked through Traefik's API. ``changes_per_s``: changes over the time from
   the first publish to the last answer. ``unchanged_skipped``: requests the probe could not send because
   all its connections were busy (not measured, so neither errors nor latencies). ``cpu_ms_per_change``:
   CPU per route change of each component over the burst (the probe's traffic included): a cost that
   hardly depends on the machine's load.

What the ``unchanged_errors`` of earlier runs were: all of them requests the probe skipped (``-2``, its 64
connections busy), none an answer or a connection error. Traefik generated an RSA key at each of the
burst's reloads (50-65 ms of CPU each), so requests queued behind the reloads (p99 348 ms) until the probe
ran out of connections. With proxy-sync's default certificate a reload costs 7-8 ms: nothing is skipped,
p99 is about 100 ms under the burst, and the burst runs 4x faster.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from typing import Any

import httpx

from benchmarks.support.cpu import PlatformCpu
from benchmarks.support.events import Event, EventLog
from benchmarks.support.http import wait_status
from benchmarks.support.load import LoadProcess
from benchmarks.support.platform import Api, BerthUp, host_of, measured_on_platform
from berth_common.bus import Bus
from berth_common.catalogue import ApplyRoutes
from berth_scheduler.domain.names import route_id

NAME = "route_convergence"
GOALS = {
    "unchanged_404": ("<=", 0),
    "unchanged_errors": ("<=", 0),
    "changes_per_s": (">=", 200.0),
    "single_change_p99_ms": ("<=", 100.0),
}
APPS = 8
ROUTES = 50
CHANGES = 1000
PROBE_RATE = 200.0
BURST_TIMEOUT_S = 240.0
ANSWERS = ("evt.route.applied", "evt.route.failed")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _dist(values: list[float], key: str) -> dict[str, float]:
    return {
        f"{key}_p50": round(statistics.median(values), 1),
        f"{key}_p90": round(_pct(values, 90), 1),
        f"{key}_max": round(max(values), 1),
    }


async def first_deploy(platform: BerthUp, api: Api, events: EventLog, env_id: str, name: str) -> dict[str, Any]:
    app = await api.web_app(env_id, name, content=name)
    host, expected = host_of(app), name.encode()
    offset = time.time() - time.monotonic()
    first = asyncio.create_task(
        wait_status(platform.proxy_port, host, ok=lambda a: a.status == 200 and a.body.strip() == expected)
    )
    dep = await api.deploy(app["id"])
    first_200 = await first + offset
    await events.finished(dep["id"])
    rid = route_id(app["id"], "web")
    applied = await events.wait_for(lambda e: e.type == "evt.route.applied" and e.data["route_id"] == rid, 10)
    mine = events.of(dep["id"])
    ready = max(e.made for e in mine if e.data.get("step") == "replica ready")
    live_step = min(e.made for e in mine if e.data.get("step") == "new version live")
    return {
        "host": host,
        "content": name,
        "upstreams": applied.data["upstreams"],
        "live_ms": round((first_200 - ready) * 1000, 1),
        "confirmed_ms": round((applied.made - ready) * 1000, 1),
        "recorded_ms": round((live_step - ready) * 1000, 1),
        "proxy_live_ms": applied.data["live_ms"],
    }


def burst_plan(upstreams: list[str]) -> list[ApplyRoutes]:
    """CHANGES commands, round-robin over ROUTES routes, each route's generations in order."""
    out = []
    per_route = CHANGES // ROUTES
    for g in range(1, per_route + 1):
        for k in range(ROUTES):
            a, b = upstreams[(k + g) % len(upstreams)], upstreams[(k + g + 1) % len(upstreams)]
            ups = [a] if g % 2 else [a, b]
            out.append(
                ApplyRoutes(route_id=f"bench-rc-{k}", hosts=[f"rc{k}.bench.localhost"], upstreams=ups, generation=g)
            )
    return out


async def final_state_errors(platform: BerthUp, last: dict[str, ApplyRoutes]) -> list[str]:
    """Routes whose service in Traefik does not list exactly the last generation's upstreams."""
    wrong = []
    async with httpx.AsyncClient(
        base_url=platform.traefik_api_url, trust_env=False, timeout=5, auth=platform.traefik_api_auth
    ) as client:
        for rid, cmd in sorted(last.items()):
            resp = await client.get(f"/api/http/services/route-{rid}@file")
            servers = sorted(s["url"] for s in resp.json().get("loadBalancer", {}).get("servers", []))
            if resp.status_code != 200 or servers != sorted(cmd.upstreams):
                wrong.append(f"{rid}: HTTP {resp.status_code} {servers} != {sorted(cmd.upstreams)}")
    return wrong


async def burst(platform: BerthUp, events: EventLog, apps: list[dict[str, Any]]) -> dict[str, Any]:
    upstreams = sorted({u for a in apps for u in a["upstreams"]})
    commands = burst_plan(upstreams)
    probe = LoadProcess(platform.proxy_port, ",".join(a["host"] for a in apps), PROBE_RATE).start()
    bus = Bus("scheduler", platform.nats_url, **platform.bus_identity("scheduler"))
    await bus.connect()
    cpu = PlatformCpu(platform)
    try:
        await asyncio.sleep(1.0)
        cpu_before, probe_from = cpu.sample(), time.monotonic()
        sent: dict[tuple[str, int], float] = {}
        t_first = time.time()
        for cmd in commands:
            sent[(cmd.route_id, cmd.generation)] = time.time()
            await bus.publish(cmd, id=f"bench-{cmd.route_id}-g{cmd.generation}-{os.getpid()}")
        published_s = time.time() - t_first

        def answered() -> list[Event]:
            # one answer per change (a plain subscriber also sees the outbox relay's duplicate publishes)
            found: dict[tuple[str, int], Event] = {}
            for e in events.events:
                key = (str(e.data.get("route_id")), int(e.data.get("generation") or 0))
                if e.type in ANSWERS and key in sent:
                    found.setdefault(key, e)
            return list(found.values())

        deadline = time.monotonic() + BURST_TIMEOUT_S
        while len(answered()) < len(commands) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        cpu_after, burst_wall = cpu.sample(), time.monotonic() - probe_from
        await asyncio.sleep(1.0)
    finally:
        await bus.close()
        samples = (await asyncio.to_thread(probe.stop))["samples"]
    answers = answered()
    if len(answers) < len(commands):
        raise TimeoutError(f"only {len(answers)} of {len(commands)} route changes answered in {BURST_TIMEOUT_S}s")
    last = {c.route_id: c for c in commands}  # the highest generation of each route comes last
    wrong = await final_state_errors(platform, last)
    if wrong:
        raise RuntimeError(f"routes not at their last generation: {wrong[:5]}")
    failed = [e for e in answers if e.type == "evt.route.failed"]
    other_failures = [e.data["reason"] for e in failed if not e.data["reason"].startswith("stale")]
    if other_failures:
        raise RuntimeError(f"route changes failed: {other_failures[:5]}")
    latency = [(e.made - sent[(e.data["route_id"], e.data["generation"])]) * 1000 for e in answers]
    elapsed = max(e.made for e in answers) - t_first
    bad = [s for s in samples if s[2] not in (200, -2)]  # -2: not sent, every connection busy (not measured)
    return {
        "changes": len(commands),
        "routes": ROUTES,
        "changes_per_s": round(len(commands) / elapsed, 1),
        "burst_s": round(elapsed, 2),
        "published_s": round(published_s, 2),
        "applied": len(answers) - len(failed),
        "refused_stale": len(failed),
        **_dist(latency, "answer_ms"),
        "unchanged_requests": len(samples),
        "unchanged_skipped": sum(1 for s in samples if s[2] == -2),
        "unchanged_404": sum(1 for s in samples if s[2] == 404),
        "unchanged_errors": sum(1 for s in bad if s[2] != 404),
        "unchanged_error_kinds": sorted({f"{s[2]} {s[3][:60]}" for s in bad})[:10],
        "unchanged_p99_ms": round(_pct([s[1] for s in samples if s[2] == 200], 99), 2),
        # CPU per route change (the probe's 200 req/s through Traefik included, over the burst's length)
        "cpu_ms_per_change": PlatformCpu.per(cpu_before, cpu_after, len(commands)),
        "burst_wall_s": round(burst_wall, 2),
    }


async def measure(platform: BerthUp) -> dict[str, Any]:
    api = Api(platform)
    events = await EventLog(platform.events_url).start()
    try:
        env_id = await api.environment(f"bench-routes-{os.getpid()}")
        apps = [await first_deploy(platform, api, events, env_id, f"rc{i}") for i in range(APPS)]
        result = await burst(platform, events, apps)
    finally:
        await events.close()
        await api.close()
    return {
        **_dist([a["live_ms"] for a in apps], "live_ms"),
        "single_change_p99_ms": round(_pct([a["live_ms"] for a in apps], 99), 1),
        **_dist([a["confirmed_ms"] for a in apps], "confirmed_ms"),
        **_dist([a["recorded_ms"] for a in apps], "recorded_ms"),
        **_dist([a["proxy_live_ms"] for a in apps], "proxy_live_ms"),
        "first_deploys": APPS,
        **result,
    }


async def run() -> dict[str, Any]:
    return {**await measured_on_platform(measure), "probe_rate_per_s": PROBE_RATE}
