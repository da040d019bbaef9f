"""Two tiny static Linux programs (x86-64 ELF files, made here byte for byte) that let a server's Traefik be
replaced without a refused or a misrouted connection.

A server's Traefik runs in a network namespace held by a container of its own (``PAUSE``: it only sleeps),
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

BASE = 0x400000  # where the file is loaded
HEADERS = 64 + 56  # the ELF header and one program header
# x86-64 system call numbers
SYS_SOCKET, SYS_BIND, SYS_LISTEN, SYS_SETSOCKOPT, SYS_PAUSE, SYS_EXIT = 41, 49, 50, 54, 34, 60
AF_INET6, SOCK_STREAM = 10, 1
SOL_SOCKET, SO_REUSEADDR, SO_REUSEPORT, SO_ATTACH_REUSEPORT_CBPF = 1, 2, 15, 51
IPPROTO_IPV6, IPV6_V6ONLY = 41, 26
RET_K = 0x06  # classic BPF: return the constant
OLDEST, NEWEST = 0, 1  # places in a port's group: the running Traefik, its replacement


def _mov(register: str, value: int) -> bytes:
    """``mov <register>, imm32`` (zero-extended to 64 bits)."""
    opcodes = {"eax": b"\xb8", "edi": b"\xbf", "esi": b"\xbe", "edx": b"\xba", "r10d": b"\x41\xba", "r8d": b"\x41\xb8"}
    return opcodes[register] + struct.pack("<I", value)


SYSCALL = b"\x0f\x05"
SAVE_FD = b"\x49\x89\xc4"  # mov r12, rax
FD_TO_RDI = b"\x4c\x89\xe7"  # mov rdi, r12
CHECK = b"\x48\x85\xc0\x79\x0c"  # test rax, rax; jns +12 (over the exit below)


def _exit(code: int) -> bytes:
    return _mov("edi", code) + _mov("eax", SYS_EXIT) + SYSCALL  # 12 bytes


def _elf(code: bytes, data: bytes) -> bytes:
    """A static executable: headers, ``code`` (its entry point), then ``data``, all in one readable and
    executable segment at ``BASE``."""
    size = HEADERS + len(code) + len(data)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little-endian, version 1, System V
    header = ident + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, BASE + HEADERS, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    segment = struct.pack("<IIQQQQQQ", 1, 5, 0, BASE, BASE, size, size, 0x1000)  # PT_LOAD, R+X
    return header + segment + code + data


def pause() -> bytes:
    """A program that sleeps until it is killed (``pause`` in a loop): it holds the network namespace."""
    return _elf(_mov("eax", SYS_PAUSE) + SYSCALL + b"\xeb\xf7", b"")  # jmp back to the mov


def _sockaddr(port: int) -> bytes:
    """``struct sockaddr_in6`` for ``[::]:port`` (Go listens on ``:port`` this way: IPv6, IPv4 mapped)."""
    return struct.pack("<H", AF_INET6) + struct.pack(">H", port) + bytes(24)


def steer(ports: Sequence[tuple[int, int]]) -> bytes:
    """A program that, for each (port, place), joins the port's group of listening sockets the way Traefik
    listens (IPv6 socket that also takes IPv4, ``SO_REUSEADDR``, ``SO_REUSEPORT``) and sets on the group a
    program returning ``place``; then exits 0, its own sockets leaving the groups (a connection that reached
    one meanwhile is moved to another socket of the group: ``net.ipv4.tcp_migrate_req``)."""
    if not ports or any(not 0 < port < 65536 or place not in (OLDEST, NEWEST) for port, place in ports):
        raise ValueError(f"not ports and places: {ports!r}")
    calls: list[tuple[int, tuple[int | str, ...]]] = []
    for port, place in ports:
        calls += [
            (SYS_SOCKET, (AF_INET6, SOCK_STREAM, 0)),
            (SYS_SETSOCKOPT, ("fd", SOL_SOCKET, SO_REUSEADDR, "one", 4)),
            (SYS_SETSOCKOPT, ("fd", SOL_SOCKET, SO_REUSEPORT, "one", 4)),
            (SYS_SETSOCKOPT, ("fd", IPPROTO_IPV6, IPV6_V6ONLY, "zero", 4)),
            (SYS_BIND, ("fd", f"addr{port}", 28)),
            (SYS_LISTEN, ("fd", 16)),
            (SYS_SETSOCKOPT, ("fd", SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, f"prog{place}", 16)),
        ]
    # data: constants, one address per port, one filter (and its sock_fprog) per place
    places = sorted({place for _, place in ports})
    data_parts: list[tuple[str, bytes]] = [("one", struct.pack("<I", 1)), ("zero", struct.pack("<I", 0))]
    data_parts += [(f"addr{port}", _sockaddr(port)) for port, _ in ports]
    data_parts += [(f"insn{place}", struct.pack("<HBBI", RET_K, 0, 0, place)) for place in places]
    code_size = sum(_call_size(number, args) for number, args in calls) + len(_exit(0))
    data_at = BASE + HEADERS + code_size
    offsets: dict[str, int] = {}
    blob = b""
    for name, part in data_parts:
        offsets[name] = data_at + len(blob)
        blob += part
    for place in places:  # struct sock_fprog: length, padding, pointer to the instructions
        offsets[f"prog{place}"] = data_at + len(blob)
        blob += struct.pack("<H6xQ", 1, offsets[f"insn{place}"])
    code = b""
    for n, (number, args) in enumerate(calls, start=1):
        code += _call(number, args, offsets, n)
    code += _exit(0)
    assert len(code) == code_size
    return _elf(code, blob)


REGISTERS = ("edi", "esi", "edx", "r10d", "r8d")


def _call_size(number: int, args: tuple[int | str, ...]) -> int:
    return len(_call(number, args, {str(a): 0 for a in args if isinstance(a, str)}, 1))


def _call(number: int, args: tuple[int | str, ...], offsets: dict[str, int], n: int) -> bytes:
    """One system call: its arguments in registers (``fd``: the socket made last), the call, then exit ``n``
    when it failed; the socket's number is kept after ``socket``."""
    code = b""
    for register, arg in zip(REGISTERS, args, strict=False):
        if arg == "fd":
            code += FD_TO_RDI
        elif isinstance(arg, str):
            code += _mov(register, offsets[arg])
        else:
            code += _mov(register, arg)
    code += _mov("eax", number) + SYSCALL + CHECK + _exit(n)
    if number == SYS_SOCKET:
        code += SAVE_FD
    return code
