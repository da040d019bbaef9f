"""What readiness saw, in words a person can act on (pure).

A failed GET is told as ``connection refused``, ``connection reset``, ``timed out`` or the status code
with the first bytes of the body. While a web replica is not ready, readiness also reads the sockets
listening in the container's network namespace (``/proc/net/tcp`` and ``tcp6`` read by a short-lived
helper container sharing that namespace, so it works for images without a shell and on every server's
engine) and the ports the image's ``EXPOSE`` names: a port mismatch is then said plainly ("the app listens
on 8080, not on 80; set the service port to 8080") within seconds instead of at the deadline.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from berth_common import labels as label
from berth_common.images import BUSYBOX_IMAGE


@dataclass(frozen=True)
class ReadinessConfig:
    interval_s: float = 0.25  # between checks, reached from first_interval_s by growing 1.5x per check
    # Most servers listen within tens of milliseconds of their start: look again soon (a check is one
    # inspect and one GET on loopback, sent together), then less and less often.
    first_interval_s: float = 0.005
    attempt_timeout_s: float = 2.0
    crash_restarts: int = 3  # this many restarts while verifying is a crash loop
    worker_settle_s: float = 1.0  # a worker without a health command: running this long, no restart
    exec_timeout_s: float = 10.0
    # While a web replica fails its GET: its listening sockets are read from this long after the wait began
    # (a correct app passes before, and pays nothing), then at most every sockets_every_s.
    sockets_after_s: float = 1.0
    sockets_every_s: float = 1.0
    expose_grace_s: float = 5.0  # nothing on the port this long while EXPOSE names others: a mismatch
    stuck_s: float = 5.0  # the same error status, or connections closed with no answer, this long: failed


SOCKETS_ARGV = ["cat", "/proc/net/tcp", "/proc/net/tcp6"]
SOCKETS_LABEL = "berth.sockets-helper"  # on the helper: the replica whose sockets it reads
LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's st column
BODY_BYTES = 120  # of an error answer's body, in a reason


@dataclass(frozen=True, order=True)
class Listener:
    """A listening TCP socket: its local address (``0.0.0.0``, ``::``, ``127.0.0.1``...) and port."""

    port: int
    address: str

    @property
    def loopback_only(self) -> bool:
        return ipaddress.ip_address(self.address).is_loopback


def _address(hex_addr: str) -> str:
    """The text of a /proc/net/tcp address: 4-byte words, each in the host's (little-endian) order."""
    raw = bytes.fromhex(hex_addr)
    swapped = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(swapped)
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1 is told as 127.0.0.1
    return str(mapped or ip)


def parse_listeners(text: str) -> list[Listener]:
    """The LISTEN sockets in the concatenated text of ``/proc/net/tcp`` and ``/proc/net/tcp6`` (headers and
    other states skipped), sorted, each once."""
    found: set[Listener] = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[3] != LISTEN or ":" not in fields[1]:
            continue
        hex_addr, _, hex_port = fields[1].rpartition(":")
        try:
            found.add(Listener(int(hex_port, 16), _address(hex_addr)))
        except ValueError:
            continue
    return sorted(found)


def sockets_helper_body(container_id: str) -> dict[str, Any]:
    """The ``POST /containers/create`` body of the helper that prints the listening sockets of the
    container ``container_id``: busybox ``cat`` in that container's network namespace, nothing else shared."""
    return {
        "Image": BUSYBOX_IMAGE,
        "Cmd": list(SOCKETS_ARGV),
        "Entrypoint": [],
        "User": "0:0",
        "AttachStdout": True,
        "AttachStderr": True,
        "Tty": False,
        "Labels": {label.MANAGED: "true", SOCKETS_LABEL: container_id},
        "HostConfig": {"NetworkMode": f"container:{container_id}", "AutoRemove": False},
    }


def sockets_helper_name(replica: str) -> str:
    return f"{replica}-sockets"


def exposed_ports(image_config: Mapping[str, Any] | None) -> list[int]:
    """The TCP ports an image's ``EXPOSE`` names (its inspection's ``Config.ExposedPorts``), sorted."""
    ports = (image_config or {}).get("ExposedPorts") or {}
    out: set[int] = set()
    for key in ports:
        number, _, proto = str(key).partition("/")
        if proto in ("", "tcp") and number.isdigit():
            out.add(int(number))
    return sorted(out)


def _ports_text(ports: Iterable[int]) -> str:
    listed = [str(p) for p in sorted(set(ports))]
    return listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + f" and {listed[-1]}"


def port_mismatch(
    port: int, listeners: list[Listener] | None, exposed: list[int], waited_s: float, expose_grace_s: float
) -> str | None:
    """Why a web replica will not pass on ``port``, seen from its sockets and image (None: nothing wrong
    seen; an app still starting has no listener yet, which is not wrong).

    ``listeners`` None: the sockets could not be read. A listener reachable from outside the container on
    another port while none is on ``port`` is a mismatch at once; an app bound to loopback on ``port`` is
    unreachable; ``EXPOSE`` naming only other ports counts once ``waited_s`` passed ``expose_grace_s`` with
    nothing listening on ``port``."""
    if listeners is not None:
        on_port = [x for x in listeners if x.port == port]
        if any(not x.loopback_only for x in on_port):
            return None
        if on_port:
            where = on_port[0].address
            return (
                f"the app listens on {where}:{port}, inside its container only; make it listen on 0.0.0.0:{port} "
                "(all interfaces)"
            )
        others = sorted({x.port for x in listeners if not x.loopback_only})
        if others:
            return (
                f"the app listens on {_ports_text(others)}, not on {port}; set the service port to {others[0]} "
                f"(or make the app listen on $PORT, which is {port})"
            )
    if exposed and port not in exposed and waited_s >= expose_grace_s:
        return (
            f"nothing listens on port {port} after {waited_s:.0f} s and the image exposes {_ports_text(exposed)}; "
            f"set the service port to {exposed[0]} (or make the app listen on $PORT, which is {port})"
        )
    return None


def answer_text(path: str, status: int, body: bytes) -> str:
    """A non-2xx answer: its status and the first bytes of its body, on one line."""
    text = " ".join(body[:BODY_BYTES].decode("utf-8", errors="replace").split())
    more = "..." if len(body) > BODY_BYTES else ""
    return f"GET {path} answered {status}" + (f": {text}{more}" if text else " with an empty body")


@dataclass(frozen=True)
class Seen:
    """One readiness GET: passed, what it saw in words, and of which kind (``ok``, ``status``, ``closed``:
    the connection ended with no HTTP answer, ``refused``, ``reset``, ``timeout``, ``error``, ``down``: the
    container does not run)."""

    ok: bool
    text: str
    kind: str = "ok"
    status: int | None = None

    @property
    def stuck(self) -> bool:
        """An answer that waiting does not change in practice: an error status other than the 502/503/504 a
        starting app (or the proxy in front of it) gives, or connections ended with no HTTP answer."""
        if self.kind == "status":
            return self.status is not None and self.status not in (502, 503, 504)
        return self.kind in ("closed", "reset")


def closed_text(path: str, port: int, listeners: list[Listener] | None) -> str:
    """A GET whose connection ended with no HTTP answer (what the engine's port proxy makes of both a refused
    and a reset connection), told with what the container's sockets show."""
    if listeners is None:
        return f"GET {path}: the connection was closed with no HTTP answer (connection refused or reset)"
    if any(x.port == port for x in listeners):
        return (
            f"GET {path}: connection reset, the app listens on port {port} but closes connections with no HTTP "
            "answer (is it an HTTP server, without TLS?)"
        )
    return f"GET {path}: connection refused, nothing listens on port {port} in the container yet"


HEALTH_OUTPUT_CHARS = 300  # of a health command's output, in a reason (its end: where errors are written)


def health_command_text(exit_code: int | None, output: str) -> str:
    """A health command that did not pass: its exit code and the end of what it printed, on one line."""
    text = " ".join(output.split())
    cut = "..." + text[-HEALTH_OUTPUT_CHARS:] if len(text) > HEALTH_OUTPUT_CHARS else text
    said = f": {cut}" if cut else " and printed nothing"
    return f"the health command exited with code {exit_code}{said}"


# A shell's exit codes for a command it could not run: 126 found but not executable, 127 not found.
CANNOT_RUN = {126: "cannot be executed", 127: "is not found"}
EXEC_REFUSED = ("executable file not found", "no such file or directory", "permission denied")


def health_command_hopeless(exit_code: int | None, output: str) -> str | None:
    """Why a health command will never pass, told at once rather than at the deadline (None: it may yet):
    the shell could not run the program (exit code 126 or 127) in this image."""
    if exit_code not in CANNOT_RUN:
        return None
    refused = health_exec_refused(output)  # the engine's own words when the program itself is missing
    if refused is not None:
        return refused
    return f"{health_command_text(exit_code, output)} (a program it runs {CANNOT_RUN[exit_code]} in this image)"


def health_exec_refused(error: str) -> str | None:
    """Why the engine could not start the health command at all, when that will not change (the program is
    not in the image or cannot be executed); None for other errors (the container may be restarting)."""
    if not any(words in error.lower() for words in EXEC_REFUSED):
        return None
    return f"the health command cannot run in this image: {' '.join(error.split())}"


def health_log_text(health: Mapping[str, Any] | None) -> str | None:
    """The last check in a container's Docker health state (its inspection's ``State.Health``), told as
    :func:`health_command_text` (None: no check ran yet)."""
    log = (health or {}).get("Log") or []
    if not log:
        return None
    last = log[-1] or {}
    return health_command_text(last.get("ExitCode"), str(last.get("Output") or ""))


def docker_health_failure(health: Mapping[str, Any] | None) -> str | None:
    """Why a container that Docker reports ``unhealthy`` is not ready (None: not unhealthy); Docker has
    retried its check the configured number of times already, so waiting does not change this."""
    if (health or {}).get("Status") != "unhealthy":
        return None
    streak = int((health or {}).get("FailingStreak") or 0)
    times = f" ({streak} failures in a row)" if streak > 1 else ""
    return f"Docker reports it unhealthy{times}: {health_log_text(health) or 'no check output'}"


def exit_text(state: Mapping[str, Any]) -> str:
    """How a container ended, from its inspection's ``State``: its exit code, whether the kernel killed it
    for its memory, and the engine's error when there is one. Replicas say it of "the container"; one-off
    runs and jobs record it as their reason."""
    oom = ", killed for exceeding its memory limit" if state.get("OOMKilled") else ""
    error = str(state.get("Error") or "").strip()
    return f"exited with code {state.get('ExitCode')}{oom}" + (f": {error}" if error else "")


def start_failure_text(state: Mapping[str, Any], error: str) -> str:
    """A container the engine could not start (its command not found, a mount refused...): the engine's
    error, with the exit code it recorded when it recorded one."""
    code = state.get("ExitCode")
    said = str(state.get("Error") or "").strip() or error.strip()
    return "could not start" + (f" (exit code {code})" if code else "") + (f": {said}" if said else "")
