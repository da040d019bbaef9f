"""Docker Swarm as data: the Engine API (1.41) bodies that form a Swarm and run a service version on it.

On a Swarm, Berth runs each service version as one Swarm service and lets Swarm place and restart its
tasks, while keeping its own readiness gate and Traefik switch (start the new service, wait until its tasks
are ready, switch routes, drain, remove the old one). The routing mesh and service VIPs are not used: the
services use DNS round-robin endpoints (``dnsrr``) on an attachable overlay network, and Traefik on that
network routes to task addresses. Everything here is pure; the adapter posts these bodies unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from berth_common import labels as label
from berth_common.catalogue import docker_volume_name
from berth_scheduler.domain import published_ports
from berth_scheduler.domain.containers import NANO, ContainerSpec

SWARM_PORT = 2377
OVERLAY_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_ADDRESS = re.compile(r"^[0-9a-fA-F:.]{2,45}$")  # an IP address (the advertise address of a node)


def _address(value: str) -> str:
    if not _ADDRESS.fullmatch(value):
        raise ValueError(f"not an IP address: {value!r}")
    return value


def init_body(advertise_addr: str) -> dict[str, Any]:
    """``POST /swarm/init`` on the first manager."""
    addr = _address(advertise_addr)
    return {"ListenAddr": f"0.0.0.0:{SWARM_PORT}", "AdvertiseAddr": f"{addr}:{SWARM_PORT}", "ForceNewCluster": False}


def join_body(advertise_addr: str, manager_addr: str, token: str) -> dict[str, Any]:
    """``POST /swarm/join`` on a node joining the manager at ``manager_addr``."""
    if not re.fullmatch(r"SWMTKN-1-[a-z0-9]+-[a-z0-9]+", token):
        raise ValueError("not a Swarm join token")
    return {
        "ListenAddr": f"0.0.0.0:{SWARM_PORT}",
        "AdvertiseAddr": f"{_address(advertise_addr)}:{SWARM_PORT}",
        "RemoteAddrs": [f"{_address(manager_addr)}:{SWARM_PORT}"],
        "JoinToken": token,
    }


def overlay_body(name: str) -> dict[str, Any]:
    """``POST /networks/create``: the attachable overlay network Berth's services and Traefik share."""
    if not OVERLAY_NAME.fullmatch(name):
        raise ValueError(f"not a network name: {name!r}")
    return {
        "Name": name,
        "Driver": "overlay",
        "Attachable": True,
        "CheckDuplicate": True,
        "Labels": {"berth.managed": "true"},
    }


@dataclass(frozen=True)
class SwarmService:
    """One service version on a Swarm: its name, the create body, and what readiness needs."""

    name: str
    body: dict[str, Any]
    container_port: int | None
    health_path: str | None

    @property
    def engine_checked(self) -> bool:
        """Whether Swarm runs a health check in each task (:func:`engine_checked`)."""
        return engine_checked(self.body)


def engine_checked(service: dict[str, Any]) -> bool:
    """Whether a Swarm service's tasks carry a health check the engine runs (a ``HealthCheck`` whose test is
    not ``NONE``). Swarm reports such a task ``running`` only once the check passed, and fails it (a new task
    replaces it) when it turns unhealthy: that state is a readiness check made on the node, which is what a
    node Berth does not reach (an adopted Swarm's) has."""
    container = ((service.get("TaskTemplate") or {}).get("ContainerSpec")) or {}
    test = (container.get("HealthCheck") or {}).get("Test") or []
    return bool(test) and test[0] != "NONE"


def service_body(
    replica: ContainerSpec,
    replicas: int,
    network: str,
    pinned: str | None = None,
    secrets: Sequence[dict[str, Any]] = (),
    image_id: str | None = None,
) -> SwarmService:
    """The Swarm service that runs ``replicas`` tasks like the container ``replica`` describes.

    The container body's image, command, environment, labels, stop timeout, limits, reservations, a read-only
    root filesystem, mounts and Docker ``Healthcheck`` (a worker's health command takes its place) carry over
    (a named volume is local to the node a task runs on); host port bindings do not (tasks are reached on the overlay network at their own addresses).
    ``pinned``: the node id every task runs on (a placement constraint), so a service's local volume stays
    with it (``strategy: recreate`` with volumes); its own updates then stop a task before starting the next.
    ``secrets``: the ``ContainerSpec.Secrets`` that mount the application's files (``domain/swarm_files.py``).
    ``image_id``: the image's id, for an image Berth put on the nodes itself: a node asks no registry for an
    image named by id (by tag, each task would first try to pull ``berth/...`` from Docker Hub, and run
    whatever image of that name it got there)."""
    if replicas < 0:
        raise ValueError("replicas must be >= 0")
    if not OVERLAY_NAME.fullmatch(network):
        raise ValueError(f"not a network name: {network!r}")
    body = replica.body
    labels = {k: v for k, v in body.get("Labels", {}).items() if k != "berth.replica"}
    if image_id is not None and not re.fullmatch(r"sha256:[0-9a-f]{64}", image_id):
        raise ValueError(f"not an image id: {image_id!r}")
    container: dict[str, Any] = {"Image": image_id or body["Image"], "Env": list(body.get("Env", [])), "Labels": labels}
    if "Cmd" in body:
        container["Args"] = list(body["Cmd"])
    container["Init"] = True
    if replica.health_command:  # a worker's health command: Swarm runs it, a task runs once it passes
        container["HealthCheck"] = {
            "Test": ["CMD", *replica.health_command],
            "Interval": NANO,
            "Timeout": 10 * NANO,
            "Retries": 3,
            "StartPeriod": 0,
        }
    elif body.get("Healthcheck"):  # the service's own Docker healthcheck: Swarm runs it in every task too
        container["HealthCheck"] = dict(body["Healthcheck"])
    if secrets:
        container["Secrets"] = [dict(ref) for ref in secrets]
    container["StopGracePeriod"] = int(body.get("StopTimeout", 10)) * NANO
    host = body.get("HostConfig", {})
    if host.get("Mounts"):  # a named volume is made on the node a task lands on, labelled as Berth's are
        container["Mounts"] = [_swarm_mount(m, labels) for m in host["Mounts"]]
    limits: dict[str, int] = {}
    if "NanoCpus" in host:
        limits["NanoCPUs"] = host["NanoCpus"]
    if "Memory" in host:
        limits["MemoryBytes"] = host["Memory"]
    if host.get("ReadonlyRootfs"):
        container["ReadOnly"] = True
    if host.get("CapAdd"):  # API 1.41: a Swarm task's capabilities, added and dropped as a container's
        container["CapabilityAdd"] = list(host["CapAdd"])
    if host.get("CapDrop"):
        container["CapabilityDrop"] = list(host["CapDrop"])
    reserved: dict[str, int] = {}  # compose's deploy.resources.reservations: Swarm places tasks by them
    if replica.reserved_nano_cpus is not None:
        reserved["NanoCPUs"] = replica.reserved_nano_cpus
    if "MemoryReservation" in host:
        reserved["MemoryBytes"] = host["MemoryReservation"]
    name = replica.name.rsplit("-", 1)[0]  # the container name less its replica number
    service: dict[str, Any] = {
        "Name": name,
        "Labels": labels,
        "TaskTemplate": {
            "ContainerSpec": container,
            "Resources": {"Limits": limits, **({"Reservations": reserved} if reserved else {})},
            "RestartPolicy": {"Condition": "any", "Delay": NANO, "MaxAttempts": 0},
            "Networks": [{"Target": network, "Aliases": [f"{replica.service}"]}],
            "LogDriver": {"Name": "json-file", "Options": {"max-size": "10m", "max-file": "3"}},
        },
        "Mode": {"Replicated": {"Replicas": replicas}},
        "EndpointSpec": {"Mode": "dnsrr"},
    }
    if replica.published:  # bound on the task's node (no routing mesh); the old task stops first
        service["EndpointSpec"]["Ports"] = published_ports.endpoint_ports(replica.published)
        service["UpdateConfig"] = {"Parallelism": 1, "Order": "stop-first"}
    if pinned is not None:
        if not re.fullmatch(r"[a-z0-9]{1,64}", pinned):
            raise ValueError(f"not a Swarm node id: {pinned!r}")
        service["TaskTemplate"]["Placement"] = {"Constraints": [f"node.id=={pinned}"]}
        service["UpdateConfig"] = {"Parallelism": 1, "Order": "stop-first"}
    return SwarmService(name, service, replica.container_port, replica.health_path)


# The create body's keys a Swarm service (API 1.41) has no place for, by the compose key that sets each: a
# deployment that needs one is refused on a Swarm (``uncarried``), never run without it.
UNCARRIED = (
    ("Privileged", "privileged"),
    ("Devices", "devices"),
    ("SecurityOpt", "security_opt"),
    ("PidMode", "pid: host"),
    ("IpcMode", "ipc: host"),
    ("Runtime", "runtime"),
    ("ShmSize", "shm_size"),
    ("Ulimits", "ulimits"),
    ("ExtraHosts", "extra_hosts"),
    ("Dns", "dns"),
    ("Tmpfs", "tmpfs"),
    ("GroupAdd", "group_add"),
    ("Sysctls", "sysctls"),
    ("PidsLimit", "pids_limit"),
)


def uncarried(replica: ContainerSpec) -> list[str]:
    """The compose keys of ``replica`` a Swarm service would not carry (:data:`UNCARRIED`, and a pinned
    ``ipv4_address``: a task's address is the overlay's to give), in a stable order; empty: it runs as it
    would on a server."""
    host = replica.body.get("HostConfig", {})
    keys = [key for field, key in UNCARRIED if host.get(field)]
    endpoints = (replica.body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    if any("IPAMConfig" in e for e in endpoints.values()):
        keys.append("ipv4_address")
    return keys


def refusal(service: str, replica: ContainerSpec) -> str | None:
    """Why the service ``service`` (its replica ``replica``) is not run on a Swarm, naming each key a Swarm
    service cannot carry; None: nothing is lost there."""
    keys = uncarried(replica)
    if not keys:
        return None
    return (
        f"service {service}: a Swarm service cannot carry its {', '.join(keys)}: "
        "place the service on a server, or remove these keys"
    )


def _swarm_mount(mount: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    """A replica's mount as a Swarm task's: a named volume carries the labels of the application's volumes
    (and its driver options, a tmpfs's or a share's, when it has them)."""
    if mount.get("Type") != "volume":
        return dict(mount)
    volume = str(mount["Source"]).removeprefix(docker_volume_name(labels.get(label.APP, ""), ""))
    owner = {k: labels[k] for k in (label.TEAM, label.APP) if k in labels}
    given = dict(mount.get("VolumeOptions") or {})
    return {**mount, "VolumeOptions": {**given, "Labels": {**owner, label.VOLUME: volume, label.MANAGED: "true"}}}


def running_tasks(tasks: list[dict[str, Any]], network: str) -> list[dict[str, str]]:
    """(node id, address on ``network``) of every task that runs and should, from ``GET /tasks``."""
    out = []
    for task in tasks:
        status = task.get("Status") or {}
        if status.get("State") != "running" or (task.get("DesiredState") not in (None, "running")):
            continue
        for attachment in task.get("NetworksAttachments") or []:
            if ((attachment.get("Network") or {}).get("Spec") or {}).get("Name") != network:
                continue
            for address in attachment.get("Addresses") or []:
                out.append({"node": str(task.get("NodeID", "")), "address": str(address).split("/", 1)[0]})
    return out
