"""Rolling deploys under steady load: errors and tail latency through Traefik while versions change.

The platform runs as a user runs it (``berth up``). One web application (busybox httpd serving its
``CONTENT`` variable) is deployed once; then a separate process sends a steady 200 requests/s through
Traefik with its generated Host header (open loop, keep-alive connections) while the benchmark runs
10 consecutive deploys of changed content via the REST API (``PATCH`` the variable, ``POST`` a
deployment, wait for ``evt.deployment.succeeded``). After each deploy comes a quiet window of the same
length (no deploy), so the baseline is measured interleaved with the deploys, under the same machine
load, for the same total time. The drain grace of each deploy is 2 s (the requests take milliseconds).

``errors``: answers that are not 200 (Traefik's 404/502/503, connection errors) in the deploy windows (a
request the generator could not send because all its connections were busy is counted apart, ``skipped``);
``p99_over_baseline_ms``: p99 latency in the deploy windows minus p99 in the quiet ones.
``cpu_ms_per_deploy``: CPU per component in the deploy windows minus the quiet windows, per deploy (the
same load is served in both): the cost of a deploy, which hardly depends on what else runs.

The tail during deploys used to come from Traefik: without a default certificate it generated an RSA key
on every configuration reload (50-65 ms of CPU on these 2 cores, two to three reloads per deploy), and
requests waited behind it (p99 +52 ms, max 1.1 s). proxy-sync now writes a default certificate.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from typing import Any

from benchmarks.support.cpu import PlatformCpu
from benchmarks.support.events import EventLog
from benchmarks.support.http import wait_status
from benchmarks.support.load import LoadProcess
from benchmarks.support.platform import Api, BerthUp, host_of, measured_on_platform

NAME = "rolling"
GOALS = {"errors": ("<=", 0), "p99_over_baseline_ms": ("<=", 50.0)}
DEPLOYS = 10
RATE = 200.0
DRAIN_GRACE_S = 2.0
WARMUP_S = 2.0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summarise(samples: list[list[Any]]) -> dict[str, Any]:
    """Latency of the 200s; errors: every other answer and connection error (a request the generator could
    not send because every connection was busy is counted apart, as ``skipped``: it was not measured)."""
    lat = [s[1] for s in samples if s[2] == 200]
    bad = [s for s in samples if s[2] not in (200, -2)]
    kinds: dict[str, int] = {}
    for s in bad:
        key = str(s[2]) if s[2] > 0 else s[3][:60]
        kinds[key] = kinds.get(key, 0) + 1
    return {
        "requests": len(samples),
        "skipped": sum(1 for s in samples if s[2] == -2),
        "errors": len(bad),
        "error_kinds": kinds,
        "p50_ms": round(statistics.median(lat), 2) if lat else None,
        "p99_ms": round(_pct(lat, 99), 2) if lat else None,
        "max_ms": round(max(lat), 2) if lat else None,
    }


async def measure(platform: BerthUp) -> dict[str, Any]:
    api = Api(platform)
    events = await EventLog(platform.events_url).start()
    load: LoadProcess | None = None
    try:
        env_id = await api.environment(f"bench-rolling-{os.getpid()}")
        app = await api.web_app(env_id, "roll", content="v0")
        host = host_of(app)
        await events.finished((await api.deploy(app["id"], drain_grace_s=DRAIN_GRACE_S))["id"])
        await wait_status(platform.proxy_port, host, ok=lambda a: a.status == 200 and a.body.strip() == b"v0")

        load = LoadProcess(platform.proxy_port, host, RATE).start()
        await asyncio.sleep(WARMUP_S)
        windows: list[tuple[str, float, float]] = []  # (kind, start, end), monotonic seconds
        durations = []
        cpu = PlatformCpu(platform)
        spent: dict[str, dict[str, float]] = {"deploy": {}, "quiet": {}}
        for i in range(1, DEPLOYS + 1):
            start, c0 = time.monotonic(), cpu.sample()
            await api.set_content(app["id"], f"v{i}")
            dep = await api.deploy(app["id"], drain_grace_s=DRAIN_GRACE_S)
            await events.finished(dep["id"])
            end, c1 = time.monotonic(), cpu.sample()
            durations.append(end - start)
            windows.append(("deploy", start, end))
            await asyncio.sleep(end - start)
            windows.append(("quiet", end, time.monotonic()))
            for kind, (a, b) in (("deploy", (c0, c1)), ("quiet", (c1, cpu.sample()))):
                for k, ms in PlatformCpu.per(a, b, 1).items():
                    spent[kind][k] = spent[kind].get(k, 0.0) + ms
        result = await asyncio.to_thread(load.stop)
        load = None
    finally:
        if load is not None:
            load.kill()
        await events.close()
        await api.close()

    by_kind: dict[str, list[list[Any]]] = {"deploy": [], "quiet": []}
    for s in result["samples"]:
        due = result["start_monotonic"] + s[0]
        for kind, a, b in windows:
            if a <= due < b:
                by_kind[kind].append(s)
                break
    deploy, quiet = summarise(by_kind["deploy"]), summarise(by_kind["quiet"])
    contents = [s[3] for s in result["samples"] if s[2] == 200]
    return {
        "requests": deploy["requests"],
        "errors": deploy["errors"],
        "error_kinds": deploy["error_kinds"],
        "skipped": deploy["skipped"] + quiet["skipped"],
        "p50_ms": deploy["p50_ms"],
        "p99_ms": deploy["p99_ms"],
        "max_ms": deploy["max_ms"],
        "baseline_requests": quiet["requests"],
        "baseline_errors": quiet["errors"],
        "baseline_p50_ms": quiet["p50_ms"],
        "baseline_p99_ms": quiet["p99_ms"],
        "baseline_max_ms": quiet["max_ms"],
        "p99_over_baseline_ms": round(deploy["p99_ms"] - quiet["p99_ms"], 2),
        "deploy_s_median": round(statistics.median(durations), 3),
        "deploy_s": [round(d, 3) for d in durations],
        "versions_seen": sorted(set(contents), key=lambda v: int(v[1:]) if v[1:].isdigit() else -1),
        "last_version_served": contents[-1] if contents else None,
        "total_requests": len(result["samples"]),
        # what a deploy costs on top of serving the same load for as long (deploy window minus quiet window)
        "cpu_ms_per_deploy": {
            k: round((spent["deploy"][k] - spent["quiet"].get(k, 0.0)) / DEPLOYS, 1) for k in sorted(spent["deploy"])
        },
    }


async def run() -> dict[str, Any]:
    result = await measured_on_platform(measure)
    if result["last_version_served"] != f"v{DEPLOYS}":
        raise RuntimeError(f"the last answer came from {result['last_version_served']}, not v{DEPLOYS}")
    return {**result, "deploys": DEPLOYS, "rate_per_s": RATE, "drain_grace_s": DRAIN_GRACE_S}
