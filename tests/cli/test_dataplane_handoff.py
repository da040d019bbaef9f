"""A Traefik upgrade drops nothing: the real Traefik binary serves a route under a steady open-loop load
(keep-alive connections, as browsers keep them); the next `berth up` brings another static configuration,
and the data plane starts the new Traefik on the same ports, hands it every connection once it serves the
route, and lets the old one drain: not one request fails. A new Traefik that never serves is killed, and
the old one keeps serving, still without an error."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import structlog

from berth_cli import components, dataplane, handoff
from berth_cli.backoff import RestartPolicy
from berth_common import traefik, traefik_body
from tests.support.open_loop import OpenLoop

RATE = 100.0  # requests per second, open loop
HOST = "app.handoff.test"


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[int]:
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("served")
    port = components.free_port()
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(www)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield port
    finally:
        proc.kill()
        proc.wait()


def routes(dynamic: Path, backend: int) -> None:
    """What proxy-sync writes, reduced: the web entry points' body reader, one route, Traefik's API router."""
    config = {
        "http": {
            "routers": {
                "app": {"rule": f"Host(`{HOST}`)", "service": "app", "entryPoints": ["web"]},
                "api": {"rule": "PathPrefix(`/api`)", "service": "api@internal", "entryPoints": ["traefik"]},
            },
            "middlewares": {traefik_body.ENTRY_MIDDLEWARE: traefik_body.middleware()},
            "services": {"app": {"loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{backend}"}]}}},
        }
    }
    (dynamic / "app.yml").write_text(json.dumps(config))


KEEPALIVE_MAX_S = 2  # the test's: client connections to the old Traefik end sooner than in production


def launch(root: Path, web: int, api: int, level: str) -> tuple[list[str], str]:
    """Traefik's argv and static configuration as `berth up` writes them, with log level ``level`` (a change
    of the static configuration, as an upgrade of Berth brings)."""
    argv = components.traefik_launch(root, "127.0.0.1", web, api).argv
    static = root / "traefik" / "static.yml"
    config = json.loads(static.read_text())
    config["log"] = {"level": level}
    for entry in config["entryPoints"].values():
        entry["transport"]["keepAliveMaxTime"] = f"{KEEPALIVE_MAX_S}s"
    static.write_text(json.dumps(config, indent=2))
    return argv, static.read_text()


async def supervise(
    root: Path, argv: list[str], static: str, timeout_s: float = 30.0
) -> tuple[dataplane.DataPlaneProxy, asyncio.Event, asyncio.Task[None]]:
    proxy = dataplane.DataPlaneProxy(
        root,
        argv,
        {},
        {"PATH": "/usr/bin:/bin"},
        root / "traefik.log",
        RestartPolicy(initial_s=0.05, cap_s=0.2),
        structlog.get_logger("test"),
        handoff_timeout_s=timeout_s,
    )
    stopping = asyncio.Event()
    task = asyncio.create_task(proxy.run(stopping, static))
    deadline = time.monotonic() + 60
    while proxy.state != "running":
        assert time.monotonic() < deadline and not task.done(), proxy.state
        await asyncio.sleep(0.05)
    return proxy, stopping, task


async def served(web: int) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{web}", timeout=2) as client:
        deadline = time.monotonic() + 30
        while True:
            with_error = None
            try:
                if (await client.get("/", headers={"Host": HOST})).status_code == 200:
                    return
            except httpx.HTTPError as exc:
                with_error = exc
            assert time.monotonic() < deadline, with_error
            await asyncio.sleep(0.1)


def gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_every_entry_point_can_be_shared_and_drains_before_it_stops():
    config = traefik.static_config("/d", "", 80, "", 8081, websecure_port=443)
    lifecycle = {"requestAcceptGraceTimeout": traefik.ACCEPT_GRACE_S, "graceTimeOut": traefik.GRACE_S}
    transport = {"keepAliveMaxTime": traefik.KEEPALIVE_MAX_S, "lifeCycle": lifecycle}
    for name in ("web", "websecure", "traefik"):
        entry = config["entryPoints"][name]  # type: ignore[index]
        assert entry["reusePort"] is True and entry["transport"] == transport


def test_the_socket_selecting_program_steers_probes_by_source_port():
    assert handoff.program(handoff.NEW) == [(handoff.RET_K, 0, 0, 1)]
    prog = handoff.program(handoff.OLD, 40123)
    assert prog[3] == (handoff.LDH_ABS, 0, 0, (handoff.SKF_NET_OFF + 20) & 0xFFFFFFFF)
    assert prog[5] == (handoff.LDH_ABS, 0, 0, (handoff.SKF_NET_OFF + 40) & 0xFFFFFFFF)
    assert prog[6:] == [(handoff.JEQ_K, 0, 1, 40123), (handoff.RET_K, 0, 0, 1), (handoff.RET_K, 0, 0, 0)]


def test_the_new_traefik_serves_as_the_old_one_when_its_answers_match():
    assert handoff.serves_as(200, 200) and handoff.serves_as(401, 401) and handoff.serves_as(404, 404)
    assert not handoff.serves_as(200, 404)  # routes not loaded yet
    assert not handoff.serves_as(401, 404) and not handoff.serves_as(200, 0)
    assert handoff.serves_as(200, 302)  # an application's answers vary
    assert handoff.serves_as(0, 404)  # the old one answers nothing: nothing to compare with


async def ended(load: OpenLoop, runner: asyncio.Task[None], stopping: asyncio.Event, task: asyncio.Task[Any]) -> None:
    """Stop the load and the supervisor; not one request failed, and the load ran through the hand-over
    (fewer than ``RATE`` a second on a busy machine: an open loop falls behind)."""
    load.stop.set()
    await runner
    stopping.set()
    await task
    assert load.errors == []
    assert load.sent >= RATE / 2


async def test_a_new_static_configuration_replaces_traefik_without_one_failed_request(tmp_path: Path, backend: int):
    root = tmp_path / "data"
    web, api = components.free_port(), components.free_port()
    argv, static = launch(root, web, api, "WARN")
    routes(root / "traefik" / "dynamic", backend)
    try:
        first, stopping, task = await supervise(root, argv, static)
        await served(web)
        stopping.set()
        await task  # the supervisor stops: Traefik keeps serving
        old = first.pid
        assert old is not None and not gone(old)

        load = OpenLoop(web, HOST, RATE, expect="served")
        runner = asyncio.create_task(load.run())
        await asyncio.sleep(1.0)
        argv, static = launch(root, web, api, "ERROR")  # the next `berth up` brings another static configuration
        second, stopping, task = await supervise(root, argv, static)
        assert second.adopted is False and second.pid != old
        assert dataplane.serving(root) == second.pid
        # the old one keeps its clients' connections until they leave it, then drains and exits
        deadline = time.monotonic() + KEEPALIVE_MAX_S + 15
        while not gone(old):
            assert time.monotonic() < deadline, handoff.clients(old, [web])
            await asyncio.sleep(0.1)
        assert [p.pid for p in dataplane.marked(root)] == [second.pid]
        await asyncio.sleep(1.0)
        await ended(load, runner, stopping, task)
    finally:
        dataplane.stop(root, timeout=5)


async def test_a_new_traefik_that_never_serves_is_killed_and_the_old_one_serves_on(tmp_path: Path, backend: int):
    root = tmp_path / "data"
    web, api = components.free_port(), components.free_port()
    argv, static = launch(root, web, api, "WARN")
    routes(root / "traefik" / "dynamic", backend)
    try:
        first, stopping, task = await supervise(root, argv, static)
        await served(web)
        stopping.set()
        await task
        old = first.pid
        assert old is not None

        load = OpenLoop(web, HOST, RATE, expect="served")
        runner = asyncio.create_task(load.run())
        # the new configuration's routes never load: its file provider watches an empty directory
        config = json.loads(static)
        config["providers"]["file"]["directory"] = str(tmp_path / "empty")
        (tmp_path / "empty").mkdir()
        static = json.dumps(config, indent=2)
        (root / "traefik" / "static.yml").write_text(static)
        second, stopping, task = await supervise(root, argv, static, timeout_s=3.0)
        assert second.pid == old and second.adopted is True
        assert dataplane.serving(root) == old and [p.pid for p in dataplane.marked(root)] == [old]
        await asyncio.sleep(0.5)
        await ended(load, runner, stopping, task)
    finally:
        dataplane.stop(root, timeout=5)
