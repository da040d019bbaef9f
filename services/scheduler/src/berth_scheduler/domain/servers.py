"""Validating a server: what was found on it, turned into checks a person can act on.

Pure: the facts come from :mod:`berth_scheduler.adapters.server_probe`; this module decides which checks
pass and what each says. A server is ``ready`` when every check passes, ``unreachable`` when it could not
be reached or logged into (including a changed host key), and ``invalid`` when it was reached but cannot
run Berth's containers (no Docker engine, an engine too old, a user who may not use the Docker socket, a
full disk). The remote commands the probe runs are built here as argv, tested by exact comparison.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

# the df rule is shared: the scheduler and the builder measure a data root's room with it too
from berth_common.docker.data_root import disk_command as disk_command
from berth_common.docker.data_root import parse_df as parse_df

DOCKER_SOCKET = "/var/run/docker.sock"
MIN_DOCKER = (20, 10)  # Engine API 1.41, the version Berth speaks
MIN_FREE_BYTES = 2 * 1024**3
ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm"}

ServerState = Literal["ready", "unreachable", "invalid"]
CheckName = Literal["reachable", "authentication", "host_key", "docker", "docker_socket", "docker_version", "disk"]


@dataclass(frozen=True)
class Check:
    name: CheckName
    ok: bool
    detail: str


@dataclass
class ServerFacts:
    """What the probe found. ``connect_error`` set (with its ``error_kind``) means nothing past it was read."""

    address: str
    connect_error: str | None = None
    error_kind: Literal["ssh", "unreachable", "authentication", "host_key_changed"] | None = None
    host_key: str | None = None
    fingerprint: str | None = None
    socket_present: bool = False
    socket_check_error: str = ""  # the presence check itself failed (not "absent"): its exit and words
    socket_usable: bool = False
    socket_error: str = ""
    docker_version: str | None = None
    api_version: str | None = None
    architecture: str | None = None
    docker_root: str | None = None
    free_bytes: int | None = None
    disk_error: str = ""


@dataclass(frozen=True)
class ServerValidation:
    state: ServerState
    checks: list[Check] = field(default_factory=list)
    host_key: str | None = None
    fingerprint: str | None = None
    docker_version: str | None = None
    architecture: str | None = None
    free_bytes: int | None = None

    @property
    def reason(self) -> str:
        """The first failed check's detail: the headline of a server that is not ready."""
        return next((c.detail for c in self.checks if not c.ok), "")


def socket_commands(socket: str = DOCKER_SOCKET) -> tuple[list[str], list[str]]:
    """(is the socket there, may this user write to it): each exits 0 for yes and 1 for no; any other
    status (none at all, 2 and up) means the check itself did not run."""
    return ["test", "-S", socket], ["test", "-w", socket]


def docker_version_tuple(version: str) -> tuple[int, int] | None:
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _gib(n: int) -> str:
    return f"{n / 1024**3:.1f} GiB"


def evaluate(facts: ServerFacts) -> ServerValidation:
    """The checks for ``facts``, in the order a person fixes them, and the resulting state."""
    architecture = ARCHITECTURES.get(facts.architecture or "", facts.architecture)

    def result(state: ServerState, checks: list[Check]) -> ServerValidation:
        return ServerValidation(
            state, checks, facts.host_key, facts.fingerprint, facts.docker_version, architecture, facts.free_bytes
        )

    if facts.connect_error is not None:
        name: CheckName = "reachable"
        if facts.error_kind == "authentication":
            name = "authentication"
        elif facts.error_kind == "host_key_changed":
            name = "host_key"
        return result("unreachable", [Check(name, False, facts.connect_error)])
    checks = [
        Check("reachable", True, f"{facts.address} answered over SSH"),
        Check("authentication", True, "the key was accepted"),
        Check("host_key", True, f"host key {facts.fingerprint or '?'}"),
    ]
    if facts.socket_check_error:
        why = facts.socket_check_error
        checks.append(Check("docker", False, f"could not look for the Docker socket at {DOCKER_SOCKET} ({why})"))
        return result("invalid", checks)
    if not facts.socket_present:
        checks.append(Check("docker", False, f"no Docker engine: {DOCKER_SOCKET} does not exist; install Docker"))
        return result("invalid", checks)
    checks.append(Check("docker", True, f"Docker socket at {DOCKER_SOCKET}"))
    if not facts.socket_usable or facts.docker_version is None:
        why = facts.socket_error or "permission denied"
        checks.append(
            Check(
                "docker_socket",
                False,
                f"this user may not use the Docker socket ({why}): connect as root or add the user to the docker group",
            )
        )
        return result("invalid", checks)
    checks.append(Check("docker_socket", True, "the user may use the Docker socket"))
    version = docker_version_tuple(facts.docker_version)
    if version is None or version < MIN_DOCKER:
        checks.append(
            Check(
                "docker_version",
                False,
                f"Docker {facts.docker_version} is older than {MIN_DOCKER[0]}.{MIN_DOCKER[1]}: upgrade the engine",
            )
        )
    else:
        checks.append(
            Check("docker_version", True, f"Docker {facts.docker_version} (API {facts.api_version}) on {architecture}")
        )
    if facts.free_bytes is None:
        checks.append(Check("disk", False, f"free disk space could not be read: {facts.disk_error or 'no answer'}"))
    elif facts.free_bytes < MIN_FREE_BYTES:
        checks.append(
            Check(
                "disk",
                False,
                f"only {_gib(facts.free_bytes)} free on {facts.docker_root}: at least {_gib(MIN_FREE_BYTES)} needed",
            )
        )
    else:
        checks.append(Check("disk", True, f"{_gib(facts.free_bytes)} free on {facts.docker_root}"))
    return result("ready" if all(c.ok for c in checks) else "invalid", checks)
