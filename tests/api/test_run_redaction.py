"""A run's end as the api records it holds none of its deployment's secret values: an `evt.run.finished`
whose last lines and reason quote one (as a scheduler that did not redact would send) is stored and served
with `[redacted]` in its place, in the run and in the application's list of runs."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

from berth_common.catalogue import RunFinished
from tests.api.conftest import WEB_APP, make_app
from tests.api.test_application_removal import _team
from tests.api.test_application_removal import _until as _until_app
from tests.api.test_runs_api import _until

SECRET = "run-s3cr3t-Value"


async def test_a_finished_run_is_stored_without_the_secret_it_echoed(client, members, scheduler) -> None:
    body = copy.deepcopy(WEB_APP)
    body["env"] = [*body["env"], {"name": "API_KEY", "value": SECRET, "secret": True}]
    app = await make_app(client, members.developer, body)
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    (start,) = [c for c in await scheduler.wait_for("cmd.deployment.start", 1) if c.data["application_id"] == app["id"]]
    await scheduler.run_to_success(start)
    await _until_app(client, members.viewer, app["id"], lambda b: b["live"] is not None)
    team = await _team(client, members.developer)

    r = await client.post(f"/v1/applications/{app['id']}/runs", headers=members.developer, json={"command": ["env"]})
    assert r.status_code == 202, r.text
    run = r.json()
    finished = RunFinished(
        run_id=run["run_id"],
        team_id=team,
        application_id=app["id"],
        status="failed",
        exit_code=1,
        reason=f"exited with code 1: API_KEY={SECRET}",
        last_lines=["LOG_LEVEL=debug", f"API_KEY={SECRET}"],
        duration_s=0.5,
        container=f"berth-run-{run['run_id']}",
        finished_at=datetime(2026, 12, 5, 10, 0, 1, tzinfo=UTC),
    )
    await scheduler.bus.publish(finished, id=f"run-{run['run_id']}-finished")
    path = f"/v1/applications/{app['id']}/runs/{run['run_id']}"
    done = await _until(client, members.viewer, path, lambda b: b["status"] == "failed")
    assert (done["reason"], done["last_lines"]) == (
        "exited with code 1: API_KEY=[redacted]",
        ["LOG_LEVEL=debug", "API_KEY=[redacted]"],
    )
    listed = (await client.get(f"/v1/applications/{app['id']}/runs", headers=members.viewer)).json()
    assert [x["run_id"] for x in listed] == [run["run_id"]]
    assert SECRET not in json.dumps(listed)
