"""Apply one input to a persisted deployment: lock the row, run the pure transition, save, emit.

Events get ids derived from the deployment and its version, so a retried transaction emits the same ids;
each ``evt.deployment.progressed`` is mirrored as a deploy log line on ``log.<deployment_id>``. Every
text that leaves the scheduler is redacted of the application's secret values first.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from berth_common import sealing
from berth_common.catalogue import (
    ApplicationSpec,
    CancelBuild,
    DeploymentCancelled,
    DeploymentFailed,
    DeploymentProgressed,
    Event,
    GitSource,
    LogLine,
    Message,
    StartBuild,
    WebService,
)
from berth_common.db import Unit
from berth_common.logging import get_logger
from berth_scheduler.adapters import build_records, prunes_due, store
from berth_scheduler.adapters.ports import allocate_port
from berth_scheduler.adapters.sealing import Sealer, UnsealError
from berth_scheduler.domain import builds, machine, names, placement, port_routes
from berth_scheduler.domain.kept_replicas import SlotKey
from berth_scheduler.domain.machine import Input, RefusedError, Rollout, State
from berth_scheduler.domain.routing import LOCAL
from berth_scheduler.usecases.rollout.adoption import adopted, kept_slots
from berth_scheduler.usecases.rollout.units import emit_all

log = get_logger(__name__)


def secrets_of(sealer: Sealer, row: Any) -> list[str]:
    """The plaintext secret values of a deployment, in memory only: to redact them from what it emits."""
    try:
        return sealer.open(row.spec).secret_values()
    except (UnsealError, sealing.UnsealError):
        return []


def _redacted(event: Event, secrets: list[str]) -> Event:
    if not secrets:
        return event
    if isinstance(event, DeploymentProgressed):
        return event.model_copy(update={"detail": names.redact(event.detail, secrets)})
    if isinstance(event, DeploymentFailed | DeploymentCancelled):
        return event.model_copy(update={"reason": names.redact(event.reason, secrets)})
    return event


def _log_text(event: DeploymentProgressed) -> str:
    return f"[{event.state}] {event.step}" + (f": {event.detail}" if event.detail else "")


async def emit_events(
    unit: Unit, deployment_id: str, tag: str, events: list[Event], secrets: list[str], first_seq: int | None = None
) -> None:
    """Stage ``events`` (ids ``dep-<deployment>-<tag>-<n>``) and their deploy log lines, in one outbox insert.
    ``first_seq``: the log numbers already reserved (by ``store.save``), else they are reserved here."""
    events = [_redacted(e, secrets) for e in events]
    progressed = [e for e in events if isinstance(e, DeploymentProgressed)]
    if first_seq is None:
        first_seq = await store.take_log_seq(unit.session, deployment_id, len(progressed)) if progressed else 0
    items: list[tuple[Message, str, str | None]] = [
        (event, f"dep-{deployment_id}-{tag}-{i}", None) for i, event in enumerate(events)
    ]
    for i, event in enumerate(progressed):
        line = LogLine(deployment_id=deployment_id, stream="deploy", seq=first_seq + i, line=_log_text(event))
        items.append((line, f"log-{deployment_id}-{first_seq + i}", f"log.{deployment_id}"))
    await emit_all(unit, items)


def start_build_command(row: Any, sealer: Sealer) -> StartBuild:
    """``cmd.build.start`` for this deployment: its git source snapshot, tagged once per deployment."""
    spec = sealer.open(row.spec)
    assert isinstance(spec.source, GitSource)
    return StartBuild(
        build_id=row.build_id,
        deployment_id=row.id,
        application_id=row.application_id,
        source=spec.source,
        image_tag=names.image_tag(spec.name, row.id),
        timeout_s=min(float(row.timeouts["build_s"]), 6 * 3600),
        team_id=row.team_id,
    )


async def _start_builds(unit: Unit, sealer: Sealer, row: Any, now: float) -> None:
    """``cmd.build.start`` for each build of the deployment: its single build, or one per compose service
    that builds its own image (``domain/builds.py``, recorded when the deployment was, each given its own
    deadline here)."""
    recorded = await build_records.builds_of(unit.session, row.id)
    if not recorded:
        await unit.emit(start_build_command(row, sealer), id=f"build-{row.build_id}")
        return
    spec = sealer.open(row.spec)
    timeout_s = float(row.timeouts["build_s"])
    for b in builds.asked(recorded, now, timeout_s + machine.BUILD_ANSWER_MARGIN_S):
        await build_records.save_build(unit.session, row.id, b)
    for b in recorded:
        cmd = builds.start_command(spec, b, row.id, row.application_id, timeout_s, row.team_id)
        await unit.emit(cmd, id=f"build-{b.build_id}")


async def cancel_builds(unit: Unit, deployment_id: str, build_ids: list[str], reason: str) -> None:
    """``cmd.build.cancel`` for each of ``build_ids`` (their deployment failed or was cancelled)."""
    for build_id in build_ids:
        cancel = CancelBuild(build_id=build_id, deployment_id=deployment_id, reason=reason[:500])
        await unit.emit(cancel, id=f"build-{build_id}-cancel")


async def apply(unit: Unit, sealer: Sealer, deployment_id: str, inp: Input, now: float) -> Rollout:
    """Transition the deployment (raises :class:`RefusedError` without any change when it does not apply)."""
    return await apply_all(unit, sealer, deployment_id, [inp], now)


async def apply_all(unit: Unit, sealer: Sealer, deployment_id: str, inputs: list[Input], now: float) -> Rollout:
    """Several inputs in a row, with one read and one write of the row (a refused one refuses them all)."""
    row = await store.load(unit.session, deployment_id, lock=True)
    if row is None:
        raise RefusedError(f"unknown deployment {deployment_id}")
    before = store.rollout_of(row)
    after, events = before, []
    for inp in inputs:
        after, more = machine.transition(after, inp, now)
        events += more
    progressed = sum(1 for e in events if isinstance(e, DeploymentProgressed))
    first_seq = await store.save(unit.session, after, progressed)
    await emit_events(unit, deployment_id, f"v{after.version}", events, secrets_of(sealer, row), first_seq)
    if after.state == State.BUILDING and before.state != State.BUILDING:
        await _start_builds(unit, sealer, row, now)
    if _stops_build(before, after, inputs):
        reason = after.abort.reason if after.abort else "cancelled"
        recorded = await build_records.builds_of(unit.session, row.id)
        pending = [b.build_id for b in recorded if b.state == "pending"] if recorded else [row.build_id]
        await cancel_builds(unit, row.id, [b for b in pending if b], names.redact(reason, secrets_of(sealer, row)))
    if after.state == State.STARTING and before.state != State.STARTING:
        await record_replicas(unit, sealer, row)
    if after.state == State.SUCCEEDED and before.state != State.SUCCEEDED:  # its images pruned once it ended
        await prunes_due.put(unit.session, row.application_id, row.id, row.image)
    log.info(
        "deployment transition",
        deployment_id=deployment_id,
        input=",".join(type(i).__name__ for i in inputs),
        state=after.state.value,
        aborting=after.abort is not None,
    )
    return after


def _stops_build(before: Rollout, after: Rollout, inputs: list[Input]) -> bool:
    """A deployment cancelled or failed while its build runs: the builder is told to stop it (a build that
    failed or succeeded on its own needs no telling)."""
    return (
        before.state == State.BUILDING
        and before.abort is None
        and after.abort is not None
        and any(isinstance(i, machine.Cancel | machine.Fail) for i in inputs)
    )


async def record_replicas(unit: Unit, sealer: Sealer, row: Any) -> None:
    """Entering ``starting``: every replica's container recorded with its server, web ones on ``local`` with
    their host port, in the transaction of the transition (before any exists: found after a crash, and no
    write left for the step); a replica the deployment keeps running has none (``adoption.py``)."""
    spec = sealer.open(row.spec)
    kept = kept_slots(await adopted(unit.session, sealer, store.rollout_of(row), spec))  # a kept replica: none
    wanted = {(s.service.name, s.replica) for s in placement.slots(spec)} - kept
    values = replica_records(spec, row.id, row.application_id, wanted)
    if values:
        await store.record_container(unit.session, values)


def replica_records(
    spec: ApplicationSpec, deployment_id: str, application_id: str, wanted: Collection[SlotKey]
) -> list[Any]:
    """The container records of the replicas ``wanted`` (service, replica) (web ones on ``local`` with a
    host port, and one for each of their more routed ports: ``domain/port_routes.py``)."""
    out = []
    for slot in placement.slots(spec):
        if (slot.service.name, slot.replica) not in wanted:
            continue
        local_web = isinstance(slot.service, WebService) and slot.server_id == LOCAL
        more = {p: allocate_port() for p in port_routes.more_ports(slot.service)} if local_web else {}
        out.append(
            {
                "name": names.container_name(spec.name, slot.service.name, deployment_id, slot.replica),
                "deployment_id": deployment_id,
                "application_id": application_id,
                "service": slot.service.name,
                "kind": slot.service.kind,
                "replica": slot.replica,
                "host_port": allocate_port() if local_web else None,
                "server_id": slot.server_id,
                "more_ports": port_routes.as_record(more),
            }
        )
    return out
