"""Wiring of the metrics service: the only place its parts are put together."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import timedelta
from pathlib import Path
from typing import cast

from berth_common.docker import DockerEngines, local_engine
from berth_common.httpd import HealthServer
from berth_common.logging import get_logger
from berth_common.runtime import Context, ServiceSpec, run
from berth_metrics.adapters.docker import DockerSource
from berth_metrics.adapters.heap import release_free_memory
from berth_metrics.adapters.host import HostReader
from berth_metrics.adapters.prom import exposition
from berth_metrics.adapters.retention import RetentionPolicy, run_retention
from berth_metrics.adapters.store import SampleStore
from berth_metrics.domain.lifecycle import LifecycleTracker
from berth_metrics.domain.reachability import Limits
from berth_metrics.domain.readings import Snapshot
from berth_metrics.domain.series import Retention
from berth_metrics.entrypoints import autoscale, bus
from berth_metrics.entrypoints.timers import every, forever, utcnow
from berth_metrics.settings import MetricsSettings
from berth_metrics.usecases.alerts import Evaluator
from berth_metrics.usecases.autoscale import Autoscaler
from berth_metrics.usecases.collect import Collector
from berth_metrics.usecases.database_down import DatabaseDownWatch
from berth_metrics.usecases.fleet import Fleet
from berth_metrics.usecases.lifecycle import EventWatcher
from berth_metrics.usecases.queries import Deps
from berth_metrics.usecases.reachability import ReachabilityWatch

VERSIONS = Path(__file__).parent / "migrations" / "versions"
EXPOSITION = "metrics.exposition"  # ctx.extra: what /metrics answers a request (adapters.prom.exposition)
log = get_logger(__name__)


def retention_of(s: MetricsSettings) -> RetentionPolicy:
    return RetentionPolicy(
        raw=timedelta(hours=s.metrics_raw_retention_h),
        minute=timedelta(days=s.metrics_minute_retention_d),
        hour=timedelta(days=s.metrics_hour_retention_d),
        max_raw_rows_per_series=s.metrics_max_raw_rows_per_series,
        max_series=s.metrics_max_series,
        lag=timedelta(seconds=s.metrics_rollup_lag_s),
    )


async def wire(ctx: Context) -> None:
    s = cast(MetricsSettings, ctx.settings)
    server = s.metrics_server_name
    engines = DockerEngines(local_engine(s.metrics_docker_url, s.metrics_docker_api_version))
    source = DockerSource(engines, s.metrics_stats_timeout_s, s.metrics_stats_concurrency)
    tracker = LifecycleTracker(
        loop_count=s.metrics_restart_loop_count,
        loop_window_s=s.metrics_restart_loop_window_s,
        kill_grace_s=s.metrics_kill_grace_s,
    )
    store = SampleStore(ctx.sessionmaker)
    collector = Collector(
        source=source,
        host=HostReader(s.metrics_proc_root, s.metrics_filesystems),
        store=store,
        server=server,
        concurrency=s.metrics_stats_concurrency,
    )
    limits = Limits(down_after=s.metrics_server_down_after, up_after=s.metrics_server_up_after)
    reachability = ReachabilityWatch(ctx.bus, ctx.sessionmaker, limits, s.metrics_interval_s)
    await reachability.load()
    stop = asyncio.Event()

    def watch(source: DockerSource, name: str) -> asyncio.Task[None]:
        """Watch an added server's engine events as the local one's (restarted when the stream ends)."""
        remote = EventWatcher(source, tracker, ctx.bus, ctx.sessionmaker, name, s.metrics_events_reconnect_max_s)
        return asyncio.create_task(forever(f"lifecycle {name}", lambda: remote.run(stop), stop), name=f"watch-{name}")

    fleet = Fleet(
        engines,
        ctx.sessionmaker,
        store,
        reachability,
        s.metrics_stats_timeout_s,
        s.metrics_stats_concurrency,
        s.metrics_ssh_timeout_s,
        s.metrics_docker_api_version,
        watch=watch,
        filesystems=tuple(s.metrics_filesystems),
    )

    def every_container() -> Snapshot:
        """The local snapshot with the added servers' containers: the rules see every server's."""
        local, remote = collector.snapshot, fleet.snapshot()
        if not remote.containers and not remote.stalled:
            return local
        containers, stalled = {**remote.containers, **local.containers}, {**remote.stalled, **local.stalled}
        return Snapshot(containers=containers, server=local.server, stalled=stalled)

    evaluator = Evaluator(
        bus=ctx.bus,
        sessionmaker=ctx.sessionmaker,
        tracker=tracker,
        snapshot=every_container,
        server=server,
        margin_fraction=s.metrics_alert_margin_fraction,
    )
    await evaluator.load()
    databases = DatabaseDownWatch(ctx.bus, ctx.sessionmaker, every_container, server, s.metrics_database_down_after_s)
    await databases.load()
    watcher = EventWatcher(source, tracker, ctx.bus, ctx.sessionmaker, server, s.metrics_events_reconnect_max_s)
    policy = retention_of(s)
    deps = Deps(ctx.sessionmaker, evaluator, Retention(policy.raw, policy.minute, policy.hour), s.metrics_interval_s)
    await bus.register(ctx, deps, fleet)
    autoscaler = Autoscaler(ctx.bus, ctx.sessionmaker, lambda: collector.snapshot, s.metrics_autoscale_window_s)
    await autoscale.register(ctx, autoscaler)
    ctx.extra.update(collector=collector, evaluator=evaluator, tracker=tracker, watcher=watcher, deps=deps)
    ctx.extra["database_down"] = databases
    ctx.extra.update(reachability=reachability, autoscaler=autoscaler, fleet=fleet)

    async def collect_and_evaluate() -> None:
        now = utcnow()
        await asyncio.gather(collector.collect_once(now), fleet.collect_once(now))
        now = utcnow()
        try:
            await evaluator.evaluate(now)
            await databases.evaluate(now)
            await autoscaler.evaluate(time.time())
        finally:
            answered, error = collector.engine_answered, collector.engine_error
            await reachability.observe(server, answered, now, collector.teams(), error)
            release_free_memory()

    async def retention() -> None:
        await run_retention(ctx.sessionmaker, policy, utcnow())

    tasks = [
        asyncio.create_task(forever("lifecycle", lambda: watcher.run(stop), stop), name="metrics-lifecycle"),
        asyncio.create_task(every("collect", s.metrics_interval_s, collect_and_evaluate, stop), name="metrics-collect"),
        asyncio.create_task(
            every("retention", s.metrics_retention_interval_s, retention, stop), name="metrics-retention"
        ),
        asyncio.create_task(
            every("rules", s.metrics_rules_refresh_s, evaluator.reload_rules, stop), name="metrics-rules"
        ),
    ]
    ctx.extra[EXPOSITION] = exposition(lambda: collector.snapshot, server, s.metrics_token.get_secret_value())

    async def shutdown() -> None:
        stop.set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await fleet.close()
        await source.close()
        await engines.close()

    ctx.cleanups.append(shutdown)


async def serve_http(ctx: Context, stop: asyncio.Event) -> None:
    """Liveness, readiness and ``/metrics`` (for a scrape token's holder only) until ``stop``."""
    s = cast(MetricsSettings, ctx.settings)
    server = HealthServer(s.http_host, s.http_port, ctx.ready, ctx.extra[EXPOSITION])
    port = await server.start()
    log.info("service ready", http=f"http://{s.http_host}:{port}")
    try:
        await stop.wait()
    finally:
        await server.stop()


def spec(settings: MetricsSettings | None = None) -> ServiceSpec:
    return ServiceSpec(
        name="metrics",
        settings=settings or MetricsSettings(),
        versions_dir=VERSIONS,
        wire=wire,
        health_server=False,
        run_http=serve_http,
    )


def main() -> None:
    run(spec())
