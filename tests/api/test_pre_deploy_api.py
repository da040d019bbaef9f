"""The application's pre-deploy job through the api: given at creation or by an update (null removes it),
shown as stored, sent in the deployment's snapshot exactly (left out of both while there is none), a compose
application's job naming one of its compose services, and bad input refused with 422 naming the field."""

from __future__ import annotations

import copy

from tests.api.conftest import WEB_APP, make_app
from tests.api.test_projects import locs, problem

MIGRATE = ["python", "manage.py", "migrate", "--noinput"]
COMPOSE = "services:\n  web:\n    image: busybox\n    ports: ['8080']\n  migrator:\n    image: busybox\n"


def _with_job(name: str, **job) -> dict:
    body = copy.deepcopy(WEB_APP)
    body["name"] = name
    body["pre_deploy"] = job
    return body


async def _snapshot(client, members, scheduler, app_id: str, count: int) -> dict:
    r = await client.post(f"/v1/applications/{app_id}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    starts = await scheduler.wait_for("cmd.deployment.start", count)
    (cmd,) = [c for c in starts if c.data["application_id"] == app_id]
    return dict(cmd.data["spec"])


async def test_a_job_is_stored_shown_and_sent_in_the_snapshot(client, members, scheduler) -> None:
    app = await make_app(client, members.developer, _with_job("shop", command=MIGRATE, service="jobs"))
    job = {"command": MIGRATE, "service": "jobs", "timeout_s": 600}
    assert app["pre_deploy"] == job
    shown = (await client.get(f"/v1/applications/{app['id']}", headers=members.viewer)).json()
    assert shown["pre_deploy"] == job
    assert (await _snapshot(client, members, scheduler, app["id"], 1))["pre_deploy"] == job


async def test_without_a_job_nothing_is_shown_or_sent(client, members, scheduler) -> None:
    app = await make_app(client, members.developer)
    assert "pre_deploy" not in app
    assert "pre_deploy" not in (await _snapshot(client, members, scheduler, app["id"], 1))


async def test_an_update_sets_keeps_and_removes_the_job(client, members, scheduler) -> None:
    app = await make_app(client, members.developer)
    url = f"/v1/applications/{app['id']}"
    r = await client.patch(
        url, headers=members.developer, json={"pre_deploy": {"command": ["migrate"], "timeout_s": 30}}
    )
    assert r.status_code == 200, r.text
    assert r.json()["pre_deploy"] == {"command": ["migrate"], "timeout_s": 30}
    r = await client.patch(url, headers=members.developer, json={"stop_timeout_s": 4})
    assert r.json()["pre_deploy"] == {"command": ["migrate"], "timeout_s": 30}  # not given: unchanged
    assert (await _snapshot(client, members, scheduler, app["id"], 1))["pre_deploy"] == {
        "command": ["migrate"],
        "timeout_s": 30,
    }
    r = await client.patch(url, headers=members.developer, json={"pre_deploy": None})
    assert r.status_code == 200, r.text
    assert "pre_deploy" not in r.json()
    assert "pre_deploy" not in (await client.get(url, headers=members.viewer)).json()


async def test_a_compose_applications_job_names_one_of_its_services(client, members, scheduler) -> None:
    body = {
        "name": "composed",
        "compose": {"inline": COMPOSE},
        "pre_deploy": {"command": MIGRATE, "service": "migrator"},
    }
    app = await make_app(client, members.developer, body)
    assert app["pre_deploy"] == {"command": MIGRATE, "service": "migrator", "timeout_s": 600}
    spec = await _snapshot(client, members, scheduler, app["id"], 1)
    assert spec["pre_deploy"] == {"command": MIGRATE, "service": "migrator", "timeout_s": 600}
    assert "migrator" in [s["name"] for s in spec["services"]]
    wrong = {"name": "composed2", "compose": {"inline": COMPOSE}, "pre_deploy": {"command": MIGRATE, "service": "db"}}
    projects = (await client.get("/v1/projects", headers=members.developer)).json()
    env = projects[0]["environments"][0]["id"]
    r = await client.post(f"/v1/environments/{env}/applications", headers=members.developer, json=wrong)
    assert locs(problem(r, 422)) == {"/body/pre_deploy/service"}, r.text


async def test_bad_input_names_the_field(client, members) -> None:
    app = await make_app(client, members.developer)
    projects = (await client.get("/v1/projects", headers=members.developer)).json()
    env = projects[0]["environments"][0]["id"]
    cases = [
        ({"command": []}, "/body/pre_deploy/command"),
        ({"command": ["x"] * 65}, "/body/pre_deploy/command"),
        ({"command": ["x" * 4097]}, "/body/pre_deploy/command/0"),
        ({"command": ["ok", "a\x00b"]}, "/body/pre_deploy/command/1"),
        ({"command": "migrate"}, "/body/pre_deploy/command"),
        ({"command": ["true"], "timeout_s": 0}, "/body/pre_deploy/timeout_s"),
        ({"command": ["true"], "timeout_s": 86401}, "/body/pre_deploy/timeout_s"),
        ({"command": ["true"], "service": "Bad Name"}, "/body/pre_deploy/service"),
        ({"command": ["true"], "service": "nope"}, "/body/pre_deploy/service"),
        ({"command": ["true"], "shell": True}, "/body/pre_deploy/shell"),
        ({}, "/body/pre_deploy/command"),
    ]
    for i, (job, loc) in enumerate(cases):
        r = await client.post(
            f"/v1/environments/{env}/applications", headers=members.developer, json=_with_job(f"bad{i}", **job)
        )
        assert loc in locs(problem(r, 422)), (job, r.text)
        r = await client.patch(f"/v1/applications/{app['id']}", headers=members.developer, json={"pre_deploy": job})
        assert loc in locs(problem(r, 422)), (job, r.text)
    assert "pre_deploy" not in (await client.get(f"/v1/applications/{app['id']}", headers=members.viewer)).json()
