"""Undo a failed or cancelled deployment: routes back as they were, new containers removed (its pre-deploy
job's too, stopped first if it still runs; the old replicas a ``recreate`` stopped started and routed
again; the copies of moved volumes removed from their targets, the sources' kept), then end it.

The application's servers are asked first, at once, each within the SSH timeout (``unreachable.py``; one
reported unreachable is not asked at all): a server that does not answer is left as it is, noted in the
reason, and not contacted again by this undo (each engine call to a server that hangs would wait for the
call's own time limit); its containers' records stay, so what is left there is removed once the server
answers (the revival pass, ``domain/revival.py``, or the application's next deployment)."""

from __future__ import annotations

from typing import Any

from berth_common import labels
from berth_common.logging import get_logger
from berth_scheduler.adapters import store
from berth_scheduler.domain import machine
from berth_scheduler.domain.machine import Rollout
from berth_scheduler.domain.routing import restore_ops
from berth_scheduler.usecases.rollout import volume_move
from berth_scheduler.usecases.rollout.context import RolloutContext
from berth_scheduler.usecases.rollout.pre_deploy import remove_job
from berth_scheduler.usecases.rollout.recreate import undo_recreate
from berth_scheduler.usecases.rollout.routing import RESTORE_STEP, resend_pending, send_step, tls_of, wait_step
from berth_scheduler.usecases.rollout.steps import Waiter, read, remove_all, servers_of, transit
from berth_scheduler.usecases.rollout.unreachable import silent

log = get_logger(__name__)


async def restore_routes(rt: RolloutContext, r: Rollout, wait: Waiter, resumed: set[str]) -> str:
    """Put back every route this deployment touched; a note for the reason if that was not confirmed."""
    if r.plan is None:
        return ""
    touched = {(o.server_id, o.route_id) for o in await read(rt, store.ops_of, r.deployment_id) if o.step >= 0}
    if not touched:
        return ""
    ops = restore_ops(r.plan, touched)
    tls = await tls_of(rt, r.previous_deployment_id, r.team_id, r.application_id)  # the routes as they were
    if not await read(rt, store.ops_of, r.deployment_id, RESTORE_STEP):
        await send_step(rt, r, RESTORE_STEP, ops, tls)
    elif r.deployment_id not in resumed:
        await resend_pending(rt, r, RESTORE_STEP, tls)
    resumed.add(r.deployment_id)
    done, failure = await wait_step(rt, r, RESTORE_STEP, rt.clock() + r.timeouts.route_s, wait)
    if done:
        return "routes restored"
    return f"routes NOT confirmed restored ({failure or 'no answer from proxy-sync'})"


class Undo:
    def __init__(self) -> None:
        self._resumed: set[str] = set()

    async def __call__(self, rt: RolloutContext, r: Rollout, row: Any, wait: Waiter) -> None:
        notes = [n for n in [await restore_routes(rt, r, wait, self._resumed)] if n]
        servers = await servers_of(rt, r.application_id, rt.sealer.open(row.spec))
        # asked first, within the SSH timeout: a server that does not answer is left as it is (noted), not
        # waited for call after call; its records stay, so its containers are removed once it answers
        skipped = await silent(rt, servers)
        servers = [s for s in servers if s not in skipped]
        selector = {labels.DEPLOYMENT: r.deployment_id}
        removed = await remove_all(rt, selector, stop=False, servers=servers, unreachable=skipped)
        notes.append(f"{removed} new container(s) removed")
        if skipped:
            notes.append(f"server(s) {', '.join(skipped)} did not answer: their new containers are left there")
            log.warning("undo skipped servers that do not answer", deployment_id=r.deployment_id, servers=skipped)
        if rt.sealer.open(row.spec).pre_deploy is not None and await remove_job(rt, r.deployment_id, servers):
            notes.append("the pre-deploy job's container removed")
        moved = await volume_move.undo(rt, r, skipped)  # the copies removed once the new containers are gone
        recreated = await undo_recreate(rt, r, rt.sealer.open(row.spec), wait, skipped)
        notes += [n for n in (recreated, moved) if n]
        assert r.abort is not None
        detail = f"{r.abort.reason} ({'; '.join(notes)})"
        await transit(rt, r.deployment_id, machine.Compensated(detail))
