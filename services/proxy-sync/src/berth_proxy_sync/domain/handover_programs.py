"""Two tiny static Linux programs (ELF files for x86-64 and AArch64, made here byte for byte) that let a
server's Traefik be replaced without a refused or a misrouted connection.

A server's Traefik runs in a network namespace held by a container of its own (``pause``: it only sleeps),
which publishes the server's ports; Traefik containers join that namespace, and every entry point listens
with ``SO_REUSEPORT``. Two Traefiks on one port would share new connections by a hash, and a new one answers
404 until it has loaded its routes (about 0.3 s). ``steer(ports)`` joins each port's group of listening
sockets and sets a classic BPF program on it (``SO_ATTACH_REUSEPORT_CBPF``; it stays with the group after
the program exits) that returns the place of the socket that gets each new connection: 0 is the oldest
listening socket (the running Traefik), 1 the next (its replacement). The kernel falls back to its hash when
the place does not exist, so a group with one Traefik left keeps working whatever its program says.

Each program is a list of system calls with constant arguments, checked one by one (a failed call exits
with its number in the list, counted from 1); tests run them in a container and compare them exactly.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

BASE = 0x400000  # where the file is loaded
HEADERS = 64 + 56  # the ELF header and one program header
AF_INET6, SOCK_STREAM = 10, 1
SOL_SOCKET, SO_REUSEADDR, SO_REUSEPORT, SO_ATTACH_REUSEPORT_CBPF = 1, 2, 15, 51
IPPROTO_IPV6, IPV6_V6ONLY = 41, 26
RET_K = 0x06  # classic BPF: return the constant
OLDEST, NEWEST = 0, 1  # places in a port's group: the running Traefik, its replacement
Arg = int | str  # a constant, "fd" (the socket made last) or the name of a datum


@dataclass(frozen=True)
class Arch:
    """How one architecture spells the few instructions the programs need."""

    machine: int  # e_machine
    calls: dict[str, int]  # system call numbers
    registers: tuple[str, ...]  # the argument registers, in order

    def mov(self, register: str, value: int) -> bytes:
        """Load a 32-bit constant (zero-extended) into ``register``."""
        if self.machine == X86_64.machine:
            opcodes = {"edi": b"\xbf", "esi": b"\xbe", "edx": b"\xba", "r10d": b"\x41\xba", "r8d": b"\x41\xb8"}
            return (opcodes[register] if register != "eax" else b"\xb8") + struct.pack("<I", value)
        d = int(register[1:])  # movz xd, #low; movk xd, #high, lsl 16
        low, high = value & 0xFFFF, (value >> 16) & 0xFFFF
        return struct.pack("<II", 0xD2800000 | low << 5 | d, 0xF2A00000 | high << 5 | d)

    def syscall(self, number: int) -> bytes:
        if self.machine == X86_64.machine:
            return self.mov("eax", number) + b"\x0f\x05"
        return self.mov("x8", number) + struct.pack("<I", 0xD4000001)  # svc #0

    def exit(self, code: int) -> bytes:
        return self.mov(self.registers[0], code) + self.syscall(self.calls["exit"])

    def skip_if_ok(self, size: int) -> bytes:
        """Jump over the next ``size`` bytes when the call's result is not negative."""
        if self.machine == X86_64.machine:
            return b"\x48\x85\xc0\x79" + bytes([size])  # test rax, rax; jns
        return struct.pack("<I", 0xB6F80000 | ((size + 4) // 4) << 5)  # tbz x0, #63

    def save_fd(self) -> bytes:
        return b"\x49\x89\xc4" if self.machine == X86_64.machine else struct.pack("<I", 0xAA0003F3)  # r12 / x19

    def fd_arg(self) -> bytes:
        return b"\x4c\x89\xe7" if self.machine == X86_64.machine else struct.pack("<I", 0xAA1303E0)

    def wait_forever(self) -> bytes:
        """``pause`` (x86-64) or ``ppoll`` of nothing with no timeout (AArch64), again and again."""
        if self.machine == X86_64.machine:
            return self.syscall(self.calls["pause"]) + b"\xeb\xf7"  # jmp back over the 9 bytes
        body = b"".join(self.mov(f"x{r}", 0) for r in range(4)) + self.syscall(self.calls["pause"])
        back = -(len(body) // 4) & 0x3FFFFFF
        return body + struct.pack("<I", 0x14000000 | back)  # b back


X86_64 = Arch(
    62,
    {"socket": 41, "bind": 49, "listen": 50, "setsockopt": 54, "pause": 34, "exit": 60},
    ("edi", "esi", "edx", "r10d", "r8d"),
)
AARCH64 = Arch(
    183,
    {"socket": 198, "bind": 200, "listen": 201, "setsockopt": 208, "pause": 73, "exit": 93},
    ("x0", "x1", "x2", "x3", "x4"),
)
ARCHES = {"x86_64": X86_64, "amd64": X86_64, "aarch64": AARCH64, "arm64": AARCH64}


def arch(name: str) -> Arch:
    """The architecture an engine names (``GET /info``'s ``Architecture``); ValueError for another."""
    try:
        return ARCHES[name.lower()]
    except KeyError:
        raise ValueError(f"no handover programs for the architecture {name!r}") from None


def _elf(a: Arch, code: bytes, data: bytes) -> bytes:
    """A static executable: headers, ``code`` (its entry point), then ``data``, all in one readable and
    executable segment at ``BASE``."""
    size = HEADERS + len(code) + len(data)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little-endian, version 1, System V
    header = ident + struct.pack("<HHIQQQIHHHHHH", 2, a.machine, 1, BASE + HEADERS, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    segment = struct.pack("<IIQQQQQQ", 1, 5, 0, BASE, BASE, size, size, 0x1000)  # PT_LOAD, R+X
    return header + segment + code + data


def pause(a: Arch = X86_64) -> bytes:
    """A program that sleeps until it is killed: it holds the network namespace."""
    return _elf(a, a.wait_forever(), b"")


def _sockaddr(port: int) -> bytes:
    """``struct sockaddr_in6`` for ``[::]:port`` (Go listens on ``:port`` this way: IPv6, IPv4 mapped)."""
    return struct.pack("<H", AF_INET6) + struct.pack(">H", port) + bytes(24)


def _call(a: Arch, name: str, args: Sequence[Arg], offsets: dict[str, int], n: int) -> bytes:
    """One system call: its arguments in registers, the call, then exit ``n`` when it failed; the socket's
    number is kept after ``socket``."""
    code = b""
    for register, arg in zip(a.registers, args, strict=False):
        if arg == "fd":
            code += a.fd_arg() if register == a.registers[0] else b""
        else:
            code += a.mov(register, offsets[arg] if isinstance(arg, str) else arg)
    failed = a.exit(n)
    code += a.syscall(a.calls[name]) + a.skip_if_ok(len(failed)) + failed
    return code + (a.save_fd() if name == "socket" else b"")


def steer(ports: Sequence[tuple[int, int]], a: Arch = X86_64) -> bytes:
    """A program that, for each (port, place), joins the port's group of listening sockets the way Traefik
    listens (IPv6 socket that also takes IPv4, ``SO_REUSEADDR``, ``SO_REUSEPORT``) and sets on the group a
    program returning ``place``; then exits 0, its own sockets leaving the groups (a connection that reached
    one meanwhile is moved to another socket of the group: ``net.ipv4.tcp_migrate_req``)."""
    if not ports or any(not 0 < port < 65536 or place not in (OLDEST, NEWEST) for port, place in ports):
        raise ValueError(f"not ports and places: {ports!r}")
    calls: list[tuple[str, tuple[Arg, ...]]] = []
    for port, place in ports:
        calls += [
            ("socket", (AF_INET6, SOCK_STREAM, 0)),
            ("setsockopt", ("fd", SOL_SOCKET, SO_REUSEADDR, "one", 4)),
            ("setsockopt", ("fd", SOL_SOCKET, SO_REUSEPORT, "one", 4)),
            ("setsockopt", ("fd", IPPROTO_IPV6, IPV6_V6ONLY, "zero", 4)),
            ("bind", ("fd", f"addr{port}", 28)),
            ("listen", ("fd", 16)),
            ("setsockopt", ("fd", SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, f"prog{place}", 16)),
        ]
    places = sorted({place for _, place in ports})
    data: list[tuple[str, bytes]] = [("one", struct.pack("<I", 1)), ("zero", struct.pack("<I", 0))]
    data += [(f"addr{port}", _sockaddr(port)) for port, _ in ports]
    data += [(f"insn{place}", struct.pack("<HBBI", RET_K, 0, 0, place)) for place in places]
    names = {str(arg) for _, args in calls for arg in args if isinstance(arg, str)}
    code_size = sum(len(_call(a, name, args, dict.fromkeys(names, 0), 1)) for name, args in calls)
    at = BASE + HEADERS + code_size + len(a.exit(0))
    offsets: dict[str, int] = {}
    blob = b""
    for name, part in data:
        offsets[name] = at + len(blob)
        blob += part
    for place in places:  # struct sock_fprog: length, padding, pointer to the instructions
        offsets[f"prog{place}"] = at + len(blob)
        blob += struct.pack("<H6xQ", 1, offsets[f"insn{place}"])
    code = b"".join(_call(a, name, args, offsets, n) for n, (name, args) in enumerate(calls, start=1))
    return _elf(a, code + a.exit(0), blob)
