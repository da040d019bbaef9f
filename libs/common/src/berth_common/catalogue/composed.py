"""What a service of a compose application has beyond a single-image service (part of the application's
spec, ``catalogue/specs.py``): its entrypoint, network aliases, ``depends_on`` with a condition, a Docker
healthcheck with its timing, user, working directory, restart policy, stop grace period and the privileges an administrator
allowed for the team, the application's files it mounts (``files``) (``privileges``: compose's ``privileged``, ``cap_add``, ``devices``, ``security_opt``,
``pid: host``, ``ipc: host``; the api refuses them otherwise). Each is left out of a dump when
unset, so a snapshot without them dumps as before. The service's own image and environment are fields of
``WebService`` and ``WorkerService`` themselves (they use ``ImageSource`` and ``EnvVar``).

A compose application's services run on the application's own private network, each reachable there by
its name and its ``aliases``; ``depends_on`` orders their start (``start_layers``): a service starts once
every service it depends on is started, healthy (its Docker healthcheck passes) or completed successfully
(exited 0), as the condition says.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from berth_common.catalogue.compose_runtime import InternalNetwork, Reservations, SecretFiles
from berth_common.catalogue.compose_storage import canonical_ipv4
from berth_common.catalogue.files import FileMount
from berth_common.catalogue.mounts import Mounted
from berth_common.catalogue.published_ports import PublishedPort, published_refusal
from berth_common.catalogue.secret_args import SecretArg
from berth_common.catalogue.spec_base import Spec
from berth_common.values import Slug

__all__ = [
    "ALIAS_PATTERN",
    "RUNTIME_PATTERN",
    "Alias",
    "Composed",
    "Condition",
    "DependsOn",
    "Device",
    "Healthcheck",
    "HostLimits",
    "Privileges",
    "RestartPolicy",
    "Ulimit",
    "dependency_refusal",
    "start_layers",
]

# A network alias: DNS labels joined by dots; ``_`` is accepted as compose service names use it
# (``plausible_db``), which Docker's embedded DNS resolves.
ALIAS_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
ALIAS_PATTERN = rf"^{ALIAS_LABEL}(?:\.{ALIAS_LABEL})*$"
Alias = Annotated[str, Field(max_length=253, pattern=ALIAS_PATTERN)]
Condition = Literal["service_started", "service_healthy", "service_completed_successfully"]
RestartPolicy = Literal["no", "always", "unless-stopped", "on-failure"]
USER_PATTERN = r"^[A-Za-z0-9_.-]{1,64}(?::[A-Za-z0-9_.-]{1,64})?$"
# ``name:address`` of an /etc/hosts line (Docker's ExtraHosts); ``host-gateway``: the server's bridge address
EXTRA_HOST_PATTERN = r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252}):(?:host-gateway|[0-9A-Fa-f.:]{2,45})$"
RUNTIME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
STOP_SIGNAL_PATTERN = r"^(?:SIG[A-Z0-9+-]{2,12}|[A-Z][A-Z0-9+-]{1,12}|[0-9]{1,2})$"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def absolute_dir(value: str) -> str:
    """An absolute path without ``..`` or control characters."""
    if not value.startswith("/"):
        raise ValueError("a working directory is an absolute path (starts with /)")
    if _CONTROL.search(value) or ".." in value.split("/"):
        raise ValueError("a working directory cannot contain '..' or control characters")
    return value


Argv = Annotated[list[Annotated[str, Field(max_length=8192)]], Field(max_length=256)]


class DependsOn(Spec):
    """This service starts once ``service`` is started, healthy or completed successfully (exited 0)."""

    service: Slug
    condition: Condition = "service_started"


class Healthcheck(Spec):
    """A Docker healthcheck: ``test`` runs in the container (argv, no shell) every ``interval_s``; the
    container is unhealthy after ``retries`` failures in a row; failures during ``start_period_s`` do not
    count. None: Docker's default."""

    test: Annotated[list[Annotated[str, Field(max_length=8192)]], Field(min_length=1, max_length=256)]
    interval_s: float | None = Field(default=None, gt=0, le=86400, exclude_if=lambda v: v is None)
    timeout_s: float | None = Field(default=None, gt=0, le=86400, exclude_if=lambda v: v is None)
    retries: int | None = Field(default=None, ge=1, le=1000, exclude_if=lambda v: v is None)
    start_period_s: float | None = Field(default=None, ge=0, le=86400, exclude_if=lambda v: v is None)


class Device(Spec):
    """A device of the server (``source``) given to the container at ``target``."""

    source: Annotated[str, Field(min_length=2, max_length=4096), AfterValidator(absolute_dir)]
    target: Annotated[str, Field(min_length=2, max_length=4096), AfterValidator(absolute_dir)]
    permissions: str = Field(default="rwm", pattern=r"^[rwm]{1,3}$")


class Privileges(Spec):
    """Powers over the server an administrator allowed for the team (each gives the container some)."""

    privileged: bool = Field(default=False, exclude_if=lambda v: not v)
    cap_add: list[Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{0,63}$")]] = Field(
        default_factory=list, max_length=64, exclude_if=lambda v: not v
    )
    devices: list[Device] = Field(default_factory=list, max_length=64, exclude_if=lambda v: not v)
    security_opt: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:=/,+-]{1,512}$")]] = Field(
        default_factory=list, max_length=16, exclude_if=lambda v: not v
    )
    pid_host: bool = Field(default=False, exclude_if=lambda v: not v)
    ipc_host: bool = Field(default=False, exclude_if=lambda v: not v)
    # compose's ``runtime``: the OCI runtime the engine runs it with (``runsc``, ``nvidia``: Docker's Runtime)
    runtime: str | None = Field(default=None, pattern=RUNTIME_PATTERN, exclude_if=lambda v: v is None)


class Ulimit(Spec):
    """A resource limit of the container's processes (``nofile``, ``nproc`` ...; -1: unlimited)."""

    name: str = Field(pattern=r"^[a-z]{2,16}$")
    soft: int = Field(ge=-1, le=2**31 - 1)
    hard: int = Field(ge=-1, le=2**31 - 1)


class HostLimits(Spec):
    """Settings of the service's own container that give it no power over the server: the size of its
    ``/dev/shm``, its processes' ulimits, and capabilities it drops (never adds: ``cap_add`` is a privilege);
    names in its ``/etc/hosts`` (``extra_hosts``: ``name:address``, ``host-gateway`` the server's bridge
    address), its resolvers (``dns``), in-memory directories (``tmpfs``: path -> mount options, counted in its
    memory), supplementary groups of its user (``group_add``), its own network stack's sysctls (``net.*``
    only), the signal that stops it (``stop_signal``) and how many processes it may run (``pids_limit``)."""

    shm_size_bytes: int | None = Field(default=None, ge=1, le=64 * 1024**3, exclude_if=lambda v: v is None)
    ulimits: list[Ulimit] = Field(default_factory=list, max_length=16, exclude_if=lambda v: not v)
    cap_drop: list[Annotated[str, Field(pattern=r"^(ALL|(CAP_)?[A-Z_]{2,32})$")]] = Field(
        default_factory=list, max_length=64, exclude_if=lambda v: not v
    )
    extra_hosts: list[Annotated[str, Field(pattern=EXTRA_HOST_PATTERN)]] = Field(
        default_factory=list, max_length=64, exclude_if=lambda v: not v
    )
    dns: list[Annotated[str, Field(pattern=r"^[0-9A-Fa-f.:]{2,45}$")]] = Field(
        default_factory=list, max_length=8, exclude_if=lambda v: not v
    )
    tmpfs: dict[
        Annotated[str, Field(max_length=4096), AfterValidator(absolute_dir)],
        Annotated[str, Field(pattern=r"^[A-Za-z0-9=,_.-]{0,256}$")],
    ] = Field(default_factory=dict, max_length=32, exclude_if=lambda v: not v)
    group_add: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]] = Field(
        default_factory=list, max_length=32, exclude_if=lambda v: not v
    )
    sysctls: dict[
        Annotated[str, Field(pattern=r"^net\.[A-Za-z0-9_./-]{1,128}$")], Annotated[str, Field(max_length=256)]
    ] = Field(default_factory=dict, max_length=32, exclude_if=lambda v: not v)
    stop_signal: str | None = Field(default=None, pattern=STOP_SIGNAL_PATTERN, exclude_if=lambda v: v is None)
    pids_limit: int | None = Field(default=None, ge=-1, le=2**31 - 1, exclude_if=lambda v: v is None)  # -1: none
    # compose's ``read_only``: its root filesystem read-only (Docker's ReadonlyRootfs); its mounts stay as given
    read_only_rootfs: bool = Field(default=False, exclude_if=lambda v: not v)
    # compose's ``deploy.resources.reservations`` (``catalogue/compose_runtime.py``)
    reservations: Reservations | None = Field(default=None, exclude_if=lambda v: v is None)


class Composed(Mounted):
    """The fields a compose service adds to a web or worker service (all unset for other applications)."""

    entrypoint: Argv | None = Field(default=None, exclude_if=lambda v: v is None)  # None: the image's
    aliases: list[Alias] = Field(default_factory=list, max_length=32, exclude_if=lambda v: not v)
    depends_on: list[DependsOn] = Field(default_factory=list, max_length=20, exclude_if=lambda v: not v)
    healthcheck: Healthcheck | None = Field(default=None, exclude_if=lambda v: v is None)
    user: str | None = Field(default=None, pattern=USER_PATTERN, exclude_if=lambda v: v is None)
    working_dir: Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(absolute_dir)] | None = Field(
        default=None, exclude_if=lambda v: v is None
    )
    restart: RestartPolicy | None = Field(default=None, exclude_if=lambda v: v is None)  # None: the app's
    # the restarts ``on-failure`` makes (Docker's MaximumRetryCount; 0: no limit; None: Berth's 5): compose's
    # ``restart: on-failure:<n>`` or ``deploy.restart_policy.max_attempts``; other policies do not count them
    restart_retries: int | None = Field(default=None, ge=0, le=2**31 - 1, exclude_if=lambda v: v is None)
    privileges: Privileges | None = Field(default=None, exclude_if=lambda v: v is None)
    # compose's ``stop_grace_period``: SIGTERM, then SIGKILL after this (None: the application's)
    stop_timeout_s: int | None = Field(default=None, ge=0, le=3600, exclude_if=lambda v: v is None)
    # the application's files (``catalogue/files.py``) this service's containers get, each at its target
    files: list[FileMount] = Field(default_factory=list, max_length=64, exclude_if=lambda v: not v)
    # arguments of ``command`` / ``entrypoint`` holding a secret variable: their values, sealed on the wire
    secret_args: list[SecretArg] = Field(default_factory=list, max_length=64, exclude_if=lambda v: not v)
    host_limits: HostLimits | None = Field(default=None, exclude_if=lambda v: v is None)
    # compose's ``tty`` / ``stdin_open``: a pseudo-terminal, and stdin kept open (Docker's Tty / OpenStdin),
    # for images that wait on a console (a game server's, ClickHouse's client tools)
    tty: bool = Field(default=False, exclude_if=lambda v: not v)
    stdin_open: bool = Field(default=False, exclude_if=lambda v: not v)
    # compose's ``secrets``: each a read-only file of one secret value (``catalogue/compose_runtime.py``)
    secret_files: SecretFiles = Field(default_factory=list, exclude_if=lambda v: not v)
    # on compose networks with ``internal: true``: the application's internal network only, or also (None: no)
    internal_network: InternalNetwork | None = Field(default=None, exclude_if=lambda v: v is None)
    # compose's ``ports:`` published on the server (``catalogue/published_ports.py``): one replica, recreated
    published_ports: list[PublishedPort] = Field(default_factory=list, max_length=64, exclude_if=lambda v: not v)
    # compose's ``ipv4_address``: its address on the application's private network (in its pinned subnet)
    ipv4_address: Annotated[str, AfterValidator(canonical_ipv4)] | None = Field(
        default=None, exclude_if=lambda v: v is None
    )

    @model_validator(mode="after")
    def _secret_targets(self) -> Composed:
        targets = [f.target for f in self.secret_files]
        if len(set(targets)) != len(targets):
            raise ValueError("two secret files of a service cannot share a target")
        return self

    @model_validator(mode="after")
    def _published(self) -> Composed:
        refusal = published_refusal(
            self.published_ports, int(getattr(self, "replicas", 1)), list(getattr(self, "servers", []))
        )
        if refusal is not None:
            raise ValueError(refusal)
        return self


def dependency_refusal(services: Sequence[tuple[str, Sequence[str], Sequence[str]]]) -> str | None:
    """Why the services' ``depends_on`` and ``aliases`` cannot run, or None. ``services``: (name, the
    services it depends on, its aliases). A dependency names another existing service, the dependencies
    have no cycle, and an alias is neither another service's name nor another service's alias."""
    known = [name for name, _, _ in services]
    owner: dict[str, str] = {name: name for name in known}
    for name, deps, aliases in services:
        for dep in deps:
            if dep == name:
                return f"service {name} depends on itself"
            if dep not in known:
                return f"service {name} depends on {dep}, which is not a service of the application"
        for alias in aliases:
            if owner.setdefault(alias, name) != name:
                return f"the alias {alias} of service {name} is already the name or an alias of {owner[alias]}"
    try:
        start_layers({name: deps for name, deps, _ in services})
    except ValueError as exc:
        return str(exc)
    return None


def start_layers(depends: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """The services in start layers, in the order given within a layer: every service comes after each
    service it depends on. Raises ``ValueError`` naming the services of a cycle."""
    pending = {name: set(deps) for name, deps in depends.items()}
    layers: list[list[str]] = []
    done: set[str] = set()
    while pending:
        ready = [name for name, deps in pending.items() if deps <= done]
        if not ready:
            raise ValueError(f"depends_on has a cycle between {', '.join(sorted(pending))}")
        layers.append(ready)
        done.update(ready)
        for name in ready:
            del pending[name]
    return layers
