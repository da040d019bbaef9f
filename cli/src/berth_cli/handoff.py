"""Hand the data plane's ports from a running Traefik to its replacement without refusing or failing a request.

Both Traefiks listen with ``SO_REUSEPORT`` (``berth_common.traefik.static_config``), so the new one binds
the ports the old one serves. The kernel would share new connections between the two at once, and the new
one answers 404 to everything until it has loaded its routes (measured: 82 of 2,161 requests in the first
second). So before the new one starts, each port's group of sockets gets a classic BPF program
(``SO_ATTACH_REUSEPORT_CBPF``, set through a copy of the old one's socket taken with ``pidfd_getfd``) that
picks the socket for each new connection:

1. every connection goes to the old Traefik (the group's first socket), apart from this module's probes,
   recognised by their source port, which reach the new one (the second socket);
2. once the new one answers its ping and every probed host as the old one does, every connection goes to
   the new one;
3. the old one keeps the connections it has until their clients leave (``retire``), then is told to stop:
   it takes what the kernel had queued for it, finishes its requests in flight (Traefik's ``lifeCycle``)
   and exits; the program is removed.

When the new Traefik does not get ready, every connection goes back to the old one, the new one is killed,
and the old one keeps serving. Nothing here applies when the old Traefik's sockets lack ``SO_REUSEPORT``
(one started by an earlier Berth): the caller stops it and starts the new one (a short gap, once).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

SO_REUSEPORT = 15
SO_ATTACH_REUSEPORT_CBPF = 51
SO_DETACH_REUSEPORT_BPF = 68
SYS_PIDFD_GETFD = 438  # the same number on every Linux architecture
SKF_NET_OFF = -0x100000  # classic BPF loads relative to the network header
OLD, NEW = 0, 1  # the sockets' places in each group: the old Traefik's first, the new one's joins second

# classic BPF opcodes (linux/filter.h)
LDB_ABS, LDH_ABS, AND_K, JEQ_K, JA, RET_K = 0x30, 0x28, 0x54, 0x15, 0x05, 0x06

Insn = tuple[int, int, int, int]
HOST_RULE = re.compile(r"Host\(`([^`]{1,253})`\)")


class HandoffError(RuntimeError):
    """The ports could not be handed over; the message says why. ``started``: a new Traefik was started
    (and killed: the old one keeps serving); else nothing was changed (the ports cannot be shared)."""

    def __init__(self, message: str, *, started: bool = False) -> None:
        super().__init__(message)
        self.started = started


class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(SockFilter))]


def _abs(offset: int) -> int:
    return (SKF_NET_OFF + offset) & 0xFFFFFFFF


def program(target: int, probe_port: int | None = None, probe_target: int = NEW) -> list[Insn]:
    """Every connection to socket ``target`` of the group, except those from source port ``probe_port``,
    which go to ``probe_target``. The source port is read from the TCP header after an IPv4 header without
    options (a SYN Linux sends has none) or after an IPv6 header."""
    if probe_port is None:
        return [(RET_K, 0, 0, target)]
    return [
        (LDB_ABS, 0, 0, _abs(0)),  # 0: version and header length
        (AND_K, 0, 0, 0xF0),  # 1: the version
        (JEQ_K, 0, 2, 0x40),  # 2: IPv4: 3, else 5
        (LDH_ABS, 0, 0, _abs(20)),  # 3: its TCP source port
        (JA, 0, 0, 1),  # 4: to 6
        (LDH_ABS, 0, 0, _abs(40)),  # 5: IPv6: its TCP source port
        (JEQ_K, 0, 1, probe_port),  # 6: a probe: 7, else 8
        (RET_K, 0, 0, probe_target),  # 7
        (RET_K, 0, 0, target),  # 8
    ]


def attach(sock: socket.socket, insns: list[Insn]) -> None:
    """Set (or replace) the socket-selecting program of ``sock``'s reuseport group."""
    filters = (SockFilter * len(insns))(*(SockFilter(*i) for i in insns))
    prog = SockFprog(len(insns), ctypes.cast(filters, ctypes.POINTER(SockFilter)))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, bytes(prog))


def detach(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, 0)


def grab(pid: int, fd: int) -> socket.socket:
    """A copy of the socket ``fd`` of process ``pid`` (``pidfd_getfd``: the same socket, not a new one)."""
    pidfd = os.pidfd_open(pid)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        copy = int(libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0))
        if copy < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"pidfd_getfd: {os.strerror(code)}")
    finally:
        os.close(pidfd)
    return socket.socket(fileno=copy)


def listeners(pid: int) -> dict[int, tuple[int, str]]:
    """The TCP ports ``pid`` listens on: port -> (its socket's descriptor, its address)."""
    found: dict[int, tuple[int, str]] = {}
    for c in psutil.Process(pid).net_connections("tcp"):
        if c.status == psutil.CONN_LISTEN and c.fd >= 0:
            found[c.laddr.port] = (c.fd, c.laddr.ip)
    return found


def entry_ports(static: dict[str, Any]) -> tuple[list[int], int | None, int | None]:
    """The ports of a static configuration's entry points, that of its API (``traefik``) entry point and
    that of its ``web`` entry point."""
    named = {
        name: int(str(ep.get("address", "")).rsplit(":", 1)[-1].split("/")[0] or 0)
        for name, ep in (static.get("entryPoints") or {}).items()
    }
    return list(named.values()), named.get("traefik"), named.get("web")


def hosts_of(dynamic: Path, limit: int = 8) -> list[str]:
    """Up to ``limit`` hosts the routes of the dynamic directory serve (what the new Traefik must answer as
    the old one does before it takes over), in a stable order."""
    hosts: set[str] = set()
    for path in sorted(dynamic.glob("*")):
        if path.suffix in (".yml", ".yaml", ".toml", ".json"):
            with contextlib.suppress(OSError, UnicodeDecodeError):
                hosts.update(HOST_RULE.findall(path.read_text()))
    return sorted(hosts)[:limit]


def _connect_address(ip: str) -> str:
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(ip, ip)


def status_of(address: str, port: int, path: str, host: str, bind: Callable[[int], None] | None = None) -> int:
    """The status of ``GET path`` with ``Host: host`` (0 when no answer). ``bind``: told the source port
    before the connection is made (to steer a probe to the new Traefik)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(2.0)
        try:
            s.bind((address, 0))
            if bind is not None:
                bind(s.getsockname()[1])
            s.connect((address, port))
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            head = s.recv(64)
        except OSError:
            return 0
    match = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    return int(match.group(1)) if match else 0


@dataclass
class Groups:
    """Copies of the old Traefik's listening sockets, one per handed-over port, and their addresses."""

    socks: dict[int, socket.socket]
    addresses: dict[int, str]

    def steer(self, insns: list[Insn], ports: list[int] | None = None) -> None:
        for port in ports if ports is not None else list(self.socks):
            attach(self.socks[port], insns)

    def close(self) -> None:
        for sock in self.socks.values():
            with contextlib.suppress(OSError):
                sock.close()
        self.socks.clear()


def take(old_pid: int, ports: list[int]) -> Groups:
    """Copies of the old Traefik's sockets on ``ports`` (those it listens on); HandoffError when one of them
    is not in a reuseport group (it cannot be shared) or cannot be copied."""
    held = listeners(old_pid)
    if not set(ports) & set(held):
        raise HandoffError("the running Traefik listens on none of the new configuration's ports")
    groups = Groups({}, {})
    try:
        for port in ports:
            if port not in held:
                continue
            fd, ip = held[port]
            sock = grab(old_pid, fd)
            groups.socks[port], groups.addresses[port] = sock, _connect_address(ip)
            if not sock.getsockopt(socket.SOL_SOCKET, SO_REUSEPORT):
                raise HandoffError(f"the running Traefik listens on port {port} without SO_REUSEPORT")
    except OSError as exc:
        groups.close()
        raise HandoffError(f"cannot share the running Traefik's ports: {exc}") from exc
    except HandoffError:
        groups.close()
        raise
    return groups


def _probe(groups: Groups, port: int, path: str, host: str) -> int:
    """``status_of`` on the new Traefik: the probe's source port is steered to it (the rest stays on the old)."""
    return status_of(groups.addresses[port], port, path, host, lambda src: groups.steer(program(OLD, src), [port]))


def ready(groups: Groups, api: int | None, hosts: list[str], web: int | None) -> bool:
    """The new Traefik answers its ping, and the API path and every host as the old one does."""
    if api is None or api not in groups.socks:
        return False
    if _probe(groups, api, "/ping", "ping") != 200:
        return False
    groups.steer(program(OLD))
    checks = [(api, "/api/version", "api")] + ([(web, "/", h) for h in hosts] if web in groups.socks else [])
    for port, path, host in checks:
        assert port is not None
        old = status_of(groups.addresses[port], port, path, host)
        if not serves_as(old, _probe(groups, port, path, host)):
            return False
    groups.steer(program(OLD))
    return True


def serves_as(old: int, new: int) -> bool:
    """Whether the new Traefik's status for a request shows it serves it as the old one does: the same
    status; or, both answering, neither a 404 (an application's answers vary; Traefik's 404 is what a
    Traefik that has not loaded its routes answers); or any answer when the old one gives none (a wedged
    Traefik is replaced too)."""
    if new == 0:
        return False
    return new == old or old == 0 or 404 not in (old, new)


def hand_over(
    old: psutil.Process,
    start: Callable[[], psutil.Process],
    static: dict[str, Any],
    dynamic: Path,
    *,
    timeout: float = 30.0,
) -> psutil.Process:
    """Start the new Traefik with ``start`` next to ``old`` and give it every new connection once it serves
    as ``old`` does (``retire`` then stops ``old``). The new process; HandoffError (the new one killed,
    ``old`` untouched and serving) when it does not get ready within ``timeout``."""
    ports, api, web = entry_ports(static)
    groups = take(old.pid, ports)
    new: psutil.Process | None = None
    try:
        groups.steer(program(OLD))
        new = start()
        deadline = time.monotonic() + timeout
        hosts = hosts_of(dynamic)
        while True:
            if not new.is_running() or new.status() == psutil.STATUS_ZOMBIE:
                raise HandoffError("the new Traefik exited before it served (see its log)")
            if set(groups.socks) <= set(listeners(new.pid)) and ready(groups, api, hosts, web):
                break
            if time.monotonic() > deadline:
                raise HandoffError(f"the new Traefik did not serve as the running one within {timeout:.0f} s")
            time.sleep(0.1)
        groups.steer(program(NEW))
    except (HandoffError, OSError, psutil.Error) as exc:
        with contextlib.suppress(OSError):
            groups.steer(program(OLD))
        if new is not None:
            with contextlib.suppress(psutil.Error):
                new.kill()
                new.wait(5)
        groups.close()
        raise HandoffError(str(exc), started=new is not None) from exc
    groups.close()  # before the old one closes its sockets: a copy held here would keep them in the group
    return new


def clients(pid: int, ports: list[int]) -> int:
    """How many client connections ``pid`` holds on ``ports`` (its connections to applications not counted)."""
    try:
        conns = psutil.Process(pid).net_connections("tcp")
    except psutil.Error:
        return 0
    return sum(1 for c in conns if c.status == psutil.CONN_ESTABLISHED and c.laddr.port in ports)


def retire(old: psutil.Process, new_pid: int, ports: list[int], *, drain_s: float = 60.0, stop_s: float = 15.0) -> None:
    """Stop ``old`` once its clients have left it (or after ``drain_s``): then nothing is cut.

    An HTTP/1.1 server that closes a kept-alive connection races the client, which may be sending a request
    on it at that moment (measured: about one request lost per replacement at 100 requests per second).
    So ``old`` closes none: it gets no new connection, answers on the ones it has with ``Connection: close``
    once they are older than the entry points' ``keepAliveMaxTime``, and the clients close the idle ones
    themselves. Then it is told to stop (SIGTERM: Traefik's ``lifeCycle``), killed after ``stop_s``, and the
    socket-selecting program is removed from the groups ``new_pid`` holds alone."""
    deadline = time.monotonic() + drain_s
    while clients(old.pid, ports) and time.monotonic() < deadline:
        time.sleep(0.2)
    with contextlib.suppress(psutil.Error):
        old.send_signal(signal.SIGTERM)
    try:
        old.wait(stop_s)
    except psutil.TimeoutExpired:
        with contextlib.suppress(psutil.Error):
            old.kill()
            old.wait(5)
    except psutil.Error:
        pass
    _release(new_pid, ports)


def _release(pid: int, ports: list[int]) -> None:
    """Remove the program from the groups ``pid`` holds alone (best effort)."""
    with contextlib.suppress(OSError, psutil.Error):
        for port, (fd, _) in listeners(pid).items():
            if port in ports:
                try:
                    sock = grab(pid, fd)
                except OSError as exc:
                    if exc.errno != errno.ESRCH:
                        raise
                    return
                with sock:
                    detach(sock)
