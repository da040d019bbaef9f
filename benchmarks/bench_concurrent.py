"""One hundred applications deployed at once: every deployment ends, none is lost, and the control plane
stays within its memory goal.

The platform runs as a user runs it (``berth up --all-in-one``, the footprint the memory goal is set for).
``APPS`` web applications (busybox httpd from a prebuilt local image) are created, then all their
deployments are requested at once. ``succeeded``: deployments whose ``evt.deployment.succeeded`` arrived
and that the API reports succeeded; ``failed``: ended otherwise (with their reasons in ``failures``);
``lost``: requested (202) but with no end within ``WAIT_S``, or whose end the API does not report within
30 s of it.
``wall_s``: from the first request to the last end. The requests are sent as a careful client sends
them: one answered 503 (every database connection busy) is sent again after its Retry-After
(``requests_retried_busy`` counts those). ``max_control_plane_mb``: the highest memory of the
control plane (the supervisor, the services, NATS and Postgres, counted as ``bench_footprint`` counts
them; Traefik is the data plane and is left out), sampled every half second while the deploys run.
``serving``: applications that answer 200 with their own content through Traefik afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from typing import Any

from benchmarks.bench_footprint import GOALS as FOOTPRINT_GOALS
from benchmarks.bench_footprint import measure_tree
from benchmarks.support.events import TERMINAL, EventLog
from benchmarks.support.http import get_once
from benchmarks.support.platform import Api, BerthUp, host_of, measured_on_platform

NAME = "concurrent"
APPS = 100
WAIT_S = 900.0
MEMORY_GOAL_MB = FOOTPRINT_GOALS["total_mb_all_in_one"][1]
GOALS = {
    "succeeded": (">=", float(APPS)),
    "lost": ("<=", 0.0),
    "max_control_plane_mb": ("<=", MEMORY_GOAL_MB),
}
DATA_PLANE = {"traefik"}


class MemorySampler:
    """The control plane's memory every ``interval`` seconds, in a thread (psutil blocks)."""

    def __init__(self, platform: BerthUp, interval: float = 0.5) -> None:
        self.platform, self.interval = platform, interval
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> float:
        state = json.loads(self.platform.paths.state.read_text())
        tree = measure_tree(state)
        return round(sum(c["mb"] for name, c in tree.items() if name not in DATA_PLANE), 1)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(self._sample())
            except Exception:  # a process that ended between listing and reading: the next sample counts
                pass
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


async def _end_of(events: EventLog, deployment_id: str) -> str | None:
    try:
        event = await events.wait_for(
            lambda e: e.type in TERMINAL and e.data.get("deployment_id") == deployment_id, WAIT_S
        )
    except TimeoutError:
        return None
    return event.type.rsplit(".", 1)[-1]


async def _settled_views(
    api: Api, requested: list[dict[str, Any]], ends: list[str | None], wait_s: float = 30.0
) -> list[dict[str, Any]]:
    """The API's view of each deployment once it has caught up with the ends (its projection of the
    events may trail them by a moment), or as it is after ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        views = await asyncio.gather(*(api.deployment(d["id"]) for d in requested))
        if all(v["status"] == e for e, v in zip(ends, views, strict=True)) or time.monotonic() > deadline:
            return views
        await asyncio.sleep(0.5)


BUSY_RETRIES = 10


async def _timed_deploy(api: Api, app_id: str, retried: list[str]) -> tuple[dict[str, Any], float]:
    """The deployment requested as a careful client does: a 503 (every database connection busy) is asked
    again after its Retry-After; each retry is counted."""
    start = time.monotonic()
    for _ in range(BUSY_RETRIES):
        resp = await api.client.post(f"/v1/applications/{app_id}/deployments", json={"options": {"drain_grace_s": 1.0}})
        if resp.status_code != 503:
            break
        retried.append(app_id)
        await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))
    if resp.status_code != 202:
        raise RuntimeError(f"deploy {app_id}: HTTP {resp.status_code}: {resp.text[:500]}")
    return resp.json(), time.monotonic() - start


async def measure(platform: BerthUp, apps: int = APPS) -> dict[str, Any]:
    api = Api(platform, timeout=300.0)
    events = await EventLog(platform.events_url).start()
    try:
        env_id = await api.environment(f"bench-concurrent-{os.getpid()}")
        made = [await api.web_app(env_id, f"c{i:03d}", content=f"app {i}") for i in range(apps)]
        with MemorySampler(platform) as memory:
            start = time.monotonic()
            retried: list[str] = []
            timed = await asyncio.gather(*(_timed_deploy(api, a["id"], retried) for a in made))
            requested = [d for d, _ in timed]
            answer_s = sorted(t for _, t in timed)
            ends = await asyncio.gather(*(_end_of(events, d["id"]) for d in requested))
            wall_s = time.monotonic() - start
        views = await _settled_views(api, requested, ends)
        succeeded = sum(1 for e, v in zip(ends, views, strict=True) if e == "succeeded" and v["status"] == e)
        lost = sum(1 for e, v in zip(ends, views, strict=True) if e is None or v["status"] != e)
        failures = sorted(
            {str(v.get("reason")) for e, v in zip(ends, views, strict=True) if e not in (None, "succeeded")}
        )
        answers = await asyncio.gather(*(get_once(platform.proxy_port, host_of(a)) for a in made))
        serving = sum(1 for i, a in enumerate(answers) if a.status == 200 and a.body.strip() == f"app {i}".encode())
    finally:
        await events.close()
        await api.close()
    return {
        "apps": apps,
        "deploys": len(requested),
        "succeeded": succeeded,
        "failed": len(requested) - succeeded - lost,
        "lost": lost,
        "failures": failures[:5],
        "wall_s": round(wall_s, 1),
        "request_s_p50": round(answer_s[len(answer_s) // 2], 2),
        "request_s_max": round(answer_s[-1], 2),
        "requests_retried_busy": len(retried),
        "max_control_plane_mb": max(memory.samples, default=0.0),
        "memory_samples": len(memory.samples),
        "serving": serving,
    }


async def run() -> dict[str, Any]:
    return {**await measured_on_platform(measure, all_in_one=True), "memory_goal_mb": MEMORY_GOAL_MB}
