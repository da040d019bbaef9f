"""Memory over time: a platform kept busy with mixed API calls, deploys and metrics queries; the growth of
every component's memory between the end of a warm-up and the end of the run.

The platform runs as a user runs it (``berth up``, split mode). Two web applications (busybox httpd) are
deployed in turn, each deploy with new content, and between deploys the API is read as a dashboard and the
CLI read it: projects, applications, an application, its deployments, one deployment, its metrics.

The warm-up ends by a rule, not after a time (``warmup_rule`` in the result): once each of the streams every
deploy writes to (events, log lines) holds at least one block's worth of bytes, read from the JetStream API
(``benchmarks.support.stream_blocks``), and not before ``WARMUP_FRACTION`` of ``BERTH_SOAK_S`` (30 minutes by
default) nor before one deploy of each application. Until a stream's first block is full, nats-server's
memory climbs with the bytes written (it keeps the block a stream writes to, up to the block's size: 4 MB);
after it, it follows a bounded saw-tooth. A warm-up of a fixed 6 minutes ended before the blocks held 1 MB,
so the measured growth was that first climb. The rule costs time: a deploy writes about 8 KB of events and
6 KB of log lines, so 4 MB takes some 500 to 750 deploys. If the rule is not met within
``BERTH_SOAK_WARMUP_MAX_S`` (4 x ``BERTH_SOAK_S`` by default) the measurement begins then, and
``warmup_rule_met`` is false. Memory is then measured over ``MEASURED_S`` (the rest of ``BERTH_SOAK_S``: 24
minutes by default), the same duration whenever the warm-up ended: read at its start and end, per component
as ``bench_footprint`` reads it (the main process's RSS plus its helpers' unique memory: Postgres's shared
buffers counted once).

``rss_growth_pct``: per component, the growth in percent (negative: it shrank); ``rss_growth_pct_max``
the largest. ``rss_series_mb`` is every component's memory each ``SAMPLE_S`` after the warm-up and
``rss_growth_pct_second_half`` the growth over the second half of the measured time: a leak keeps growing
there, a cache that fills up does not; ``rss_growth_pct_of_means`` the growth of the mean over the second half
of the series from the mean over its first half (:func:`mean_growth`: a bounded saw-tooth reads as about 0,
a leak does not). ``streams_at_start`` / ``streams_at_end``: what each stream held then
(its blocks filled, and about what the block being written holds: where on the saw-tooth NATS's memory was).
``warmup_s`` / ``warmup_deploys``: how long the warm-up took. ``deploys`` / ``api_calls`` /
``metrics_queries`` count what was done after the warm-up; ``failed_deploys`` those that did not succeed
(every deploy should).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from benchmarks.bench_footprint import measure_tree
from benchmarks.support.events import EventLog
from benchmarks.support.platform import Api, BerthUp, measured_on_platform
from benchmarks.support.stream_blocks import RULE, connect_admin, stream_fill, warmed_up

NAME = "soak"
GOALS = {"rss_growth_pct_max": ("<=", 5.0), "failed_deploys": ("<=", 0)}
SOAK_S = float(os.environ.get("BERTH_SOAK_S", "1800"))
WARMUP_FRACTION = 0.2  # the warm-up's least time, as a fraction of SOAK_S
MEASURED_S = SOAK_S * (1 - WARMUP_FRACTION)
WARMUP_MAX_S = float(os.environ.get("BERTH_SOAK_WARMUP_MAX_S", str(4 * SOAK_S)))
READS_PER_DEPLOY = 20  # rounds of API reads between two deploys
SAMPLE_S = 60.0  # memory read this often after the warm-up (``rss_series_mb``)


def _memory(platform: BerthUp) -> dict[str, float]:
    state = json.loads(platform.paths.state.read_text())
    return {name: c["mb"] for name, c in measure_tree(state).items()}


def mean_growth(series: list[dict[str, float]]) -> dict[str, float]:
    """Per component, the growth in percent of its mean memory over the second half of ``series`` (samples
    taken at a fixed period) from its mean over the first half. A leak raises the whole course, so the means
    part; a bounded saw-tooth (nats-server's block buffers) has about the same mean in both halves, where a
    growth between two moments reads where on it they fall."""
    half = len(series) // 2
    if half == 0:
        return {}
    first, second = series[:half], series[half:]
    growth = {}
    for name in sorted(k for k in series[0] if k != "t_s"):
        a, b = [p[name] for p in first if name in p], [p[name] for p in second if name in p]
        if a and b and sum(a):
            before, after = sum(a) / len(a), sum(b) / len(b)
            growth[name] = round((after - before) / before * 100, 1)
    return growth


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
    admin = await connect_admin(platform.nats_url, platform.bus_identity("admin")["password"])
    js = admin.jetstream()
    counts = {"deploys": 0, "failed_deploys": 0, "api_calls": 0, "metrics_queries": 0}
    try:
        env_id = await api.environment(f"bench-soak-{os.getpid()}")
        apps = [await api.web_app(env_id, f"soak{i}", content="v0") for i in range(2)]
        start = time.monotonic()
        end = float("inf")  # set when the warm-up ends
        before: dict[str, float] | None = None
        series: list[dict[str, float]] = []
        n = 0
        while time.monotonic() < end:
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
            elapsed = time.monotonic() - start
            if before is None and elapsed >= SOAK_S * WARMUP_FRACTION and n >= len(apps):
                fill = await stream_fill(js)
                rule_met = warmed_up(fill)
                if rule_met or elapsed >= WARMUP_MAX_S:
                    before = _memory(platform)
                    at_start = {name: f.as_json() for name, f in fill.items()}
                    warmup = {"warmup_s": round(elapsed, 1), "warmup_deploys": n, "warmup_rule_met": rule_met}
                    measured_from = next_sample = time.monotonic()
                    end = measured_from + MEASURED_S
            if before is not None and time.monotonic() >= next_sample:  # the course, to tell a leak from a fill
                series.append({"t_s": round(time.monotonic() - measured_from), **_memory(platform)})
                next_sample += SAMPLE_S
        after = _memory(platform)
        duration = time.monotonic() - measured_from
        at_end = {name: f.as_json() for name, f in (await stream_fill(js)).items()}
    finally:
        await admin.close()
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
        "warmup_rule": RULE,
        **warmup,
        "streams_at_start": at_start,
        "streams_at_end": at_end,
        "rss_series_mb": series,
        "rss_growth_pct_second_half": late,
        "rss_growth_pct_of_means": mean_growth(series),
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
