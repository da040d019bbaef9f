"""Cancelling a run through the api (``POST .../runs/{run_id}/cancel``): ``cmd.run.cancel`` staged once per
run, the run ending ``cancelled`` by the scheduler's answer, a finished run a 409, other teams a 404 and
viewers a 403."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from berth_common.catalogue import CANCELLED_REASON, RunFinished
from tests.api.test_application_removal import _deployed, _team
from tests.api.test_projects import problem
from tests.api.test_runs_api import _until
from tests.api.test_scale_api import _taken

CANCEL = "cmd.run.cancel"


async def test_a_run_is_cancelled_once_and_ends_cancelled(client, members, scheduler) -> None:
    app = await _deployed(client, members, scheduler)
    team = await _team(client, members.developer)
    url = f"/v1/applications/{app['id']}/runs"
    run = (await client.post(url, headers=members.developer, json={"command": ["sleep", "600"]})).json()
    path = f"{url}/{run['run_id']}"

    problem(await client.post(path + "/cancel", headers=members.viewer), 403)
    problem(await client.post(path + "/cancel", headers=members.other), 404)
    problem(await client.post(f"{url}/{'0' * 32}/cancel", headers=members.developer), 404)
    for _ in range(2):  # a repeat is the same cancel
        r = await client.post(path + "/cancel", headers=members.developer)
        assert r.status_code == 202, r.text
        assert r.json()["run_id"] == run["run_id"] and r.json()["status"] == "queued"
    await asyncio.sleep(0.5)
    sent = [c for c in await _taken(scheduler, CANCEL) if c["run_id"] == run["run_id"]]
    assert sent == [
        {"id": f"run-cancel-{run['run_id']}", "run_id": run["run_id"], "team_id": team, "application_id": app["id"]}
    ]

    finished = RunFinished(
        run_id=run["run_id"],
        team_id=team,
        application_id=app["id"],
        status="cancelled",
        reason=CANCELLED_REASON,
        finished_at=datetime(2026, 12, 5, 10, 0, 2, tzinfo=UTC),
    )
    await scheduler.bus.publish(finished, id=f"run-{run['run_id']}-finished")
    done = await _until(client, members.viewer, path, lambda b: b["status"] == "cancelled")
    assert (done["reason"], done["exit_code"]) == (CANCELLED_REASON, None)
    body = problem(await client.post(path + "/cancel", headers=members.developer), 409)
    assert "finished already (cancelled)" in body["detail"]
