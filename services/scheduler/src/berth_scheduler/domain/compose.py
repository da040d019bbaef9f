"""Compose applications as data: the application's private network, a service's Docker healthcheck, the
start layers of ``depends_on`` and what a dependency's container state says about its condition, and the
definition of a service's containers (to keep a stateful service running when it did not change). Pure.

- Network: every service of an application with ``private_network`` joins ``berth-app-<application id>``
  (made on each server that runs one of its services), reachable there by its service name and its
  aliases; the networks a replica joins besides (the team's network of its linked databases on ``local``,
  a remote server's Berth network) are connected after its creation (the engine's API 1.41 takes one
  network in a create body). A service on compose networks with ``internal: true`` joins the application's
  internal network (``berth-app-<application id>-internal``, Docker's ``Internal``: nothing forwarded out) as well
  (``also``), or that network only (``only``: then no other network either, so it reaches neither the
  internet nor the proxy, and only the services on that network reach it). The subnet, gateway and MTU
  the compose file pins are the private network's (``network_extra``), and a service's pinned address its
  address there; a network made before with others is reported, not changed (``network_change``).
- Start order: layer by layer (``catalogue.start_layers``); a layer starts once each dependency of its
  services meets its condition on every replica: ``service_started`` (running, or ran and exited),
  ``service_healthy`` (Docker's health status ``healthy``), ``service_completed_successfully`` (exited 0).
  A dependency that cannot meet it any more (exited, unhealthy, no healthcheck, a non-zero exit) fails the
  deployment at once with a reason naming the service.
- Definition: a hash of everything that makes a service's container (the create body and the networks it
  joins), with the deployment and host port set to fixed values, so two deployments compare equal when
  they would create the same container.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from berth_common.catalogue import (
    ApplicationSpec,
    Healthcheck,
    HostLimits,
    NetworkOptions,
    Privileges,
    SecretArg,
    start_layers,
)
from berth_scheduler.domain import readiness

NS = 1_000_000_000
MIB = 1024 * 1024
NETWORK_PREFIX = "berth-app-"
MTU_OPTION = "com.docker.network.driver.mtu"


def network_name(application_id: str) -> str:
    """``berth-app-<application id>``: the application's private network on every server it runs on."""
    return f"{NETWORK_PREFIX}{application_id}"


def internal_network_name(application_id: str) -> str:
    """``berth-app-<application id>-internal``: the application's internal network (Docker's ``Internal``:
    nothing forwarded out) on every server that runs a service on it."""
    return f"{NETWORK_PREFIX}{application_id}-internal"


def network_extra(options: NetworkOptions | None) -> dict[str, Any]:
    """The ``POST /networks/create`` keys of the private network's pinned options: ``IPAM`` (its subnet
    and gateway) and ``Options`` (its MTU); empty when the application pins none."""
    if options is None:
        return {}
    extra: dict[str, Any] = {}
    if options.subnet is not None:
        pool = {"Subnet": options.subnet, **({"Gateway": options.gateway} if options.gateway else {})}
        extra["IPAM"] = {"Driver": "default", "Config": [pool]}
    if options.mtu is not None:
        extra["Options"] = {"com.docker.network.driver.mtu": str(options.mtu)}
    return extra


def network_change(network: str, server_id: str, extra: dict[str, Any], found: dict[str, Any]) -> str | None:
    """The deployment log's line when the existing network ``found`` (its inspection; empty: just made)
    has another subnet, gateway or MTU than ``extra`` pins (Docker cannot change them on a network); None
    when it has them, or nothing is pinned."""
    if not found or not extra:
        return None
    config = (found.get("IPAM") or {}).get("Config") or []
    pools = [{k: v for k, v in c.items() if k in ("Subnet", "Gateway") and v} for c in config]
    wanted = (extra.get("IPAM") or {}).get("Config") or []
    mtu = (extra.get("Options") or {}).get(MTU_OPTION)
    has_mtu = (found.get("Options") or {}).get(MTU_OPTION)
    if (not wanted or pools == wanted) and (mtu is None or mtu == has_mtu):
        return None
    return (
        f"[preparing] network {network} on server {server_id} keeps what it was made with ({_shown(pools, has_mtu)}), "
        f"not what the compose file pins ({_shown(wanted, mtu)}): Docker cannot change a network; it is made anew "
        "once the application is removed"
    )


def _shown(pools: list[dict[str, Any]], mtu: str | None) -> str:
    subnets = [p["Subnet"] + (f" gateway {p['Gateway']}" if p.get("Gateway") else "") for p in pools if "Subnet" in p]
    return f"subnet {', '.join(subnets) or 'of the engine'}, MTU {mtu or 'of the engine'}"


def connect_body(container: str, aliases: tuple[str, ...]) -> dict[str, Any]:
    """The body that connects ``container`` to a network with ``aliases``."""
    return {"Container": container, "EndpointConfig": {"Aliases": list(aliases)}}


def put_secret_args(body: dict[str, Any], args: Sequence[SecretArg]) -> None:
    """Put each secret argument's value in place of its argument in the create body's ``Cmd`` or
    ``Entrypoint`` (changed in place): the service's argv holds the argument's text with the reference, the
    value is revealed only here (``catalogue/secret_args.py``). An index past the argv is ignored (the api
    makes them together)."""
    for arg in args:
        argv = body.get("Cmd" if arg.argv == "command" else "Entrypoint")
        if isinstance(argv, list) and arg.index < len(argv):
            argv[arg.index] = arg.reveal()


def healthcheck_body(check: Healthcheck) -> dict[str, Any]:
    """The create body's ``Healthcheck``: the test as argv (``CMD``), the timing in nanoseconds."""
    body: dict[str, Any] = {"Test": ["CMD", *check.test]}
    if check.interval_s is not None:
        body["Interval"] = round(check.interval_s * NS)
    if check.timeout_s is not None:
        body["Timeout"] = round(check.timeout_s * NS)
    if check.retries is not None:
        body["Retries"] = check.retries
    if check.start_period_s is not None:
        body["StartPeriod"] = round(check.start_period_s * NS)
    return body


def limits_host_config(given: HostLimits) -> dict[str, Any]:
    """The ``HostConfig`` keys of a service's own container settings: ``/dev/shm``, ulimits, dropped
    capabilities, /etc/hosts lines, resolvers, tmpfs directories, supplementary groups, ``net.*`` sysctls and
    the process limit (its stop signal is the body's ``StopSignal``), a read-only root filesystem and the
    memory reserved for it."""
    hc: dict[str, Any] = {}
    if given.shm_size_bytes is not None:
        hc["ShmSize"] = given.shm_size_bytes
    if given.ulimits:
        hc["Ulimits"] = [{"Name": u.name, "Soft": u.soft, "Hard": u.hard} for u in given.ulimits]
    if given.cap_drop:
        hc["CapDrop"] = list(given.cap_drop)
    if given.extra_hosts:
        hc["ExtraHosts"] = list(given.extra_hosts)
    if given.dns:
        hc["Dns"] = list(given.dns)
    if given.tmpfs:
        hc["Tmpfs"] = dict(given.tmpfs)
    if given.group_add:
        hc["GroupAdd"] = list(given.group_add)
    if given.sysctls:
        hc["Sysctls"] = dict(given.sysctls)
    if given.pids_limit is not None:
        hc["PidsLimit"] = given.pids_limit
    if given.read_only_rootfs:
        hc["ReadonlyRootfs"] = True  # its files and secret files come from a volume then (``app_files``)
    if given.reservations is not None and given.reservations.memory_mb is not None:
        hc["MemoryReservation"] = given.reservations.memory_mb * MIB
    return hc


def reserved_nano_cpus(given: HostLimits | None) -> int | None:
    """The CPU cores reserved for a service, in billionths: a Swarm's ``Resources.Reservations.NanoCPUs``
    (a single engine has no CPU reservation: ``NanoCpus`` is a limit)."""
    if given is None or given.reservations is None or given.reservations.cpus is None:
        return None
    return round(given.reservations.cpus * NS)


def privileges_host_config(given: Privileges) -> dict[str, Any]:
    """The ``HostConfig`` keys of the privileges an administrator allowed."""
    hc: dict[str, Any] = {}
    if given.privileged:
        hc["Privileged"] = True
    if given.cap_add:
        hc["CapAdd"] = list(given.cap_add)
    if given.devices:
        hc["Devices"] = [
            {"PathOnHost": d.source, "PathInContainer": d.target, "CgroupPermissions": d.permissions}
            for d in given.devices
        ]
    if given.security_opt:
        hc["SecurityOpt"] = list(given.security_opt)
    if given.pid_host:
        hc["PidMode"] = "host"
    if given.ipc_host:
        hc["IpcMode"] = "host"
    if given.runtime is not None:
        hc["Runtime"] = given.runtime
    return hc


def layers(spec: ApplicationSpec) -> list[list[str]]:
    """The application's services in start layers (one layer when none depends on another)."""
    return start_layers({s.name: [d.service for d in s.depends_on] for s in spec.services})


def waits_before(spec: ApplicationSpec, layer: list[str]) -> list[tuple[str, str]]:
    """(dependency, condition) the services of ``layer`` wait for, each once, in a stable order."""
    found = {(d.service, d.condition) for s in spec.services if s.name in layer for d in s.depends_on}
    return sorted(found)


@dataclass(frozen=True)
class Look:
    """What one look at a dependency's container says: ``met``, or ``failed`` (a reason), or waiting
    (``seen``: what was seen)."""

    met: bool = False
    failed: str | None = None
    seen: str = ""


def condition_look(condition: str, service: str, info: dict[str, Any] | None) -> Look:
    """Whether the container ``info`` (an inspection, None: gone) of ``service`` meets ``condition``."""
    if info is None:
        return Look(failed=f"service {service}: its container is gone")
    state = info.get("State") or {}
    status = str(state.get("Status") or "")
    code = state.get("ExitCode")
    ended = status in ("exited", "dead")
    if condition == "service_started":
        if state.get("Running") or ended:
            return Look(met=True)
        return Look(seen=f"service {service} is {status or 'not started'}")
    if condition == "service_completed_successfully":
        if ended and code == 0:
            return Look(met=True)
        if ended or (status == "restarting" and code not in (0, None)):
            return Look(failed=f"service {service} did not complete successfully: it exited with code {code}")
        return Look(seen=f"service {service} is {status or 'not started'}, not completed yet")
    health = state.get("Health")
    if health is None:
        return Look(failed=f"service {service} has no healthcheck, which service_healthy needs")
    if health.get("Status") == "healthy":
        return Look(met=True)
    if ended:
        return Look(failed=f"service {service} exited with code {code} before it was healthy")
    last = readiness.health_log_text(health)
    detail = f" ({last})" if last else ""
    if health.get("Status") == "unhealthy":
        return Look(failed=f"service {service} is unhealthy{detail}")
    return Look(seen=f"service {service} is {health.get('Status') or 'starting'}{detail}")


def definition_hash(body: dict[str, Any], connects: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    """A hash of a container's definition (its create body and the networks it joins besides)."""
    text = json.dumps({"body": body, "connects": [[n, list(a)] for n, a in connects]}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
