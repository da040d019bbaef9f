"""A compose service's ``read_only`` and ``deploy.resources.reservations``: settings of its own container
(part of its ``host_limits``): pure.

- ``read_only``: the container's root filesystem is read-only (Docker's ``ReadonlyRootfs``); its volumes,
  bind mounts, tmpfs directories and the application's files it mounts stay as given (the scheduler binds
  those files read-only from their volume then: an archive cannot be put into a read-only layer).
- ``reservations``: ``memory`` is Docker's ``MemoryReservation`` (a soft limit the engine shrinks the
  container to when the server's memory is short; at most its memory limit); ``cpus`` has no equivalent on
  a single engine (``NanoCpus`` is a limit, not a reservation): it is carried for a Swarm, which counts it
  when it places a task, and noted. ``devices`` (GPUs) give the container the server's devices: refused by
  name, as ``devices`` is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from berth_api.domain.compose.keys import ComposeRefusal, not_carried, present

MIB = 1024 * 1024
MIN_MEMORY_MB = 6  # Docker's smallest memory reservation (and limit)


def _reservations(name: str, svc: Mapping[str, Any], notes: list[str]) -> dict[str, Any]:
    spot = f"services/{name}/deploy/resources/reservations"
    given = ((svc.get("deploy") or {}).get("resources") or {}).get("reservations") or {}
    for key in given:
        if key == "devices" and present(given[key]):
            raise not_carried(f"{spot}/devices", "a device reservation gives the container the server's devices")
        if key not in ("cpus", "memory") and present(given[key]):
            raise not_carried(f"{spot}/{key}")
    out: dict[str, Any] = {}
    if present(given.get("memory")):
        out["memory_mb"] = max(MIN_MEMORY_MB, math.ceil(int(given["memory"]) / MIB))
        limit = ((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}
        memory: Any = limit.get("memory", svc.get("mem_limit"))
        if present(memory) and int(given["memory"]) > int(memory):
            raise ComposeRefusal(f"{spot}/memory", "a memory reservation is at most the service's memory limit")
    if present(given.get("cpus")) and float(given["cpus"]) > 0:
        out["cpus"] = float(given["cpus"])
        notes.append(
            f"{spot}/cpus: kept for a Swarm, which reserves the cores where it places a task; a single engine "
            "has no CPU reservation (a CPU limit is deploy.resources.limits.cpus)"
        )
    return out


def runtime_options(name: str, svc: Mapping[str, Any], notes: list[str]) -> dict[str, Any]:
    """The service's ``read_only_rootfs`` and ``reservations`` (empty when it sets neither); raises
    ``ComposeRefusal`` naming the spot."""
    out: dict[str, Any] = {}
    if svc.get("read_only") is True:
        out["read_only_rootfs"] = True
    reserved = _reservations(name, svc, notes)
    if reserved:
        out["reservations"] = reserved
    return out
