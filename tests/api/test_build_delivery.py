"""What the api puts in a deployment for builds on other servers: the build server a git source names (a
team's server by id or name), the team's push registry (at most one; sealed like every secret), and the
credentials for the host an image is pulled from once the image map sent it to a mirror (for a prebuilt
image, and for the base images of a build)."""

from __future__ import annotations

import json

import asyncpg
import pytest

from berth_api.settings import ApiSettings
from tests.api.conftest import make_app
from tests.api.test_deployments import SealedAs, _deploy
from tests.api.test_projects import problem

MIRROR = "mirror.example.com"
PUSH_HOST = "push.example.com:5000"
IMAGE_MAP = {"nginx": f"{MIRROR}/library/nginx", "python:3": f"{MIRROR}/library/python:3"}
GIT = {"kind": "git", "repository": "https://git.example.com/acme/shop.git", "branch": "main"}
SERVICES = [{"kind": "web", "name": "web", "port": 8080}]


@pytest.fixture
def api_settings(api_settings: ApiSettings) -> ApiSettings:
    """The api of ``tests/api/conftest.py`` with an image map (BERTH_IMAGE_MAP)."""
    return api_settings.model_copy(update={"image_map": json.dumps(IMAGE_MAP)})


def registry(name: str, host: str, password: str, **more: object) -> dict:
    return {"name": name, "host": host, "username": f"{name}-user", "password": password, **more}


async def test_a_git_deployment_carries_its_build_server_the_push_registry_and_the_mirrors_credentials(
    client, members, scheduler, api_urls
):
    dev = members.developer
    r = await client.post(
        "/v1/registries", headers=dev, json=registry("push", PUSH_HOST, "push-pw", push=True, namespace="acme")
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert (created["push"], created["namespace"]) == (True, "acme") and "password" not in created
    again = await client.post(
        "/v1/registries", headers=dev, json=registry("push2", "other.example.com", "x", push=True)
    )
    assert problem(again, 409)["errors"][0]["loc"] == "/body/push"
    assert (
        await client.post("/v1/registries", headers=dev, json=registry("mirror", MIRROR, "mirror-pw"))
    ).status_code == 201
    bad_ns = await client.post(
        "/v1/registries", headers=dev, json=registry("ns", "ns.example.com", "x", namespace="../etc")
    )
    assert problem(bad_ns, 422)["errors"][0]["loc"] == "/body/namespace"

    server = await client.post("/v1/servers", headers=members.admin, json={"name": "builder-1", "host": "192.0.2.10"})
    assert server.status_code == 201, server.text
    server_id = server.json()["id"]
    body = {"name": "shop", "source": {**GIT, "build_server": "builder-1"}, "services": SERVICES}
    app = await make_app(client, dev, body)
    assert app["source"]["build_server"] == server_id  # the name, stored as the server's id
    unknown = await make_app_raw(client, dev, {**body, "name": "shop2", "source": {**GIT, "build_server": "nope"}})
    assert problem(unknown, 422)["errors"][0]["loc"] == "/body/source/build_server"
    local = await make_app(client, dev, {**body, "name": "shop3", "source": {**GIT, "build_server": "local"}})
    assert "build_server" not in local["source"]

    await _deploy(client, dev, app["id"])
    (cmd,) = await scheduler.wait_for("cmd.deployment.start", 1)
    source = cmd.data["spec"]["source"]
    assert source["build_server"] == server_id
    assert source["push"] == {
        "auth": {
            "registry": PUSH_HOST,
            "username": "push-user",
            "password": SealedAs("push-pw", f"berth/registry/{PUSH_HOST}"),
        },
        "namespace": "acme",
    }
    assert source["base_auths"] == [
        {"registry": MIRROR, "username": "mirror-user", "password": SealedAs("mirror-pw", f"berth/registry/{MIRROR}")}
    ]
    conn = await asyncpg.connect(api_urls["api"].replace("+asyncpg", ""))
    try:
        snapshots = await conn.fetch(
            "SELECT spec::text AS spec FROM api.deployments WHERE application_id = $1", app["id"]
        )
    finally:
        await conn.close()
    assert snapshots and all("push-pw" not in s["spec"] and "mirror-pw" not in s["spec"] for s in snapshots)

    # Without a push registry a build carries none (the scheduler streams the image over SSH).
    assert (await client.delete(f"/v1/registries/{created['id']}", headers=members.admin)).status_code == 204
    await _deploy(client, dev, local["id"])
    cmds = await scheduler.wait_for("cmd.deployment.start", 2)
    assert "push" not in cmds[1].data["spec"]["source"] and "build_server" not in cmds[1].data["spec"]["source"]


async def test_a_mapped_image_carries_the_mirrors_credentials(client, members, scheduler):
    dev = members.developer
    assert (
        await client.post("/v1/registries", headers=dev, json=registry("mirror", MIRROR, "mirror-pw"))
    ).status_code == 201
    assert (
        await client.post("/v1/registries", headers=dev, json=registry("hub", "docker.io", "hub-pw"))
    ).status_code == 201
    body = {"name": "web", "source": {"kind": "image", "image": "nginx:1.27"}, "services": SERVICES}
    app = await make_app(client, dev, body)
    await _deploy(client, dev, app["id"])
    (cmd,) = await scheduler.wait_for("cmd.deployment.start", 1)
    assert cmd.data["spec"]["source"] == {
        "kind": "image",
        "image": "nginx:1.27",  # the scheduler maps it; the credentials are the mirror's, not Docker Hub's
        "auth": {
            "registry": MIRROR,
            "username": "mirror-user",
            "password": SealedAs("mirror-pw", f"berth/registry/{MIRROR}"),
        },
    }


async def make_app_raw(client, headers, body: dict):
    projects = (await client.get("/v1/projects", headers=headers)).json()
    env = projects[0]["environments"][0]
    return await client.post(f"/v1/environments/{env['id']}/applications", headers=headers, json=body)


async def test_a_registry_is_made_the_push_target_and_unmarked(client, members):
    dev = members.developer
    first = (await client.post("/v1/registries", headers=dev, json=registry("one", "one.example.com", "pw1"))).json()
    second = (await client.post("/v1/registries", headers=dev, json=registry("two", "two.example.com", "pw2"))).json()
    r = await client.patch(f"/v1/registries/{first['id']}", headers=dev, json={"push": True, "namespace": "team-a"})
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in ("push", "namespace", "host")} == {
        "push": True,
        "namespace": "team-a",
        "host": "one.example.com",
    }
    taken = await client.patch(f"/v1/registries/{second['id']}", headers=dev, json={"push": True})
    assert problem(taken, 409)["errors"][0]["loc"] == "/body/push"
    assert (await client.patch(f"/v1/registries/{first['id']}", headers=dev, json={"push": False})).status_code == 200
    moved = await client.patch(f"/v1/registries/{second['id']}", headers=dev, json={"push": True})
    assert moved.status_code == 200 and moved.json()["push"] is True
    listed = {x["name"]: x.get("push", False) for x in (await client.get("/v1/registries", headers=dev)).json()}
    assert listed == {"one": False, "two": True}
    bad = await client.patch(f"/v1/registries/{first['id']}", headers=dev, json={"namespace": "Bad Name"})
    assert problem(bad, 422)["errors"][0]["loc"] == "/body/namespace"
    missing = await client.patch("/v1/registries/" + "0" * 32, headers=dev, json={"push": True})
    assert missing.status_code == 404
    assert (await client.patch(f"/v1/registries/{first['id']}", headers=members.viewer, json={})).status_code == 403
