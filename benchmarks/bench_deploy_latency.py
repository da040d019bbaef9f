"""Deploy latency: from the deploy request to the first 200 through Traefik, against ``docker run``.

The platform runs as a user runs it (``berth up`` on a temporary data dir and free ports). Each Berth
sample is a new application (so the first 200 can only come from the new version): ``POST
/v1/applications/{id}/deployments`` of a prebuilt busybox httpd image, then GET through Traefik with the
generated Host header every 5 ms on a new connection until it answers 200 with the application's content.
Each docker sample is ``docker run -d -p 127.0.0.1:PORT:8080`` of the same image and command, polled the
same way on the published port. The two are interleaved, after one warm-up of each; medians are compared.

Berth does more than ``docker run`` on the way (a record in the api, the scheduler's state machine,
its own readiness check, the route written for Traefik and reloaded by it) and more after the first 200
(confirmation through Traefik's API before the deployment reports success): ``steps`` places each
step on the same clock, from the envelope times of the platform's events.

``cpu_ms_per_deploy``: CPU each component spent per Berth sample (from the deploy request until 0.3 s
after the route was confirmed; Traefik's includes answering the 404s of the 5 ms polling). Unlike the
latencies it hardly depends on the machine's load.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from typing import Any

from benchmarks.support.cpu import PlatformCpu
from benchmarks.support.docker_run import DockerRuns
from benchmarks.support.events import EventLog
from benchmarks.support.http import wait_status
from benchmarks.support.platform import Api, BerthUp, busybox_image, host_of
from berth_scheduler.domain.names import route_id

NAME = "deploy_latency"
GOALS = {"ratio": ("<=", 1.5)}
REPS = 7
STEP_KEYS = ("queued", "starting replicas", "replicas started", "replica ready", "replicas ready", "new version live")


async def berth_once(platform: BerthUp, api: Api, events: EventLog, env_id: str, name: str) -> dict[str, Any]:
    app = await api.web_app(env_id, name, content=name)
    host, expected = host_of(app), name.encode()
    t_wall, t0 = time.time(), time.monotonic()
    first = asyncio.create_task(
        wait_status(platform.proxy_port, host, ok=lambda a: a.status == 200 and a.body.strip() == expected)
    )
    dep = await api.deploy(app["id"])
    accepted = time.monotonic() - t0
    first_200 = await first - t0
    done = await events.finished(dep["id"])
    rid = route_id(app["id"], "web")
    applied = await events.wait_for(lambda e: e.type == "evt.route.applied" and e.data["route_id"] == rid, 10)
    steps = events.steps(dep["id"], t_wall)
    return {
        "first_200_s": round(first_200, 4),
        "accepted_s": round(accepted, 4),
        "succeeded_s": round(done.made - t_wall, 4),
        "route_confirmed_s": round(applied.made - t_wall, 4),
        "route_live_ms": applied.data.get("live_ms"),
        "steps": {k: steps[k] for k in STEP_KEYS if k in steps},
    }


def _median_steps(samples: list[dict[str, Any]]) -> dict[str, float]:
    keys = [*STEP_KEYS, "first_200_s", "route_confirmed_s", "succeeded_s"]
    out = {}
    for k in keys:
        values = [s["steps"].get(k) if k in STEP_KEYS else s[k] for s in samples]
        present = [v for v in values if v is not None]
        if present:
            out[k] = round(statistics.median(present), 4)
    return out


async def measure(platform: BerthUp, image: str, reps: int = REPS) -> dict[str, Any]:
    api = Api(platform)
    events = await EventLog(platform.events_url).start()
    docker = DockerRuns(image)
    cpu = PlatformCpu(platform)
    spent: dict[str, float] = {}
    try:
        env_id = await api.environment(f"bench-latency-{os.getpid()}")
        await berth_once(platform, api, events, env_id, "warmup")
        await docker.run_until_200("warmup")
        berth, docker_s = [], []
        for i in range(reps):
            docker_s.append(round(await docker.run_until_200(f"docker{i}"), 4))
            before = cpu.sample()
            berth.append(await berth_once(platform, api, events, env_id, f"lat{i}"))
            await asyncio.sleep(0.3)  # the deployment's last events and the route confirmation are handled
            for k, v in PlatformCpu.per(before, cpu.sample(), 1).items():
                spent[k] = spent.get(k, 0.0) + v
    finally:
        docker.cleanup()
        await events.close()
        await api.close()
    berth_s = [b["first_200_s"] for b in berth]
    b_med, d_med = statistics.median(berth_s), statistics.median(docker_s)
    return {
        "berth_s": round(b_med, 4),
        "docker_s": round(d_med, 4),
        "ratio": round(b_med / d_med, 3),
        "berth_samples_s": berth_s,
        "docker_samples_s": docker_s,
        "steps_median_s": _median_steps(berth),
        "route_live_ms_median": statistics.median(b["route_live_ms"] for b in berth),
        "cpu_ms_per_deploy": {k: round(v / reps, 1) for k, v in sorted(spent.items())},
        "samples": berth,
    }


async def run() -> dict[str, Any]:
    image = busybox_image()
    load_before = os.getloadavg()[0]
    platform = await asyncio.to_thread(BerthUp().start)
    try:
        result = await measure(platform, image)
    finally:
        await asyncio.to_thread(platform.stop)
    return {
        **result,
        "reps": REPS,
        "path": "REST API of `berth up` (split mode) -> scheduler -> Docker -> proxy-sync -> Traefik",
        "platform_up_s": round(platform.up_s, 1),
        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
