"""Cron jobs through the api: `/v1/applications/{id}/jobs` creates, lists, reads, changes and deletes a job,
each change sending the job's schedule (`cmd.schedule.set` publishing `cmd.job.fire`, or
`cmd.schedule.remove`) read off the real stream; a firing (`cmd.job.fire`, as the scheduler's schedule
publishes it) records one run of kind `cron` and sends one `cmd.job.run`, however often it arrives; the
run is in the job's history and read through the runs routes. A bad schedule or zone names its field;
another team's job is a 404; a viewer reads but does not write."""

from __future__ import annotations

import asyncio
from typing import Any

from berth_common.bus.streams import EVT_STREAM
from berth_common.catalogue import FireJob, RunFinished, job_run_id, job_schedule_id
from tests.api.conftest import make_app
from tests.api.test_application_removal import _body, _deployed, _team
from tests.api.test_projects import locs, problem
from tests.api.test_runs_api import _until
from tests.api.test_scale_api import _taken

SET, REMOVE, RUN = "cmd.schedule.set", "cmd.schedule.remove", "cmd.job.run"
JOB = {"name": "nightly", "cron": "30 2 * * *", "timezone": "Europe/Berlin", "command": ["python", "cleanup.py"]}


async def _schedules(scheduler, job_id: str, subject: str = SET) -> list[dict[str, Any]]:
    return [c for c in await _taken(scheduler, subject) if c["schedule_id"] == job_schedule_id(job_id)]


async def test_a_job_is_created_read_changed_and_deleted_with_its_schedule(client, members, scheduler) -> None:
    app = await _deployed(client, members, scheduler)
    team = await _team(client, members.developer)
    url = f"/v1/applications/{app['id']}/jobs"
    r = await client.post(url, headers=members.developer, json={**JOB, "concurrency": "replace", "timeout_s": 60})
    assert r.status_code == 201, r.text
    job = r.json()
    assert {k: job[k] for k in (*JOB, "concurrency", "timeout_s", "enabled", "service")} == {
        **JOB,
        "concurrency": "replace",
        "timeout_s": 60,
        "enabled": True,
        "service": None,
    }
    (sent,) = await _schedules(scheduler, job["job_id"])
    assert (sent["cron"], sent["timezone"], sent["command_type"]) == ("30 2 * * *", "Europe/Berlin", "cmd.job.fire")
    assert sent["command"] == {"job_id": job["job_id"], "team_id": team, "application_id": app["id"], "firing_id": ""}
    assert (await client.get(url, headers=members.viewer)).json() == [job]
    assert (await client.get(f"{url}/{job['job_id']}", headers=members.viewer)).json() == job

    r = await client.patch(f"{url}/{job['job_id']}", headers=members.developer, json={"cron": "*/5 * * * *"})
    assert r.status_code == 200, r.text
    assert (r.json()["cron"], r.json()["command"], r.json()["concurrency"]) == (
        "*/5 * * * *",
        JOB["command"],
        "replace",
    )
    sets = [sent, *await _schedules(scheduler, job["job_id"])]  # (the command stream is a work queue: read once)
    assert [s["cron"] for s in sets] == ["30 2 * * *", "*/5 * * * *"] and sets[1]["revision"] > sets[0]["revision"]

    r = await client.patch(f"{url}/{job['job_id']}", headers=members.developer, json={"enabled": False})
    assert r.json()["enabled"] is False
    (removed,) = await _schedules(scheduler, job["job_id"], REMOVE)
    assert removed["revision"] > sets[1]["revision"]

    problem(await client.delete(f"{url}/{job['job_id']}", headers=members.developer), 403)  # deleting: an admin
    assert (await client.delete(f"{url}/{job['job_id']}", headers=members.admin)).status_code == 204
    (again,) = await _schedules(scheduler, job["job_id"], REMOVE)
    assert again["revision"] > removed["revision"]
    problem(await client.get(f"{url}/{job['job_id']}", headers=members.viewer), 404)
    assert (await client.get(url, headers=members.viewer)).json() == []


async def test_a_firing_records_one_cron_run_in_the_jobs_history(client, members, scheduler) -> None:
    app = await _deployed(client, members, scheduler)
    team = await _team(client, members.developer)
    url = f"/v1/applications/{app['id']}/jobs"
    job = (await client.post(url, headers=members.developer, json={**JOB, "service": "jobs"})).json()
    firing = FireJob(
        job_id=job["job_id"], team_id=team, application_id=app["id"], firing_id="schedule-x-20261205T013000Z"
    )
    await scheduler.bus.publish(firing, id=firing.firing_id)
    await scheduler.bus.publish(firing, id="the-same-firing-again")  # the outbox relay repeating it
    run_id = job_run_id(firing.firing_id)
    history = await _until(client, members.viewer, f"{url}/{job['job_id']}/runs", lambda b: len(b) == 1)
    assert [(r["run_id"], r["kind"], r["job_id"], r["status"], r["service"]) for r in history] == [
        (run_id, "cron", job["job_id"], "queued", "jobs")
    ]
    await asyncio.sleep(0.5)
    (sent,) = [c for c in await _taken(scheduler, RUN) if c["application_id"] == app["id"]]
    assert sent["id"] == f"job-run-{run_id}"
    assert (sent["job_id"], sent["job_name"], sent["concurrency"], sent["command"]) == (
        job["job_id"],
        "nightly",
        "forbid",
        JOB["command"],
    )

    skipped = RunFinished(
        run_id=run_id,
        team_id=team,
        application_id=app["id"],
        status="skipped",
        reason="skipped: the job's previous run r0 was still running (concurrency forbid)",
        finished_at="2026-12-05T01:30:01Z",  # type: ignore[arg-type]
    )
    await scheduler.bus.publish(skipped, id=f"run-{run_id}-finished")
    path = f"/v1/applications/{app['id']}/runs/{run_id}"
    done = await _until(client, members.viewer, path, lambda b: b["status"] == "skipped")
    assert "forbid" in done["reason"]
    listed = (await client.get(f"/v1/applications/{app['id']}/runs", headers=members.viewer)).json()
    assert [r["run_id"] for r in listed] == [run_id]


async def test_a_firing_without_a_live_deployment_fails_and_is_announced(client, members, scheduler) -> None:
    app = await make_app(client, members.developer, _body("idle"))
    team = await _team(client, members.developer)
    job = (await client.post(f"/v1/applications/{app['id']}/jobs", headers=members.developer, json=JOB)).json()
    firing = FireJob(job_id=job["job_id"], team_id=team, application_id=app["id"], firing_id="schedule-y-1")
    await scheduler.bus.publish(firing, id=firing.firing_id)
    history_url = f"/v1/applications/{app['id']}/jobs/{job['job_id']}/runs"
    history = await _until(client, members.viewer, history_url, lambda b: len(b) == 1)
    assert history[0]["status"] == "failed" and "no live deployment" in history[0]["reason"]
    (failed,) = [e for e in await _taken(scheduler, "evt.job.failed", EVT_STREAM) if e["job_id"] == job["job_id"]]
    assert (failed["job_name"], failed["status"], failed["run_id"]) == ("nightly", "failed", history[0]["run_id"])


async def test_bad_input_names_the_field(client, members, scheduler) -> None:
    app = await _deployed(client, members, scheduler)
    url = f"/v1/applications/{app['id']}/jobs"
    cases = [
        ({**JOB, "cron": "* * *"}, "/body/cron"),
        ({**JOB, "cron": "61 * * * *"}, "/body/cron"),
        ({**JOB, "cron": "0 0 31 2 *"}, "/body/cron"),
        ({**JOB, "timezone": "Mars/Olympus"}, "/body/timezone"),
        ({**JOB, "timezone": "../../etc/passwd"}, "/body/timezone"),
        ({**JOB, "command": []}, "/body/command"),
        ({**JOB, "command": ["a\x00b"]}, "/body/command/0"),
        ({**JOB, "command": "echo hi"}, "/body/command"),
        ({**JOB, "concurrency": "queue"}, "/body/concurrency"),
        ({**JOB, "timeout_s": 0}, "/body/timeout_s"),
        ({**JOB, "service": "nope"}, "/body/service"),
        ({**JOB, "name": "Bad Name"}, "/body/name"),
        ({**JOB, "shell": True}, "/body/shell"),
    ]
    for body, loc in cases:
        r = await client.post(url, headers=members.developer, json=body)
        assert loc in locs(problem(r, 422)), (body, r.text)
    assert (await client.get(url, headers=members.viewer)).json() == []
    job = (await client.post(url, headers=members.developer, json=JOB)).json()
    problem(await client.post(url, headers=members.developer, json=JOB), 409)  # the name is taken
    r = await client.patch(f"{url}/{job['job_id']}", headers=members.developer, json={"timezone": "Nowhere/Land"})
    assert "/body/timezone" in locs(problem(r, 422))
    for change in ({"cron": "0 3 * * *\x00", "enabled": False}, {"timezone": "UTC\x00", "enabled": False}):
        r = await client.patch(f"{url}/{job['job_id']}", headers=members.developer, json=change)
        assert set(locs(problem(r, 422))) & {"/body/cron", "/body/timezone"}, r.text  # disabled or not
    assert (await client.get(f"{url}/{job['job_id']}", headers=members.viewer)).json()["timezone"] == "Europe/Berlin"


async def test_another_team_and_a_viewer_are_refused(client, members, scheduler) -> None:
    app = await _deployed(client, members, scheduler)
    url = f"/v1/applications/{app['id']}/jobs"
    problem(await client.post(url, headers=members.viewer, json=JOB), 403)
    problem(await client.post(url, headers=members.other, json=JOB), 404)
    job = (await client.post(url, headers=members.developer, json=JOB)).json()
    one = f"{url}/{job['job_id']}"
    problem(await client.patch(one, headers=members.viewer, json={"enabled": False}), 403)
    problem(await client.delete(one, headers=members.viewer), 403)
    for path in (url, one, one + "/runs"):
        problem(await client.get(path, headers=members.other), 404)
    problem(await client.patch(one, headers=members.other, json={"enabled": False}), 404)
    problem(await client.delete(one, headers=members.other), 404)
    other_app = await make_app(client, members.developer, _body("elsewhere"))
    problem(await client.get(f"/v1/applications/{other_app['id']}/jobs/{job['job_id']}", headers=members.viewer), 404)
    assert (await client.get(one, headers=members.viewer)).json()["enabled"] is True


async def test_deleting_the_application_removes_its_jobs_schedules(client, members, scheduler) -> None:
    app = await make_app(client, members.developer, _body("gone"))
    url = f"/v1/applications/{app['id']}/jobs"
    job = (await client.post(url, headers=members.developer, json=JOB)).json()
    assert len(await _schedules(scheduler, job["job_id"])) == 1
    r = await client.delete(f"/v1/applications/{app['id']}", headers=members.admin)
    assert r.status_code in (200, 202, 204), r.text
    (removed,) = await _schedules(scheduler, job["job_id"], REMOVE)
    assert removed["team_id"] == await _team(client, members.developer)
