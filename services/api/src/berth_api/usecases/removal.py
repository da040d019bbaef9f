"""Removing an application: at once when it was never deployed, else through the scheduler.

A deployed application may have containers, routes and images: ``DELETE`` marks it ``removing`` and stages
``cmd.application.remove`` in the outbox in the same transaction (the scheduler takes it down and answers
``evt.application.removed``, then its rows are deleted, or ``evt.application.removal_failed``, then it is
``active`` again with the reason: ``handlers.ApplicationRemoval``). While it is being removed it is neither
changed nor deployed (``applications.refuse_if_removing``); a repeated ``DELETE`` sends no second command.
"""

from __future__ import annotations

from berth_api.adapters import applications as repo
from berth_api.domain.identity import Principal
from berth_api.usecases import Deps
from berth_api.usecases.applications import AppRecord, application_missing, records
from berth_api.usecases.deployments import run
from berth_common.catalogue import RemoveApplication
from berth_common.db import Unit
from berth_common.envelope import new_id
from berth_common.logging import get_logger

log = get_logger(__name__)


async def remove_application(
    deps: Deps, principal: Principal, application_id: str, drain_grace_s: float | None = None
) -> AppRecord | None:
    """None: deleted at once (never deployed). Else the application, ``removing`` (the command sent once
    per attempt: again only after the scheduler answered that the last one failed)."""

    async def body(unit: Unit) -> AppRecord | None:
        s = unit.session
        row = await repo.get_application(s, principal.team_id, application_id, lock=True)
        if row is None:
            raise application_missing(principal, application_id)
        if not await repo.has_deployments(s, application_id):
            await repo.delete_application(s, application_id)
            return None
        if row["state"] != "removing":
            await repo.set_state(s, application_id, "removing", None)
            command = RemoveApplication(
                application_id=application_id, team_id=principal.team_id, drain_grace_s=drain_grace_s
            )
            await unit.emit(command, id=f"application-remove-{application_id}-{new_id()}")
            log.info("application removal requested", application_id=application_id, drain_grace_s=drain_grace_s)
        fresh = await repo.get_application(s, principal.team_id, application_id)
        assert fresh is not None
        (record,) = await records(s, [fresh])
        return record

    record = await run(deps, body)
    if record is None:
        log.info("application deleted", application_id=application_id)
    return record
