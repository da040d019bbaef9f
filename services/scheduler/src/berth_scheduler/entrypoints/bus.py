"""Bus consumers of the scheduler service: each runs one use case once per message, then wakes rollouts.

A use case runs in the scheduler's rollout transactions (``RolloutTransactions``: its commands are
published at the commit, its events by a background publisher), so neither the ack nor the rollout it
wakes waits for them. Waking happens after the commit (``consume_once``'s ``after``): the rollout task then
finds what the message changed.
"""

from __future__ import annotations

from typing import Any

from berth_common.catalogue import (
    BuildCancelled,
    BuildFailed,
    BuildSucceeded,
    CancelDeployment,
    CancelRun,
    CertificatesChanged,
    ContainerLogsQuery,
    DissolveSwarm,
    FormSwarm,
    Message,
    PingService,
    RemoveApplication,
    RemoveDatabase,
    ReplicasQuery,
    RestartDatabase,
    RestoreBackup,
    RotateDatabaseCredentials,
    RouteFailed,
    RouteRemoved,
    RoutesApplied,
    RunDatabase,
    RunJob,
    ServerBack,
    ServerChanged,
    ServerUnreachable,
    StartBackup,
    StartDatabase,
    StartDeployment,
    StartRun,
    StopDatabase,
    UpgradeDatabase,
    ValidateServer,
    VolumesQuery,
)
from berth_common.db import Transactions, consume_once, idempotent
from berth_common.runtime import Context
from berth_scheduler import handlers
from berth_scheduler.usecases.backups import Backups
from berth_scheduler.usecases.certificates_refresh import CertificatesRefresh
from berth_scheduler.usecases.container_logs import container_logs
from berth_scheduler.usecases.cron_jobs import CronJobs
from berth_scheduler.usecases.databases import Databases
from berth_scheduler.usecases.deployments import Deployments
from berth_scheduler.usecases.removals import Removals
from berth_scheduler.usecases.restores import Restores
from berth_scheduler.usecases.rollout.context import RolloutContext
from berth_scheduler.usecases.rollout.orchestrator import Orchestrator
from berth_scheduler.usecases.rollout.replicas import replicas_of
from berth_scheduler.usecases.runs import Runs
from berth_scheduler.usecases.servers import Servers
from berth_scheduler.usecases.swarms import Swarms
from berth_scheduler.usecases.volumes import volumes_of


async def register(ctx: Context, servers: Servers) -> None:
    await ctx.bus.consume(PingService, idempotent(ctx.bus, ctx.sessionmaker, handlers.on_ping))
    await ctx.bus.consume(ValidateServer, servers.validate)
    await ctx.bus.consume(ServerChanged, consume_once(Transactions(ctx.bus, ctx.sessionmaker), servers.changed))
    await ctx.bus.consume(ServerUnreachable, consume_once(Transactions(ctx.bus, ctx.sessionmaker), servers.unreachable))
    await ctx.bus.consume(ServerBack, consume_once(Transactions(ctx.bus, ctx.sessionmaker), servers.back))


async def register_databases(ctx: Context, databases: Databases) -> None:
    await ctx.bus.consume(RunDatabase, databases.run)
    await ctx.bus.consume(StartDatabase, databases.run)
    await ctx.bus.consume(RestartDatabase, databases.restart)
    await ctx.bus.consume(StopDatabase, databases.stop)
    await ctx.bus.consume(RemoveDatabase, databases.remove)
    await ctx.bus.consume(RotateDatabaseCredentials, databases.rotate)
    await ctx.bus.consume(UpgradeDatabase, databases.upgrade)

    async def logs(data: dict[str, Any]) -> Any:
        return await container_logs(databases.fleet, ContainerLogsQuery.model_validate(data))

    await ctx.bus.serve("container_logs", logs)


async def register_swarms(ctx: Context, swarms: Swarms) -> None:
    await ctx.bus.consume(FormSwarm, swarms.form)
    await ctx.bus.consume(DissolveSwarm, swarms.dissolve)


async def register_backups(ctx: Context, backups: Backups, restores: Restores) -> None:
    # a backup waits on a dump and an upload: a few run at once
    await ctx.bus.consume(StartBackup, backups.start, concurrency=2)
    await ctx.bus.consume(RestoreBackup, restores.restore)


async def register_certificates(rt: RolloutContext, refresh: CertificatesRefresh) -> None:
    await rt.bus.consume(CertificatesChanged, consume_once(rt.units, refresh.refresh))


async def register_deployments(
    ctx: Context, deployments: Deployments, removals: Removals, orchestrator: Orchestrator, rt: RolloutContext
) -> None:
    def kick(msg: StartDeployment, _: None) -> None:
        orchestrator.kick(msg.application_id)

    def cancelled(msg: CancelDeployment, _: None) -> None:
        orchestrator.interrupt(msg.deployment_id)
        orchestrator.wake_all()

    def wake(_: Message, __: None) -> None:
        orchestrator.wake_all()

    def removing(msg: RemoveApplication, undo: list[str] | None) -> None:
        """Interrupt the steps of the deployments the removal cancelled; the application's rollout task then
        carries the removal out."""
        for deployment_id in undo or []:
            orchestrator.interrupt(deployment_id)
        orchestrator.kick(msg.application_id)

    bus, units = ctx.bus, rt.units
    # kicked at the commit too: a new deployment starts without waiting for its messages' round trips
    await bus.consume(StartDeployment, consume_once(units, deployments.start, kick, after_at_commit=True))
    await bus.consume(CancelDeployment, consume_once(units, deployments.cancel, cancelled))
    await bus.consume(BuildSucceeded, consume_once(units, deployments.build_succeeded, wake))
    await bus.consume(BuildFailed, consume_once(units, deployments.build_failed, wake))
    await bus.consume(BuildCancelled, consume_once(units, deployments.build_cancelled, wake))
    await bus.consume(RoutesApplied, consume_once(units, deployments.route_applied, wake))
    await bus.consume(RouteRemoved, consume_once(units, deployments.route_removed, wake))
    await bus.consume(RouteFailed, consume_once(units, deployments.route_failed, wake))
    await bus.consume(RemoveApplication, consume_once(units, removals.request, removing))

    async def replicas(data: dict[str, Any]) -> Any:
        return await replicas_of(rt, ReplicasQuery.model_validate(data).application_id)

    await bus.serve("replicas", replicas)

    async def volumes(data: dict[str, Any]) -> Any:
        return await volumes_of(rt, VolumesQuery.model_validate(data))

    await bus.serve("volumes", volumes)


async def register_runs(ctx: Context, runs: Runs) -> None:
    await ctx.bus.consume(StartRun, consume_once(runs.transactions, runs.start, runs.kick))
    await ctx.bus.consume(CancelRun, consume_once(runs.transactions, runs.cancel, runs.kick))
    jobs = CronJobs(runs)
    await ctx.bus.consume(RunJob, consume_once(runs.transactions, jobs.run, jobs.kick))
