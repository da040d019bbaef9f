"""Running a cron job now (``POST /v1/applications/{id}/jobs/{job_id}/runs``): a run of kind ``cron`` in
the job's history, sent as ``cmd.job.run`` with the job's concurrency policy (the scheduler applies it as
for a firing), a new run each time; no live deployment is a 409, another team's job a 404, a viewer a 403."""

from __future__ import annotations

import asyncio

from tests.api.conftest import make_app
from tests.api.test_application_removal import _body, _deployed, _team
from tests.api.test_projects import problem
from tests.api.test_scale_api import _taken

RUN = "cmd.job.run"
JOB = {"name": "nightly", "cron": "30 2 * * *", "command": ["python", "cleanup.py"], "concurrency": "replace"}


async def test_a_job_run_now_is_a_cron_run_under_its_policy(client, members, scheduler) -> None:
    app = await _deployed(client, members, scheduler)
    team = await _team(client, members.developer)
    url = f"/v1/applications/{app['id']}/jobs"
    job = (await client.post(url, headers=members.developer, json={**JOB, "enabled": False})).json()
    runs_url = f"{url}/{job['job_id']}/runs"

    problem(await client.post(runs_url, headers=members.viewer), 403)
    problem(await client.post(runs_url, headers=members.other), 404)
    problem(await client.post(f"{url}/{'0' * 32}/runs", headers=members.developer), 404)
    ids = []
    for _ in range(2):  # each asking is a run of its own (a disabled job runs when asked)
        r = await client.post(runs_url, headers=members.developer)
        assert r.status_code == 202, r.text
        run = r.json()
        assert (run["kind"], run["job_id"], run["status"], run["command"]) == (
            "cron",
            job["job_id"],
            "queued",
            JOB["command"],
        )
        ids.append(run["run_id"])
    history = (await client.get(runs_url, headers=members.viewer)).json()
    assert sorted(r["run_id"] for r in history) == sorted(ids)
    await asyncio.sleep(0.5)
    sent = [c for c in await _taken(scheduler, RUN) if c["application_id"] == app["id"]]
    assert sorted(c["run_id"] for c in sent) == sorted(ids)
    for c in sent:
        assert c["id"] == f"job-run-{c['run_id']}"
        assert (c["team_id"], c["job_id"], c["job_name"], c["concurrency"]) == (
            team,
            job["job_id"],
            "nightly",
            "replace",
        )


async def test_a_job_run_now_without_a_live_deployment_is_refused(client, members, scheduler) -> None:
    app = await make_app(client, members.developer, _body("idle"))
    job = (await client.post(f"/v1/applications/{app['id']}/jobs", headers=members.developer, json=JOB)).json()
    body = problem(
        await client.post(f"/v1/applications/{app['id']}/jobs/{job['job_id']}/runs", headers=members.developer), 409
    )
    assert "no live deployment" in body["detail"]
