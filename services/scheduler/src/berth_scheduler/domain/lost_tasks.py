"""A container whose process runs on unknown to its engine (a lost task), and the helper that ends it. Pure.

An engine that crashes while it starts a container (dockerd and its containerd killed, the container's shim
living on) can come back with the container recorded as not running while its process runs on: the new
containerd still holds the task. Starting the container again is then refused (``task <id>: already
exists``, ``id already in use``), stopping it is refused (it is not running, as far as the engine knows),
and removing it leaves the process running with its network address, which the engine hands to the next
container it starts: two containers answer at one address, and a route to one reaches the other (an old
version, or another application).

Berth ends such a process where the engine cannot: a short-lived helper (:func:`reaper_body`: Berth's busybox
in the host's process namespace, every capability dropped but ``KILL``, no network, its root read-only)
sends SIGKILL to each process whose control group names the container's id (``/docker/<id>`` under the
cgroupfs driver, ``docker-<id>.scope`` under systemd's) and prints each one it ended. With the task's
process gone, the engine's own start of that container clears the stale task and starts it afresh.

A container removed without being started again (a failed deployment's undo, an application's removal, a
pre-deploy job's container once its deployment left ``starting``) is given the helper only when the data says
its start may have left such a task (:func:`suspicion`), not on every removal: the helper is a container of
its own, run on the server, for each.

An engine's crash can leave more than that: a container whose start it interrupted, or whose task it lost,
and that is then removed (by whoever made it: a replica, a database, a helper, a server's Traefik) leaves its
process running (its command, or runc's first process waiting for a start that never comes) with its network
namespace, and so its address and MAC (Docker derives the MAC from the address) on the server's bridge. The
engine gives that address to the next container it starts; the bridge then carries the MAC on either port,
and connections to the new container are refused by the stale namespace. After an engine restart the
scheduler runs the sweeper (:func:`sweeper_body`) on the server: it ends the processes of the engine's
containerd shims whose container the engine no longer has; the port sweeper (``domain/stale_ports.py``) then
takes their ports off the bridge without waiting for the kernel to end their namespaces.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from berth_common import labels as label
from berth_common.images import BUSYBOX_IMAGE

CONTAINER_ID = re.compile(r"[0-9a-f]{64}")
REAPER_LABEL = "berth.lost-task-reaper"  # on the helper: the container whose lost task it ends
# the engine's words when it refuses to start a container whose task it lost (containerd's conflict)
LOST = re.compile(r"task [0-9a-f]{64}: already exists|\bid already in use\b", re.IGNORECASE)
# SIGKILL to each process whose control group names the container ($1, 64 hex digits: checked before);
# prints the ended process ids, one per line
SCRIPT = (
    'for d in /proc/[0-9]*; do p="${d#/proc/}"; '
    'if grep -q -- "$1" "$d/cgroup" 2>/dev/null && kill -9 "$p" 2>/dev/null; then echo "$p"; fi; done'
)


def is_lost(message: str) -> bool:
    """Whether the engine's refusal to start (or remove) a container says it still holds the container's task."""
    return LOST.search(message) is not None


@dataclass(frozen=True)
class Removing:
    """A container about to be removed, as its rollout and its engine know it."""

    name: str
    container_id: str
    state: str  # the engine's ``State`` of it in its list: created, running, exited, dead, ...
    start_broke: bool = False  # a start call of it broke with the engine (recorded: ``containers.start_broke``)


def inspected(name: str, info: Mapping[str, Any], start_broke: bool = False) -> Removing:
    """The container ``name`` about to be removed, as the engine's inspect document ``info`` has it (its
    ``State.Status``: the list's ``State``), with what its record says of its start. A pre-deploy job's
    container, which has no container record, is read this way: the mark of its broken start is on its
    deployment's record (``deployments.job_start_broke``), the job's container being the deployment's one
    ``berth-predeploy-<deployment id>``."""
    state = info.get("State") or {}
    return Removing(name, str(info.get("Id") or ""), str(state.get("Status") or ""), start_broke)


def suspicion(c: Removing) -> str | None:
    """Why the removal of ``c`` may leave a lost task's process running (then the helper ends it first), or
    None. Only a start that the engine's going away interrupted leaves one, and the engine keeps no trace
    of such a start (the container is ``created`` as if never started, no error recorded): the scheduler
    records the start call that broke with the engine (the connection dropped or no answer), and the
    container gets the helper when the engine, back, does not report it running. One it reports running
    has its task known again, and the engine's own forced removal kills it.

    A container that ran, one never started, or one whose start the engine answered (started or refused)
    left no task behind: its removal is the engine's alone. A removal the engine refuses because it still
    holds the task (:func:`is_lost`) gets the helper too, then is tried again (the caller)."""
    if c.start_broke and c.state != "running":
        return "its start broke with the engine"
    return None


def needing_helper(containers: Iterable[Removing]) -> list[tuple[Removing, str]]:
    """The containers whose removal the helper goes before (:func:`suspicion`), each with the reason."""
    return [(c, why) for c in containers if (why := suspicion(c)) is not None]


# Sets ``shim`` to the helper's parent, a containerd shim (else exit 3), and ``addr`` and ``ns`` to that shim's
# -address and -namespace: those of its engine's containerd (the positional parameters are overwritten)
OWN_SHIM = (
    'read s < /proc/$$/stat; set -- ${s##*) }; shim="$2"; '
    'mine="$(tr "\\0" " " < /proc/$shim/cmdline) "; '
    'case "$mine" in *" -address "?*" -namespace "?*|*" -namespace "?*" -address "?*) ;; '
    '*) echo "the helper\'s parent is not a containerd shim: $mine" >&2; exit 3;; esac; '
    'addr="${mine##* -address }"; addr="${addr%% *}"; ns="${mine##* -namespace }"; ns="${ns%% *}"; '
)
# Inside a loop over /proc/<pid> as ``d``: go on to the next unless ``d`` is another containerd shim of the
# helper's engine (OWN_SHIM's ``addr`` and ``ns``); leaves its arguments, space-separated, in ``a``
ENGINE_SHIM = (
    'read c 2>/dev/null < "$d/comm" && [ "$c" = containerd-shim ] && [ "${d#/proc/}" != "$shim" ] || continue; '
    'a="$(tr "\\0" " " 2>/dev/null < "$d/cmdline") "; '
    'case "$a" in *" -address $addr "*" -namespace $ns "*|*" -namespace $ns "*" -address $addr "*) ;; *) continue;; esac; '
)
SWEEPER_NAME = "berth-orphan-sweeper"
SWEEPER_LABEL = "berth.orphan-sweeper"
SETTLE_S = 2  # a process started this close to the engine's list is spared (the clocks' whole seconds)
# SIGKILL to each child of a containerd shim of the helper's own engine (the shim's -address and -namespace
# are those of the helper's own shim, its parent) whose container is not one of those the engine listed ($2
# on) and that started before the list ($1, seconds since the epoch on the server's clock, less SETTLE_S: a
# container made after the list is not in it); prints the ended process ids. A process's start is field 22 of
# /proc/<pid>/stat in clock ticks since boot (USER_HZ: 100 on every Linux architecture), read after the command
# name, which may hold spaces; a shim's command name is cut to 15 characters by the kernel
SWEEP_SCRIPT = (
    't="$1"; shift; known=" $* "; '
    + OWN_SHIM
    + 'now=$(date +%s); read up _ < /proc/uptime; boot=$(( now - ${up%.*} )); orphans=" "; '
    "for d in /proc/[0-9]*; do " + ENGINE_SHIM + 'id="${a##* -id }"; id="${id%% *}"; '
    'case "$id" in ""|*[!0-9a-f]*) continue;; esac; '
    'case "$known" in *" $id "*) continue;; esac; '
    'orphans="$orphans${d#/proc/} "; done; '
    '[ "$orphans" = " " ] && exit 0; '
    "for d in /proc/[0-9]*; do "
    'read s < "$d/stat" 2>/dev/null || continue; set -- ${s##*) }; '
    'case "$orphans" in *" $2 "*) ;; *) continue;; esac; '
    f'if [ $(( boot + ${{20}} / 100 )) -lt $(( t - {SETTLE_S} )) ] && kill -9 "${{d#/proc/}}" 2>/dev/null; '
    'then echo "${d#/proc/}"; fi; done'
)


def host_helper_body(cmd: list[str], labels: dict[str, str]) -> dict[str, Any]:
    """A helper's ``POST /containers/create`` body: Berth's busybox in the host's process namespace, every
    capability dropped but ``KILL``, no network, its root read-only. In the host's control group namespace, so
    that it reads every process's control group path whole (in a namespace of its own, under cgroup v2, it
    reads another container's as ``/../<id>``). Unconfined by AppArmor: Docker's default profile lets a
    container signal only processes under that profile, and a container's first process is not under it
    before it starts the container's command."""
    return {
        "Image": BUSYBOX_IMAGE,
        "Cmd": cmd,
        "Entrypoint": [],
        "User": "0:0",
        "AttachStdout": True,
        "AttachStderr": True,
        "Tty": False,
        "Labels": {label.MANAGED: "true", **labels},
        "HostConfig": {
            "PidMode": "host",
            "CgroupnsMode": "host",
            "NetworkMode": "none",
            "ReadonlyRootfs": True,
            "CapDrop": ["ALL"],
            "CapAdd": ["KILL"],
            "SecurityOpt": ["no-new-privileges", "apparmor=unconfined"],
            "AutoRemove": False,
        },
    }


def sweeper_body(listed_at: int, known: Iterable[str]) -> dict[str, Any]:
    """The ``POST /containers/create`` body of the helper that ends the processes of the engine's containers it
    no longer has: ``known`` the ids of every container the engine listed (ValueError for anything but full
    ids), ``listed_at`` the server's clock (seconds since the epoch) just before that list."""
    ids = sorted(set(known))
    if bad := [i for i in ids if not CONTAINER_ID.fullmatch(i)]:
        raise ValueError(f"not a container id: {bad[0]!r}")
    if listed_at <= 0:
        raise ValueError(f"not a time: {listed_at!r}")
    return host_helper_body(["sh", "-c", SWEEP_SCRIPT, "sweeper", str(listed_at), *ids], {SWEEPER_LABEL: "true"})


def engine_seconds(system_time: str) -> int:
    """The whole seconds since the epoch of an engine's ``SystemTime`` (``GET /info``: RFC 3339, nanoseconds,
    ``Z`` or an offset); ValueError when it is not one."""
    text = system_time.strip()
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)", text)
    if m is None:
        raise ValueError(f"not an engine's time: {system_time!r}")
    zone = "+00:00" if m[2] == "Z" else m[2]
    return int(datetime.fromisoformat(m[1] + zone).timestamp())


def reaper_body(container_id: str) -> dict[str, Any]:
    """The ``POST /containers/create`` body of the helper that ends the processes of ``container_id``'s lost
    task (ValueError for anything but a full container id: the helper matches it in control group paths)."""
    if not CONTAINER_ID.fullmatch(container_id):
        raise ValueError(f"not a container id: {container_id!r}")
    return host_helper_body(["sh", "-c", SCRIPT, "reaper", container_id], {REAPER_LABEL: container_id})


def reaper_name(container_id: str) -> str:
    return f"berth-reaper-{container_id[:12]}"


def ended(output: str) -> list[int]:
    """The process ids the helper said it ended."""
    return sorted({int(line) for line in output.split() if line.isdigit()})
