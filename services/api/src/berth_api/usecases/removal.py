"""Removing an application: at once when it was never deployed, else through the scheduler.

A deployed application may have containers, routes and images: ``DELETE`` marks it ``removing`` and stages
``cmd.application.remove`` in the outbox in the same transaction (the scheduler takes it down and answers
``evt.application.removed``, then its rows are deleted, or ``evt.application.removal_failed``, then it is
``active`` again with the reason: ``ApplicationRemoval`` below, which carries out ``evt.application.removed``,
``evt.application.removal_failed`` and ``evt.application.removal_progressed``). While it is being removed it is neither
changed nor deployed (``applications.refuse_if_removing``); a repeated ``DELETE`` sends no second command.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from berth_api.adapters import applications as repo
from berth_api.adapters import deployments as deployments_repo
from berth_api.domain.applications import redact
from berth_api.domain.identity import Principal
from berth_api.usecases import Deps, backups, jobs
from berth_api.usecases.applications import AppRecord, application_missing, records
from berth_api.usecases.deployments import run
from berth_api.usecases.projection import DeploymentProjection
from berth_common.catalogue import (
    ApplicationRemovalFailed,
    ApplicationRemovalProgressed,
    ApplicationRemoved,
    RemoveApplication,
)
from berth_common.db import Unit
from berth_common.envelope import new_id
from berth_common.logging import get_logger

log = get_logger(__name__)


async def remove_application(
    deps: Deps,
    principal: Principal,
    application_id: str,
    drain_grace_s: float | None = None,
    delete_volumes: bool = False,
) -> AppRecord | None:
    """None: deleted at once (never deployed: no volume was made). Else the application, ``removing`` (the
    command sent once per attempt: again only after the scheduler answered that the last one failed). Its
    named volumes are kept unless ``delete_volumes`` (asked explicitly)."""

    async def body(unit: Unit) -> AppRecord | None:
        s = unit.session
        row = await repo.get_application(s, principal.team_id, application_id, lock=True)
        if row is None:
            raise application_missing(principal, application_id)
        await backups.unschedule_volumes(unit, principal.team_id, application_id)  # its volumes' schedules stop
        await jobs.unschedule_all(unit, principal.team_id, application_id)  # its cron jobs stop
        if not await repo.has_deployments(s, application_id):
            await repo.delete_application(s, application_id)
            return None
        if row["state"] != "removing":
            await repo.set_state(s, application_id, "removing", None)
            command = RemoveApplication(
                application_id=application_id,
                team_id=principal.team_id,
                drain_grace_s=drain_grace_s,
                delete_volumes=delete_volumes,
            )
            await unit.emit(command, id=f"application-remove-{application_id}-{new_id()}")
            log.info(
                "application removal requested",
                application_id=application_id,
                drain_grace_s=drain_grace_s,
                delete_volumes=delete_volumes,
            )
        fresh = await repo.get_application(s, principal.team_id, application_id)
        assert fresh is not None
        (record,) = await records(s, [fresh])
        return record

    record = await run(deps, body)
    if record is None:
        log.info("application deleted", application_id=application_id)
    return record


@dataclass
class ApplicationRemoval:
    """Applies the scheduler's answer to ``cmd.application.remove`` (each inside ``consume_once``).

    ``removed``: the application's rows go (variables, host names, deployments: cascades), freeing its host
    names; ``removal_failed``: it is ``active`` again, with the reason (redacted of the secret values of its
    recent deployments) until the next ``DELETE``; ``removal_progressed``: its ``removal_phase`` moves on. An
    application already gone, of another team or not being removed is left alone.
    """

    projection: DeploymentProjection

    async def _removing(self, application_id: str, team_id: str, unit: Unit, what: str) -> dict[str, Any] | None:
        """The application's row, locked, when it is being removed; else None (the event is ignored)."""
        row = await repo.get_application(unit.session, team_id, application_id, lock=True)
        if row is None or row["state"] != "removing":
            state = None if row is None else row["state"]
            log.info("removal answer ignored", application_id=application_id, type=what, state=state)
            return None
        return row

    async def on_removed(self, msg: ApplicationRemoved, unit: Unit) -> None:
        if await self._removing(msg.application_id, msg.team_id, unit, msg.TYPE) is None:
            return
        await repo.delete_application(unit.session, msg.application_id)
        log.info(
            "application removed",
            application_id=msg.application_id,
            routes=msg.routes_removed,
            containers=msg.containers_removed,
            images=msg.images_removed,
            duration_s=msg.duration_s,
        )

    async def on_removal_progressed(self, msg: ApplicationRemovalProgressed, unit: Unit) -> None:
        if await self._removing(msg.application_id, msg.team_id, unit, msg.TYPE) is None:
            return
        if await repo.set_removal_phase(unit.session, msg.application_id, msg.phase, msg.version):
            log.info("application removal progressed", application_id=msg.application_id, phase=msg.phase)

    async def on_removal_failed(self, msg: ApplicationRemovalFailed, unit: Unit) -> None:
        if await self._removing(msg.application_id, msg.team_id, unit, msg.TYPE) is None:
            return
        recent = await deployments_repo.list_deployments(unit.session, msg.team_id, msg.application_id, 5)
        secrets = [value for row in recent for value in self.projection.secrets_of(row)]
        reason = redact(msg.reason, secrets) or "the removal failed"
        await repo.set_state(unit.session, msg.application_id, "active", reason)
        log.warning("application removal failed", application_id=msg.application_id, reason=reason)
