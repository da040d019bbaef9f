"""Container specs as data: the exact Docker Engine API (1.41) body that creates each replica.

The executor (``adapters/docker.py``) posts these bodies unchanged; tests compare them exactly. Web
replicas publish their port on 127.0.0.1 only, on a host port chosen before creation (an ephemeral port
from the kernel, written into the spec so it survives container restarts: Docker re-allocates a
``HostPort: ""`` binding on every restart, which would leave the proxy pointing at a dead port).

A replica on a remote server publishes no port: it joins the server's Berth network (``SERVER_NETWORK``,
shared with that server's Traefik) with its container name as DNS alias, and its upstream is
``http://<container name>:<port>`` on that network.

A service's named volumes and bind mounts are ``HostConfig.Mounts`` (``domain/volumes.py``). A compose
service runs its own image with its entrypoint, environment (over the application's), user, working
directory, Docker healthcheck and restart policy, on the application's private network (at the address it
pins there, if any); the other networks it joins are connected after creation (``connects``,
``domain/compose.py``). The files it mounts are put
into it before it starts; their digest is its label ``berth.files`` (``domain/app_files.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from berth_common import labels as label
from berth_common.catalogue import ApplicationSpec, ResourceLimits, WebService, WorkerService
from berth_common.fleet import SERVER_NETWORK
from berth_scheduler.domain import app_files, compose, names, placement, port_routes, published_ports, volumes
from berth_scheduler.domain.routing import LOCAL

NANO = 1_000_000_000
MIB = 1024 * 1024
LOG_CONFIG = {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}


@dataclass(frozen=True)
class ContainerSpec:
    """One replica to create: its name, the create body, and what the scheduler needs to check it."""

    name: str
    service: str
    kind: str  # "web" | "worker"
    replica: int
    body: dict[str, Any] = field(hash=False)
    container_port: int | None = None
    host_port: int | None = None
    health_path: str | None = None
    health_command: tuple[str, ...] | None = None
    server_id: str = LOCAL
    # networks joined after creation, before the start: (network, aliases)
    connects: tuple[tuple[str, tuple[str, ...]], ...] = ()
    completes: bool = False  # a one-shot service (restart "no"): exited 0 counts as ready
    # more routed ports (``domain/port_routes.py``): (container port, its host port on ``local``, else None)
    more_ports: tuple[tuple[int, int | None], ...] = ()
    # CPU cores reserved for it, in billionths: a Swarm task's reservation (no single-engine equivalent)
    reserved_nano_cpus: int | None = None
    # ports published on the server (``domain/published_ports.py``): (container port, server port, protocol)
    published: published_ports.Published = ()

    @property
    def remote(self) -> bool:
        return self.server_id != LOCAL

    @property
    def upstream(self) -> str | None:
        if self.remote:
            return names.network_upstream(self.name, self.container_port) if self.container_port else None
        return names.upstream(self.host_port) if self.host_port is not None else None

    def upstream_of(self, port: int) -> str | None:
        """The upstream of a routed container port (the service's own, or one of ``more_ports``)."""
        if port == self.container_port:
            return self.upstream
        host = dict(self.more_ports).get(port)
        if self.remote:
            return names.network_upstream(self.name, port) if port in dict(self.more_ports) else None
        return names.upstream(host) if host is not None else None


def labels(
    application_id: str, service: str, deployment_id: str, replica: int, kind: str, team_id: str | None = None
) -> dict[str, str]:
    team = {label.TEAM: team_id} if team_id else {}
    return {
        **team,
        label.APP: application_id,
        label.SERVICE: service,
        label.DEPLOYMENT: deployment_id,
        label.REPLICA: str(replica),
        label.KIND: kind,
        label.MANAGED: "true",
    }


def environment(spec: ApplicationSpec, service: WebService | WorkerService) -> list[str]:
    """``NAME=value`` in the snapshot's order, the service's own variables over the application's (a name
    in both keeps the application's place); web services also get ``PORT`` unless the user set it.

    Secret values arrive sealed; they are unsealed here, the one place the container needs them.
    """
    own = {e.name: e for e in service.env}
    merged = [own.pop(e.name, e) for e in spec.env] + list(own.values())
    env = [f"{e.name}={e.reveal()}" for e in merged]
    if isinstance(service, WebService) and all(e.name != "PORT" for e in merged):
        env.append(f"PORT={service.port}")
    return env


def restart_policy(policy: str, retries: int | None = None) -> dict[str, Any]:
    """Docker's restart policy; ``on-failure`` restarts ``retries`` times (0: no limit; None: 5)."""
    if policy == "on-failure":
        return {"Name": "on-failure", "MaximumRetryCount": 5 if retries is None else retries}
    return {"Name": policy}


def host_config(
    limits: ResourceLimits,
    policy: str,
    port_bindings: dict[str, list[dict[str, str]]] | None,
    retries: int | None = None,
) -> dict[str, Any]:
    hc: dict[str, Any] = {
        "RestartPolicy": restart_policy(policy, retries),
        "Init": True,  # docker-init forwards SIGTERM to the app and reaps zombies
        "LogConfig": LOG_CONFIG,
    }
    if limits.cpus is not None:
        hc["NanoCpus"] = round(limits.cpus * NANO)
    if limits.memory_mb is not None:
        hc["Memory"] = limits.memory_mb * MIB
    if port_bindings:
        hc["PortBindings"] = port_bindings
    return hc


def container_spec(
    application_id: str,
    deployment_id: str,
    spec: ApplicationSpec,
    service: WebService | WorkerService,
    replica: int,
    image: str,
    host_port: int | None = None,
    team_id: str | None = None,
    server_id: str = LOCAL,
    more_host_ports: Mapping[int, int] | None = None,
) -> ContainerSpec:
    """The create body of one replica. Web replicas on ``local`` need ``host_port`` (127.0.0.1 only), and a
    host port for each more routed port (``more_host_ports``: container port -> host port); on another
    server they publish nothing and are reached on its Berth network by their name."""
    name = names.container_name(spec.name, service.name, deployment_id, replica)
    limits = service.limits or spec.limits
    body: dict[str, Any] = {"Image": service.image.image if service.image is not None else image}
    if service.entrypoint is not None:
        body["Entrypoint"] = list(service.entrypoint)
    if service.command is not None:
        body["Cmd"] = list(service.command)
    compose.put_secret_args(body, service.secret_args)
    body["Env"] = environment(spec, service)
    if service.user is not None:
        body["User"] = service.user
    if service.working_dir is not None:
        body["WorkingDir"] = service.working_dir
    if service.tty:
        body["Tty"] = True  # its logs are then one raw stream (``adapters/docker_logs.py`` reads both kinds)
    if service.stdin_open:
        body["OpenStdin"] = True
    if service.healthcheck is not None:
        body["Healthcheck"] = compose.healthcheck_body(service.healthcheck)
    body["Labels"] = labels(application_id, service.name, deployment_id, replica, service.kind, team_id)
    files = app_files.digest(spec, service)
    if files is not None:  # written into the container before it starts (``domain/app_files.py``)
        body["Labels"][app_files.LABEL] = files
    body["StopTimeout"] = service.stop_timeout_s if service.stop_timeout_s is not None else spec.stop_timeout_s
    port_bindings = None
    remote = server_id != LOCAL
    more: list[tuple[int, int | None]] = []
    if isinstance(service, WebService):
        key = f"{service.port}/tcp"
        body["ExposedPorts"] = {key: {}}
        if remote:
            host_port = None
        elif host_port is None:
            raise ValueError(f"web replica {name} needs a host port")
        else:
            names.upstream(host_port)  # validates the range
            port_bindings = {key: [{"HostIp": "127.0.0.1", "HostPort": str(host_port)}]}
        for port in port_routes.more_ports(service):
            body["ExposedPorts"][f"{port}/tcp"] = {}
            found = None if remote else (more_host_ports or {}).get(port)
            if port_bindings is not None:
                if found is None:
                    raise ValueError(f"web replica {name} needs a host port for its port {port}")
                names.upstream(found)
                port_bindings[f"{port}/tcp"] = [{"HostIp": "127.0.0.1", "HostPort": str(found)}]
            more.append((port, found))
    restart = service.restart or spec.restart_policy
    body["HostConfig"] = host_config(limits, restart, port_bindings, service.restart_retries)
    published_ports.put_bindings(body, service.published_ports)
    mounts = volumes.mounts(application_id, service, spec.volume_options)
    if mounts:
        body["HostConfig"]["Mounts"] = mounts
    if service.privileges is not None:
        body["HostConfig"].update(compose.privileges_host_config(service.privileges))
    if service.host_limits is not None:
        body["HostConfig"].update(compose.limits_host_config(service.host_limits))
        if service.host_limits.stop_signal is not None:
            body["StopSignal"] = service.host_limits.stop_signal
    networks: list[tuple[str, tuple[str, ...]]] = []  # the first in the create body, the others connected
    internal = service.internal_network
    if spec.private_network:
        own = (service.name, *(a for a in service.aliases if a != service.name))
        if internal != "only":
            networks.append((compose.network_name(application_id), own))
        if internal is not None:
            networks.append((compose.internal_network_name(application_id), own))
    if internal == "only":
        pass  # no way out: neither a server's Berth network nor the team's databases' network
    elif remote:
        networks.append((SERVER_NETWORK, (name,)))
    elif spec.network is not None:
        networks.append((spec.network, (f"{service.name}.{spec.name}",)))
    if networks:
        first, aliases = networks[0]
        endpoint: dict[str, Any] = {"Aliases": list(aliases)}
        if service.ipv4_address is not None and first == compose.network_name(application_id):
            endpoint["IPAMConfig"] = {"IPv4Address": service.ipv4_address}  # in the subnet the network pins
        body["NetworkingConfig"] = {"EndpointsConfig": {first: endpoint}}
    replica_spec = ContainerSpec(
        name=name,
        service=service.name,
        kind=service.kind,
        replica=replica,
        body=body,
        server_id=server_id,
        connects=tuple(networks[1:]),
        completes=spec.private_network and restart == "no" and isinstance(service, WorkerService),
        reserved_nano_cpus=compose.reserved_nano_cpus(service.host_limits),
        published=published_ports.published(service.published_ports),
    )
    if isinstance(service, WebService):
        return replace(
            replica_spec,
            container_port=service.port,
            host_port=host_port,
            health_path=service.health_path,
            more_ports=tuple(more),
        )
    health_command = tuple(service.health_command) if service.health_command is not None else None
    return replace(replica_spec, health_command=health_command)


DEFINITION_DEPLOYMENT = "00000000"  # the deployment a definition is computed for (any fixed id would do)


def definition(
    application_id: str,
    spec: ApplicationSpec,
    service: WebService | WorkerService,
    image: str,
    team_id: str | None = None,
    server_id: str = LOCAL,
) -> str:
    """The hash of the container a deployment of ``spec`` makes for ``service`` (``image``: the
    deployment's; a service with its own image runs that), the same for every deployment that would make
    the same container (``domain/compose.py``)."""
    port = 1 if isinstance(service, WebService) and server_id == LOCAL else None
    more = dict.fromkeys(port_routes.more_ports(service), 1)
    cs = container_spec(application_id, DEFINITION_DEPLOYMENT, spec, service, 1, image, port, team_id, server_id, more)
    return compose.definition_hash(cs.body, cs.connects)


def replica_slots(spec: ApplicationSpec) -> list[tuple[WebService | WorkerService, int]]:
    """Every (service, replica number) a deployment of ``spec`` runs, in a stable order (``placement``
    says on which server each runs)."""
    return [(slot.service, slot.replica) for slot in placement.slots(spec)]
