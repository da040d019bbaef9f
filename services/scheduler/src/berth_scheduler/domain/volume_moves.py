"""Moving a named volume's data with its service, as data: which volumes a deployment moves from one server
to another, the helper containers that read and write them, and the Engine API calls of the copy.

A named volume is a Docker volume on each server that runs a service mounting it (``volumes.py``). When a
deployment places a volume on a server that the previous deployment did not place it on, and no longer
places it on a server the previous one did (a drained server, a placement change), the data goes with it:
the first server left (in the previous placement's order) is the source of every new one. A volume kept on
a server is not copied to it (each server keeps its own, as before); a volume only added to a server (a
service spread on one server more) starts empty there, as before.

The copy goes through two helper containers, created and never started (the Engine API reads and writes a
stopped container's files): one on the source server mounting the volume read-only, made from the image
an old replica there runs; one on the target mounting it, made from the image the new replicas run. The
source's ``GET /containers/{id}/archive`` tar stream is sent as it arrives to the target's
``PUT /containers/{id}/archive`` (owners kept: ``copyUIDGID``), never held whole in memory. The volume on
the source stays there: volumes are never deleted implicitly.

The copies of different volumes are independent and run at once (a bounded number: the scheduler's
``volume_move_concurrency``); the moves of one volume to several targets share its source's helper and run one
after another (``copy_groups``). Each copy writes its progress into the deployment's log, at most one line
every few seconds (``ProgressPacer``, ``progress_line``), and ends at the scheduler's
``volume_move_timeout_s``.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from berth_common import labels as label
from berth_common.catalogue import ApplicationSpec, docker_volume_name, servers_of
from berth_common.image_delivery import API, EngineCall

MOUNT = "/berth-volume"  # where a helper mounts the volume; the tar's root entry is its base name
MOVE_LABEL = "berth.volume-move"  # on a helper: ``source`` or ``target``
Side = Literal["source", "target"]


@dataclass(frozen=True)
class Move:
    """The data of ``volume`` goes from server ``source`` to server ``target``; ``services``: the services of
    the new deployment mounting it (their old replicas stop before the copy, as ``strategy: recreate``)."""

    volume: str
    source: str
    target: str
    services: tuple[str, ...]


def _placed(spec: ApplicationSpec) -> dict[str, list[str]]:
    """Each named volume's servers, in the spec's order."""
    out: dict[str, list[str]] = {}
    for svc in spec.services:
        for v in svc.volumes:
            where = out.setdefault(v.name, [])
            where += [s for s in servers_of(svc) if s not in where]
    return out


def moves(before: ApplicationSpec | None, after: ApplicationSpec) -> list[Move]:
    """The volume data a deployment of ``after`` moves, coming after the live deployment of ``before``
    (None: nothing runs, nothing moves)."""
    if before is None:
        return []
    old, new = _placed(before), _placed(after)
    out = []
    for volume, servers in new.items():
        left = [s for s in old.get(volume, []) if s not in servers]
        fresh = [s for s in servers if s not in old.get(volume, [])]
        if not left:
            continue
        users = tuple(svc.name for svc in after.services if any(v.name == volume for v in svc.volumes))
        out += [Move(volume, left[0], target, users) for target in fresh]
    return out


def moved_services(found: Iterable[Move]) -> list[str]:
    """The services whose old replicas stop before the copy, in order, once each."""
    return list(dict.fromkeys(s for m in found for s in m.services))


def stopped_on(found: Iterable[Move], recreated: Iterable[str]) -> dict[str, frozenset[str] | None]:
    """Service -> the servers whose old replicas stop before the new ones start (None: every server).

    A service of ``strategy: recreate`` (``recreated``) stops everywhere. A service stopped only because its
    volume data moves stops on the servers the data leaves (each move's source): its replicas on the servers
    it keeps go on serving and are replaced as in a rolling deployment, so only the part that moves pays
    the downtime."""
    out: dict[str, frozenset[str] | None] = {svc: None for svc in recreated}
    for m in found:
        for svc in m.services:
            where = out.get(svc, frozenset())
            if where is not None:
                out[svc] = where | {m.source}
    return out


def stops(scope: dict[str, frozenset[str] | None], service: str, server: str) -> bool:
    """Whether the old replica of ``service`` on ``server`` stops before the new ones start (``stopped_on``)."""
    if service not in scope:
        return False
    where = scope[service]
    return where is None or server in where


def helper_name(deployment_id: str, volume: str, side: Side) -> str:
    return f"berth-move-{deployment_id[:12]}-{volume}-{side}"


def helper_body(application_id: str, deployment_id: str, volume: str, image: str, side: Side) -> dict[str, Any]:
    """The ``POST /containers/create`` body of a helper (never started: ``Cmd`` is only a placeholder an
    image without one needs); labelled with the deployment, so its undo removes a leftover."""
    return {
        "Image": image,
        "Cmd": ["berth-volume-move"],
        "Labels": {
            label.APP: application_id,
            label.DEPLOYMENT: deployment_id,
            label.MANAGED: "true",
            MOVE_LABEL: side,
        },
        "HostConfig": {
            "NetworkMode": "none",
            "Mounts": [
                {
                    "Type": "volume",
                    "Source": docker_volume_name(application_id, volume),
                    "Target": MOUNT,
                    "ReadOnly": side == "source",
                }
            ],
        },
    }


def read_call(helper: str) -> EngineCall:
    """The volume's content as a tar stream (root entry ``berth-volume/``)."""
    return EngineCall("GET", f"{API}/containers/{helper}/archive", (("path", MOUNT),))


def write_call(helper: str) -> EngineCall:
    """The tar stream extracted at ``/``: into the volume mounted at ``MOUNT``, owners and modes kept."""
    return EngineCall(
        "PUT", f"{API}/containers/{helper}/archive", (("path", "/"), ("copyUIDGID", "1")), "application/x-tar"
    )


def holds_files(head: bytes) -> bool:
    """Whether the first bytes of a volume's tar stream (``read_call``) show an entry besides the volume's
    own directory (a stream cut short is read as far as it goes)."""
    names = []
    try:
        with tarfile.open(fileobj=io.BytesIO(head), mode="r|") as tar:
            for member in tar:
                names.append(member.name)
                if len(names) > 1:
                    break
    except (tarfile.TarError, EOFError):
        pass
    return any(n.strip("/") != MOUNT.strip("/") for n in names)


def kept_note(found: Iterable[Move]) -> str:
    """What the deployment says about the volumes left where they were."""
    left = list(dict.fromkeys((m.volume, m.source) for m in found))
    return "; ".join(f"volume {v} stays on server {s} (volumes are never deleted implicitly)" for v, s in left)


def unreachable_reason(found: Iterable[Move], silent: Iterable[str], application_id: str) -> str:
    """Why a deployment cannot move the data of volumes whose source server (in ``silent``) does not answer:
    each volume and its servers named ("" when every source answers)."""
    dead = set(silent)
    stuck = [m for m in found if m.source in dead]
    if not stuck:
        return ""
    each = "; ".join(
        f"volume {m.volume} ({docker_volume_name(application_id, m.volume)}) from server {m.source} to server "
        f"{m.target}"
        for m in stuck
    )
    servers = ", ".join(dict.fromkeys(m.source for m in stuck))
    return (
        f"server {servers} does not answer: the data of its named volumes cannot be copied ({each}); "
        "bring the server back, or drain it again with abandon_volume_data to start these volumes empty"
    )


def abandoned_note(found: Iterable[Move]) -> str:
    """What the deployment says when the volumes leaving a server start empty (``abandon_volume_data``)."""
    return "; ".join(
        f"volume {m.volume} starts empty on server {m.target} (abandon_volume_data: its data on server {m.source} "
        "is not copied)"
        for m in found
    )


def copy_groups(found: Iterable[Move]) -> list[list[Move]]:
    """The moves in groups: the groups are copied at once, the moves of a group one after another (those of
    one volume, which read through the same helper on its source), each in the order given."""
    groups: dict[str, list[Move]] = {}
    for m in found:
        groups.setdefault(m.volume, []).append(m)
    return list(groups.values())


def size_text(size: int) -> str:
    """A byte count for a person: ``512 B``, ``1.5 KiB``, ``32.0 MiB``, ``2.25 GiB``."""
    if size < 1024:
        return f"{size} B"
    for unit, scale in (("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40)):
        if size < scale * 1024 or unit == "TiB":
            value = size / scale
            return f"{value:.2f} {unit}" if unit in ("GiB", "TiB") else f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def progress_line(m: Move, copied: int, seconds: float) -> str:
    """The deployment log's line on a copy under way."""
    return (
        f"[starting] volume {m.volume}: {size_text(copied)} copied so far from server {m.source} to server "
        f"{m.target} ({seconds:.0f}s)"
    )


def timeout_reason(m: Move, limit_s: float) -> str:
    """Why a copy that ran out of time failed (the limit is the scheduler's ``volume_move_timeout_s``)."""
    return (
        f"the data of volume {m.volume} could not be copied from server {m.source} to server {m.target}: the copy "
        f"did not finish within {limit_s:g}s (the scheduler's BERTH_VOLUME_MOVE_TIMEOUT_S)"
    )


@dataclass
class ProgressPacer:
    """When a copy's next progress line is due: ``every_s`` seconds after its start, then at least ``every_s``
    after the line before (the clock is the caller's)."""

    every_s: float
    started: float
    _last: float | None = field(default=None, repr=False)

    def due(self, now: float) -> bool:
        """Whether a line is due at ``now`` (then the next one is ``every_s`` later)."""
        if now - (self.started if self._last is None else self._last) < self.every_s:
            return False
        self._last = now
        return True
