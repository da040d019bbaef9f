# ruff: noqa: F811 (the rig and its database are test_databases' fixtures, imported by name)
"""A one-click database its engine stopped is started again by the revival pass and announced; one stopped
on purpose stays stopped (``usecases/database_revival.py``), on a real scheduler and Docker with the local
Redis image."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from typing import Any

import pytest

from berth_common.catalogue import RotateDatabaseCredentials, RunDatabase, StartDatabase, StopDatabase
from berth_scheduler.domain.revival import SETTLE_S, restarted_by_engine, revival_tag, should_start
from tests.scheduler.test_databases import Made, Rig, app, made, no_secret_anywhere, rid, rig, spec_of, url  # noqa: F401
from tests.support import images

REVIVE_S = 5.0  # the orchestrator's revival pass interval


def _state(container: str) -> str:
    out = subprocess.run(
        [images.DOCKER, "inspect", "-f", "{{.State.Status}}", container], capture_output=True, text=True, timeout=60
    )
    return out.stdout.strip()


async def _states_become(rig: Rig, request_id: str, wanted: list[str], timeout: float) -> list[str]:
    t0 = time.monotonic()
    while rig.states(request_id) != wanted:
        assert time.monotonic() - t0 < timeout, rig.states(request_id)
        assert len(rig.states(request_id)) <= len(wanted), rig.states(request_id)
        await asyncio.sleep(0.2)
    return rig.states(request_id)


def _inspected(status: str, finished: str, policy: str = "unless-stopped", code: int = 137) -> dict[str, Any]:
    state = {"Status": status, "Running": status == "running", "ExitCode": code, "FinishedAt": finished}
    return {"State": state, "HostConfig": {"RestartPolicy": {"Name": policy}}}


def test_the_revival_tag_is_the_exit_time_so_one_exit_is_announced_once() -> None:
    info = _inspected("exited", "2026-12-06T07:01:02.123456789Z")
    assert revival_tag(info) == "-r20261206070102123456789"
    assert revival_tag(_inspected("exited", "2026-12-06T07:01:03.5Z")) == "-r202612060701035"
    from datetime import UTC, datetime

    now = datetime(2026, 12, 6, 7, 1, 10, tzinfo=UTC)
    assert should_start(info, now)  # a database's policy: unless-stopped
    assert not should_start(_inspected("exited", "2026-12-06T07:01:06Z"), now)  # within SETTLE_S: not yet


def test_a_database_its_engine_restarted_is_told_from_one_berth_started() -> None:
    running = _inspected("running", "2026-12-06T07:01:02Z", code=0)
    running["State"]["StartedAt"] = "2026-12-06T07:01:02.5Z"
    assert revival_tag(running) == "-s202612060701025"
    assert restarted_by_engine({**running, "RestartCount": 1}, None)
    assert restarted_by_engine({**running, "RestartCount": 1}, "2026-12-06T06:00:00Z")
    assert not restarted_by_engine({**running, "RestartCount": 1}, "2026-12-06T07:01:02.5Z")  # announced already
    assert not restarted_by_engine({**running, "RestartCount": 0}, None)  # started by Berth (or never died)
    assert not restarted_by_engine({**_inspected("exited", "2026-12-06T07:01:02Z"), "RestartCount": 3}, None)
    assert not restarted_by_engine(None, None)


@pytest.mark.docker
@pytest.mark.slow
async def test_a_killed_database_is_started_again_and_announced(rig: Rig, made: Made) -> None:
    images.redis_image()
    spec = spec_of(made, "redis", "7", "pw-" + uuid.uuid4().hex)
    run = await rig.send(RunDatabase(request_id=rid(), spec=spec))
    assert (await rig.wait(run))["state"] == "running"
    # killed outside Berth (as an OOM kill or an engine that crashed leaves it): Docker does not start it again
    subprocess.run([images.DOCKER, "kill", made.container], check=True, capture_output=True, timeout=60)
    assert _state(made.container) == "exited"
    t0 = time.monotonic()
    await _states_become(rig, run, ["starting", "running", "starting", "running"], SETTLE_S + REVIVE_S + 60)
    back_s = time.monotonic() - t0
    assert _state(made.container) == "running"
    revived = [e for e in rig.events if e["data"]["request_id"] == run][2:]
    assert [e["data"]["host"] for e in revived] == [made.container] * 2
    assert all("-r" in e["id"] for e in revived), [e["id"] for e in revived]
    print(f"database running again {back_s:.1f}s after it was killed")

    # once more: a second exit is a second revival, announced again
    subprocess.run([images.DOCKER, "kill", made.container], check=True, capture_output=True, timeout=60)
    await _states_become(rig, run, ["starting", "running"] * 3, SETTLE_S + REVIVE_S + 60)

    # its main process killed: the engine starts it again by its policy, and the pass announces it
    pid = subprocess.run(
        [images.DOCKER, "inspect", "-f", "{{.State.Pid}}", made.container], capture_output=True, text=True, timeout=60
    ).stdout.strip()
    os.kill(int(pid), signal.SIGKILL)
    await _states_become(rig, run, ["starting", "running"] * 4, REVIVE_S + 60)
    assert _state(made.container) == "running"

    # stopped on purpose: stays stopped through passes after the settling time
    stop = await rig.send(StopDatabase(request_id=rid(), database_id=made.database_id, team_id=made.team_id))
    assert (await rig.wait(stop))["state"] == "stopped"
    stopped_at = time.monotonic()
    while time.monotonic() - stopped_at < SETTLE_S + 2 * REVIVE_S + 1:
        assert _state(made.container) == "exited"
        await asyncio.sleep(0.5)
    assert rig.states(stop) == ["stopped"] and len(rig.states(run)) == 8

    # started again by a command: meant to run again, so a kill is revived for that request
    start = await rig.send(StartDatabase(request_id=rid(), spec=spec))
    assert (await rig.wait(start))["state"] == "running"
    subprocess.run([images.DOCKER, "kill", made.container], check=True, capture_output=True, timeout=60)
    await _states_become(rig, start, ["starting", "running"] * 2, SETTLE_S + REVIVE_S + 60)
    assert len(rig.states(run)) == 8


@pytest.mark.docker
@pytest.mark.slow
async def test_a_database_killed_after_a_rotation_is_started_again_with_the_new_password(
    rig: Rig, made: Made, capfd: pytest.CaptureFixture[str]
) -> None:
    images.redis_image()
    spec = spec_of(made, "redis", "7", "old-" + uuid.uuid4().hex)
    run = await rig.send(RunDatabase(request_id=rid(), spec=spec))
    assert (await rig.wait(run))["state"] == "running"
    new = "new-" + rid()
    rotate = await rig.send(RotateDatabaseCredentials(request_id=rid(), spec=spec, new_password=new))
    assert (await rig.wait(rotate, "evt.database.credentials_rotated"))["outcome"] == "succeeded"
    await _states_become(rig, rotate, ["starting", "running"], 30)
    subprocess.run([images.DOCKER, "kill", made.container], check=True, capture_output=True, timeout=60)
    # its readiness check logs in with the new password: running, not failed
    await _states_become(rig, rotate, ["starting", "running"] * 2, SETTLE_S + REVIVE_S + 60)
    assert rig.states(run) == ["starting", "running"]
    # the same container started again (not made again with the old password): the new one works
    script = 'redis-cli --no-auth-warning -u "$REDIS_URL" "$@"'
    for password, answer in ((new, "PONG"), (spec.reveal(), "WRONGPASS")):
        env = {"REDIS_URL": url(spec, password)}
        got = app(images.redis_image(), made.network, env, "sh", "-c", script, "sh", "ping")
        assert answer in got.stdout + got.stderr, (got.stdout, got.stderr)
    no_secret_anywhere(rig, capfd, spec.reveal(), new)
