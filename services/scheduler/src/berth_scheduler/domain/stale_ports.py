"""The ports an engine restart leaves on a server's Berth bridges with nothing of the engine's behind them, and
the helper that takes them off. Pure.

A container's network namespace can outlive its processes: the kernel ends a namespace whose last process
ended in a deferred cleanup, seconds to tens of seconds later on a busy machine, and a socket its process
left closing (a kept-alive connection, its FIN not yet answered) holds the namespace until the connection
times out, up to a minute. Until then the namespace keeps its veth on the bridge, its address and its MAC,
and answers for them: it answers ARP for the address and refuses connections to it. After an engine restart
the engine hands out the addresses of the containers it stopped again from the lowest (its allocator starts
over), so the replica or Traefik it starts next gets such an address (under Docker before 28, the same MAC
too), and connections to it are refused by the old namespace while the bridge or the neighbour table points
there: seen on a test server as tens of seconds without an answer after an engine restart under load.

After an engine restart the scheduler runs the port sweeper (:func:`port_sweeper_body`) on the server: in
the server's network and process namespaces, it lists each veth on the Berth networks' bridges whose peer is
no interface of a namespace of the engine's containers (read from ``/proc/<pid>/net`` of each child of a
containerd shim of its own engine), looks again ``APART_S`` later (a container being started has its veth
before its first process), and deletes the veths found both times, which takes their peers away with them.
A shim child whose namespace it cannot read stops it before any deletion. A veth whose peer is in the server's
own namespace (a pair a crash made but never moved) is left: it holds no address.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from berth_common import labels as label
from berth_scheduler.domain.lost_tasks import ENGINE_SHIM, OWN_SHIM, host_helper_body

PORT_SWEEPER_NAME = "berth-port-sweeper"
PORT_SWEEPER_LABEL = "berth.port-sweeper"
APART_S = 5  # between the two looks: a starting container's namespace gets its first process sooner
BRIDGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")  # a Linux interface name (15 characters at most)
VETH = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,14}")
# The bridges are the arguments. ``look`` sets ``found`` to each port of theirs (name:peer ifindex) whose peer's
# index is neither an interface index of a namespace of one of the engine's containers (the children of the
# engine's containerd shims, OWN_SHIM) nor of the server's own namespace; a child whose namespace is not
# readable while it is there and not a zombie (one has no namespace) stops the helper (exit 4). Deletes the
# ports found by both looks; prints their names.
PORTS_SCRIPT = (
    'bridges="$*"; ' + OWN_SHIM + "look() { shims=' '; live=' '; "
    "for d in /proc/[0-9]*; do " + ENGINE_SHIM + 'shims="$shims${d#/proc/} "; done; '
    "for d in /proc/[0-9]*; do "
    'read s 2>/dev/null < "$d/stat" || continue; set -- ${s##*) }; '
    'case "$shims" in *" $2 "*) ;; *) continue;; esac; '
    'if m="$(cat "$d/net/igmp" "$d/net/dev_mcast" 2>/dev/null)"; then '
    'live="$live$(printf \'%s\\n\' "$m" | awk \'$1 ~ /^[0-9]+$/ { printf "%s ", $1 }\')"; '
    'elif read s 2>/dev/null < "$d/stat" && set -- ${s##*) } && [ "$1" != Z ]; then '
    'echo "the namespace of process ${d#/proc/} is not readable" >&2; exit 4; fi; done; '
    'for f in /sys/class/net/*/ifindex; do read i 2>/dev/null < "$f" && live="$live$i "; done; '
    "found=' '; for b in $bridges; do for p in /sys/class/net/$b/brif/*; do "
    '[ -e "$p" ] || continue; n="${p##*/}"; '
    'read own 2>/dev/null < "/sys/class/net/$n/ifindex" && read peer 2>/dev/null < "/sys/class/net/$n/iflink" || continue; '
    '[ "$own" != "$peer" ] || continue; '
    'case "$live" in *" $peer "*) continue;; esac; '
    'found="$found$n:$peer "; done; done; }; '
    f'look; first="$found"; [ "$first" = " " ] && exit 0; sleep {APART_S}; look; '
    'for e in $first; do case "$found" in *" $e "*) ;; *) continue;; esac; '
    'if ip link del "${e%%:*}" 2>/dev/null; then echo "${e%%:*}"; fi; done'
)


def berth_bridges(networks: Iterable[Mapping[str, Any]]) -> list[str]:
    """The Linux bridges of the Berth networks among an engine's ``GET /networks`` (bridge driver, labelled
    managed by Berth): the name its options give, else the engine's ``br-`` and the id's first 12 characters;
    sorted, each once. A name that is not an interface name is left out."""
    found = set()
    for net in networks:
        if net.get("Driver") != "bridge" or (net.get("Labels") or {}).get(label.MANAGED) != "true":
            continue
        options = net.get("Options") or {}
        name = str(options.get("com.docker.network.bridge.name") or f"br-{str(net.get('Id') or '')[:12]}")
        if BRIDGE.fullmatch(name) and name != "br-":
            found.add(name)
    return sorted(found)


def port_sweeper_body(bridges: Iterable[str]) -> dict[str, Any]:
    """The ``POST /containers/create`` body of the helper that deletes the stale ports of ``bridges``
    (ValueError for anything but interface names): the lost-task helper's, in the server's network namespace
    with ``NET_ADMIN`` (to delete a veth) instead of ``KILL``."""
    names = sorted(set(bridges))
    if bad := [b for b in names if not BRIDGE.fullmatch(b)]:
        raise ValueError(f"not a bridge name: {bad[0]!r}")
    body = host_helper_body(["sh", "-c", PORTS_SCRIPT, "port-sweeper", *names], {PORT_SWEEPER_LABEL: "true"})
    body["HostConfig"] |= {"NetworkMode": "host", "CapAdd": ["NET_ADMIN"]}
    return body


def deleted(output: str) -> list[str]:
    """The veths the helper said it deleted."""
    return sorted({line for line in output.split() if VETH.fullmatch(line)})
