"""The overlay probe of a Swarm: how Berth's readiness check reaches a task on a node it does not reach.

A task's overlay address answers only from inside the overlay network. On a node Berth reaches over SSH the
check goes to the task's ``docker_gwbridge`` address (``adapters/swarm_probe.py``); on any other node (an
adopted Swarm's worker) it is made from the overlay probe instead: one small container of Berth's busybox
image on the manager's node, attached to the Swarm's overlay network, that does nothing but sleep. The
checks run through its relay: one Docker exec (a busybox ``sh`` loop, :data:`RELAY_SCRIPT`, given as argv)
that lives as long as checks come, so a check costs an ``nc`` in the probe, not an exec (about 130 ms on a
test server's engine reached over SSH, most of it the engine starting a process in the container).

Each check is one line on the relay's input (:func:`check_line`): its number, the task's overlay address and
port (validated: an IP address and a port number, nothing else ever reaches the script) and the GET's bytes,
letters, digits and ``/.:_-`` as they are and every other byte as a ``printf`` octal escape (the relay's
``read`` takes its input a byte per system call, in the one loop every check passes through: a line about
three times shorter than one of escapes only lets a look's checks start sooner). The relay runs ``nc`` for
it in the background (checks of many tasks at once do not wait for each other) with the GET on its input,
input held open as a connection of the readiness check holds it; the answer comes back in frames
(``<number> o <length>``, padded to :data:`HEADER` bytes, and the bytes as ``nc`` read them, then ``<number>
e <length>`` and what ``nc`` said on stderr, once it ended), so the readiness check reads the status line and
body by the same code as from any connection. :func:`close_line` ends a check's ``nc`` when the check closes
its connection.

Each frame is written whole in one write of at most :data:`FRAME_MAX` bytes (under ``PIPE_BUF``): on the
exec's output pipe such a write is never cut or mixed with another check's, so frames need no lock between
checks (a lock taken by ``mkdir`` retries, a process each, has a look's checks answer one after another on a
busy machine), and a frame is never split in two writes (a split one waits for a delayed ACK on the way back
over SSH: about 40 ms a check). A frame costs two processes, the ``dd`` that reads its chunk (counting it)
and the ``dd`` that writes it: the processes a check starts are what its answer waits for on a loaded host.
The probe runs with the engine's init as its first process (``HostConfig.Init``), which reaps what a relay
leaves when it ends (its checks' shells and ``nc``), as an application container's init does.
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
    attachable overlay), no port published, restarted with its engine, its processes reaped by the engine's
    init (``docker-init``)."""
    return {
        "Image": PROBE_IMAGE,
        "Cmd": ["sleep", str(SLEEP_S)],
        "Entrypoint": [],
        "User": "0:0",
        "Labels": {label.MANAGED: "true", PROBE_LABEL: network},
        "StopTimeout": 1,
        "HostConfig": {"NetworkMode": network, "RestartPolicy": {"Name": "unless-stopped"}, "Init": True},
        "NetworkingConfig": {"EndpointsConfig": {network: {}}},
    }


def reaps(container: dict[str, Any]) -> bool:
    """Whether a probe container (its ``GET /containers/{name}/json``) runs under the engine's init, which
    reaps its orphans (one made before :func:`probe_body` asked for it is made again)."""
    return bool((container.get("HostConfig") or {}).get("Init"))


HEADER = 24  # a frame's header, padded with spaces to this many bytes (its newline the last)
CHUNK = 1024  # at most this many bytes of nc's output (or stderr) in a frame
FRAME_MAX = HEADER + CHUNK  # <= PIPE_BUF (4096): one write of a frame is never cut or mixed with another
NUMBER_MAX = 10**12  # check numbers stay below this, so a header always fits its padding

# $1: nc's -w (seconds). Input: "<n> <address> <port> <request escapes>" opens check n, "<n> close" ends it.
# Output: frames "<n> o <length>" padded to 24 bytes with its newline, then the bytes (nc's output as it reads
# it), then "<n> e <length>" likewise with nc's stderr once nc ended. A check's nc has the GET on its input,
# held open by a sleep killed on "close". chunk: one read (at most 1024 bytes) after the header's room in the
# frame file, its length from dd's count of 1-byte records out; send: the header written over the room, the
# file written in one write (at most 1048 bytes: a pipe takes it whole, no lock between checks).
RELAY_SCRIPT = """\
w=$1
d=$(mktemp -d) || exit 1
chunk() {
  dd ibs=1024 count=1 obs=1 seek=24 oflag=seek_bytes of="$d/$1.f" 2> "$d/$1.n" || return 1
  { read -r size; read -r size; } < "$d/$1.n"
  size=${size%%+*}
}
send() {
  printf '%-23s\\n' "$1 $2 $size" 1<> "$d/$1.f"
  dd if="$d/$1.f" bs=4096 2> /dev/null
}
check() {
  { printf %b "$4"; sleep "$w" & echo $! > "$d/$1.p"; wait; } | nc -w "$w" "$2" "$3" 2> "$d/$1.e" | {
    while chunk "$1" && [ "$size" -gt 0 ]; do send "$1" o; done
    chunk "$1" < "$d/$1.e"
    send "$1" e
  }
  rm -f "$d/$1.e" "$d/$1.p" "$d/$1.f" "$d/$1.n"
}
while read -r n address port request; do
  case "$n" in *[!0-9]*|"") continue;; esac
  if [ "$address" = close ]; then
    [ -f "$d/$n.p" ] && read -r pid < "$d/$n.p" && kill "$pid" 2> /dev/null
  else
    check "$n" "$address" "$port" "$request" &
  fi
done
wait
rm -rf "$d"
"""
AS_IS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/.:_-")


def relay_argv(timeout_s: float) -> list[str]:
    """The relay's exec: the script as an argument of ``sh -c`` (never a string built from input), its one
    parameter ``nc``'s ``-w`` (it gives up connecting, and waiting at the end, after that many seconds)."""
    return ["sh", "-c", RELAY_SCRIPT, "berth-relay", str(max(1, math.ceil(timeout_s)))]


def check_line(number: int, address: str, port: int, request: bytes) -> bytes:
    """The relay's input that opens check ``number``: a TCP connection to ``address:port`` sent ``request``
    (its bytes in :data:`AS_IS` as they are, any other as an octal escape). Raises ValueError for an address
    that is not an IP address, a port out of range or a number out of range."""
    host = str(ipaddress.ip_address(address))
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"not a port: {port!r}")
    escaped = "".join(chr(byte) if byte in AS_IS else f"\\0{byte:03o}" for byte in request)
    return f"{_number(number)} {host} {port} {escaped}\n".encode()


def close_line(number: int) -> bytes:
    """The relay's input that ends check ``number``'s ``nc`` (its input closed, as a closed connection's)."""
    return f"{_number(number)} close\n".encode()


def _number(number: int) -> int:
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number < NUMBER_MAX:
        raise ValueError(f"not a check number: {number!r}")
    return number


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
