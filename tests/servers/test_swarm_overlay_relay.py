"""The overlay probe's relay on the local engine (seconds, no Swarm): the probe container is made on first use
on the network it is given, each check is one ``nc`` run by the relay (one exec for every check) whose answer
the readiness check reads as from any connection (2xx passes, an error status says its body, a closed port is
"connection refused"), and a probe that was removed is made again by the next check (one made without the
engine's init too: an ended relay leaves no zombie). The Swarm itself: ``test_swarm_overlay_probe.py``."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator

import pytest

from berth_scheduler.adapters.remote_readiness import request_bytes
from berth_scheduler.adapters.swarm_overlay import OverlayProbe
from berth_scheduler.adapters.swarm_probe import NodeProbe
from berth_scheduler.domain import swarm_overlay
from berth_scheduler.domain import swarm_rollout as dom
from tests.support.images import busybox_image

SOCKET = "/var/run/docker.sock"
SCRIPT = 'mkdir -p /www && printf %s "$BODY" > /www/index.html && exec httpd -f -p 8080 -h /www'


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True, timeout=60).stdout.strip()


@pytest.fixture
def app(unique: str) -> Iterator[tuple[str, str]]:
    """(network, the address of a busybox httpd on it): a bridge network stands for the overlay here."""
    image = busybox_image()
    network = f"berth-relay-{unique}"
    _docker("network", "create", network)
    web = f"berth-relay-web-{unique}"
    try:
        _docker("run", "-d", "--name", web, "--network", network, "-e", "BODY=relayed", image, "sh", "-c", SCRIPT)
        address = _docker("inspect", "-f", '{{(index .NetworkSettings.Networks "' + network + '").IPAddress}}', web)
        yield network, address
    finally:
        subprocess.run(["docker", "rm", "-f", web, swarm_overlay.probe_name(network)], capture_output=True)
        subprocess.run(["docker", "network", "rm", network], capture_output=True)


async def test_a_check_through_the_overlay_probe_is_a_get_like_any_other(app: tuple[str, str]) -> None:
    network, address = app
    asked: list[str] = []

    async def socket() -> str:
        return SOCKET

    async def image() -> None:
        asked.append(network)

    probe = NodeProbe(None, lambda: {}, timeout_s=3, overlay=OverlayProbe(socket, network, image, timeout_s=3))  # type: ignore[arg-type]
    task = dom.Task("t1", "a-node-berth-does-not-reach", address, "c1")
    assert probe.reaches_over_overlay(task) and not probe.reaches(task)
    for _ in range(50):  # httpd starting
        if await probe.ready(task, 8080, "/"):
            break
        await asyncio.sleep(0.1)
    assert await probe.ready(task, 8080, "/")
    assert asked == [network]  # the probe was made once, its image asked for first
    name = swarm_overlay.probe_name(network)
    # a check's request, any bytes, is what the relay's read and printf give nc
    odd = bytes(range(256))
    line = swarm_overlay.check_line(1, address, 8080, odd)
    read = 'read -r n address port request; printf %b "$request"'
    given = subprocess.run(
        ["docker", "exec", "-i", name, "sh", "-c", read], input=line, capture_output=True, timeout=60
    )
    assert given.stdout == odd, given
    assert _docker("inspect", "-f", "{{.State.Running}} {{.Config.Labels}}", name).startswith("true ")

    assert not await probe.ready(task, 8080, "/missing")
    assert "404" in probe.said["t1"], probe.said
    seen = await probe.seen(task, 8081, "/")
    assert (seen.ok, seen.kind, seen.text) == (False, "refused", "GET /: connection refused")

    _docker("rm", "-f", name)  # lost: the next check makes it again
    assert await probe.ready(task, 8080, "/")
    assert asked == [network, network]
    assert "t1" not in probe.said

    # without an overlay probe, a task on a node Berth does not reach is not checked here
    assert not NodeProbe(None, lambda: {}).reaches_over_overlay(task)  # type: ignore[arg-type]


async def test_a_probe_made_without_the_engines_init_is_made_again_with_it(app: tuple[str, str]) -> None:
    """A probe an earlier Berth made (no ``HostConfig.Init``: nothing in it reaps an ended relay's processes)
    is removed and made again with the engine's init as its first process; one made with it is kept."""
    network, address = app
    name = swarm_overlay.probe_name(network)
    label = f"{swarm_overlay.PROBE_LABEL}={network}"
    _docker("run", "-d", "--name", name, "--network", network, "--label", label, busybox_image(), "sleep", "2147483647")
    before = json.loads(_docker("inspect", name))[0]
    assert not before["HostConfig"].get("Init"), before["HostConfig"]

    async def socket() -> str:
        return SOCKET

    probe = NodeProbe(None, lambda: {}, timeout_s=3, overlay=OverlayProbe(socket, network, timeout_s=3))  # type: ignore[arg-type]
    task = dom.Task("t1", "a-node-berth-does-not-reach", address, "c1")
    for _ in range(50):  # httpd starting
        if await probe.ready(task, 8080, "/"):
            break
        await asyncio.sleep(0.1)
    assert await probe.ready(task, 8080, "/")
    after = json.loads(_docker("inspect", name))[0]
    assert after["Id"] != before["Id"] and after["HostConfig"].get("Init") is True and after["State"]["Running"]
    first = _docker("exec", name, "ps", "-o", "pid,args").splitlines()[1].split(None, 1)
    assert first[0] == "1" and "docker-init" in first[1], first

    await OverlayProbe(socket, network, timeout_s=3).ensure()  # made with it: kept
    assert _docker("inspect", "-f", "{{.Id}}", name) == after["Id"]


def _execs(name: str, since: str) -> int:
    """How many relays the engine started in container ``name`` since ``since`` (its exec events; the
    ``ps`` of :func:`_processes` is an exec too)."""
    out = _docker(
        "events",
        "--since",
        since,
        "--until",
        _docker("system", "info", "-f", "{{json .SystemTime}}").strip('"'),
        "--filter",
        f"container={name}",
        "--filter",
        "event=exec_create",
        "--format",
        "{{json .Action}}",
    )
    return len([line for line in out.splitlines() if "berth-relay" in line])


def _processes(name: str) -> list[str]:
    """The probe's processes other than its init, its own sleep and the ``ps`` asking (state and command
    line: a zombie is ``Z [sh]``, an ended process nothing reaped)."""
    lines = _docker("exec", name, "ps", "-o", "pid,stat,args").splitlines()[1:]
    shown = [line.split(None, 2) for line in lines]
    return [
        f"{stat} {args}" for pid, stat, args in shown if pid != "1" and not args.startswith(("sleep 2147483647", "ps "))
    ]


async def _left(name: str, within_s: float = 10.0) -> list[str]:
    """The probe's processes once none is left, or what is still there after ``within_s`` (an ended relay's
    checks may still run out their ``nc -w``; a zombie stays for good when nothing reaps it)."""
    deadline = time.monotonic() + within_s
    while (left := _processes(name)) and time.monotonic() < deadline:
        await asyncio.sleep(0.3)
    return left


async def test_every_check_goes_through_one_exec_and_each_answer_is_its_own(app: tuple[str, str]) -> None:
    """The relay: checks of many tasks at once go through one exec of the probe, each connection reads its
    own answer (bodies longer than one frame, refusals among them), no ``nc`` outlives its closed connection,
    a check the relay ended before answering is sent again on a new one, the relay ends when no check came
    for ``idle_s`` (the next check starts another), and a relay closed by its owner ends its open checks."""
    network, address = app
    big = "x" * 5000
    web = f"berth-relay-big-{network}"
    _docker("run", "-d", "--name", web, "--network", network, "-e", f"BODY={big}", busybox_image(), "sh", "-c", SCRIPT)
    try:
        fmt = '{{(index .NetworkSettings.Networks "' + network + '").IPAddress}}'
        big_address = _docker("inspect", "-f", fmt, web)

        async def socket() -> str:
            return SOCKET

        probe = OverlayProbe(socket, network, timeout_s=3, idle_s=1.0)
        name = swarm_overlay.probe_name(network)
        await probe.ensure()
        since = _docker("system", "info", "-f", "{{json .SystemTime}}").strip('"')

        async def answer(where: str, port: int) -> bytes | str:
            try:
                reader, writer = await probe.open_connection(where, port)
            except OSError as exc:
                return str(exc)
            try:
                writer.write(request_bytes(where, port, "/"))
                return await asyncio.wait_for(reader.read(), 5)
            except OSError as exc:
                return f"{type(exc).__name__}: {exc}"
            finally:
                writer.close()

        for _ in range(50):  # both httpd started
            first = await asyncio.gather(answer(address, 8080), answer(big_address, 8080))
            if all(isinstance(a, bytes) and a.startswith(b"HTTP/1.") for a in first):
                break
            await asyncio.sleep(0.1)
        wanted = [(address, 8080), (big_address, 8080), (address, 8081)] * 4
        answers = await asyncio.gather(*(answer(a, p) for a, p in wanted))
        for (where, port), got in zip(wanted, answers, strict=True):
            if port == 8081:
                assert got == "ConnectionRefusedError: connection refused", got
            else:
                assert isinstance(got, bytes) and got.startswith(b"HTTP/1.1 200 OK\r\n"), got[:100]
                assert got.endswith(b"\r\n\r\n" + (big if where == big_address else "relayed").encode()), got[-100:]
        assert _execs(name, since) == 1
        await asyncio.sleep(0.5)
        assert not [p for p in _processes(name) if p.split()[1] == "nc"], _processes(name)

        # a relay that ended (killed here) before it answered a check: the check is sent again on a new one
        relay = [p.split()[0] for p in _docker("exec", name, "ps", "-o", "pid,args").splitlines() if "berth-relay" in p]
        _docker("exec", name, "kill", *relay)
        assert (await answer(address, 8080))[:15] == b"HTTP/1.1 200 OK"
        assert _execs(name, since) == 2

        await asyncio.sleep(1.5)  # idle: the relay ended, and every check's processes with it, all reaped
        assert _processes(name) == []  # no zombie "Z [sh]" either
        assert (await answer(address, 8080))[:15] == b"HTTP/1.1 200 OK"
        assert _execs(name, since) == 3

        # closed (its rollout ended) with a check open on a task that does not answer: the check ends at once,
        # reset, and is not sent again on another relay
        _docker("exec", "-d", web, "sh", "-c", "sleep 60 | nc -l -p 9000")  # accepts, never answers
        await asyncio.sleep(0.3)
        hanging = asyncio.create_task(answer(big_address, 9000))
        await asyncio.sleep(0.5)
        assert not hanging.done()
        await probe.aclose()
        assert (await asyncio.wait_for(hanging, 2)).startswith("ConnectionResetError: "), hanging.result()
        await asyncio.sleep(0.3)
        assert _execs(name, since) == 3
        assert await _left(name) == []  # the relay closed here left no process, running or zombie
    finally:
        subprocess.run(["docker", "rm", "-f", web], capture_output=True)
