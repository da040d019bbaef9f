"""An application on a Swarm besides its rollouts, as data: which node servers get its image, the registry
credentials its Swarm service carries, which services a removal takes down, and its tasks as
``rpc.scheduler.replicas`` shows them. Pure; ``usecases/swarm_app.py`` asks the engines and acts.

Swarm may run a task on any node, so an image Berth built (or one in Berth's own ``berth/`` namespace,
which no registry has) is delivered to every node Berth manages that the manager reports ready; a
registry image is pulled by each node itself, with the credentials the service was created with
(``X-Registry-Auth``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from berth_common import labels
from berth_common.catalogue import ImageSource
from berth_common.registries import InvalidReferenceError, credentials_for, parse, registry_auth_header

LOCAL_NAMESPACE = "berth/"
TASK_LABEL = "com.docker.swarm.task.id"  # on every container Swarm runs for a task


def berth_delivers(image: str, needs_build: bool) -> bool:
    """Whether Berth puts the image on the nodes itself (its own build or namespace) rather than Swarm
    pulling it from a registry."""
    return needs_build or image.startswith(LOCAL_NAMESPACE)


def ready_servers(nodes: list[dict[str, Any]], managed: Iterable[tuple[str, str | None]]) -> list[str]:
    """The servers (by id) of the Swarm's nodes Berth manages (``managed``: node id -> server id) that the
    manager's ``GET /nodes`` reports ready, sorted; a node down or unknown to Berth is left out."""
    servers = dict(managed)
    ready = {str(n.get("ID")) for n in nodes if (n.get("Status") or {}).get("State") == "ready"}
    return sorted({s for node, s in servers.items() if s is not None and node in ready})


def service_auth(image: str, source: object) -> str | None:
    """``X-Registry-Auth`` for creating the Swarm service of a registry image (the nodes pull with it): the
    application's credentials for the image's registry, or None (anonymous; Berth's own images)."""
    if not isinstance(source, ImageSource) or source.auth is None or image.startswith(LOCAL_NAMESPACE):
        return None
    try:
        ref = parse(image)
    except InvalidReferenceError:
        return None
    auth = credentials_for(ref.registry, [source.auth])
    return None if auth is None else registry_auth_header(ref.registry, auth.username, auth.reveal())


def placed_alone(specs: Iterable[Mapping[str, Any]]) -> set[str]:
    """The servers a service of the application was placed on alone (``servers`` of one), from its
    deployments' stored specs: a Swarm whose manager is among them may run services of the application."""
    out = set()
    for spec in specs:
        for svc in spec.get("services") or []:
            servers = svc.get("servers") or []
            if len(servers) == 1:
                out.add(str(servers[0]))
    return out


def app_labels(application_id: str) -> dict[str, str]:
    """The label every Swarm service (and task container) of the application has."""
    return {labels.APP: application_id}


def service_names(services: list[dict[str, Any]]) -> list[str]:
    """The names of ``GET /services`` answers, sorted."""
    return sorted(str((s.get("Spec") or {}).get("Name")) for s in services)


def swarm_task(container_labels: dict[str, str]) -> bool:
    """Whether a container is a Swarm task's (Swarm labels it with its task)."""
    return TASK_LABEL in container_labels


def current_tasks(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tasks Swarm wants running (their history of shut down and failed ones left out), by slot."""
    wanted = [t for t in tasks if t.get("DesiredState") in ("running", "ready", "accepted")]
    return sorted(wanted, key=lambda t: (int(t.get("Slot") or 0), str(t.get("ID", ""))))


@dataclass(frozen=True)
class TaskContainer:
    """The container Swarm made for one task: the node it is on and the server Berth knows that node as
    (None: a node Berth does not manage), its name, the Berth service it runs, whether it runs now."""

    node_id: str
    server_id: str | None
    name: str
    service: str
    running: bool


def container_name(service_name: str, task: dict[str, Any]) -> str:
    """The name Swarm gives a task's container: ``<service>.<slot>.<task id>`` (a global service's tasks
    have the node id in the slot's place)."""
    slot = task.get("Slot") or task.get("NodeID") or 0
    return f"{service_name}.{slot}.{task.get('ID', '')}"


def task_containers(
    service: dict[str, Any], tasks: list[dict[str, Any]], nodes: Mapping[str, str | None]
) -> list[TaskContainer]:
    """The containers of a service's tasks (``GET /tasks``) that Swarm made, by name: a task not
    started yet (pending, rejected, no node) has none; the earlier tasks of a slot keep theirs until Swarm
    prunes its task history, so their lines are read too. ``nodes``: node id -> Berth's server id."""
    spec = service.get("Spec") or {}
    name = str(spec.get("Name", ""))
    berth_service = str((spec.get("Labels") or {}).get(labels.SERVICE, ""))
    out = []
    for task in tasks:
        status = task.get("Status") or {}
        if not (status.get("ContainerStatus") or {}).get("ContainerID"):
            continue
        node = str(task.get("NodeID") or "")
        running = status.get("State") == "running" and task.get("DesiredState") in (None, "running")
        out.append(TaskContainer(node, nodes.get(node), container_name(name, task), berth_service, running))
    return sorted(out, key=lambda c: c.name)


def task_view(
    service: dict[str, Any],
    task: dict[str, Any],
    history: list[dict[str, Any]],
    nodes: dict[str, str | None],
    ready: bool | None,
    address: str | None,
    port: int | None,
) -> dict[str, Any]:
    """One task as a replica of ``rpc.scheduler.replicas`` (the fields of ``ReplicaStatus``): its node is
    the server Berth knows it as (else the Swarm node id), its health ``ready``/``unready`` from the
    readiness check (None: not checked, ``unknown``; a task not running is ``unready``); its restarts are
    the earlier tasks of its slot in ``history`` (every task of the service)."""
    spec = service.get("Spec") or {}
    svc_labels = spec.get("Labels") or {}
    status = task.get("Status") or {}
    state = str(status.get("State") or "unknown")
    node = str(task.get("NodeID") or "")
    slot = int(task.get("Slot") or 0)
    health = "unready" if state != "running" or ready is False else ("ready" if ready else "unknown")
    return {
        "deployment_id": str(svc_labels.get(labels.DEPLOYMENT, "")),
        "service": str(svc_labels.get(labels.SERVICE, "")),
        "replica": slot,
        "container": container_name(str(spec.get("Name", "")), task),
        "state": state,
        "health": health,
        "restarts": sum(1 for t in history if int(t.get("Slot") or 0) == slot and t.get("ID") != task.get("ID")),
        "upstream": f"http://{address}:{port}" if address and port and state == "running" else None,
        "node": (nodes.get(node) or node) if node else None,
    }
