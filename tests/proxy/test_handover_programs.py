"""The two programs of a server Traefik's replacement, byte for byte and run: the pause program sleeps until
it is killed; the steering program joins a port's listening sockets as Traefik listens (its own socket
would not bind otherwise) and exits 0, or exits with the number of the call that failed."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from berth_proxy_sync.domain import handover_programs as programs

QEMU = shutil.which("qemu-aarch64-static")


def test_the_programs_are_exact_bytes() -> None:
    pause = programs.pause()
    assert pause[:20] == b"\x7fELF\x02\x01\x01\x00" + bytes(8) + b"\x02\x00\x3e\x00"  # executable, x86-64
    assert pause[120:] == bytes.fromhex("b822000000 0f05 ebf7")  # mov eax, 34 (pause); syscall; jmp back
    arm = programs.pause(programs.AARCH64)
    assert arm[18:20] == b"\xb7\x00"  # AArch64
    # x0..x3 = 0, x8 = 73 (ppoll), svc #0, b back to the first mov
    assert arm[120:] == bytes.fromhex(
        "000080d2 0000a0f2 010080d2 0100a0f2 020080d2 0200a0f2 030080d2 0300a0f2 280980d2 0800a0f2 010000d4 f5ffff17"
    )
    assert programs.arch("x86_64") is programs.X86_64 and programs.arch("aarch64") is programs.AARCH64
    with pytest.raises(ValueError, match="s390x"):
        programs.arch("s390x")
    for bad in ([], [(0, 0)], [(80, 2)], [(70000, 1)]):
        with pytest.raises(ValueError):
            programs.steer(bad)
    steer = programs.steer([(80, programs.OLDEST), (8081, programs.NEWEST)])
    # its data: 1 and 0, the two addresses ([::]:80, [::]:8081), the filters `ret #0` and `ret #1`
    assert steer.endswith(
        bytes.fromhex("01000000 00000000")
        + bytes.fromhex("0a00 0050") + bytes(24)
        + bytes.fromhex("0a00 1f91") + bytes(24)
        + bytes.fromhex("0600 00 00 00000000")
        + bytes.fromhex("0600 00 00 01000000")
        + steer[-32:]
    )  # fmt: skip
    # each sock_fprog: one instruction, at the address of its filter
    first_filter = 0x400000 + len(steer) - 32 - 16
    assert steer[-32:] == (
        b"\x01\x00" + bytes(6) + first_filter.to_bytes(8, "little")
        + b"\x01\x00" + bytes(6) + (first_filter + 8).to_bytes(8, "little")
    )  # fmt: skip


def _run(tmp_path: Path, program: bytes, script: str, *prefix: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "program"
    path.write_bytes(program)
    path.chmod(0o755)
    argv = ["unshare", "--net", "sh", "-c", script, "sh", " ".join([*prefix, str(path)])]
    return subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)


def test_the_programs_run(tmp_path: Path) -> None:
    # in a network namespace of its own: the pause program runs until it is killed
    got = _run(tmp_path, programs.pause(), "timeout 1 $1; echo $?")
    assert got.stdout.strip() == "124", got
    # the steering program joins the group of a socket that listens as Traefik listens, sets its program, exits 0
    steer = programs.steer([(8080, programs.OLDEST)])
    script = (
        "python3 -c 'import socket,time,sys\n"
        "s=socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)\n"
        's.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0); s.bind(("::", 8080)); s.listen()\n'
        'sys.stdout.write("up\\n"); sys.stdout.flush(); time.sleep(5)\' & sleep 0.5; $1; echo $?; kill $!'
    )
    got = _run(tmp_path, steer, script)
    assert got.stdout.split() == ["up", "0"], got
    # a socket on the port without SO_REUSEPORT: the bind (the program's 5th call) fails, and it says so
    script = (
        "python3 -c 'import socket,time\n"
        's=socket.socket(socket.AF_INET6); s.bind(("::", 8080)); s.listen(); time.sleep(5)\' & sleep 0.5; '
        "$1; echo $?; kill $!"
    )
    got = _run(tmp_path, steer, script)
    assert got.stdout.split() == ["5"], got
    assert socket.SO_REUSEPORT == programs.SO_REUSEPORT


@pytest.mark.skipif(QEMU is None, reason="qemu-user-static is not installed")
def test_the_aarch64_programs_run_under_qemu(tmp_path: Path) -> None:
    assert QEMU is not None
    got = _run(tmp_path, programs.pause(programs.AARCH64), "timeout 1 $1; echo $?", QEMU)
    assert got.stdout.strip() == "124", got
    # qemu-user does not pass SO_ATTACH_REUSEPORT_CBPF to the kernel: the calls before it succeed (socket,
    # options, bind, listen), the 7th fails and the program says so
    got = _run(tmp_path, programs.steer([(8080, programs.OLDEST)], programs.AARCH64), "$1; echo $?", QEMU)
    assert got.stdout.strip() == "7", got
