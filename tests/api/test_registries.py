"""Image registries: a team's credentials (REST, RBAC, validation, the password never shown), their way to
the scheduler (sealed in the start command of an image on that host), the pull policy, and the pulled
image's digest on the deployment and in a rollback."""

from __future__ import annotations

import asyncio

import asyncpg

from berth_common.catalogue import DeploymentProgressed, DeploymentSucceeded
from tests.api.conftest import make_app
from tests.api.test_deployments import SealedAs, _deploy, _until
from tests.api.test_projects import problem

PASSWORD = "registry-token-never-shown"
HOST = "registry.example.com:5000"  # the registry of the test application's image
BODY = {"name": "acme-registry", "host": HOST, "username": "deploy", "password": PASSWORD}


async def test_registries_are_team_resources_and_never_show_the_password(client, members):
    problem(await client.post("/v1/registries", headers=members.viewer, json=BODY), 403)
    r = await client.post("/v1/registries", headers=members.developer, json=BODY)
    assert r.status_code == 201, r.text
    created = r.json()
    assert set(created) == {"id", "name", "host", "username", "created_at"}
    assert (created["name"], created["host"], created["username"]) == ("acme-registry", HOST, "deploy")
    assert PASSWORD not in r.text

    hub = {**BODY, "name": "hub", "host": "Index.Docker.IO"}
    r = await client.post("/v1/registries", headers=members.admin, json=hub)
    assert r.status_code == 201 and r.json()["host"] == "docker.io", r.text
    for host in ("https://ghcr.io", "ghcr.io/acme", "user@ghcr.io", "ghcr.io:99999", "a b"):
        body = problem(await client.post("/v1/registries", headers=members.developer, json={**BODY, "host": host}), 422)
        assert body["errors"][0]["loc"] == "/body/host", body
    body = problem(
        await client.post("/v1/registries", headers=members.developer, json={**BODY, "host": "ghcr.io"}), 409
    )
    assert body["errors"][0]["loc"] == "/body/name"
    body = problem(await client.post("/v1/registries", headers=members.developer, json={**BODY, "name": "again"}), 409)
    assert body["errors"][0]["loc"] == "/body/host"
    problem(await client.post("/v1/registries", headers=members.developer, json={**BODY, "password": ""}), 422)
    problem(await client.post("/v1/registries", headers=members.developer, json={**BODY, "extra": 1}), 422)

    listed = await client.get("/v1/registries", headers=members.viewer)
    assert [r["name"] for r in listed.json()] == ["acme-registry", "hub"] and PASSWORD not in listed.text
    one = await client.get(f"/v1/registries/{created['id']}", headers=members.viewer)
    assert one.json() == created
    assert (await client.get("/v1/registries", headers=members.other)).json() == []
    problem(await client.get(f"/v1/registries/{created['id']}", headers=members.other), 404)
    problem(await client.delete(f"/v1/registries/{created['id']}", headers=members.other), 404)
    problem(await client.delete(f"/v1/registries/{created['id']}", headers=members.viewer), 403)
    problem(await client.delete(f"/v1/registries/{created['id']}", headers=members.developer), 403)
    assert (await client.delete(f"/v1/registries/{created['id']}", headers=members.admin)).status_code == 204
    problem(await client.get(f"/v1/registries/{created['id']}", headers=members.viewer), 404)
    problem(await client.delete(f"/v1/registries/{created['id']}", headers=members.admin), 404)


async def _succeed(scheduler, dep: str, app: str, team: str, image: str, digest: str) -> None:
    ready = DeploymentProgressed(
        deployment_id=dep, application_id=app, state="starting", step="image ready", image_digest=digest
    )
    await scheduler.bus.publish(ready)
    for state, step in (("verifying", "replicas started"), ("routing", "replicas ready"), ("succeeded", "succeeded")):
        await scheduler.progressed(dep, app, state, step)
    done = DeploymentSucceeded(
        deployment_id=dep, application_id=app, team_id=team, image=image, image_digest=digest, duration_s=1.0
    )
    await scheduler.bus.publish(done)


async def test_deployments_carry_the_credentials_sealed_record_the_digest_and_roll_back_to_it(
    client, members, scheduler, api_urls
):
    registry = (await client.post("/v1/registries", headers=members.developer, json=BODY)).json()
    app = await make_app(client, members.developer)
    image = app["source"]["image"]
    assert app["source"] == {"kind": "image", "image": image}  # no policy set: none shown
    r = await client.patch(
        f"/v1/applications/{app['id']}",
        headers=members.developer,
        json={"source": {"kind": "image", "image": image, "pull_policy": "if-missing"}},
    )
    assert r.status_code == 200 and r.json()["source"]["pull_policy"] == "if-missing", r.text
    bad = await client.patch(
        f"/v1/applications/{app['id']}",
        headers=members.developer,
        json={"source": {"kind": "image", "image": image, "pull_policy": "sometimes"}},
    )
    assert problem(bad, 422)["errors"][0]["loc"].startswith("/body/source")
    team = (await client.get("/v1/me", headers=members.viewer)).json()["team"]["id"]

    digests = [f"{HOST}/acme/shop@sha256:{c * 64}" for c in "ab"]
    deps = []
    for n, digest in enumerate(digests, start=1):
        dep = await _deploy(client, members.developer, app["id"])
        (*_, cmd) = await scheduler.wait_for("cmd.deployment.start", n)
        source = cmd.data["spec"]["source"]
        assert source == {
            "kind": "image",
            "image": image,
            "pull_policy": "if-missing",
            "auth": {"registry": HOST, "username": "deploy", "password": SealedAs(PASSWORD, f"berth/registry/{HOST}")},
        }
        assert PASSWORD not in dep.__repr__()
        await _succeed(scheduler, dep["id"], app["id"], team, image, digest)
        body = await _until(client, members.viewer, dep["id"], lambda b: b["state"] == "succeeded")
        assert body["image_digest"] == digest and body["spec"]["source"]["auth"]["password"] is None
        assert PASSWORD not in str(body)
        deps.append(dep)
        await asyncio.sleep(0.01)

    r = await client.post(f"/v1/applications/{app['id']}/rollback", headers=members.developer)
    assert r.status_code == 202, r.text
    assert r.json()["source"]["image"] == digests[0] and r.json()["image"] == digests[0]
    cmds = await scheduler.wait_for("cmd.deployment.start", 3)
    source = cmds[2].data["spec"]["source"]
    assert source["image"] == digests[0] and "pull_policy" not in source  # a digest: if-missing by default
    assert source["auth"]["registry"] == HOST and source["auth"]["password"] == SealedAs(
        PASSWORD, f"berth/registry/{HOST}"
    )

    # At rest: sealed with the api's key, never in the clear (the registry row, the deployment snapshots).
    conn = await asyncpg.connect(api_urls["api"].replace("+asyncpg", ""))
    try:
        sealed = await conn.fetchval("SELECT sealed FROM api.registries WHERE id = $1", registry["id"])
        snapshots = await conn.fetch(
            "SELECT spec::text AS spec FROM api.deployments WHERE application_id = $1", app["id"]
        )
    finally:
        await conn.close()
    assert PASSWORD.encode() not in sealed and len(snapshots) == 3
    assert all(PASSWORD not in row["spec"] for row in snapshots)

    # Without an entry for its host, an image travels without credentials.
    assert (await client.delete(f"/v1/registries/{registry['id']}", headers=members.admin)).status_code == 204
    await _deploy(client, members.developer, app["id"])
    cmds = await scheduler.wait_for("cmd.deployment.start", 4)
    assert "auth" not in cmds[3].data["spec"]["source"]


async def test_key_rotation_reseals_registry_passwords(api, client, members, scheduler, api_urls):
    from berth_api.usecases.rotation import rotate
    from berth_common.db import make_engine, make_sessionmaker

    await client.post("/v1/registries", headers=members.developer, json=BODY)
    app = await make_app(client, members.developer)
    engine = make_engine(api_urls["api"], "api")
    try:
        done = await rotate(make_sessionmaker(engine), api.settings.secrets_key_path)
    finally:
        await engine.dispose()
    assert done.resealed.counts["registries"] == 1
    await _deploy(client, members.developer, app["id"])  # the password opens with the new key
    (cmd,) = await scheduler.wait_for("cmd.deployment.start")
    assert cmd.data["spec"]["source"]["auth"]["password"] == SealedAs(PASSWORD, f"berth/registry/{HOST}")
