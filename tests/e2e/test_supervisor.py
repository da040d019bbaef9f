"""The supervisor's child handling with real (tiny) processes: restart with backoff, stop escalation."""

from __future__ import annotations

import asyncio
import sys
import time

import psutil

from berth_cli.backoff import RestartPolicy
from berth_cli.layout import SERVICE_NAMES, ChildSpec
from berth_cli.supervisor import Supervisor


async def _until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def _supervisor(tmp_path) -> Supervisor:
    sup = Supervisor(tmp_path, env={}, policy=RestartPolicy(initial_s=0.05, cap_s=0.2))
    sup.paths.logs.mkdir(parents=True)
    return sup


async def test_a_crashing_child_is_restarted_with_growing_delays(tmp_path):
    sup = _supervisor(tmp_path)
    child = sup.start_child(ChildSpec("crasher", [sys.executable, "-c", "print('up'); raise SystemExit(3)"]))
    await _until(lambda: child.restarts >= 4)
    assert child.last_exit == 3
    assert child.failures >= 4
    await sup.stop_child(child)
    assert child.state == "stopped"
    assert (sup.paths.log("crasher")).read_text().count("up") >= 4


async def test_a_child_ignoring_sigterm_is_killed_after_its_timeout(tmp_path):
    sup = _supervisor(tmp_path)
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    )
    spec = ChildSpec("stubborn", [sys.executable, "-c", code], stop_timeout_s=0.5)
    child = sup.start_child(spec)
    log = sup.paths.log("stubborn")
    await _until(lambda: log.exists() and "ready" in log.read_text())
    pid = child.proc.pid
    started = time.monotonic()
    await sup.stop_child(child)
    assert time.monotonic() - started < 5
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert child.restarts == 0


async def test_a_child_that_is_killed_comes_back_with_a_new_pid(tmp_path):
    sup = _supervisor(tmp_path)
    child = sup.start_child(ChildSpec("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"]))
    await _until(lambda: child.state == "running")
    first = child.proc.pid
    psutil.Process(first).kill()
    await _until(lambda: child.state == "running" and child.proc.pid != first)
    assert child.restarts == 1 and child.last_exit == -9
    state = sup.snapshot()["children"]["sleeper"]
    assert state["pid"] == child.proc.pid and state["restarts"] == 1
    await sup.stop_child(child)
    assert not psutil.pid_exists(child.proc.pid)


async def test_nats_and_postgres_stop_together_once_the_services_have_stopped(tmp_path):
    """Neither needs the other once the services are gone: `berth down` does not wait for nats-server's JetStream
    shutdown (about a second) before it begins Postgres's."""
    sup = _supervisor(tmp_path)
    code = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: (time.sleep(1.0), sys.exit(0)))\n"  # a second to stop
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    children = [sup.start_child(ChildSpec(name, [sys.executable, "-c", code])) for name in ("postgres", "nats")]
    for name in ("postgres", "nats"):
        log = sup.paths.log(name)
        await _until(lambda log=log: log.exists() and "ready" in log.read_text())
    started = time.monotonic()
    await sup.shutdown()
    took = time.monotonic() - started
    assert all(c.state == "stopped" for c in children)
    assert took < 1.9, took  # one after the other: two seconds at least


async def test_the_bus_is_configured_and_started_while_the_database_roles_are_provisioned(tmp_path, monkeypatch):
    """nats-server's configuration is written by a Python child (seconds on a busy machine): `berth up` waits
    for the longer of it and Postgres's start and provisioning, not their sum. Here the bus's start waits until
    provisioning has begun, so a start-up that provisions only once the bus is up never gets there; the services
    start once both are done. (The children themselves are played: this is about the order.)"""
    env = {"BERTH_DATABASE_URL": "postgresql+asyncpg://berth:pw@127.0.0.1:1/berth", "BERTH_PORT_BASE": "41000"}
    sup = Supervisor(tmp_path, env=env)
    sup.paths.logs.mkdir(parents=True)
    done: list[str] = []
    provisioning = asyncio.Event()

    async def start_nats() -> bool:
        await provisioning.wait()
        done.append("nats")
        return True

    async def provision(secret: str, admin_url: str) -> dict[str, str]:
        provisioning.set()
        await asyncio.sleep(0.05)  # the bus starts meanwhile
        done.append("provision")
        return {name: f"postgresql+asyncpg://{name}@127.0.0.1:1/berth" for name in SERVICE_NAMES}

    async def ready(names: list[str]) -> bool:
        return True

    monkeypatch.setattr(sup, "_start_nats", start_nats)
    monkeypatch.setattr(sup, "_provision", provision)
    monkeypatch.setattr(sup, "_wait_ready", ready)
    monkeypatch.setattr(sup, "start_proxy", lambda argv, env: done.append("traefik"))
    monkeypatch.setattr(sup, "start_child", lambda spec: done.append(spec.name))
    await asyncio.wait_for(sup._start(), 10)
    assert done == ["traefik", "nats", "provision", *SERVICE_NAMES]
