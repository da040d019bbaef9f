"""The overlay probe of a Swarm: how Berth's readiness check reaches a task on a node it does not reach.

A task's overlay address answers only from inside the overlay network. On a node Berth reaches over SSH the
check goes to the task's ``docker_gwbridge`` address (``adapters/swarm_probe.py``); on any other node (an
adopted Swarm's worker) it is made from the overlay probe instead: one small container of Berth's busybox
image on the manager's node, attached to the Swarm's overlay network, that does nothing but sleep. The checks run through its relay:
one Docker exec (a busybox ``sh`` loop, :data:`RELAY_SCRIPT`, given as argv) that lives as long as checks
come, so a check costs an ``nc`` in the probe, not an exec (about 130 ms on a test server's engine reached
over SSH, most of it the engine starting a process in the container).

Each check is one line on the relay's input (:func:`check_line`): its number, the task's overlay address and
port (validated: an IP address and a port number, nothing else ever reaches the script) and the GET's bytes
as ``printf`` octal escapes (only backslashes and digits). The relay runs ``nc`` for it in the background
(checks of many tasks at once do not wait for each other) with the GET on its input, input held open as a
connection of the readiness check holds it; the answer comes back in frames (``<number> o <length>`` and the
bytes as ``nc`` read them, then ``<number> e <length>`` and what ``nc`` said on stderr, once it ended), each
frame written whole in one write under a lock (a frame split in two writes waited for a delayed ACK on the
way back over SSH: about 40 ms a check), so the readiness check reads the status line and body by the same
code as from any connection. :func:`close_line` ends a check's ``nc`` when the check closes its connection.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from typing import Any

from berth_common import labels as label
from berth_common.images import BUSYBOX_IMAGE

PROBE_IMAGE = BUSYBOX_IMAGE
PROBE_LABEL = "berth.overlay-probe"  # the overlay network the probe is on
SLEEP_S = 2_147_483_647  # the probe waits for execs: it runs until it is removed (restarted by the engine)


def probe_name(network: str) -> str:
    """The overlay probe's container name on the manager's node (one per overlay network)."""
    return f"berth-probe-{network}"


def probe_body(network: str) -> dict[str, Any]:
    """The ``POST /containers/create`` body of the overlay probe: busybox asleep on ``network`` (an
    attachable overlay), no port published, restarted with its engine."""
    return {
        "Image": PROBE_IMAGE,
        "Cmd": ["sleep", str(SLEEP_S)],
        "Entrypoint": [],
        "User": "0:0",
        "Labels": {label.MANAGED: "true", PROBE_LABEL: network},
        "StopTimeout": 1,
        "HostConfig": {"NetworkMode": network, "RestartPolicy": {"Name": "unless-stopped"}},
        "NetworkingConfig": {"EndpointsConfig": {network: {}}},
    }


# $1: nc's -w (seconds). Input: "<n> <address> <port> <request escapes>" opens check n, "<n> close" ends it.
# Output: frames "<n> o <length>\n<bytes>" (nc's output as it reads it), then "<n> e <length>\n<bytes>" (nc's
# stderr) once nc ended. A check's nc has the GET on its input, held open by a sleep it kills on "close".
RELAY_SCRIPT = """\
w=$1
d=$(mktemp -d) || exit 1
send() {
  { printf '%s %s %s\\n' "$1" "$2" "$(wc -c < "$3")"; cat "$3"; } > "$d/$1.f"
  until mkdir "$d/lock" 2> /dev/null; do usleep 1000; done
  cat "$d/$1.f"
  rmdir "$d/lock"
}
check() {
  { printf %b "$4"; sleep "$w" & echo $! > "$d/$1.p"; wait; } | nc -w "$w" "$2" "$3" 2> "$d/$1.e" | {
    while dd bs=1024 count=1 of="$d/$1.o" 2> /dev/null && [ -s "$d/$1.o" ]; do send "$1" o "$d/$1.o"; done
    send "$1" e "$d/$1.e"
  }
  rm -f "$d/$1.o" "$d/$1.e" "$d/$1.p" "$d/$1.f"
}
while read -r n address port request; do
  case "$n" in *[!0-9]*|"") continue;; esac
  if [ "$address" = close ]; then
    [ -f "$d/$n.p" ] && kill "$(cat "$d/$n.p")" 2> /dev/null
  else
    check "$n" "$address" "$port" "$request" &
  fi
done
wait
rm -rf "$d"
"""


def relay_argv(timeout_s: float) -> list[str]:
    """The relay's exec: the script as an argument of ``sh -c`` (never a string built from input), its one
    parameter ``nc``'s ``-w`` (it gives up connecting, and waiting at the end, after that many seconds)."""
    return ["sh", "-c", RELAY_SCRIPT, "berth-relay", str(max(1, math.ceil(timeout_s)))]


def check_line(number: int, address: str, port: int, request: bytes) -> bytes:
    """The relay's input that opens check ``number``: a TCP connection to ``address:port`` sent ``request``.
    Raises ValueError for an address that is not an IP address or a port out of range."""
    host = str(ipaddress.ip_address(address))
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"not a port: {port!r}")
    escaped = "".join(f"\\0{byte:03o}" for byte in request)
    return f"{int(number)} {host} {port} {escaped}\n".encode()


def close_line(number: int) -> bytes:
    """The relay's input that ends check ``number``'s ``nc`` (its input closed, as a closed connection's)."""
    return f"{int(number)} close\n".encode()


@dataclass(frozen=True)
class Frame:
    number: int
    kind: str  # "o": bytes the task answered; "e": nc ended, ``data`` is what it said on stderr
    data: bytes


class Frames:
    """The relay's output cut into frames as it comes (a frame may arrive in several chunks)."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[Frame]:
        """The frames completed by ``chunk``. Raises ValueError on output that is not frames."""
        self._buf += chunk
        out = []
        while (end := self._buf.find(b"\n")) >= 0:
            fields = self._buf[:end].split()
            if len(fields) != 3 or fields[1] not in (b"o", b"e") or not (fields[0] + fields[2]).isdigit():
                raise ValueError(f"the overlay probe's relay wrote {self._buf[:80]!r}")
            size = int(fields[2])
            if len(self._buf) < end + 1 + size:
                break
            out.append(Frame(int(fields[0]), fields[1].decode(), self._buf[end + 1 : end + 1 + size]))
            self._buf = self._buf[end + 1 + size :]
        return out


def connect_failure(stderr: str) -> str:
    """What ``nc`` said when it ended without an answer, in the words the readiness check uses."""
    text = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    if "refused" in text.lower():
        return "connection refused"
    return text or "the connection was closed with no HTTP answer"
