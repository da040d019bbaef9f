"""One sweep of a server at a time, looking twice (the second look ``again_s`` after the first), none again
within ``QUIET_S`` of the last; a look that fails is logged, never raised into the revival that asked for it
(``usecases/rollout/orphans.py``)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from structlog.testing import capture_logs

from berth_scheduler.adapters.docker import DockerOperationError
from berth_scheduler.usecases.rollout import orphans as mod
from berth_scheduler.usecases.rollout.orphans import QUIET_S, Orphans


class Server:
    """What the sweeps of the servers did: the helper image put there, then the sweeper run, then the port
    sweeper (``done``: both, in order)."""

    def __init__(self) -> None:
        self.swept: list[Any] = []
        self.done: list[tuple[str, Any]] = []
        self.gate = asyncio.Event()
        self.fails: Exception | None = None
        self.ports_fail: Exception | None = None

    async def image(self, docker: Any, server_id: str, socket: Any, local: Any) -> None:
        assert local == "local-engine" and socket is None

    async def sweep(self, docker: Any) -> list[int]:
        await self.gate.wait()
        self.swept.append(docker)
        self.done.append(("processes", docker))
        if self.fails is not None:
            raise self.fails
        return [40 + len(self.swept)]

    async def ports(self, docker: Any) -> list[str]:
        self.done.append(("ports", docker))
        if self.ports_fail is not None:
            raise self.ports_fail
        return [f"veth{len(self.done)}"]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Server:
    s = Server()
    monkeypatch.setattr(mod, "helper_image", s.image)
    monkeypatch.setattr(mod, "end_orphans", s.sweep)
    monkeypatch.setattr(mod, "end_stale_ports", s.ports)
    return s


def fleet() -> Any:
    async def docker(server_id: str) -> str:
        return "local-engine" if server_id == "local" else server_id

    return SimpleNamespace(socket=None, docker=docker)


async def test_a_server_is_swept_once_for_the_revivals_of_one_restart_and_again_after_the_quiet_time(server: Server):
    now = [100.0]
    sweeps = Orphans(fleet(), clock=lambda: now[0], again_s=0.05)
    first = sweeps.after_restart("s1", "engine-1")
    assert first is not None
    assert sweeps.after_restart("s1", "engine-1") is None  # one runs
    other = sweeps.after_restart("s2", "engine-2")  # another server's is its own
    assert other is not None
    server.gate.set()
    with capture_logs() as logs:
        assert sorted(await first + await other) == [41, 42, 43, 44]  # each server looked at twice
    assert sorted(server.swept) == ["engine-1", "engine-1", "engine-2", "engine-2"]
    told = [e["server_id"] for e in logs if e["event"].startswith("processes an engine restart left")]
    assert sorted(told) == ["s1", "s1", "s2", "s2"]
    now[0] += QUIET_S - 1
    assert sweeps.after_restart("s1", "engine-1") is None  # the same restart, seen by a later revival
    now[0] += 2
    again = sweeps.after_restart("s1", "engine-1")
    assert again is not None and await again == [45, 46]


async def test_a_sweep_that_fails_is_told_and_the_server_swept_at_a_later_restart(server: Server):
    now = [0.0]
    sweeps = Orphans(fleet(), clock=lambda: now[0], again_s=0.01)
    server.fails, server.gate = DockerOperationError("ending the processes ... failed (exit 3)"), asyncio.Event()
    server.gate.set()
    with capture_logs() as logs:
        task = sweeps.after_restart("s1", "engine-1")
        assert task is not None and await task == []
    failed = [e["error"] for e in logs if e["event"].startswith("processes of removed containers not looked")]
    assert failed == ["ending the processes ... failed (exit 3)"] * 2
    now[0] += QUIET_S
    assert sweeps.after_restart("s1", "engine-1") is not None
    await sweeps.stop()


async def test_each_look_deletes_the_ports_nothing_is_behind_after_ending_the_processes(server: Server):
    sweeps = Orphans(fleet(), clock=lambda: 0.0, again_s=0.01)
    server.gate.set()
    with capture_logs() as logs:
        task = sweeps.after_restart("s1", "engine-1")
        assert task is not None and await task == [41, 42]
    assert server.done == [("processes", "engine-1"), ("ports", "engine-1")] * 2
    told = [e["ports"] for e in logs if e["event"] == "ports no container is behind deleted from the bridges"]
    assert told == [["veth2"], ["veth4"]]


async def test_a_port_sweep_that_fails_is_told_and_one_after_a_failed_process_sweep_is_not_run(server: Server):
    sweeps = Orphans(fleet(), clock=lambda: 0.0, again_s=0.01)
    server.gate.set()
    server.ports_fail = DockerOperationError("deleting the ports no container is behind failed (exit 4)")
    with capture_logs() as logs:
        task = sweeps.after_restart("s1", "engine-1")
        assert task is not None and await task == [41, 42]  # the processes ended are told all the same
    failed = [e["error"] for e in logs if e["event"] == "ports no container is behind not looked for"]
    assert failed == ["deleting the ports no container is behind failed (exit 4)"] * 2
    server.done.clear()
    server.fails = DockerOperationError("no engine")
    sweeps = Orphans(fleet(), clock=lambda: 0.0, again_s=0.01)
    task = sweeps.after_restart("s2", "engine-2")
    assert task is not None and await task == []
    assert server.done == [("processes", "engine-2")] * 2  # no port sweep where the engine failed the first
