"""A rollback claims the ports its configuration publishes: a rollback runs the application's configuration
as it is now (its compose file read again at the ref) with the images of the deployment rolled back to, so
the ports it publishes may have changed since the live deployment. Each is claimed, and those no longer
published are released, in the rollback's own transaction: another application's port is a 409 naming the
port and its holder, and nothing is sent to the scheduler. Real parts: the api, the builder in-process
(reading the file from a repository served by `git daemon` on loopback), Postgres and the bus."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api import test_compose_git as git_tests
from tests.api.conftest import make_app
from tests.api.test_compose_git import body, repository, republish
from tests.api.test_compose_published_ports import _create, _one
from tests.api.test_deployments import _until
from tests.api.test_projects import problem

pytestmark = pytest.mark.slow
builder, served = git_tests.builder, git_tests.served  # the builder in-process; the git daemon


def _file(port: int) -> str:
    return f"services:\n  web:\n    image: berth/site:1\n    expose: ['8080']\n  mqtt:\n    image: berth/mqtt:2\n    ports: ['{port}:1883']\n"


@pytest.fixture
def api_settings(api_settings):
    return api_settings.model_copy(update={"published_ports_allow": ["21000-21999"]})


async def _deployed(client, members, scheduler, app_id: str, count: int) -> str:
    r = await client.post(f"/v1/applications/{app_id}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    cmd = (await scheduler.wait_for("cmd.deployment.start", count))[-1]
    await scheduler.run_to_success(cmd)
    await _until(client, members.viewer, r.json()["id"], lambda b: b["state"] == "succeeded")
    return str(r.json()["id"])


async def test_a_rollback_claims_the_ports_its_configuration_publishes(
    client,
    members,
    scheduler,
    builder,
    served,
    tmp_path: Path,
) -> None:
    repo, _ = repository(tmp_path, served, {"deploy/compose.yml": _file(21701)})
    app = await make_app(client, members.developer, body(served))
    first = await _deployed(client, members, scheduler, app["id"], 1)
    await _deployed(client, members, scheduler, app["id"], 2)
    # the file at the ref now publishes 21702, which another application holds
    republish(repo, served, {"deploy/compose.yml": _file(21702)})
    other = await _create(client, members.developer, "relay", _one("['21702:25']"))
    assert other.status_code == 201, other.text

    r = await client.post(f"/v1/applications/{app['id']}/rollback", headers=members.developer)
    (err,) = problem(r, 409)["errors"]
    assert err["loc"] == "/body/compose/services/mqtt/ports"
    assert err["detail"] == (
        f"the port 21702/tcp of server local is published by the application relay ({other.json()['id']}, "
        "service mqtt): each port of a server is one application's"
    )
    assert len(await scheduler.settled("cmd.deployment.start")) == 2  # nothing sent for it
    # refused whole: the application still holds 21701
    assert (await _create(client, members.developer, "taker", _one("['21701:25']"))).status_code == 409

    r = await client.patch(
        f"/v1/applications/{other.json()['id']}", headers=members.developer, json={"compose": {"inline": _one("[]")}}
    )
    assert r.status_code == 200, r.text
    r = await client.post(f"/v1/applications/{app['id']}/rollback", headers=members.developer)
    assert r.status_code == 202, r.text
    assert (r.json()["kind"], r.json()["rollback_of"]) == ("rollback", first)
    (_, _, back) = await scheduler.wait_for("cmd.deployment.start", 3)
    (mqtt,) = [s for s in back.data["spec"]["services"] if s["name"] == "mqtt"]
    assert mqtt["published_ports"] == [{"target": 1883, "published": 21702, "protocol": "tcp"}]
    # claimed with the rollback; the port it no longer publishes is released
    r = await _create(client, members.developer, "relay-2", _one("['21702:25']"))
    assert problem(r, 409)["errors"][0]["detail"].startswith(
        f"the port 21702/tcp of server local is published by the application stack ({app['id']}, service mqtt)"
    )
    assert (await _create(client, members.developer, "taker", _one("['21701:25']"))).status_code == 201
