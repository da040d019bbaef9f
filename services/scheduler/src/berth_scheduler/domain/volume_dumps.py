"""Volume backups (pure): the short-lived helper containers that read a Docker volume as a tar stream and
write one back, as Engine API create bodies, and what is stopped for consistency meanwhile.

A helper runs the local busybox image (``berth/busybox:1``, delivered to a server that lacks it) with the
volume mounted at ``/v`` (read-only for a backup), no network, and ``tar`` as its argv (never a shell):
``tar -C /v -cf - .`` writes the volume to stdout; ``tar -C /v -xf -`` reads it from stdin. Over an existing
volume (confirmed), the volume is emptied first by ``find /v -mindepth 1 -maxdepth 1 -exec rm -rf {} +``
(find runs rm itself), so the result is the backup, not a mix. Every helper runs with the platform's
background limits (``berth_common.background``: lower CPU and I/O weight than applications, a memory
limit), so a backup never starves the applications serving on the same server.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from berth_common import labels as label
from berth_common.background import DEFAULT as DEFAULT_LIMITS
from berth_common.background import BackgroundLimits
from berth_common.images import BUSYBOX_IMAGE

HELPER_IMAGE = BUSYBOX_IMAGE
MOUNT = "/v"
HELPER_LABEL = "berth.volume-helper"  # on every helper container: what it is for (backup, restore, empty)
DUMP_ARGV = ["tar", "-C", MOUNT, "-cf", "-", "."]
RESTORE_ARGV = ["tar", "-C", MOUNT, "-xf", "-"]
EMPTY_ARGV = ["find", MOUNT, "-mindepth", "1", "-maxdepth", "1", "-exec", "rm", "-rf", "{}", "+"]
EXTENSION = "tar"
# the first field of a backup's ``uploads`` entry that records a container stopped for consistency
STOPPED_ENTRY = "stopped"
_NAME_SAFE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,40}$")


def helper_name(purpose: str, run_id: str) -> str:
    """``berth-volume-<purpose>-<id>`` (the id hashed when it is not a safe container name part): one name
    per backup or restore, so a repeated run finds (and removes) the helper an earlier one left."""
    part = run_id if _NAME_SAFE.match(run_id) else hashlib.sha256(run_id.encode()).hexdigest()[:24]
    return f"berth-volume-{purpose}-{part}"


def helper_body(
    volume: str,
    argv: list[str],
    purpose: str,
    *,
    read_only: bool,
    stdin: bool,
    limits: BackgroundLimits = DEFAULT_LIMITS,
) -> dict[str, Any]:
    """The ``POST /containers/create`` body of a helper running ``argv`` on ``volume`` mounted at ``/v``."""
    return {
        "Image": HELPER_IMAGE,
        "Cmd": list(argv),
        "Entrypoint": [],
        "User": "0:0",
        "WorkingDir": "/",
        "AttachStdin": stdin,
        "AttachStdout": True,
        "AttachStderr": True,
        "OpenStdin": stdin,
        "StdinOnce": stdin,
        "Tty": False,
        "NetworkDisabled": True,
        "Labels": {label.MANAGED: "true", HELPER_LABEL: purpose},
        "HostConfig": {
            "NetworkMode": "none",
            "AutoRemove": False,
            "Mounts": [{"Type": "volume", "Source": volume, "Target": MOUNT, "ReadOnly": read_only}],
            **limits.host_config(),
        },
    }


def dump_body(volume: str, limits: BackgroundLimits = DEFAULT_LIMITS) -> dict[str, Any]:
    return helper_body(volume, DUMP_ARGV, "backup", read_only=True, stdin=False, limits=limits)


def restore_body(volume: str, limits: BackgroundLimits = DEFAULT_LIMITS) -> dict[str, Any]:
    return helper_body(volume, RESTORE_ARGV, "restore", read_only=False, stdin=True, limits=limits)


def empty_body(volume: str, limits: BackgroundLimits = DEFAULT_LIMITS) -> dict[str, Any]:
    return helper_body(volume, EMPTY_ARGV, "empty", read_only=False, stdin=False, limits=limits)


def volume_body(volume: str, application_id: str, team_id: str) -> dict[str, Any]:
    """The ``POST /volumes/create`` body of a volume a restore makes (labelled as the application's)."""
    labels = {label.TEAM: team_id, label.APP: application_id, label.MANAGED: "true"}
    return {"Name": volume, "Driver": "local", "Labels": labels}


def service_selector(application_id: str, service: str) -> dict[str, str]:
    """The labels of an application service's replicas (the containers stopped for consistency)."""
    return {label.APP: application_id, label.SERVICE: service}


def foreign(labels: dict[str, str] | None, team_id: str) -> bool:
    """True when what carries ``labels`` belongs to another team (never touched for this one)."""
    owner = (labels or {}).get(label.TEAM)
    return owner is not None and owner != team_id
