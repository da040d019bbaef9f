"""A live version's replica that its engine stopped (as a crashed engine leaves them on its next start) is
started again by the scheduler, with no deployment, and Traefik serves it again (``rollout/revive.py``)."""

from __future__ import annotations

import asyncio
import subprocess
import time

from tests.scheduler.platform import web_app

DOCKER = "docker"


def _containers(app_id: str) -> dict[str, str]:
    out = subprocess.run(
        [DOCKER, "ps", "-a", "--filter", f"label=berth.app={app_id}", "--format", "{{.Names}}\t{{.State}}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return dict(line.split("\t") for line in out.splitlines() if line.strip())


async def test_a_live_replica_its_engine_stopped_is_started_again(platform, busybox, app_id, unique):
    host = f"web-revive-{unique}.localhost"
    d1 = await platform.deploy(app_id, web_app(busybox, "v1", host))
    assert (await platform.wait(d1, timeout=60))["type"] == "evt.deployment.succeeded"
    (name,) = _containers(app_id)
    # a stop the engine will not undo by the restart policy (as after an engine crash: exited, code 137)
    subprocess.run([DOCKER, "stop", "-t", "0", name], check=True, capture_output=True, timeout=60)
    assert _containers(app_id) == {name: "exited"}
    t0 = time.monotonic()
    while _containers(app_id) != {name: "running"}:
        assert time.monotonic() - t0 < 20, _containers(app_id)
        await asyncio.sleep(0.2)
    back_s = time.monotonic() - t0
    while (got := await asyncio.to_thread(platform.traefik.get, host)) != (200, b"v1\n"):
        assert time.monotonic() - t0 < 30, got
        await asyncio.sleep(0.2)
    print(f"replica running again after {back_s:.1f}s")


async def test_a_deployment_preempts_a_revival_held_up_by_a_server_that_hangs() -> None:
    """The revival pass runs in the application's slot; a deployment (or removal) arriving meanwhile takes
    the slot at once, cancelling the revival (the next pass looks again), instead of waiting for an engine
    that does not answer."""
    from types import SimpleNamespace

    from berth_scheduler.usecases.rollout.orchestrator import Orchestrator

    orchestrator = Orchestrator(SimpleNamespace())  # type: ignore[arg-type]
    orchestrator._leadership = SimpleNamespace(leading=True)  # type: ignore[assignment]
    ran: list[str] = []

    async def run_app(application_id: str) -> None:
        ran.append(application_id)

    orchestrator._run_app = run_app  # type: ignore[method-assign]
    hanging = asyncio.create_task(asyncio.sleep(3600), name="revive:app-1")
    orchestrator._tasks["app-1"] = hanging
    orchestrator.kick("app-1")
    rollout = orchestrator._tasks["app-1"]
    assert rollout.get_name() == "rollout:app-1"
    await rollout
    assert ran == ["app-1"]
    await asyncio.sleep(0)
    assert hanging.cancelled()
    # a rollout in progress is not preempted by another kick
    busy = asyncio.create_task(asyncio.sleep(3600), name="rollout:app-2")
    orchestrator._tasks["app-2"] = busy
    orchestrator.kick("app-2")
    assert orchestrator._tasks["app-2"] is busy and not busy.cancelled()
    busy.cancel()
