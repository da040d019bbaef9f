"""Admission: which deployment holds an application, admitting the oldest queued one when it is free.

Called by the application's rollout task and, for a new deployment, by the start command's own handler
(in its transaction: the deployment is recorded and admitted in one commit, so the rollout task finds it
started instead of admitting it in a second transaction). Both hold the application's admission lock
until their transaction ends, so two deployments of one application are never admitted together (two
start commands handled at once by two scheduler processes would otherwise each find the application
free).
"""

from __future__ import annotations

import sqlalchemy as sa

from berth_common.db.unit import Unit
from berth_scheduler.adapters import removals, scales, store
from berth_scheduler.adapters.sealing import Sealer
from berth_scheduler.domain import machine, queueing
from berth_scheduler.domain.queueing import QueueEntry
from berth_scheduler.usecases.rollout.apply import apply


async def lock_application(unit: Unit, application_id: str) -> None:
    await unit.session.execute(
        sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"berth-admit:{application_id}"}
    )


async def admit_next(
    unit: Unit, sealer: Sealer, application_id: str, now: float, entries: list[QueueEntry] | None = None
) -> str | None:
    """The deployment that holds the application now, admitting the oldest queued one if it is free
    (call with the admission lock held; ``entries``: the queue, if read under the lock already)."""
    if entries is None:
        entries = await store.queue_of(unit.session, application_id)
    current = queueing.running(entries)
    if current is not None:
        return current.deployment_id
    nxt = queueing.next_to_admit(entries)
    if nxt is None or await removals.is_active(unit.session, application_id):
        return None  # an application being removed admits nothing (its queued deployments are cancelled)
    if await scales.is_active(unit.session, application_id):
        return None  # a scale of the live version goes first (the rollout task admits it afterwards)
    prev = await store.last_succeeded(unit.session, application_id)
    await apply(unit, sealer, nxt.deployment_id, machine.Admit(prev.id if prev else None), now)
    return nxt.deployment_id
