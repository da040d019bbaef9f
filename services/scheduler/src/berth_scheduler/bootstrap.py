"""Wiring of the scheduler service: the only place its parts are put together."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path

from berth_common.db import Transactions
from berth_common.docker import DockerEngines, local_engine
from berth_common.runtime import Context, ServiceSpec, run
from berth_scheduler.adapters.docker import DockerExecutor
from berth_scheduler.adapters.readiness import ReadinessChecker
from berth_scheduler.adapters.sealing import Sealer
from berth_scheduler.domain.database_health import HealthTiming
from berth_scheduler.domain.readiness import ReadinessConfig
from berth_scheduler.entrypoints import bus
from berth_scheduler.entrypoints import drills as drills_bus
from berth_scheduler.entrypoints import logs as logs_bus
from berth_scheduler.entrypoints import scaling as scaling_bus
from berth_scheduler.entrypoints import schedules as schedules_bus
from berth_scheduler.settings import SchedulerSettings
from berth_scheduler.usecases.backups import Backups, BackupSettings
from berth_scheduler.usecases.certificates_refresh import CertificatesRefresh
from berth_scheduler.usecases.database_revival import DatabaseRevival
from berth_scheduler.usecases.databases import Databases
from berth_scheduler.usecases.deployments import Deployments
from berth_scheduler.usecases.drills import Drills
from berth_scheduler.usecases.removals import Removals
from berth_scheduler.usecases.restores import Restores
from berth_scheduler.usecases.rollout.context import RolloutContext
from berth_scheduler.usecases.rollout.orchestrator import Orchestrator
from berth_scheduler.usecases.rollout.swarm_follow import SwarmFollower
from berth_scheduler.usecases.rollout.swarm_step import SwarmStarting
from berth_scheduler.usecases.runs import Runs
from berth_scheduler.usecases.scaling import Scaling
from berth_scheduler.usecases.schedules import Schedules, utc_now
from berth_scheduler.usecases.servers import Servers
from berth_scheduler.usecases.swarms import Swarms

VERSIONS = Path(__file__).parent / "migrations" / "versions"


def rollout_context(ctx: Context, settings: SchedulerSettings, servers: Servers | None = None) -> RolloutContext:
    docker = DockerExecutor(DockerEngines(local_engine(settings.docker_url, settings.docker_api_version)))
    readiness = ReadinessChecker(
        docker,
        ReadinessConfig(
            interval_s=settings.readiness_interval_s,
            attempt_timeout_s=settings.readiness_attempt_timeout_s,
            crash_restarts=settings.crash_restarts,
            worker_settle_s=settings.worker_settle_s,
        ),
    )
    sealer = Sealer(settings.secret_key.get_secret_value())
    pool = (lambda: servers.pool) if servers is not None else None
    return RolloutContext(settings, ctx.bus, ctx.sessionmaker, sealer, docker, readiness, ctx.engine, pool=pool)


async def wire(ctx: Context, clock: Callable[[], datetime] = utc_now) -> None:
    settings = ctx.settings
    assert isinstance(settings, SchedulerSettings)
    servers = Servers(Transactions(ctx.bus, ctx.sessionmaker), settings.ssh_timeout_s)
    await bus.register(ctx, servers)
    rt = rollout_context(ctx, settings, servers)
    swarms = Swarms(Transactions(ctx.bus, ctx.sessionmaker), rt.sealer, servers, rt.docker.engines)
    await bus.register_swarms(ctx, swarms)
    starting = SwarmStarting(swarms)
    orchestrator = Orchestrator(rt, starting=starting)
    follower = SwarmFollower(rt, starting, lambda: orchestrator.leading)
    ctx.extra["orchestrator"] = orchestrator
    ctx.extra["rollouts"] = rt
    deployments = Deployments(settings, rt.sealer)
    removals = Removals(rt.sealer, settings.drain_grace_s)
    await bus.register_deployments(ctx, deployments, removals, orchestrator, rt)
    await bus.register_certificates(rt, CertificatesRefresh(rt.sealer))
    await scaling_bus.register(ctx, Scaling(settings.drain_grace_s), orchestrator, rt)
    databases = Databases(
        Transactions(ctx.bus, ctx.sessionmaker),
        rt.fleet,
        settings.image_map,
        ready_timeout_s=settings.database_ready_timeout_s,
        health=HealthTiming(
            settings.database_health_interval_s,
            settings.database_health_timeout_s,
            settings.database_health_retries,
            settings.database_health_start_period_s,
        ),
        pull_timeout_s=settings.pull_timeout_s,
        proxy_image=settings.database_proxy_image,
        traefik_binary=settings.database_proxy_binary,
    )
    await bus.register_databases(ctx, databases)
    database_revival = DatabaseRevival(databases, orphans=rt.orphans)
    orchestrator.revivers.append(database_revival.sweep)
    ctx.extra["database_revival"] = database_revival
    log_followers = await logs_bus.register(
        ctx,
        rt.fleet,
        lines_per_s=settings.logs_follow_lines_per_s,
        alive_s=settings.logs_follow_alive_s,
        most=settings.logs_follow_max,
    )
    backups = Backups(
        Transactions(ctx.bus, ctx.sessionmaker),
        rt.fleet.docker,
        BackupSettings(
            part_size=settings.backup_part_mb << 20,
            heartbeat_s=settings.backup_heartbeat_s,
            stale_s=settings.backup_stale_s,
            timeout_s=settings.backup_timeout_s,
            limits=settings.background_limits,
        ),
        ssh=rt.fleet.connection,
        socket=rt.fleet.socket,
        target=rt.fleet.target,
    )
    restores = Restores(
        Transactions(ctx.bus, ctx.sessionmaker),
        rt.fleet.docker,
        ctx.bus,
        ssh=rt.fleet.connection,
        socket=rt.fleet.socket,
        target=rt.fleet.target,
        timeout_s=settings.backup_timeout_s,
        limits=settings.background_limits,
    )
    await bus.register_backups(ctx, backups, restores)
    backups.start_sweeper(settings.backup_sweep_s)
    drills = Drills(
        Transactions(ctx.bus, ctx.sessionmaker),
        rt.fleet.docker,
        restores,
        settings.image_map,
        timeout_s=settings.backup_timeout_s,
        pull_timeout_s=settings.pull_timeout_s,
        limits=settings.background_limits,
    )
    await drills_bus.register(ctx, drills)
    drills.start_sweeper(settings.backup_sweep_s)
    transactions = Transactions(ctx.bus, ctx.sessionmaker)
    schedules = Schedules(transactions, lambda: orchestrator.leading, clock, settings.schedule_interval_s)
    await schedules_bus.register(ctx, schedules)
    runs = Runs(transactions, rt.sealer, rt.fleet, lambda: orchestrator.leading, keep=settings.run_keep)
    await bus.register_runs(ctx, runs)

    async def cleanup() -> None:
        await rt.readiness.close()
        await rt.fleet.close()
        await rt.docker.engines.close()
        await servers.close()

    ctx.on_stop.append(backups.stop)
    ctx.on_stop.append(log_followers.stop)
    ctx.on_stop.append(drills.stop)
    ctx.on_stop.append(follower.stop)
    ctx.on_stop.append(rt.orphans.stop)  # after the revivals that ask for sweeps stopped
    ctx.on_stop.append(database_revival.stop)
    ctx.on_stop.append(orchestrator.stop)  # rollouts stop before the bus drains
    ctx.on_stop.append(schedules.stop)  # (newest first: before the orchestrator gives up the leadership)
    ctx.on_stop.append(runs.stop)
    ctx.cleanups.append(cleanup)
    orchestrator.start()
    follower.start()
    schedules.start()
    runs.start_runner()


def spec(settings: SchedulerSettings | None = None, *, clock: Callable[[], datetime] = utc_now) -> ServiceSpec:
    """The scheduler service; ``clock`` is the time its schedules run by (a test moves it)."""
    settings = settings or SchedulerSettings()
    return ServiceSpec(name="scheduler", settings=settings, versions_dir=VERSIONS, wire=partial(wire, clock=clock))


def main() -> None:
    run(spec())
