"""A compose service's own ``build`` in a deployment's snapshot, as the api sends it to the scheduler: an arg
without a value is the application's build arg of that name (a secret one sealed on the wire, never shown),
a literal one is the service's own; a rollback of such an application sends the application's current
snapshot with ``images_of`` naming the deployment rolled back to (the scheduler runs each service on the
image it ran there), and answers 409 naming a service that builds its own image and did not run there."""

from __future__ import annotations

import json

from berth_api.domain.compose import inherited
from tests.api.conftest import make_app
from tests.api.test_deployments import SealedAs, _until
from tests.api.test_projects import problem

GIT = {
    "kind": "git",
    "repository": "https://git.example.com/acme/stack.git",
    "branch": "main",
    "build_args": [
        {"name": "NODE_ENV", "value": "production"},
        {"name": "NPM_TOKEN", "value": "npm-s3cr3t-Tok", "secret": True},
    ],
}
TEXT = (
    "services:\n  web:\n    build: .\n    ports: ['3000']\n  api:\n    build:\n      context: ./api\n"
    "      args: [NPM_TOKEN, NODE_ENV, 'LEVEL=2', MISSING]\n"
)


async def test_a_services_build_args_and_a_rollback_to_the_images_the_services_ran(client, members, scheduler) -> None:
    app = await make_app(client, members.developer, {"name": "stack", "compose": {"inline": TEXT}, "source": GIT})
    aid = app["id"]
    r = await client.post(f"/v1/applications/{aid}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    assert "npm-s3cr3t-Tok" not in r.text
    (cmd,) = await scheduler.wait_for("cmd.deployment.start", 1)
    assert "npm-s3cr3t-Tok" not in json.dumps(cmd.data)
    web, api = cmd.data["spec"]["services"]
    assert "build" not in web  # the application's own build: its image
    assert api["build"] == {
        "subdirectory": "api",
        "dockerfile": "Dockerfile",
        "build_args": [
            {"name": "LEVEL", "value": "2", "secret": False},
            {"name": "NODE_ENV", "value": "production", "secret": False},
            {"name": "NPM_TOKEN", "value": SealedAs("npm-s3cr3t-Tok", "berth/build-arg/NPM_TOKEN"), "secret": True},
        ],  # MISSING: not a build arg of the application, left out
    }

    await scheduler.run_to_success(cmd)
    await _until(client, members.viewer, r.json()["id"], lambda b: b["state"] == "succeeded")
    r = await client.post(f"/v1/applications/{aid}/deployments", headers=members.developer)
    (_, second) = await scheduler.wait_for("cmd.deployment.start", 2)
    await scheduler.run_to_success(second)
    await _until(client, members.viewer, r.json()["id"], lambda b: b["state"] == "succeeded")
    r = await client.post(f"/v1/applications/{aid}/rollback", headers=members.developer)
    assert r.status_code == 202, r.text
    assert (r.json()["kind"], r.json()["rollback_of"]) == ("rollback", cmd.data["deployment_id"])
    (_, _, back) = await scheduler.wait_for("cmd.deployment.start", 3)
    assert back.data["images_of"] == cmd.data["deployment_id"]
    web, api = back.data["spec"]["services"]
    assert api["build"]["subdirectory"] == "api"  # the scheduler swaps in the image the build made then
    # web runs the application's image: that deployment's, by the image it reported
    assert back.data["spec"]["source"] == {"kind": "image", "image": f"berth/stack:{cmd.data['deployment_id'][:8]}"}
    assert "images_of" not in second.data  # a deployment's command is as before


async def test_a_rollback_to_a_deployment_where_a_service_did_not_build_is_refused_naming_it(
    client, members, scheduler
) -> None:
    app = await make_app(client, members.developer, {"name": "stack2", "compose": {"inline": TEXT}, "source": GIT})
    aid = app["id"]
    r = await client.post(f"/v1/applications/{aid}/deployments", headers=members.developer)
    (cmd,) = await scheduler.wait_for("cmd.deployment.start", 1)
    await scheduler.run_to_success(cmd)
    await _until(client, members.viewer, r.json()["id"], lambda b: b["state"] == "succeeded")
    more = TEXT + "  extra:\n    build: ./extra\n"
    r = await client.patch(f"/v1/applications/{aid}", headers=members.developer, json={"compose": {"inline": more}})
    assert r.status_code == 200, r.text
    r = await client.post(f"/v1/applications/{aid}/deployments", headers=members.developer)
    (_, second) = await scheduler.wait_for("cmd.deployment.start", 2)
    await scheduler.run_to_success(second)
    await _until(client, members.viewer, r.json()["id"], lambda b: b["state"] == "succeeded")
    body = problem(await client.post(f"/v1/applications/{aid}/rollback", headers=members.developer), 409)
    assert body["detail"] == (
        f"The compose services extra build their own images and did not run in deployment {cmd.data['deployment_id']}"
        ": there is no image of them to roll back to; deploy instead."
    )


def test_value_less_args_are_read_from_the_file_by_the_services_berth_name() -> None:
    text = (
        "services:\n  my_api:\n    build:\n      context: .\n      args: [A, 'B=1']\n"
        "  web:\n    build:\n      args: {C: null, D: x}\n  db:\n    image: x\n"
    )
    assert inherited.unset_build_args(text) == {"my-api": ["A"], "web": ["C"]}
    services = [
        {"name": "my-api", "build": {"build_args": [{"name": "B", "value": "1"}]}},
        {"name": "web", "build": {"build_args": [{"name": "C", "value": "given"}]}},
        {"name": "db"},
    ]
    inherited.with_unset_args(services, inherited.unset_build_args(text))
    assert services == [
        {"name": "my-api", "build": {"build_args": [{"name": "A", "value": None}, {"name": "B", "value": "1"}]}},
        {"name": "web", "build": {"build_args": [{"name": "C", "value": "given"}]}},  # the parser's value stays
        {"name": "db"},
    ]
