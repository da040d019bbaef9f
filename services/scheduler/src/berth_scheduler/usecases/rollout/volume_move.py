"""Volume data moving with its service (``domain/volume_moves.py``): in ``starting``, before the new replicas
start.

1. plan: the moves of the deployment (from the live deployment's snapshot) are recorded before anything
   stops; a target whose volume already holds files is refused (its data would be overwritten: volumes are
   never deleted implicitly), nothing stopped.
2. the services mounting a moved volume leave the routes and stop their old replicas on the servers the data
   leaves (``recreate.py``; the gap is reported as expected downtime); their replicas on the servers they keep
   go on serving.
3. copy: each volume's tar stream from a helper on the source into a helper on the target, through both
   servers' engines (the connection factory: a remote server's SSH-forwarded socket), streamed; the volumes at
   once, ``volume_move_concurrency`` at a time (``domain.volume_moves.copy_groups``), each writing the bytes
   copied so far into the deployment's log every ``volume_move_progress_s`` and failing past
   ``volume_move_timeout_s`` (the scheduler's settings); each copy is recorded ``copied`` with its
   ``VolumeMoved`` progress in one commit. A copy interrupted by a restart is made again from an emptied
   target (it held nothing before the move), so the new replicas never start on half the data.

A source server that does not answer when the moves are planned fails the deployment before anything stops,
naming each volume and the server, unless the deployment was asked to leave the data
(``RolloutOptions.abandon_volume_data``: nothing moves, the volumes start empty where they go, the deployment's
log says so). A copy that fails (or a server that stops answering past the deadline) fails the deployment with a
reason naming the volume; the undo (``undo.py``) starts the old replicas again where they were and removes the
target's copy when the move made that volume. The source's volume always stays.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection
from functools import partial
from typing import Any

from berth_common import labels
from berth_common.catalogue import ApplicationSpec, docker_volume_name
from berth_common.db.unit import Unit
from berth_common.docker import DockerUnavailable
from berth_common.logging import get_logger
from berth_scheduler.adapters import store
from berth_scheduler.adapters import volume_moves as records
from berth_scheduler.adapters.docker import DockerExecutor, DockerOperationError
from berth_scheduler.adapters.helper_container import created
from berth_scheduler.domain import machine, volumes
from berth_scheduler.domain import volume_moves as dom
from berth_scheduler.domain.machine import Rollout
from berth_scheduler.domain.volume_moves import Move
from berth_scheduler.usecases.rollout.apply import apply
from berth_scheduler.usecases.rollout.context import RolloutContext
from berth_scheduler.usecases.rollout.image_pull import log_lines
from berth_scheduler.usecases.rollout.steps import prepare_server, read, together, write
from berth_scheduler.usecases.rollout.unreachable import silent

log = get_logger(__name__)
HEAD_BYTES = 64 * 1024  # read of a target volume's tar stream to tell whether it holds files
Progress = Callable[[int], Awaitable[None]]  # told the bytes sent so far, after each chunk


class MoveFailedError(Exception):
    """A volume's data could not be moved (the reason is for a person and names the volume)."""


def _moves(rows: list[Any]) -> list[Move]:
    return [Move(row.volume, row.source, row.target, tuple(row.services)) for row in rows]


async def plan(rt: RolloutContext, r: Rollout, spec: ApplicationSpec, *, abandon: bool = False) -> list[Move]:
    """The deployment's moves: the recorded ones (a resumed deployment), else planned from the live
    deployment's snapshot, each target made ready (image, volume) and checked, then recorded. Raises
    :class:`MoveFailedError` when a target's volume already holds files, or when a source server does not
    answer (nothing was stopped). ``abandon``: nothing is copied, the volumes start empty where they go
    (said in the deployment's log)."""
    if not any(svc.volumes for svc in spec.services):
        return []  # nothing to move: no read for the many deployments without volumes
    rows = await read(rt, records.moves_of, r.deployment_id)
    if rows:
        return _moves(rows)
    live = await read(rt, store.load, r.previous_deployment_id) if r.previous_deployment_id else None
    found = dom.moves(rt.sealer.open(live.spec) if live is not None else None, spec)
    if found and abandon:
        await log_lines(rt, r.deployment_id, [f"[starting] {dom.abandoned_note(found)}"])
        return []
    reason = dom.unreachable_reason(found, await silent(rt, [m.source for m in found]), r.application_id)
    if reason:
        raise MoveFailedError(reason)
    # every target looked at before any is prepared: preparing a server makes all the volumes it mounts, so a
    # second move to the same server would take the first one's fresh volume for one it found there
    existed = [await _exists(rt, r, m) for m in found]
    made = [(m, await _check_target(rt, r, spec, m, e)) for m, e in zip(found, existed, strict=True)]
    await write(rt, records.record, r.deployment_id, made)
    return found


def _image_on_target(r: Rollout, spec: ApplicationSpec, move: Move) -> str:
    """An image the target has once it is prepared: the one the first service mounting the volume runs."""
    svc = next(s for s in spec.services if s.name == move.services[0])
    return svc.image.image if svc.image is not None else r.run_image


async def _exists(rt: RolloutContext, r: Rollout, move: Move) -> bool:
    """Whether the move's volume is on its target already (before the move prepares that server)."""
    docker = await rt.fleet.docker(move.target)
    name = docker_volume_name(r.application_id, move.volume)
    try:
        await docker._call(f"inspect volume {name}", docker.docker.get(f"volumes/{name}"))
        return True
    except DockerOperationError as exc:
        if exc.status != 404:
            raise
        return False


async def _check_target(rt: RolloutContext, r: Rollout, spec: ApplicationSpec, move: Move, existed: bool) -> bool:
    """Prepare the target (its networks, volumes and image: ``steps.prepare_server``); whether the move made
    the volume there (``existed``: it was there before). Raises :class:`MoveFailedError` when an existing one
    holds files."""
    docker = await rt.fleet.docker(move.target)
    name = docker_volume_name(r.application_id, move.volume)
    await prepare_server(rt, r, spec, move.target)
    if not existed:
        return True
    helper = dom.helper_name(r.deployment_id, move.volume, "target")
    body = dom.helper_body(r.application_id, r.deployment_id, move.volume, _image_on_target(r, spec, move), "target")
    async with created(docker, helper, body):
        head = await _head(docker, helper)
    if dom.holds_files(head):
        raise MoveFailedError(
            f"volume {move.volume} cannot move from server {move.source} to server {move.target}: the volume "
            f"{name} there already holds files (kept from an earlier placement?) and would be overwritten; "
            "remove it on that server (docker volume rm) or keep the service where it is"
        )
    return False


async def _head(docker: DockerExecutor, helper: str) -> bytes:
    call = dom.read_call(helper)
    head = b""

    async def read_head() -> None:
        nonlocal head
        async with docker.docker.stream(call.method, call.path, params=dict(call.params), versioned=False) as resp:
            async for chunk in resp.chunks():
                head += chunk
                if len(head) >= HEAD_BYTES:
                    break

    await docker._call(f"read volume through {helper}", read_head())
    return head


async def copy(rt: RolloutContext, r: Rollout, spec: ApplicationSpec, moves: list[Move]) -> Rollout:
    """Copy every move not yet copied (the old replicas were stopped), the independent ones at once
    (``volume_move_concurrency`` at a time); the deployment as it is after. A transient engine failure before
    the deadline is raised as it is (the step is retried from the records); any other failure raises
    :class:`MoveFailedError` naming the volume. The first failure cancels the copies under way."""
    rows = {(row.volume, row.target): row for row in await read(rt, records.moves_of, r.deployment_id)}
    todo = [m for m in moves if (row := rows.get((m.volume, m.target))) is not None and row.state != "copied"]
    if not todo:
        return r
    kept = dom.kept_note(moves)
    slots = asyncio.Semaphore(rt.settings.volume_move_concurrency)
    seen = [r]  # the deployment after each copy recorded (each restarts the readiness deadline)

    async def group(found: list[Move]) -> None:
        async with slots:
            for m in found:
                seen.append(await _move_one(rt, seen, spec, m, rows[(m.volume, m.target)].attempts > 0, kept))

    await together([group(found) for found in dom.copy_groups(todo)])
    return store.rollout_of(await read(rt, store.load, r.deployment_id))


async def _move_one(
    rt: RolloutContext, seen: list[Rollout], spec: ApplicationSpec, m: Move, again: bool, kept: str
) -> Rollout:
    """One move copied and recorded ``copied`` (``again``: an earlier attempt began); the deployment after.
    ``seen``: the deployment as each copy before left it (the latest readiness deadline counts)."""
    r = seen[0]
    await write(rt, partial(records.mark, state="copying"), r.deployment_id, m.volume, m.target)
    began = time.monotonic()
    try:
        size = await _copy_one(rt, r, spec, m, reset=again)
    except MoveFailedError:
        raise
    except Exception as exc:
        transient = isinstance(exc, DockerUnavailable | ConnectionError | OSError)
        deadlines = [x.deadline_at for x in seen if x.deadline_at is not None]
        if transient and not (deadlines and rt.clock() > max(deadlines)):
            raise
        raise MoveFailedError(
            f"the data of volume {m.volume} could not be copied from server {m.source} to server {m.target}: {exc}"
        ) from None
    took = time.monotonic() - began
    after = await _copied(rt, r.deployment_id, machine.VolumeMoved(m.volume, m.source, m.target, size, took, kept))
    log.info("volume data moved", volume=m.volume, source=m.source, target=m.target, bytes=size, seconds=took)
    return after


def _progress(rt: RolloutContext, deployment_id: str, m: Move) -> Progress:
    """What a copy calls after each chunk: a line in the deployment's log when one is due."""
    began = time.monotonic()
    pacer = dom.ProgressPacer(rt.settings.volume_move_progress_s, began)

    async def told(sent: int) -> None:
        now = time.monotonic()
        if not pacer.due(now):
            return
        try:
            await log_lines(rt, deployment_id, [dom.progress_line(m, sent, now - began)])
        except Exception as exc:  # a progress line is never worth the copy: the next one tries again
            log.warning("volume copy progress not logged", volume=m.volume, error=str(exc))

    return told


async def _copied(rt: RolloutContext, deployment_id: str, moved: machine.VolumeMoved) -> Rollout:
    """The move recorded ``copied`` and its progress, in one commit."""

    async def body(unit: Unit) -> Rollout:
        done = {"state": "copied", "bytes": moved.size_bytes, "seconds": moved.seconds}
        await records.mark(unit.session, deployment_id, moved.volume, moved.target, **done)
        return await apply(unit, rt.sealer, deployment_id, moved, rt.clock())

    result: Rollout = await rt.units.run(body)
    return result


async def _copy_one(rt: RolloutContext, r: Rollout, spec: ApplicationSpec, m: Move, *, reset: bool) -> int:
    """One volume's tar stream from the source's helper into the target's; the bytes sent. ``reset``: an
    earlier attempt began, so the target's volume (empty before the move) is made again empty first."""
    src, dst = await rt.fleet.docker(m.source), await rt.fleet.docker(m.target)
    old = [
        c
        for c in await src.list_containers({labels.APP: r.application_id})
        if c.labels.get(labels.DEPLOYMENT) != r.deployment_id and c.image_id and c.labels.get(labels.SERVICE)
    ]
    if not old:
        raise MoveFailedError(
            f"the data of volume {m.volume} could not be copied from server {m.source}: no container of the "
            "application is left there to read it through"
        )
    source, target = (dom.helper_name(r.deployment_id, m.volume, side) for side in ("source", "target"))
    if reset:
        await dst.remove(target)
        await dst.remove_volume(docker_volume_name(r.application_id, m.volume))
        await dst.ensure_volume(
            volumes.create_body(r.application_id, m.volume, r.team_id, spec.volume_options.get(m.volume))
        )
    read_body = dom.helper_body(r.application_id, r.deployment_id, m.volume, old[0].image_id, "source")
    write_body = dom.helper_body(r.application_id, r.deployment_id, m.volume, _image_on_target(r, spec, m), "target")
    limit = rt.settings.volume_move_timeout_s
    async with created(src, source, read_body), created(dst, target, write_body):
        try:
            async with asyncio.timeout(limit):
                return await stream(src, dst, source, target, limit + 60.0, _progress(rt, r.deployment_id, m))
        except TimeoutError:
            raise MoveFailedError(dom.timeout_reason(m, limit)) from None


async def stream(
    src: DockerExecutor,
    dst: DockerExecutor,
    source: str,
    target: str,
    timeout_s: float,
    progress: Progress | None = None,
) -> int:
    """The source helper's volume streamed into the target helper's, chunk by chunk; the bytes sent.
    ``progress`` is told the bytes sent so far after each chunk; the engines' calls end after ``timeout_s``."""
    rd, wr = dom.read_call(source), dom.write_call(target)
    sent = 0

    async def run() -> None:
        nonlocal sent
        async with src.docker.stream(rd.method, rd.path, params=dict(rd.params), versioned=False) as resp:

            async def chunks() -> Any:
                nonlocal sent
                async for chunk in resp.chunks():
                    sent += len(chunk)
                    yield chunk
                    if progress is not None:
                        await progress(sent)

            headers = {"Content-Type": wr.content_type or "application/x-tar"}
            put = dst.docker.request(
                wr.method,
                wr.path,
                params=dict(wr.params),
                data=chunks(),
                headers=headers,
                timeout=None,
                versioned=False,
            )
            await dst._call(f"write volume into {target} on server {dst.server_id}", put, timeout_s)

    await src._call(f"read volume through {source} on server {src.server_id}", run(), timeout_s)
    return sent


async def undo(rt: RolloutContext, r: Rollout, skip: Collection[str] = ()) -> str:
    """A failed or cancelled deployment: the copies its moves made on their targets removed (the new
    containers were removed first), the sources' volumes kept; a note for the reason ("" when none).
    ``skip``: servers that do not answer, not contacted (a copy there is noted as not removed)."""
    rows = await read(rt, records.moves_of, r.deployment_id)
    notes = []
    for row in rows:
        if not row.target_made:
            if row.state != "planned":
                notes.append(
                    f"volume {row.volume} on server {row.target} was there before the move: it may hold part of "
                    "the copy (empty or remove it before moving again)"
                )
            continue
        silent = [s for s in (row.source, row.target) if s in skip]
        if silent:
            notes.append(
                f"the copy of volume {row.volume} on server {row.target} NOT removed (server {silent[0]} "
                "does not answer)"
            )
            continue
        try:
            source, target = await rt.fleet.docker(row.source), await rt.fleet.docker(row.target)
            await _remove_copy(source, target, r, row.volume)
            notes.append(f"the copy of volume {row.volume} on server {row.target} removed")
        except (DockerUnavailable, DockerOperationError) as exc:
            notes.append(f"the copy of volume {row.volume} on server {row.target} NOT removed ({exc})")
    if rows:
        notes.append(dom.kept_note(_moves(rows)))
    return "; ".join(notes)


async def _remove_copy(
    source: DockerExecutor, target: DockerExecutor, r: Rollout, volume: str, wait_s: float = 10.0
) -> None:
    """Remove a move's helpers and the copy of its volume on the target. While the engine still says the
    volume is in use (a helper whose creation or removal was under way when the copy was cancelled), the
    helpers are removed again and the volume tried again, for up to ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        await source.remove(dom.helper_name(r.deployment_id, volume, "source"))
        await target.remove(dom.helper_name(r.deployment_id, volume, "target"))
        try:
            await target.remove_volume(docker_volume_name(r.application_id, volume))
            return
        except DockerOperationError as exc:
            if exc.status != 409 or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(0.2)
