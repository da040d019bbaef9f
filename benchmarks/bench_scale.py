"""Scaling the live version under steady load: 1 -> 10 -> 1 replicas through Traefik, against one replica's start.

The platform runs as a user runs it (``berth up``). One web application (busybox httpd, readiness GET /)
is deployed with one replica; then a separate process sends a steady 200 requests/s through Traefik with
its generated Host header while the benchmark scales it through the REST API
(``POST /v1/applications/{id}/scale``, waiting for ``evt.application.scaled``): three times 1 -> 2 -> 1
(one new replica: started, checked, routed and confirmed), then 1 -> 10 -> 1. Removed replicas drain for
``DRAIN_GRACE_S``.

``one_replica_s``: the median time from the scale request to its ``evt.application.scaled`` for one new
replica; ``up_1_to_10_s``: the same for nine new replicas at once (the goal: within 1.5 times one replica,
since they start side by side); ``errors``: answers that are not 200 (Traefik's 404/502/503, connection
errors) over the whole run, out of ``requests``. The engine's own floor, under the same load in the same
run: ``docker_run_1_s`` (``docker run -d`` of the same image until its first 200) and ``docker_run_9_s``
(nine at once, until all of them answer); ``docker_9_over_1`` is the ratio no scheduler can beat on
this engine.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from typing import Any

from benchmarks.bench_rolling import summarise
from benchmarks.support.docker_run import DockerRuns
from benchmarks.support.events import Event, EventLog
from benchmarks.support.http import wait_status
from benchmarks.support.load import LoadProcess
from benchmarks.support.platform import Api, BerthUp, busybox_image, host_of, measured_on_platform

NAME = "scale"
GOALS = {"errors": ("<=", 0), "up_over_one_replica": ("<=", 1.5)}
RATE = 200.0
DRAIN_GRACE_S = 1.0
ONE_REPLICA_RUNS = 3
WARMUP_S = 2.0


async def scale(api: Api, events: EventLog, app_id: str, replicas: int) -> float:
    """Seconds from the request to ``evt.application.scaled`` (as its envelope was made); raises if it failed."""
    start = time.time()
    body = {"services": {"web": replicas}, "reason": "benchmark", "drain_grace_s": DRAIN_GRACE_S}
    sent = await api._call("POST", f"/v1/applications/{app_id}/scale", 202, body)

    def mine(e: Event) -> bool:
        return e.type == "evt.application.scaled" and e.data.get("request_id") == sent["request_id"]

    event = await events.wait_for(mine, timeout=180)
    if event.data["outcome"] != "scaled" or event.data["to_replicas"] != replicas:
        raise RuntimeError(f"scale to {replicas} failed: {event.data}")
    return event.made - start


async def engine_floor(image: str) -> tuple[float, float]:
    """(one ``docker run`` until 200, the median of 3; nine at once until all answer)."""
    runs = DockerRuns(image)
    try:
        one = []
        for i in range(3):
            one.append(await runs.run_until_200(f"e{i}"))
            runs.cleanup()
        t0 = time.monotonic()
        await asyncio.gather(*(runs.run_until_200(f"n{i}") for i in range(9)))
        return statistics.median(one), time.monotonic() - t0
    finally:
        runs.cleanup()


async def measure(platform: BerthUp) -> dict[str, Any]:
    api = Api(platform)
    events = await EventLog(platform.events_url).start()
    load: LoadProcess | None = None
    try:
        env_id = await api.environment(f"bench-scale-{os.getpid()}")
        app = await api.web_app(env_id, "scale", content="v0")
        host = host_of(app)
        await events.finished((await api.deploy(app["id"]))["id"])
        await wait_status(platform.proxy_port, host, ok=lambda a: a.status == 200 and a.body.strip() == b"v0")

        load = LoadProcess(platform.proxy_port, host, RATE).start()
        await asyncio.sleep(WARMUP_S)
        one, one_down = [], []
        for _ in range(ONE_REPLICA_RUNS):
            one.append(await scale(api, events, app["id"], 2))
            one_down.append(await scale(api, events, app["id"], 1))
        up = await scale(api, events, app["id"], 10)
        await asyncio.sleep(1.0)
        down = await scale(api, events, app["id"], 1)
        await asyncio.sleep(1.0)
        engine_1, engine_9 = await engine_floor(busybox_image())
        result = await asyncio.to_thread(load.stop)
        load = None
    finally:
        if load is not None:
            load.kill()
        await events.close()
        await api.close()
    served = summarise(result["samples"])
    one_replica_s = statistics.median(one)
    return {
        "up_1_to_10_s": round(up, 3),
        "one_replica_s": round(one_replica_s, 3),
        "up_over_one_replica": round(up / one_replica_s, 3),
        "down_10_to_1_s": round(down, 3),
        "one_replica_runs_s": [round(x, 3) for x in one],
        "one_replica_down_s": [round(x, 3) for x in one_down],
        "docker_run_1_s": round(engine_1, 3),
        "docker_run_9_s": round(engine_9, 3),
        "docker_9_over_1": round(engine_9 / engine_1, 3),
        "errors": served["errors"],
        "error_kinds": served["error_kinds"],
        "requests": served["requests"],
        "skipped": served["skipped"],
        "p50_ms": served["p50_ms"],
        "p99_ms": served["p99_ms"],
    }


async def run() -> dict[str, Any]:
    return {**await measured_on_platform(measure), "rate_per_s": RATE, "drain_grace_s": DRAIN_GRACE_S}
