"""Which compose keys Berth carries, which it lists as not carried, and which it refuses: pure data.

A compose key is either translated (``CARRIED``), accepted and listed in the translation's ``notes`` as not
carried because Berth decides it itself (``NOTED``: container names, labels, logging), allowed only when the
administrator allowed it for the team (``DANGEROUS``: each gives a container power over its server), or
refused by name (every other key: ``ComposeRefusal`` naming the spot, never silently dropped).
"""

from __future__ import annotations

import re
from typing import Any

from berth_common.catalogue.composed import RUNTIME_PATTERN

# Keys of a service Berth translates into its own spec (see ``services.py``).
CARRIED = frozenset(
    {
        "image",
        "build",
        "command",
        "entrypoint",
        "environment",
        "ports",
        "expose",
        "volumes",
        "healthcheck",
        "depends_on",
        "deploy",
        "restart",
        "networks",
        "mem_limit",
        "cpus",
        "stop_grace_period",
        "user",
        "working_dir",
        "shm_size",
        "ulimits",
        "cap_drop",
        "tty",
        "stdin_open",
        "extra_hosts",
        "dns",
        "tmpfs",
        "group_add",
        "sysctls",
        "stop_signal",
        "pids_limit",
        "init",  # Berth runs every container with docker-init
        "links",  # the linked service reachable under the link's alias (``translate.py``)
        "read_only",  # a read-only root filesystem (``runtime.py``)
        "secrets",  # secret files of Berth's variables (``secret_files.py``)
        "profiles",  # the parser leaves out a service compose does not start (``profiles.py``)
        "volumes_from",  # the other service's mounts at the same paths (``volumes_from.py``)
    }
)
# Accepted but not carried: Berth names containers and labels them itself, and collects their logs.
NOTED = {
    "container_name": "Berth names containers itself (berth-<app>-<service>-<deployment>-<n>)",
    "hostname": "the service is reached on the application's network by its service name",
    "labels": "Berth labels containers itself (berth.*)",
    "logging": "Berth collects container logs itself",
    "pull_policy": "Berth pulls by the application's pull policy",
    "platform": "the server's engine pulls and runs the image for its own platform",
}
# Refused unless the administrator allowed the key for the team (``BERTH_COMPOSE_ALLOW``); then carried as
# given in the translation's ``allowed``. For network_mode, pid and ipc only the value ``host`` is meant.
DANGEROUS = {
    "privileged": "gives the container every capability of the server",
    "network_mode": "network_mode host shares the server's network (and bypasses the application's network)",
    "devices": "gives the container the server's devices",
    "cap_add": "adds kernel capabilities to the container",
    "pid": "pid host shares the server's process table",
    "ipc": "ipc host shares the server's IPC namespace",
    "security_opt": "changes the container's security profile (seccomp, AppArmor, SELinux)",
}
HOST_VALUED = frozenset({"network_mode", "pid", "ipc"})

TOP_LEVEL = frozenset({"name", "services", "networks", "volumes", "secrets"})
DEPLOY_KEYS = frozenset({"resources", "replicas", "placement", "restart_policy", "mode"})
BUILD_KEYS = frozenset({"context", "dockerfile", "args"})
HEALTH_KEYS = frozenset({"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"})
PORT_KEYS = frozenset({"target", "published", "protocol", "mode", "host_ip", "app_protocol", "name"})
CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")
RESTARTS = ("no", "always", "unless-stopped", "on-failure")


class ComposeRefusal(ValueError):
    """A compose file Berth cannot carry: ``spot`` is a JSON pointer inside the compose model (e.g.
    ``services/db/privileged``), ``why`` what to do. The api answers 422 at ``/body/compose/<spot>``."""

    def __init__(self, spot: str, why: str) -> None:
        super().__init__(f"{spot}: {why}")
        self.spot = spot
        self.why = why

    def __str__(self) -> str:
        return f"{self.spot}: {self.why}"


def present(value: Any) -> bool:
    """Whether a key of the normalised model says something (the parser writes empty ones: null, {}, false)."""
    if value is None or value is False:
        return False
    return not (isinstance(value, dict | list | str) and not value)


def not_carried(spot: str, what: str = "") -> ComposeRefusal:
    detail = f" ({what})" if what else ""
    return ComposeRefusal(spot, f"Berth does not carry this compose key{detail}; remove it")


def dangerous(spot: str, key: str) -> ComposeRefusal:
    return ComposeRefusal(
        spot,
        f"refused: {DANGEROUS[key]}; an administrator can allow {key} for the team (BERTH_COMPOSE_ALLOW_TEAMS; BERTH_COMPOSE_ALLOW: every team)",
    )


RUNTIME_RE = re.compile(RUNTIME_PATTERN)
DEFAULT_RUNTIME = "runc"  # Docker's own: always allowed


def runtime(spot: str, value: Any, allowed: frozenset[str]) -> str:
    """A service's ``runtime`` (the engine's OCI runtime: ``runsc``, ``nvidia``): one the administrator
    allowed for the team (``BERTH_COMPOSE_RUNTIMES_TEAMS``; ``BERTH_COMPOSE_RUNTIMES``: every team) or
    Docker's own, ``runc``; refused by name otherwise."""
    text = str(value)
    if not RUNTIME_RE.fullmatch(text):
        raise ComposeRefusal(spot, f"{text!r} is not a runtime's name")
    if text != DEFAULT_RUNTIME and text not in allowed:
        raise ComposeRefusal(
            spot,
            f"refused: the runtime {text} is a program of the server the engine would run the container with (a "
            "GPU's, a sandbox's), installed and vetted by its administrator, who can allow it for the team "
            "(BERTH_COMPOSE_RUNTIMES_TEAMS; BERTH_COMPOSE_RUNTIMES: every team)",
        )
    return text
