"""Asking the scheduler to take an application down.

Carries out ``cmd.application.remove``: the removal is recorded (the application's rollout task carries it
out, ``usecases/rollout/removal.py``) and the deployments that can still be cancelled are cancelled, in
the consumed message's transaction. Already removed: answered ``evt.application.removed`` again; being
removed: nothing more to do; never seen (no deployment, no route): removed at once with zero counts;
failed before: a new attempt.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from berth_common.catalogue import RemoveApplication
from berth_common.db import Unit
from berth_common.logging import get_logger
from berth_scheduler.adapters import removals
from berth_scheduler.adapters.sealing import Sealer
from berth_scheduler.domain import removal
from berth_scheduler.usecases.rollout.admission import lock_application
from berth_scheduler.usecases.rollout.removal import cancel_deployments, record

log = get_logger(__name__)


@dataclass
class Removals:
    sealer: Sealer
    drain_grace_s: float  # when the command names none

    async def request(self, msg: RemoveApplication, unit: Unit) -> list[str]:
        """Record the removal and cancel what can still be cancelled; the ids of the deployments the rollout
        task has to undo (their current step is to be interrupted)."""
        app, now = msg.application_id, time.time()
        await lock_application(unit, app)
        previous = await removals.load(unit.session, app, lock=True)
        if previous is not None and previous.phase == removal.Phase.REMOVED:
            tag = unit.delivery.envelope.id if unit.delivery else uuid.uuid4().hex
            await unit.emit(removal.removed_event(previous), id=f"{previous.deployment_id}-again-{tag}")
            return []
        if previous is not None and previous.active:
            log.info("removal already in progress", application_id=app, phase=previous.phase.value)
            return []
        if not await removals.application_known(unit.session, app):
            gone, event = removal.never_seen(app, msg.team_id, now, previous)
            await record(unit, gone, [event])
            return []
        grace = msg.drain_grace_s if msg.drain_grace_s is not None else self.drain_grace_s
        await record(unit, removal.requested(app, msg.team_id, grace, now, previous, msg.delete_volumes), [])
        return await cancel_deployments(unit, self.sealer, app, now)
