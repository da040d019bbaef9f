"""A service version on a Swarm, as data: which tasks serve, what the route's upstreams are, which services a
new version replaces, and the readiness check's request and answer. Pure; ``usecases/swarm_rollout.py``
carries the sequence out (start the new service, wait until its tasks run and pass the check, switch the
route, drain, remove the old service) and keeps the route on the tasks that run. A version not ready in
time is told with what its tasks did (state, how the container ended or Swarm's error), in replicas' words.

A task is reached on the overlay network at its own address (Traefik on the manager is on that network),
and by Berth's readiness check on its node's ``docker_gwbridge`` address, over that node's SSH connection.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from berth_scheduler.domain import readiness
from berth_scheduler.domain.containers import ContainerSpec
from berth_scheduler.domain.swarm import SwarmService, service_body

_PATH = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$")
_STATUS = re.compile(rb"^HTTP/1\.[01] (\d{3})")


@dataclass(frozen=True)
class SwarmVersion:
    """One version of one web service to run on a Swarm: ``replica`` describes a task (its image, command,
    environment, labels, limits, port and health path), ``replicas`` how many, ``route_id`` and ``hosts``
    the route that serves it on the manager's Traefik, ``registry_auth`` the ``X-Registry-Auth`` the
    service is created with (its nodes pull a registry image with it; None: anonymous or delivered),
    ``pinned`` the node a ``strategy: recreate`` service with volumes runs on, ``secrets`` the mounts of
    the files it is given."""

    application_id: str
    replica: ContainerSpec
    replicas: int
    route_id: str
    hosts: tuple[str, ...]
    network: str
    registry_auth: str | None = field(default=None, repr=False)
    pinned: str | None = None  # strategy recreate with volumes: the node its tasks run on (its volume's)
    secrets: tuple[dict[str, Any], ...] = ()  # the application's files it mounts (``domain/swarm_files.py``)
    image_id: str | None = None  # an image Berth put on the nodes: named by id, so no node pulls it

    @property
    def service(self) -> SwarmService:
        return service_body(self.replica, self.replicas, self.network, self.pinned, self.secrets, self.image_id)

    @property
    def recreate(self) -> bool:
        """Whether the older versions stop before this one starts (pinned to one node, its volume there)."""
        return self.pinned is not None

    @property
    def family(self) -> dict[str, str]:
        """The labels every version of this service has (its older versions are found by them)."""
        return {"berth.app": self.application_id, "berth.service": self.replica.service}


@dataclass(frozen=True)
class Task:
    """A task that runs and should: where it runs and how it is reached."""

    task_id: str
    node_id: str
    address: str  # on the overlay network
    container_id: str


def running(tasks: list[dict[str, Any]], network: str) -> list[Task]:
    """The tasks of ``GET /tasks`` that run and should, with their address on ``network``, by address."""
    out = []
    for task in tasks:
        status = task.get("Status") or {}
        if status.get("State") != "running" or task.get("DesiredState") not in (None, "running"):
            continue
        container = str((status.get("ContainerStatus") or {}).get("ContainerID") or "")
        for attachment in task.get("NetworksAttachments") or []:
            if ((attachment.get("Network") or {}).get("Spec") or {}).get("Name") != network:
                continue
            for address in attachment.get("Addresses") or []:
                out.append(Task(str(task.get("ID", "")), str(task.get("NodeID", "")), address.split("/")[0], container))
    return sorted(out, key=lambda t: (t.address, t.task_id))


UNREACHED_UNCHECKED = (
    "its node is not a server Berth reaches, and the service has no healthcheck for Swarm to run there "
    "(give it one, or add the node as a server)"
)


def upstreams(tasks: list[Task], port: int) -> list[str]:
    """The route's upstreams: every task's overlay address, in address order."""
    return [f"http://{t.address}:{port}" for t in sorted(tasks, key=lambda t: t.address)]


def older(services: list[dict[str, Any]], current: str) -> list[str]:
    """The names of the services of one family other than ``current`` (the versions it replaces)."""
    return sorted(
        str((s.get("Spec") or {}).get("Name")) for s in services if (s.get("Spec") or {}).get("Name") != current
    )


def probe_request(path: str, host: str = "berth-readiness") -> bytes:
    """The readiness check's HTTP/1.0 GET of ``path`` (one request, the connection closes after it)."""
    if not _PATH.fullmatch(path):
        raise ValueError(f"not a request path: {path!r}")
    return f"GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: berth-readiness\r\n\r\n".encode()


def probe_status(first_line: bytes) -> int | None:
    """The status code of an answer's first line (None: not an HTTP answer)."""
    m = _STATUS.match(first_line)
    return int(m.group(1)) if m else None


def task_text(task: dict[str, Any], check: str | None, said: Mapping[str, str] | None = None) -> str:
    """What one task of ``GET /tasks`` is doing, in the words replicas use (:func:`domain.readiness.exit_text`):
    its state, with how its container ended or Swarm's error; a running one, that it does not pass ``check``
    (the readiness GET, None: a worker), with what that check last saw (``said``, by task id: connection
    refused, the status and first bytes of the answer...) when it is known."""
    status = task.get("Status") or {}
    state = str(status.get("State") or "unknown")
    err = str(status.get("Err") or "").strip()
    code = (status.get("ContainerStatus") or {}).get("ExitCode")
    if state == "running":
        seen = (said or {}).get(str(task.get("ID", "")))
        if check and seen:
            return f"running, but {seen}"
        return f"running, but {check} does not pass" if check else "running"
    if code not in (None, 0) or (code == 0 and state in ("complete", "failed")):
        return f"{state}: the container " + readiness.exit_text({"ExitCode": code, "Error": err})
    said_by_swarm = err or str(status.get("Message") or "").strip()
    return f"{state}: {said_by_swarm}" if said_by_swarm else state


def newest(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tasks newest first (by their status's time)."""
    return sorted(tasks, key=lambda t: str((t.get("Status") or {}).get("Timestamp") or ""), reverse=True)


def tasks_text(
    tasks: list[dict[str, Any]], check: str | None, most: int = 3, said: Mapping[str, str] | None = None
) -> str:
    """The tasks of a version that is not ready, newest first, the same words counted once: at most ``most``
    different ones."""
    counts: dict[str, int] = {}
    for task in newest(tasks):
        text = task_text(task, check, said)
        counts[text] = counts.get(text, 0) + 1
    if not counts:
        return "Swarm made no task (no node may run it: see the placement and the nodes' resources)"
    return "; ".join(f"{text} ({n} tasks)" if n > 1 else text for text, n in list(counts.items())[:most])


def logged_task(tasks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The task whose container's last lines a failure shows: the newest that has a container."""
    return next(
        (t for t in newest(tasks) if ((t.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID")), None
    )


def not_ready_text(
    name: str,
    ready: int,
    wanted: int,
    waited_s: float,
    tasks: list[dict[str, Any]],
    check: str | None,
    said: Mapping[str, str] | None = None,
    logs: str = "",
    container: str = "",
) -> str:
    """Why a version is not rolled out: how many of its tasks were ready at the deadline, what they did, and
    the last log lines of one task's ``container`` (``logs``), as a replica's failure shows its own."""
    text = (
        f"{ready} of {wanted} tasks of {name} ready after {waited_s:g}s (the previous version keeps serving); "
        f"its tasks: {tasks_text(tasks, check, said=said)}"
    )
    return text + (f"; last log lines of {container}:\n{logs}" if logs.strip() else "")


def pinned_node(strategy: str, volumes: int, nodes: tuple[tuple[str, str | None], ...], manager: str) -> str | None:
    """The node a service runs on when it must stay on one: ``strategy: recreate`` with named volumes (a
    local volume is on one node; the old task stops before the new one starts there). It is the manager's
    node, where the application's pre-deploy job and one-off runs mount the same volumes. None otherwise,
    or when the manager's node is not known (``nodes``: node id -> server id)."""
    if strategy != "recreate" or not volumes:
        return None
    return next((node for node, server in nodes if server == manager), None)


STOPPED_LABEL = "berth.stopped-replicas"  # on an older version stopped for a recreate: its tasks before


def scaled(service: dict[str, Any], replicas: int) -> tuple[dict[str, Any], int]:
    """``POST /services/{id}/update`` of ``GET /services/{id}``'s answer to ``replicas`` tasks: (its spec
    with that count, the version index the update names). Stopped (0), it keeps how many it had in
    ``STOPPED_LABEL``, so an undo after a restart still knows what to start again."""
    spec = dict(service.get("Spec") or {})
    labels = dict(spec.get("Labels") or {})
    if replicas == 0:
        labels.setdefault(STOPPED_LABEL, str(replicas_of(service)))
    else:
        labels.pop(STOPPED_LABEL, None)
    spec["Labels"] = labels
    spec["Mode"] = {"Replicated": {"Replicas": replicas}}
    return spec, int((service.get("Version") or {}).get("Index") or 0)


def replicas_of(service: dict[str, Any]) -> int:
    """How many tasks a replicated service asks for."""
    return int((((service.get("Spec") or {}).get("Mode") or {}).get("Replicated") or {}).get("Replicas") or 0)


def stopped_replicas(service: dict[str, Any]) -> int:
    """How many tasks an older version stopped for a recreate had (0: it was not stopped that way)."""
    raw = str(((service.get("Spec") or {}).get("Labels") or {}).get(STOPPED_LABEL) or "0")
    return int(raw) if raw.isdigit() else 0


def still_running(tasks: list[dict[str, Any]]) -> int:
    """How many tasks of ``GET /tasks`` have a container that still runs (whatever Swarm wants of them)."""
    return sum(1 for t in tasks if (t.get("Status") or {}).get("State") in ("running", "starting"))
