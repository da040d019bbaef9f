"""The scheduler's persistence: deployments (the state machine), containers, routes and route ops."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from berth_common.records import record_of
from berth_scheduler.adapters.tables import containers, deployment_reports, deployments, route_ops, routes
from berth_scheduler.domain.machine import TERMINAL, Abort, Rollout, State, Timeouts
from berth_scheduler.domain.queueing import QueueEntry
from berth_scheduler.domain.routing import RouteOp, RoutePlan, RouteTarget

UNFINISHED = sa.not_(deployments.c.state.in_([s.value for s in TERMINAL]))


def rollout_of(row: Any) -> Rollout:
    abort = None
    if row.abort_outcome:
        abort = Abort(row.abort_outcome, row.abort_reason or "", State(row.abort_state))
    return record_of(
        Rollout,
        row,
        deployment_id=row.id,
        state=State(row.state),
        timeouts=Timeouts(**row.timeouts),
        abort=abort,
        plan=RoutePlan.from_json(row.route_plan) if row.route_plan else None,
    )


def _values(r: Rollout) -> dict[str, Any]:
    return {
        "state": r.state.value,
        "image": r.image,
        "image_digest": r.image_digest,
        "pushed_ref": r.pushed_ref,
        "previous_deployment_id": r.previous_deployment_id,
        "abort_outcome": r.abort.outcome if r.abort else None,
        "abort_reason": r.abort.reason if r.abort else None,
        "abort_state": r.abort.in_state.value if r.abort else None,
        "route_plan": r.plan.to_json() if r.plan else None,
        "route_step": r.route_step,
        "deadline_at": r.deadline_at,
        "drain_until": r.drain_until,
        "finished_at": r.finished_at,
        "version": r.version,
    }


async def insert_deployment(
    s: AsyncSession,
    r: Rollout,
    spec: dict[str, Any],
    build_id: str | None,
    *,
    abandon_volume_data: bool = False,
    number: int | None = None,
) -> int | None:
    """Record a new deployment (``number``: the api's, its request order); its arrival number, or None if it
    was known already."""
    values = {
        "id": r.deployment_id,
        "application_id": r.application_id,
        "team_id": r.team_id,
        "spec": spec,
        "timeouts": asdict(r.timeouts),
        "needs_build": r.needs_build,
        "build_id": build_id,
        "created_at": r.created_at,
        "abandon_volume_data": abandon_volume_data,
        "number": number,
        **_values(r),
    }
    res = await s.execute(insert(deployments).values(**values).on_conflict_do_nothing().returning(deployments.c.seq))
    seq = res.scalar()
    return int(seq) if seq is not None else None


async def load(s: AsyncSession, deployment_id: str, *, lock: bool = False) -> Any | None:
    q = sa.select(deployments).where(deployments.c.id == deployment_id)
    if lock:
        q = q.with_for_update()
    return (await s.execute(q)).first()


async def save(s: AsyncSession, r: Rollout, log_lines: int = 0) -> int:
    """Write the new state and reserve ``log_lines`` deploy log numbers in the same statement; the first."""
    res = await s.execute(
        sa.update(deployments)
        .where(deployments.c.id == r.deployment_id)
        .values(**_values(r), log_seq=deployments.c.log_seq + log_lines)
        .returning(deployments.c.log_seq)
    )
    return int(res.scalar_one()) - log_lines


async def take_log_seq(s: AsyncSession, deployment_id: str, count: int) -> int:
    """Reserve ``count`` log line numbers; the first one."""
    res = await s.execute(
        sa.update(deployments)
        .where(deployments.c.id == deployment_id)
        .values(log_seq=deployments.c.log_seq + count)
        .returning(deployments.c.log_seq)
    )
    return int(res.scalar_one()) - count


async def new_reports(s: AsyncSession, deployment_id: str, digests: Sequence[str]) -> set[str]:
    """Record the reports ``digests`` of a deployment; those it did not have yet (said now, never again)."""
    if not digests:
        return set()
    rows = [{"deployment_id": deployment_id, "digest": d} for d in dict.fromkeys(digests)]
    res = await s.execute(
        insert(deployment_reports).values(rows).on_conflict_do_nothing().returning(deployment_reports.c.digest)
    )
    return set(res.scalars())


async def queue_of(s: AsyncSession, application_id: str) -> list[QueueEntry]:
    rows = await s.execute(
        sa.select(deployments.c.id, deployments.c.state, deployments.c.seq)
        .where(deployments.c.application_id == application_id)
        .where(UNFINISHED)
        .order_by(deployments.c.seq)
    )
    return [QueueEntry(r.id, State(r.state), int(r.seq)) for r in rows]


async def newest_number(s: AsyncSession, application_id: str) -> int | None:
    """The highest api number among the application's deployments this scheduler knows (None: none sent one)."""
    got = await s.execute(
        sa.select(sa.func.max(deployments.c.number)).where(deployments.c.application_id == application_id)
    )
    value = got.scalar()
    return int(value) if value is not None else None


async def unfinished_applications(s: AsyncSession) -> list[str]:
    rows = await s.execute(sa.select(deployments.c.application_id).where(UNFINISHED).distinct())
    return sorted(r.application_id for r in rows)


async def last_succeeded(s: AsyncSession, application_id: str) -> Any | None:
    return (
        await s.execute(
            sa.select(deployments)
            .where(deployments.c.application_id == application_id)
            .where(deployments.c.state == State.SUCCEEDED.value)
            .order_by(deployments.c.finished_at.desc())
            .limit(1)
        )
    ).first()


async def images_in_use(s: AsyncSession, application_id: str, keep: int) -> set[str]:
    """The images of the last ``keep`` successful deployments and of every unfinished one."""
    succeeded = (
        await s.execute(
            sa.select(deployments.c.image)
            .where(deployments.c.application_id == application_id)
            .where(deployments.c.state == State.SUCCEEDED.value)
            .where(deployments.c.image.is_not(None))
            .order_by(deployments.c.finished_at.desc())
            .limit(keep)
        )
    ).scalars()
    unfinished = (
        await s.execute(
            sa.select(deployments.c.image)
            .where(deployments.c.application_id == application_id)
            .where(UNFINISHED)
            .where(deployments.c.image.is_not(None))
        )
    ).scalars()
    return {str(i) for i in [*succeeded, *unfinished]}


async def pushed_refs(s: AsyncSession, application_id: str) -> set[str]:
    """Every reference Berth pushed to a push registry for the application's builds."""
    rows = await s.execute(
        sa.select(deployments.c.pushed_ref)
        .where(deployments.c.application_id == application_id)
        .where(deployments.c.pushed_ref.is_not(None))
        .distinct()
    )
    return {str(r) for r in rows.scalars()}


async def refs_in_use(s: AsyncSession, application_id: str, keep: int) -> set[str]:
    """Every reference (image, recorded digest, pushed reference) the last ``keep`` successful deployments
    and every unfinished one run."""
    cols = (deployments.c.image, deployments.c.image_digest, deployments.c.pushed_ref)
    succeeded = await s.execute(
        sa.select(*cols)
        .where(deployments.c.application_id == application_id)
        .where(deployments.c.state == State.SUCCEEDED.value)
        .order_by(deployments.c.finished_at.desc())
        .limit(keep)
    )
    unfinished = await s.execute(
        sa.select(*cols).where(deployments.c.application_id == application_id).where(UNFINISHED)
    )
    return {str(x) for row in [*succeeded, *unfinished] for x in row if x}


async def finished_deployments(s: AsyncSession, ids: Sequence[str]) -> set[str]:
    """Those of ``ids`` that are known and in a terminal state."""
    if not ids:
        return set()
    rows = await s.execute(
        sa.select(deployments.c.id).where(deployments.c.id.in_(list(ids))).where(sa.not_(UNFINISHED))
    )
    return {str(r) for r in rows.scalars()}


# --- containers ------------------------------------------------------------------------------------


async def record_container(s: AsyncSession, values: dict[str, Any] | list[dict[str, Any]]) -> None:
    """Record one container (or several, one statement) before it is created; a known name gets the new port."""
    stmt = insert(containers).values(values)
    update = {k: stmt.excluded[k] for k in ("host_port", "docker_id", "more_ports")}
    await s.execute(stmt.on_conflict_do_update(index_elements=[containers.c.name], set_=update))


async def containers_of(s: AsyncSession, deployment_id: str) -> list[Any]:
    rows = await s.execute(
        sa.select(containers)
        .where(containers.c.deployment_id == deployment_id)
        .order_by(containers.c.service, containers.c.replica)
    )
    return list(rows)


async def containers_of_application(s: AsyncSession, application_id: str) -> list[Any]:
    """Every container record of the application, whichever deployment it belongs to now."""
    rows = await s.execute(sa.select(containers).where(containers.c.application_id == application_id))
    return list(rows)


async def applications_with_containers(s: AsyncSession) -> list[str]:
    rows = await s.execute(sa.select(containers.c.application_id).distinct())
    return sorted(r.application_id for r in rows)


async def servers_of_application(s: AsyncSession, application_id: str) -> list[str]:
    """Every server a recorded container of the application runs on (``local`` always among them)."""
    rows = await s.execute(
        sa.select(containers.c.server_id).where(containers.c.application_id == application_id).distinct()
    )
    return sorted({"local", *(r.server_id for r in rows)})


async def mark_ready(s: AsyncSession, names: Sequence[str]) -> None:
    if names:
        await s.execute(sa.update(containers).where(containers.c.name.in_(list(names))).values(ready=True))


async def adopt_containers(s: AsyncSession, replicas: Mapping[str, int], deployment_id: str) -> None:
    """The containers named in ``replicas`` are now the deployment's own (kept running from the one before
    it), each with its replica number in the deployment (``replicas``: name -> number)."""
    for name, replica in sorted(replicas.items()):
        q = sa.update(containers).where(containers.c.name == name)
        await s.execute(q.values(deployment_id=deployment_id, replica=replica))


async def note_start_broke(s: AsyncSession, name: str, broke: bool = True) -> None:
    """The container's start call broke with its engine: the engine may still hold its task (``broke``
    False: no longer, its start carried out or the container removed and made again)."""
    await s.execute(sa.update(containers).where(containers.c.name == name).values(start_broke=broke))


async def broken_starts(s: AsyncSession, names: Sequence[str]) -> set[str]:
    """Those of ``names`` whose start call broke with their engine (:func:`note_start_broke`)."""
    if not names:
        return set()
    rows = await s.execute(
        sa.select(containers.c.name).where(containers.c.name.in_(list(names)), containers.c.start_broke)
    )
    return {r.name for r in rows}


async def note_job_start_broke(s: AsyncSession, deployment_id: str, broke: bool = True) -> None:
    """A start call of the deployment's pre-deploy job's container broke with its engine (as ``note_start_broke``)."""
    await s.execute(sa.update(deployments).where(deployments.c.id == deployment_id).values(job_start_broke=broke))


async def broken_jobs(s: AsyncSession, deployment_ids: Sequence[str]) -> set[str]:
    """Those of ``deployment_ids`` whose job container's start call broke (:func:`note_job_start_broke`)."""
    if not deployment_ids:
        return set()
    q = sa.select(deployments.c.id).where(deployments.c.id.in_(list(deployment_ids)), deployments.c.job_start_broke)
    return {r.id for r in await s.execute(q)}


async def forget_containers(s: AsyncSession, names: Sequence[str]) -> None:
    if names:
        await s.execute(sa.delete(containers).where(containers.c.name.in_(list(names))))


# --- routes ----------------------------------------------------------------------------------------


async def routes_of(s: AsyncSession, application_id: str) -> list[RouteTarget]:
    rows = await s.execute(sa.select(routes).where(routes.c.application_id == application_id))
    return [RouteTarget(r.route_id, tuple(r.hosts), tuple(r.upstreams), r.server_id) for r in rows]


async def next_generation(s: AsyncSession, route_id: str, application_id: str, server_id: str = "local") -> int:
    stmt = insert(routes).values(
        route_id=route_id, application_id=application_id, hosts=[], upstreams=[], generation=1, server_id=server_id
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[routes.c.route_id, routes.c.server_id], set_={"generation": routes.c.generation + 1}
    )
    res = await s.execute(stmt.returning(routes.c.generation))
    return int(res.scalar_one())


async def add_op(s: AsyncSession, deployment_id: str, step: int, op: RouteOp, generation: int) -> None:
    await s.execute(
        insert(route_ops).values(
            server_id=op.server_id,
            route_id=op.route_id,
            generation=generation,
            deployment_id=deployment_id,
            step=step,
            kind=op.kind,
            hosts=list(op.hosts),
            upstreams=list(op.upstreams),
        )
    )


async def ops_of(s: AsyncSession, deployment_id: str, step: int | None = None) -> list[Any]:
    q = sa.select(route_ops).where(route_ops.c.deployment_id == deployment_id)
    if step is not None:
        q = q.where(route_ops.c.step == step)
    return list(await s.execute(q.order_by(route_ops.c.route_id, route_ops.c.server_id, route_ops.c.generation)))


async def settle_op(
    s: AsyncSession, route_id: str, generation: int, ok: bool, reason: str | None, server_id: str = "local"
) -> Any | None:
    """Record proxy-sync's answer; on success the route's confirmed state follows. The op, if it is ours.

    The route's row is locked first: answers of one route on one server recorded at the same time (several
    scheduler instances share the answers' consumers) go one after the other, so each statement below sees
    an answer of a newer generation committed meanwhile, and an older answer never overwrites it. Answers
    of other routes and servers do not wait."""
    this_op = (route_ops.c.server_id == server_id, route_ops.c.route_id == route_id)
    this_route = (routes.c.server_id == server_id, routes.c.route_id == route_id)
    await s.execute(sa.select(routes.c.generation).where(*this_route).with_for_update())
    op = (
        await s.execute(sa.select(route_ops).where(*this_op, route_ops.c.generation == generation).with_for_update())
    ).first()
    if op is None or op.status != "pending":
        return op
    await s.execute(
        sa.update(route_ops)
        .where(*this_op, route_ops.c.generation == generation)
        .values(status="done" if ok else "failed", reason=reason)
    )
    if ok:  # unless a later generation of the route was confirmed first (answers of two commands crossed)
        hosts, ups = (op.hosts, op.upstreams) if op.kind == "apply" else ([], [])
        newer = sa.exists().where(*this_op, route_ops.c.generation > generation, route_ops.c.status == "done")
        await s.execute(sa.update(routes).where(*this_route, sa.not_(newer)).values(hosts=hosts, upstreams=ups))
    return op


async def specs_serving(s: AsyncSession, application_id: str) -> list[Any]:
    """The deployments of an application whose spec routes may still be sent from: the unfinished ones and
    the last that succeeded (id and sealed spec, locked)."""
    last = await last_succeeded(s, application_id)
    which = UNFINISHED if last is None else sa.or_(UNFINISHED, deployments.c.id == last.id)
    q = (
        sa.select(deployments.c.id, deployments.c.spec)
        .where(deployments.c.application_id == application_id, which)
        .order_by(deployments.c.seq)
        .with_for_update()
    )
    return list((await s.execute(q)).all())


async def replace_spec(s: AsyncSession, deployment_id: str, spec: dict[str, Any]) -> None:
    await s.execute(sa.update(deployments).where(deployments.c.id == deployment_id).values(spec=spec))
