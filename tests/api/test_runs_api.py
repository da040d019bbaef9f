"""One-off runs through the api: `POST /v1/applications/{id}/runs` records a queued run of the live deployment
and sends exactly one `cmd.run.start` (read off the real stream); the scheduler's `evt.run.started` /
`evt.run.finished` move it on (once each, whatever arrives again or late); its logs are the container's,
asked of the scheduler. Bad input names the field; no live deployment is a 409; another team's application
or run is a 404; a viewer reads but does not run."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from berth_common.catalogue import ContainerLogLine, ContainerLogsReply, RunFinished, RunStarted
from tests.api.conftest import make_app
from tests.api.test_application_removal import _body, _deployed, _team
from tests.api.test_projects import locs, problem
from tests.api.test_scale_api import _taken

START = "cmd.run.start"


async def _until(client, headers, path: str, check, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        body = (await client.get(path, headers=headers)).json()
        if check(body):
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)


async def test_a_run_is_recorded_sent_once_and_followed_to_its_end(client, members, scheduler) -> None:
    app = await _deployed(client, members, scheduler)
    team = await _team(client, members.developer)
    live = (await client.get(f"/v1/applications/{app['id']}", headers=members.viewer)).json()["live"]
    r = await client.post(
        f"/v1/applications/{app['id']}/runs",
        headers=members.developer,
        json={"command": ["python", "manage.py", "migrate", "--noinput; rm -rf /"], "timeout_s": 120},
    )
    assert r.status_code == 202, r.text
    run = r.json()
    assert run["status"] == "queued"
    assert run["service"] == "web"  # the first web service
    assert run["deployment_id"] == live["deployment_id"]
    assert run["command"] == ["python", "manage.py", "migrate", "--noinput; rm -rf /"]  # argv, as given
    assert (run["timeout_s"], run["exit_code"], run["reason"], run["last_lines"]) == (120, None, "", [])

    (sent,) = [c for c in await _taken(scheduler, START) if c["application_id"] == app["id"]]
    assert sent == {
        "id": f"run-start-{run['run_id']}",
        "run_id": run["run_id"],
        "team_id": team,
        "application_id": app["id"],
        "deployment_id": live["deployment_id"],
        "service": "web",
        "command": ["python", "manage.py", "migrate", "--noinput; rm -rf /"],
        "timeout_s": 120,
    }
    path = f"/v1/applications/{app['id']}/runs/{run['run_id']}"
    # queued: no container to read yet
    logs = (await client.get(path + "/logs", headers=members.viewer)).json()
    assert logs == {"run_id": run["run_id"], "status": "queued", "lines": []}

    started_at = datetime(2026, 12, 5, 10, 0, 0, tzinfo=UTC)
    container = f"berth-run-{run['run_id']}"
    started = RunStarted(
        run_id=run["run_id"], team_id=team, application_id=app["id"], container=container, started_at=started_at
    )
    await scheduler.bus.publish(started, id=f"run-{run['run_id']}-started")
    await _until(client, members.viewer, path, lambda b: b["status"] == "running")

    asked: list[dict[str, Any]] = []

    async def answer(data: dict[str, Any]) -> ContainerLogsReply:
        asked.append(data)
        return ContainerLogsReply(lines=[ContainerLogLine(stream="stdout", line="Applying 0001... OK")])

    await scheduler.bus.serve("container_logs", answer)
    logs = (await client.get(path + "/logs?tail=5", headers=members.viewer)).json()
    assert logs["lines"] == [{"stream": "stdout", "time": None, "line": "Applying 0001... OK"}]
    assert asked == [
        {"team_id": team, "server_id": "local", "container": container, "tail": 5, "since": None, "until": None}
    ]

    finished = RunFinished(
        run_id=run["run_id"],
        team_id=team,
        application_id=app["id"],
        status="failed",
        exit_code=3,
        reason="exited with code 3",
        last_lines=["Applying 0001... OK", "boom"],
        duration_s=2.5,
        container=container,
        finished_at=datetime(2026, 12, 5, 10, 0, 2, 500000, tzinfo=UTC),
    )
    await scheduler.bus.publish(finished, id=f"run-{run['run_id']}-finished")
    done = await _until(client, members.viewer, path, lambda b: b["status"] == "failed")
    assert (done["exit_code"], done["reason"], done["last_lines"]) == (
        3,
        "exited with code 3",
        ["Applying 0001... OK", "boom"],
    )
    assert done["duration_s"] == 2.5
    assert done["started_at"].startswith("2026-12-05T10:00:00")
    assert done["finished_at"].startswith("2026-12-05T10:00:02.5")

    # a started event seen late, and a second finished one, change nothing
    await scheduler.bus.publish(started, id="late-started-copy")
    again = finished.model_copy(update={"status": "succeeded", "exit_code": 0})
    await scheduler.bus.publish(again, id="second-finished")
    await asyncio.sleep(0.5)
    assert (await client.get(path, headers=members.viewer)).json() == done

    listed = (await client.get(f"/v1/applications/{app['id']}/runs", headers=members.viewer)).json()
    assert [r["run_id"] for r in listed] == [run["run_id"]]


async def test_runs_are_listed_newest_first_and_take_the_asked_service(client, members, scheduler) -> None:
    app = await _deployed(client, members, scheduler)
    ids = []
    for service in ("jobs", None):
        body: dict[str, Any] = {"command": ["true"]}
        if service:
            body["service"] = service
        r = await client.post(f"/v1/applications/{app['id']}/runs", headers=members.admin, json=body)
        assert r.status_code == 202, r.text
        ids.append(r.json()["run_id"])
    listed = (await client.get(f"/v1/applications/{app['id']}/runs", headers=members.viewer)).json()
    assert [(r["run_id"], r["service"], r["timeout_s"]) for r in listed] == [
        (ids[1], "web", 3600),
        (ids[0], "jobs", 3600),
    ]


async def test_bad_input_names_the_field(client, members, scheduler) -> None:
    app = await _deployed(client, members, scheduler)
    url = f"/v1/applications/{app['id']}/runs"
    cases = [
        ({"command": []}, "/body/command"),
        ({"command": ["x"] * 65}, "/body/command"),
        ({"command": ["x" * 4097]}, "/body/command/0"),
        ({"command": ["ok", "a\x00b"]}, "/body/command/1"),
        ({"command": "echo hi"}, "/body/command"),
        ({"command": ["true"], "timeout_s": 0}, "/body/timeout_s"),
        ({"command": ["true"], "timeout_s": 86401}, "/body/timeout_s"),
        ({"command": ["true"], "service": "Bad Name"}, "/body/service"),
        ({"command": ["true"], "service": "nope"}, "/body/service"),
        ({"command": ["true"], "shell": True}, "/body/shell"),
        ({}, "/body/command"),
    ]
    for body, loc in cases:
        r = await client.post(url, headers=members.developer, json=body)
        assert loc in locs(problem(r, 422)), (body, r.text)
    assert [c for c in await _taken(scheduler, START) if c["application_id"] == app["id"]] == []
    assert (await client.get(url, headers=members.viewer)).json() == []


async def test_no_live_deployment_another_team_and_a_viewer_are_refused(client, members, scheduler) -> None:
    app = await make_app(client, members.developer, _body("idle"))
    url = f"/v1/applications/{app['id']}/runs"
    body = problem(await client.post(url, headers=members.developer, json={"command": ["true"]}), 409)
    assert "no live deployment" in body["detail"]

    live = await _deployed(client, members, scheduler, name="live")
    url = f"/v1/applications/{live['id']}/runs"
    problem(await client.post(url, headers=members.viewer, json={"command": ["true"]}), 403)
    problem(await client.post(url, headers=members.other, json={"command": ["true"]}), 404)
    problem(await client.get(url, headers=members.other), 404)
    r = await client.post(url, headers=members.developer, json={"command": ["true"]})
    run_id = r.json()["run_id"]
    for suffix in ("", "/logs"):
        problem(await client.get(f"{url}/{run_id}{suffix}", headers=members.other), 404)
        problem(await client.get(f"{url}/{'0' * 32}{suffix}", headers=members.viewer), 404)
        # a run is found under its own application only
        problem(await client.get(f"/v1/applications/{app['id']}/runs/{run_id}{suffix}", headers=members.viewer), 404)
    assert len([c for c in await _taken(scheduler, START) if c["application_id"] == live["id"]]) == 1
