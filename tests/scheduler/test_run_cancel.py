"""Cancelling a run on the real scheduler, bus, Postgres and Docker (``cmd.run.cancel``): a running run is
stopped and ends ``cancelled``, a run cancelled before it starts never starts, a repeat changes nothing."""

from __future__ import annotations

import asyncio
import subprocess
import uuid

import pytest

from berth_common.catalogue import CANCELLED_REASON, CancelRun, StartRun
from tests.scheduler.test_runs import live, run_containers, start_run  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.slow, pytest.mark.docker]


async def cancel(platform, app_id: str, run_id: str, message: str = "") -> None:
    cmd = CancelRun(run_id=run_id, team_id="team-1", application_id=app_id)
    await platform.api.publish(cmd, id=f"run-cancel-{run_id}{message}")


async def test_a_running_run_cancelled_is_stopped_and_ends_cancelled(platform, app_id, live):  # noqa: F811
    dep, events = live
    run_id = await start_run(platform, app_id, dep, ["sh", "-c", "echo begun; sleep 300"], timeout_s=600)
    await events.wait(run_id, "evt.run.started")
    await cancel(platform, app_id, run_id)
    done = await events.wait(run_id, timeout=60)
    assert (done["status"], done["reason"]) == ("cancelled", CANCELLED_REASON)
    assert done["last_lines"] == ["begun"] and done["duration_s"] < 60
    running = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Running}}", f"berth-run-{run_id}"], capture_output=True, text=True
    ).stdout.strip()
    assert running == "false"
    await cancel(platform, app_id, run_id, "-again")  # a finished run: nothing changes
    await asyncio.sleep(1.5)
    assert len(events.of(run_id, "evt.run.finished")) == 1


async def test_a_run_cancelled_before_it_starts_never_starts(platform, app_id, live):  # noqa: F811
    dep, events = live
    run_id = uuid.uuid4().hex
    await cancel(platform, app_id, run_id)
    done = await events.wait(run_id, timeout=30)
    assert (done["status"], done["exit_code"], done["reason"]) == ("cancelled", None, CANCELLED_REASON)
    start = StartRun(
        run_id=run_id, team_id="team-1", application_id=app_id, deployment_id=dep, service="worker", command=["true"]
    )
    await platform.api.publish(start, id=f"run-start-{run_id}")
    await asyncio.sleep(3)
    assert not events.of(run_id, "evt.run.started")
    assert len(events.of(run_id, "evt.run.finished")) == 1
    assert run_containers(run_id) == []


async def test_a_cancel_of_another_applications_run_changes_nothing(platform, app_id, live):  # noqa: F811
    dep, events = live
    run_id = await start_run(platform, app_id, dep, ["sh", "-c", "sleep 2; echo done"])
    await events.wait(run_id, "evt.run.started")
    await platform.api.publish(
        CancelRun(run_id=run_id, team_id="team-2", application_id=app_id), id=f"run-cancel-other-{run_id}"
    )
    done = await events.wait(run_id, timeout=60)
    assert (done["status"], done["last_lines"]) == ("succeeded", ["done"])
