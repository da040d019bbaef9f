"""One-off runs as data: the container of a run, what to do with it after a restart, and its outcome.

A run's container is the service's replica body (``containers.container_spec``) changed for a process
that runs once: ``Cmd`` is the run's command (the image's entrypoint stays, as ``docker run image cmd``
does), no published or exposed port, no healthcheck, restart ``no``, the labels of a run (its team and
application, ``berth.kind=run``, ``berth.run``; not the service's nor the deployment's, so no step that
acts on a service's or a deployment's replicas takes it for one), and no network alias: it joins the networks the service's replicas
are on (the application's private network reaches its compose services and linked databases) but
answers under no name, so nothing routed to the service by name can reach it.

Volumes: the run mounts the service's volumes as its replicas do. A run is how a migration or a
maintenance task reaches the application's data (Heroku, Kamal and Dokku runs do the same); a volume whose
engine allows one writer only is shared with the running replicas exactly like a second replica would be.

Its name is ``berth-run-<run id>``: the same after a restart, so the container is found, never made twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from berth_common import labels as label
from berth_common import redaction
from berth_common.catalogue import RUN_LAST_LINES, RUN_MAX_LINE_CHARS, ApplicationSpec, WebService, WorkerService
from berth_scheduler.domain import readiness
from berth_scheduler.domain.containers import ContainerSpec, container_spec
from berth_scheduler.domain.routing import LOCAL

RUN_LABEL = "berth.run"  # the run id, on a run's container
KIND = "run"
STOP_GRACE_S = 5  # a timed-out run gets SIGTERM, then SIGKILL this much later
LINES_READ = RUN_LAST_LINES  # the lines of its log read when a run ends
T = TypeVar("T")
_NAME_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def container_name(run_id: str) -> str:
    """``berth-run-<run id>`` (characters a container name may not have become ``-``)."""
    return f"berth-run-{_NAME_SAFE.sub('-', run_id)}"[:128]


def one_off(container_labels: Mapping[str, str]) -> bool:
    """Whether a container with these labels is a one-off run's (not a replica: it outlives deployments)."""
    return container_labels.get(label.KIND) == KIND


def pick_service(spec: ApplicationSpec, name: str) -> WebService | WorkerService | None:
    return next((s for s in spec.services if s.name == name), None)


def run_spec(
    run_id: str,
    application_id: str,
    team_id: str,
    deployment_id: str,
    spec: ApplicationSpec,
    service: WebService | WorkerService,
    image: str,
    command: list[str],
    server_id: str = LOCAL,
) -> ContainerSpec:
    """The create body of a run's container: the service's replica body changed as the module says."""
    port = 1 if isinstance(service, WebService) and server_id == LOCAL else None  # replaced below: no binding
    base = container_spec(application_id, deployment_id, spec, service, 1, image, port, team_id, server_id)
    name = container_name(run_id)
    body: dict[str, Any] = {k: v for k, v in base.body.items() if k not in ("ExposedPorts", "Healthcheck")}
    body["Cmd"] = list(command)
    body["Labels"] = {label.TEAM: team_id, label.APP: application_id, label.KIND: KIND, RUN_LABEL: run_id}
    body["Labels"][label.MANAGED] = "true"
    host = {k: v for k, v in body["HostConfig"].items() if k != "PortBindings"}
    host["RestartPolicy"] = {"Name": "no"}
    body["HostConfig"] = host
    endpoints = (body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    if endpoints:
        body["NetworkingConfig"] = {"EndpointsConfig": {network: {} for network in endpoints}}
    return replace(
        base,
        name=name,
        kind=KIND,
        body=body,
        container_port=None,
        host_port=None,
        health_path=None,
        health_command=None,
        connects=tuple((network, ()) for network, _ in base.connects),
        completes=True,
    )


def on_network(cs: ContainerSpec, network: str) -> ContainerSpec:
    """A run's (or job's) container joined to ``network`` alone: on a Swarm's manager, the attachable overlay
    network the application's tasks are on, where they answer by their service names (a database service,
    say), instead of the server's own network."""
    body = {**cs.body, "NetworkingConfig": {"EndpointsConfig": {network: {}}}}
    return replace(cs, body=body, connects=())


class Step(StrEnum):
    """What the runner does next with a run, from its recorded state and its container as inspected."""

    CREATE = "create"  # not made yet: make it, then start it
    START = "start"  # made, never started
    WAIT = "wait"  # running: wait for it (up to the timeout)
    RECORD = "record"  # exited: record the outcome
    LOST = "lost"  # it had started and its container is gone


def next_step(status: str, info: dict[str, Any] | None) -> Step:
    """``status`` as recorded (queued or running), ``info`` the container's inspection (None: none)."""
    if info is None:
        return Step.CREATE if status == "queued" else Step.LOST
    state = info.get("State") or {}
    if state.get("Running") or state.get("Restarting") or state.get("Paused"):
        return Step.WAIT
    if state.get("Status") == "created":
        return Step.START if status == "queued" else Step.LOST
    return Step.RECORD


@dataclass(frozen=True)
class Outcome:
    status: str  # succeeded, failed, timed_out
    exit_code: int | None
    reason: str
    last_lines: tuple[str, ...] = ()


def last_lines(lines: list[str]) -> tuple[str, ...]:
    """The last lines a run wrote (at most ``RUN_LAST_LINES``, each cut to ``RUN_MAX_LINE_CHARS``)."""
    return tuple(line[:RUN_MAX_LINE_CHARS] for line in lines[-RUN_LAST_LINES:])


def outcome(info: dict[str, Any], lines: list[str], *, timed_out_after: int | None = None) -> Outcome:
    """The outcome of an exited run: exit 0 succeeded, another code failed; ``timed_out_after``: it was
    killed at its timeout of that many seconds."""
    state = info.get("State") or {}
    code = state.get("ExitCode")
    exit_code = int(code) if code is not None else None
    tail = last_lines(lines)
    if timed_out_after is not None:
        return Outcome("timed_out", exit_code, f"timed out after {timed_out_after} s (killed)", tail)
    if exit_code == 0 and not state.get("OOMKilled"):
        return Outcome("succeeded", 0, "", tail)
    return Outcome("failed", exit_code, readiness.exit_text(state), tail)


def not_started(info: dict[str, Any] | None, error: str) -> Outcome:
    """A run whose container the engine could not start (it never ran, so wrote nothing): failed, with the
    engine's error and the exit code it recorded (:func:`domain.readiness.start_failure_text`)."""
    state = (info or {}).get("State") or {}
    code = state.get("ExitCode")
    return Outcome("failed", int(code) if code else None, readiness.start_failure_text(state, error))


def redacted(result: Outcome, secrets: Iterable[str]) -> Outcome:
    """The outcome with the deployment's secret values redacted from its reason and last lines: what is
    recorded, announced (``evt.run.finished``, ``evt.job.failed``) and copied into a deployment's log. The
    lines are best redacted before ``outcome`` cuts them (a secret cut in two is not found here)."""
    values = [s for s in secrets if s]
    if not values:
        return result
    lines = tuple(line[:RUN_MAX_LINE_CHARS] for line in redaction.redact_all(result.last_lines, values))
    return replace(result, reason=redaction.redact(result.reason, values), last_lines=lines)


def lost(reason: str) -> Outcome:
    """A run that could not run or whose container went away: failed with no exit code."""
    return Outcome("failed", None, reason)


LOST_CONTAINER = "the run's container is gone (removed outside Berth while the run was going)"
REMOVED_WITH_APPLICATION = "the application was removed while the run was going (its containers with it)"


def lost_container(removing: bool) -> Outcome:
    """A run whose container went away after it started; ``removing``: its application is being (or was)
    removed, which takes every container of the application."""
    return lost(REMOVED_WITH_APPLICATION if removing else LOST_CONTAINER)


def removed_with_application(ended: Outcome) -> Outcome:
    """A run that exited while its application was being removed: the removal stopped it (its exit code,
    when there is one, is the stop signal's), so the reason says so."""
    return Outcome("failed", ended.exit_code, REMOVED_WITH_APPLICATION, ended.last_lines)


def to_prune(finished: Sequence[T], keep: int) -> list[T]:
    """Of an application's finished runs whose container is still kept, newest first: those beyond the
    newest ``keep``."""
    return list(finished[keep:])


# --- the pre-deploy job -------------------------------------------------------------------------------
# A deployment's pre-deploy job (``ApplicationSpec.pre_deploy``) is a run made by the rollout: the body of a
# run from the deployment's NEW image, named after the deployment (``berth-predeploy-<deployment id>``), so a
# scheduler that restarts mid-job finds the container and waits for it (or reads its outcome) instead of
# running the job a second time.

JOB_LABEL = "berth.pre-deploy"  # the deployment id, on a pre-deploy job's container
JOB_LOG_LINES = 500  # the lines of the job's output copied into the deployment's log


def job_container_name(deployment_id: str) -> str:
    """``berth-predeploy-<deployment id>``: the same after a restart, so the job is never made twice."""
    return f"berth-predeploy-{_NAME_SAFE.sub('-', deployment_id)}"[:128]


def job_service(spec: ApplicationSpec, name: str | None) -> WebService | WorkerService | None:
    """The service whose environment the job takes: ``name``, else the first web service, else the first
    worker (as a run's default); None when the spec has no service of that name."""
    if name is not None:
        return pick_service(spec, name)
    return next((s for s in spec.services if isinstance(s, WebService)), spec.services[0])


def job_spec(
    deployment_id: str,
    application_id: str,
    team_id: str,
    spec: ApplicationSpec,
    service: WebService | WorkerService,
    image: str,
    command: list[str],
    server_id: str = LOCAL,
) -> ContainerSpec:
    """The create body of the pre-deploy job's container: a run's body (``run_spec``) under the job's name,
    labelled with its deployment (``JOB_LABEL``)."""
    cs = run_spec(deployment_id, application_id, team_id, deployment_id, spec, service, image, command, server_id)
    name = job_container_name(deployment_id)
    body = dict(cs.body)
    body["Labels"] = {**{k: v for k, v in body["Labels"].items() if k != RUN_LABEL}, JOB_LABEL: deployment_id}
    return replace(cs, name=name, body=body)


def job_failure(result: Outcome, timeout_s: int) -> str:
    """Why a deployment failed at its pre-deploy job: the exit code (or the timeout) and its last lines."""
    if result.status == "timed_out":
        head = f"the pre-deploy job timed out after {timeout_s} s (killed)"
    elif result.exit_code is None:
        head = f"the pre-deploy job could not run: {result.reason}"
    else:
        head = f"the pre-deploy job {result.reason}"
    if not result.last_lines:
        return head
    return head + "; its last lines:\n" + "\n".join(result.last_lines)


def started_at(info: dict[str, Any]) -> float | None:
    """When the container started (the engine's ``State.StartedAt``), as epoch seconds; None: never."""
    raw = str((info.get("State") or {}).get("StartedAt") or "")
    if not raw or raw.startswith("0001-"):
        return None
    head, _, frac = raw.rstrip("Z").partition(".")
    try:
        at = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None
    digits = "".join(ch for ch in frac if ch.isdigit())[:6]
    return at + (int(digits) / 10 ** len(digits) if digits else 0.0)
