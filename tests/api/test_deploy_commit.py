"""A deployment of a named commit (``POST .../deployments {"commit": ...}``): the commit is recorded on the
deployment at once and the start command builds exactly it; a commit for an image application, or a
value that is not a full commit id, is refused naming ``/body/commit`` and records nothing."""

from __future__ import annotations

import pytest

from tests.api.conftest import make_app
from tests.api.test_applications import GIT_APP
from tests.api.test_projects import problem

SHA1 = "0123456789abcdef0123456789abcdef01234567"
SHA256 = "89abcdef" * 8


def _starts(scheduler, app_id: str) -> list:
    return [c for c in scheduler.of("cmd.deployment.start") if c.data["application_id"] == app_id]


async def _deployments(client, members, app_id: str) -> list[dict]:
    r = await client.get(f"/v1/applications/{app_id}/deployments", headers=members.viewer)
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_named_commit_is_recorded_at_once_and_is_what_the_start_command_builds(client, members, scheduler):
    app = await make_app(client, members.developer, GIT_APP)
    for number, commit in enumerate((SHA1, SHA256), start=1):
        before = len(scheduler.of("cmd.deployment.start"))
        r = await client.post(
            f"/v1/applications/{app['id']}/deployments", headers=members.developer, json={"commit": commit}
        )
        assert r.status_code == 202, r.text
        assert r.json()["commit"] == commit  # known before the build resolves anything
        await scheduler.wait_for("cmd.deployment.start", before + 1)
        received = _starts(scheduler, app["id"])[-1]
        start = received.data
        assert start["deployment_id"] == r.json()["id"] and len(_starts(scheduler, app["id"])) == number
        assert start["spec"]["source"]["ref"] == commit
        assert start["spec"]["source"]["repository"] == GIT_APP["source"]["repository"]
        await scheduler.run_to_success(received)  # the next one is not queued behind it
    # without one, the branch as before (its head resolved when the build starts)
    before = len(scheduler.of("cmd.deployment.start"))
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer, json={})
    assert r.status_code == 202 and r.json()["commit"] is None
    await scheduler.wait_for("cmd.deployment.start", before + 1)
    assert _starts(scheduler, app["id"])[-1].data["spec"]["source"]["ref"] == "main"


@pytest.mark.parametrize(
    "commit", ["main", SHA1[:12], SHA1.upper(), SHA1 + "0", f"{SHA1[:-1]}g", "", f"{SHA1}\n", "HEAD~1"]
)
async def test_anything_but_a_full_commit_id_is_refused_naming_the_field(client, members, commit):
    app = await make_app(client, members.developer, GIT_APP)
    r = await client.post(
        f"/v1/applications/{app['id']}/deployments", headers=members.developer, json={"commit": commit}
    )
    assert problem(r, 422)["errors"][0]["loc"] == "/body/commit"
    assert await _deployments(client, members, app["id"]) == []


async def test_a_commit_for_an_image_application_is_refused_and_nothing_is_recorded(client, members, scheduler):
    app = await make_app(client, members.developer)
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer, json={"commit": SHA1})
    body = problem(r, 422)
    assert body["errors"] == [
        {"loc": "/body/commit", "detail": "the application is built from image, not from git", "type": "value_error"}
    ]
    assert await _deployments(client, members, app["id"]) == []
    await scheduler.settled("cmd.deployment.start")
    assert _starts(scheduler, app["id"]) == []
