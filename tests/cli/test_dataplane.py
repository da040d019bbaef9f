"""The data plane's detached proxy process with a real (tiny) process standing in for Traefik: it outlives
its supervisor, the next one adopts it when it was started the same way and replaces it when not, it is
started again when it dies, and `stop` ends it; the ports it holds do not count as busy for `berth up`."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from pathlib import Path

import psutil
import pytest
import structlog

from berth_cli import dataplane
from berth_cli.backoff import RestartPolicy
from berth_cli.backup_archive import BackupError
from berth_cli.backup_run import restore_backup
from berth_cli.layout import Paths
from berth_cli.platform import busy_ports, free_port_base

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def proxy(root: Path, argv: list[str], env: dict[str, str] | None = None) -> dataplane.DataPlaneProxy:
    return dataplane.DataPlaneProxy(
        root,
        argv,
        env or {},
        {"PATH": "/usr/bin:/bin"},
        root / "traefik.log",
        RestartPolicy(initial_s=0.05, cap_s=0.2),
        structlog.get_logger("test"),
    )


async def until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def supervise(p: dataplane.DataPlaneProxy, static: str) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stopping = asyncio.Event()
    task = asyncio.create_task(p.run(stopping, static))
    await until(lambda: p.state == "running")
    return stopping, task


async def test_the_proxy_outlives_its_supervisor_and_the_next_one_adopts_it(tmp_path: Path):
    root = tmp_path
    try:
        first = proxy(root, SLEEPER)
        stopping, task = await supervise(first, "static v1")
        assert first.adopted is False and first.pid is not None
        assert psutil.Process(first.pid).environ()[dataplane.MARKER] == str(root)
        stopping.set()
        await task
        assert psutil.Process(first.pid).is_running()  # the supervisor stopped, the proxy did not
        assert dataplane.serving(root) == first.pid

        second = proxy(root, SLEEPER)
        stopping, task = await supervise(second, "static v1")
        assert second.adopted is True and second.pid == first.pid
        assert second.public()["pid"] == first.pid and second.public()["adopted"] is True

        # it dies: the supervisor starts it again
        psutil.Process(first.pid).kill()
        await until(lambda: second.restarts == 1 and second.state == "running")
        assert second.pid != first.pid and second.adopted is False
        stopping.set()
        await task

        # another static configuration: the running one is replaced, not adopted
        running = second.pid
        third = proxy(root, SLEEPER)
        stopping, task = await supervise(third, "static v2")
        assert third.adopted is False and third.pid != running
        assert not psutil.pid_exists(running) or psutil.Process(running).status() == psutil.STATUS_ZOMBIE
        stopping.set()
        await task
        # another environment of its own (ACME settings): replaced too
        fourth = proxy(root, SLEEPER, {"LEGO_CA_CERTIFICATES": "/x.pem"})
        stopping, task = await supervise(fourth, "static v2")
        assert fourth.adopted is False and fourth.pid != third.pid
        stopping.set()
        await task
    finally:
        stopped = dataplane.stop(root, timeout=5)
    assert stopped and dataplane.serving(root) is None and dataplane.marked(root) == []
    assert not dataplane.record_path(root).exists()


async def test_the_ports_the_proxy_holds_are_not_busy_for_the_next_up(tmp_path: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    listener = [
        sys.executable,
        "-c",
        f"import socket, time; s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(120)",
    ]
    p = proxy(tmp_path, listener)
    stopping, task = await supervise(p, "static")
    try:
        await until(lambda: port in dataplane.held_ports(tmp_path))
        env = {"BERTH_PORT_BASE": str(free_port_base()), "BERTH_PROXY_PORT": str(port)}
        assert f"proxy 127.0.0.1:{port}" in busy_ports(env)
        assert [b for b in busy_ports(env, dataplane.held_ports(tmp_path)) if b.startswith("proxy ")] == []
    finally:
        stopping.set()
        await task
        dataplane.stop(tmp_path, timeout=5)


async def test_an_upgraded_binary_is_started_anew_not_adopted(tmp_path: Path):
    binary = tmp_path / "bin-traefik"
    binary.write_text("#!/bin/sh\nexec sleep 120\n")
    binary.chmod(0o755)
    try:
        first = proxy(tmp_path, [str(binary)])
        stopping, task = await supervise(first, "static")
        stopping.set()
        await task
        binary.write_text("#!/bin/sh\n# a newer version\nexec sleep 120\n")
        second = proxy(tmp_path, [str(binary)])
        stopping, task = await supervise(second, "static")
        assert second.adopted is False and second.pid != first.pid
        stopping.set()
        await task
    finally:
        dataplane.stop(tmp_path, timeout=5)


async def test_a_restore_is_refused_while_the_data_plane_serves_from_the_data_directory(tmp_path: Path):
    p = proxy(tmp_path, SLEEPER)
    stopping, task = await supervise(p, "static")
    stopping.set()
    await task
    try:
        with pytest.raises(BackupError, match=r"traefik \(pid \d+\) still serves from .*berth down --all"):
            restore_backup(Paths(tmp_path), tmp_path / "missing.tar.gz", "passphrase")
    finally:
        dataplane.stop(tmp_path, timeout=5)


def test_a_free_port_range_lies_below_the_kernels_ephemeral_ports():
    """A port the kernel may hand to any outgoing connection is no port to reserve for a platform."""
    from berth_cli.layout import PORT_SPAN
    from berth_cli.platform import ephemeral_low

    low = ephemeral_low()
    first, _last = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    assert low == int(first)
    for _ in range(20):
        base = free_port_base()
        assert 20000 <= base and base + PORT_SPAN + 1 <= min(low, 32000)
