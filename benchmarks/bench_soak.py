"""Memory over time: a platform kept busy for ``BERTH_SOAK_S`` seconds (30 minutes by default) with mixed API
calls, deploys and metrics queries; the growth of every component's memory between the end of a warm-up
and the end of the run.

The platform runs as a user runs it (``berth up``, split mode). Two web applications (busybox httpd) are
deployed in turn, each deploy with new content, and between deploys the API is read as a dashboard and the
CLI read it: projects, applications, an application, its deployments, one deployment, its metrics. The
first ``WARMUP_FRACTION`` of the run (at least one deploy of each application) fills caches, pools and
connections; memory is read then and at the end, per component as ``bench_footprint`` reads it (the main
process's RSS plus its helpers' unique memory: Postgres's shared buffers counted once).

``rss_growth_pct``: per component, the growth in percent (negative: it shrank); ``rss_growth_pct_max``
the largest. ``rss_series_mb`` is every component's memory each ``SAMPLE_S`` after the warm-up and
``rss_growth_pct_second_half`` the growth over the second half of the measured time: a leak keeps growing
there, a cache that fills up does not (NATS keeps the block each stream writes to in memory, up to 4 MB for
the events and the log lines: benchmarks/README.md). ``deploys`` / ``api_calls`` / ``metrics_queries`` count
what was done after the warm-up; ``failed_deploys`` those that did not succeed (every deploy should).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from benchmarks.bench_footprint import measure_tree
from benchmarks.support.events import EventLog
from benchmarks.support.platform import Api, BerthUp, measured_on_platform

NAME = "soak"
GOALS = {"rss_growth_pct_max": ("<=", 5.0), "failed_deploys": ("<=", 0)}
SOAK_S = float(os.environ.get("BERTH_SOAK_S", "1800"))
WARMUP_FRACTION = 0.2
READS_PER_DEPLOY = 20  # rounds of API reads between two deploys
SAMPLE_S = 60.0  # memory read this often after the warm-up (``rss_series_mb``)


def _memory(platform: BerthUp) -> dict[str, float]:
    state = json.loads(platform.paths.state.read_text())
    return {name: c["mb"] for name, c in measure_tree(state).items()}


async def _reads(api: Api, app_id: str, deployment_id: str) -> tuple[int, int]:
    """One round of what a dashboard and the CLI read; (API calls, metrics queries) made."""
    for path in (
        "/v1/projects",
        "/v1/applications",
        f"/v1/applications/{app_id}",
        f"/v1/applications/{app_id}/deployments",
        f"/v1/deployments/{deployment_id}",
    ):
        await api._call("GET", path, 200)
    await api._call("GET", f"/v1/applications/{app_id}/metrics", 200)
    return 6, 1


async def measure(platform: BerthUp) -> dict[str, Any]:
    api = Api(platform)
    events = await EventLog(platform.events_url).start()
    counts = {"deploys": 0, "failed_deploys": 0, "api_calls": 0, "metrics_queries": 0}
    try:
        env_id = await api.environment(f"bench-soak-{os.getpid()}")
        apps = [await api.web_app(env_id, f"soak{i}", content="v0") for i in range(2)]
        start = time.monotonic()
        warm_until = start + SOAK_S * WARMUP_FRACTION
        end = start + SOAK_S
        before: dict[str, float] | None = None
        series: list[dict[str, float]] = []
        n = 0
        while time.monotonic() < end or before is None:
            app = apps[n % len(apps)]
            await api.set_content(app["id"], f"v{n}")
            dep = await api.deploy(app["id"], drain_grace_s=0.5)
            outcome = await events.finished(dep["id"], timeout=300)
            counted = before is not None
            if counted:
                counts["deploys"] += 1
                counts["failed_deploys"] += outcome.type != "evt.deployment.succeeded"
            for _ in range(READS_PER_DEPLOY):
                calls, metrics = await _reads(api, app["id"], dep["id"])
                if counted:
                    counts["api_calls"] += calls
                    counts["metrics_queries"] += metrics
            n += 1
            if before is None and time.monotonic() >= warm_until and n >= len(apps):
                before = _memory(platform)
                measured_from = next_sample = time.monotonic()
            if before is not None and time.monotonic() >= next_sample:  # the course, to tell a leak from a fill
                series.append({"t_s": round(time.monotonic() - measured_from), **_memory(platform)})
                next_sample += SAMPLE_S
        after = _memory(platform)
        duration = time.monotonic() - measured_from
    finally:
        await events.close()
        await api.close()
    growth = {
        name: round((after[name] - mb) / mb * 100, 1) for name, mb in sorted(before.items()) if name in after and mb
    }
    half = next((p for p in series if p["t_s"] >= duration / 2), after)
    late = {
        name: round((after[name] - mb) / mb * 100, 1)
        for name, mb in sorted(half.items())
        if name in after and mb and name != "t_s"
    }
    return {
        **counts,
        "soak_s": SOAK_S,
        "rss_series_mb": series,
        "rss_growth_pct_second_half": late,
        "measured_s": round(duration, 1),
        "rss_start_mb": before,
        "rss_end_mb": after,
        "rss_growth_pct": growth,
        "rss_growth_pct_max": max(growth.values()),
    }


async def run() -> dict[str, Any]:
    return await measured_on_platform(measure)


if __name__ == "__main__":
    import asyncio

    print(json.dumps(asyncio.run(run()), indent=2))
