"""Applications keep serving while the control plane restarts: failed requests through Traefik during
``berth down`` then ``berth up``.

The platform runs as a user runs it (``berth up``). One web application (busybox httpd) is deployed;
then a separate process sends a steady 200 requests/s through Traefik with its generated Host header
(open loop, keep-alive connections, ``benchmarks.support.load``) while the benchmark runs ``berth down``
(every service, NATS and Postgres stop; Traefik, the data plane, keeps running) and ``berth up`` (the new
supervisor adopts that Traefik), with 2 s of load before, between and after.

``requests``: requests due from the start of ``berth down`` to 2 s after ``berth up`` returned; ``errors``:
answers that are not 200 and connection errors among them (a request the generator could not send
because every connection was busy is counted apart, ``skipped``). ``traefik_adopted``: the Traefik serving
after ``berth up`` is the one that served before (same pid).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from benchmarks.bench_rolling import summarise
from benchmarks.support.events import EventLog
from benchmarks.support.http import wait_status
from benchmarks.support.load import LoadProcess
from benchmarks.support.platform import Api, BerthUp, host_of, measured_on_platform

NAME = "control_plane_restart"
GOALS = {"errors": ("<=", 0)}
RATE = 200.0
PAUSE_S = 2.0


def _traefik_pid(platform: BerthUp) -> int | None:
    import json

    state = json.loads(platform.paths.state.read_text())
    pid = state["children"].get("traefik", {}).get("pid")
    return int(pid) if pid else None


def _berth(platform: BerthUp, *args: str) -> float:
    """Run ``berth ARGS``; the seconds it took (raises when it fails)."""
    start = time.monotonic()
    proc = platform.berth(*args)
    if proc.returncode != 0:
        raise RuntimeError(f"berth {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return time.monotonic() - start


async def measure(platform: BerthUp) -> dict[str, Any]:
    api = Api(platform)
    events = await EventLog(platform.events_url).start()
    try:
        env_id = await api.environment(f"bench-restart-{os.getpid()}")
        app = await api.web_app(env_id, "steady", content="v0")
        host = host_of(app)
        await events.finished((await api.deploy(app["id"], drain_grace_s=1.0))["id"])
        await wait_status(platform.proxy_port, host, ok=lambda a: a.status == 200 and a.body.strip() == b"v0")
    finally:
        await events.close()
        await api.close()
    before = _traefik_pid(platform)
    load = LoadProcess(platform.proxy_port, host, RATE).start()
    try:
        await asyncio.sleep(PAUSE_S)
        start = time.monotonic()
        down_s = await asyncio.to_thread(_berth, platform, "down")
        await asyncio.sleep(PAUSE_S)
        up_s = await asyncio.to_thread(_berth, platform, "up")
        await asyncio.sleep(PAUSE_S)
        end = time.monotonic()
        result = await asyncio.to_thread(load.stop)
    except BaseException:
        load.kill()
        raise
    window = [s for s in result["samples"] if start <= result["start_monotonic"] + s[0] < end]
    summary = summarise(window)
    return {
        "requests": summary["requests"],
        "errors": summary["errors"],
        "error_kinds": summary["error_kinds"],
        "skipped": summary["skipped"],
        "p50_ms": summary["p50_ms"],
        "p99_ms": summary["p99_ms"],
        "max_ms": summary["max_ms"],
        "down_s": round(down_s, 2),
        "up_s": round(up_s, 2),
        "traefik_adopted": before is not None and before == _traefik_pid(platform),
        "total_requests": len(result["samples"]),
    }


async def run() -> dict[str, Any]:
    return {**await measured_on_platform(measure), "rate_per_s": RATE}
