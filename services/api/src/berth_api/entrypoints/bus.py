"""Bus consumers of the api: the deployment projection, the answers to removing an application, and the
certificate state of hosts (thin: each is one use case run once per message, ``berth_common.db.consume_once``)."""

from __future__ import annotations

import functools

from berth_api.usecases import (
    Deps,
    backup_records,
    certificate_state,
    database_upgrades,
    databases,
    drills,
    jobs,
    restores,
    runs,
    scaling,
    servers,
    swarms,
)
from berth_api.usecases.projection import DeploymentProjection
from berth_api.usecases.removal import ApplicationRemoval
from berth_common import catalogue as cat
from berth_common.db import Transactions, consume_once
from berth_common.runtime import Context


async def register(ctx: Context, projection: DeploymentProjection) -> None:
    bus, transactions = ctx.bus, Transactions(ctx.bus, ctx.sessionmaker)
    await bus.consume(cat.DeploymentProgressed, consume_once(transactions, projection.on_progressed))
    await bus.consume(cat.DeploymentSucceeded, consume_once(transactions, projection.on_succeeded))
    await bus.consume(cat.DeploymentFailed, consume_once(transactions, projection.on_failed))
    await bus.consume(cat.DeploymentCancelled, consume_once(transactions, projection.on_cancelled))
    await bus.consume(cat.BuildSucceeded, consume_once(transactions, projection.on_build_succeeded))
    await bus.consume(cat.ImagesPruned, consume_once(transactions, projection.on_images_pruned))
    removal = ApplicationRemoval(projection)
    await bus.consume(cat.ApplicationRemoved, consume_once(transactions, removal.on_removed))
    await bus.consume(cat.ApplicationRemovalFailed, consume_once(transactions, removal.on_removal_failed))
    await bus.consume(cat.ApplicationRemovalProgressed, consume_once(transactions, removal.on_removal_progressed))
    await bus.consume(
        cat.ServerValidated, consume_once(transactions, functools.partial(servers.on_validated, projection.box))
    )
    await bus.consume(cat.SwarmFormed, consume_once(transactions, swarms.on_answer))
    await bus.consume(cat.SwarmFailed, consume_once(transactions, swarms.on_answer))
    await bus.consume(cat.ApplicationScaled, consume_once(transactions, scaling.on_scaled))
    await bus.consume(cat.RunStarted, consume_once(transactions, runs.on_started))
    await bus.consume(
        cat.RunFinished, consume_once(transactions, functools.partial(runs.on_finished, projection.secrets_of))
    )
    await bus.consume(cat.FireJob, consume_once(transactions, jobs.on_fire))


async def register_databases(ctx: Context, deps: Deps) -> None:
    transactions = Transactions(ctx.bus, ctx.sessionmaker)
    changed = functools.partial(restores.on_database_changed, deps)  # the state, then restores waiting for it
    await ctx.bus.consume(cat.DatabaseChanged, consume_once(transactions, changed))
    rotated = functools.partial(databases.on_rotated, deps)
    await ctx.bus.consume(cat.DatabaseCredentialsRotated, consume_once(transactions, rotated))
    await ctx.bus.consume(cat.DatabaseUpgraded, consume_once(transactions, database_upgrades.on_answer))
    await ctx.bus.consume(cat.DatabaseUpgradeFailed, consume_once(transactions, database_upgrades.on_answer))


async def register_backups(ctx: Context, deps: Deps) -> None:
    """The projection of backups, restores and drills (a backup's outcome also moves the restores and the
    database upgrades waiting for it)."""
    transactions = Transactions(ctx.bus, ctx.sessionmaker)
    await ctx.bus.consume(cat.BackupStarted, consume_once(transactions, backup_records.on_started))
    succeeded = functools.partial(database_upgrades.on_backup_succeeded, deps)
    await ctx.bus.consume(cat.BackupSucceeded, consume_once(transactions, succeeded))
    await ctx.bus.consume(cat.BackupFailed, consume_once(transactions, database_upgrades.on_backup_failed))
    await ctx.bus.consume(cat.BackupMissed, consume_once(transactions, backup_records.on_missed))
    await ctx.bus.consume(cat.RestoreSucceeded, consume_once(transactions, restores.on_restored))
    await ctx.bus.consume(cat.RestoreFailed, consume_once(transactions, restores.on_restored))
    await ctx.bus.consume(cat.DrillSucceeded, consume_once(transactions, drills.on_ended))
    await ctx.bus.consume(cat.DrillFailed, consume_once(transactions, drills.on_ended))


async def register_certificates(ctx: Context) -> None:
    """The certificate state of each host, from proxy-sync's certificate events."""
    transactions = Transactions(ctx.bus, ctx.sessionmaker)
    await ctx.bus.consume(cat.CertificateIssued, consume_once(transactions, certificate_state.on_issued))
    await ctx.bus.consume(cat.CertificateFailed, consume_once(transactions, certificate_state.on_failed))
    await ctx.bus.consume(cat.CertificateExpiring, consume_once(transactions, certificate_state.on_expiring))
