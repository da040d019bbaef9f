"""Deployments: the start command and its snapshot (through the outbox, exactly once), the status projection
from the scheduler's events (stale, out of order, duplicated), cancel, rollback, live version and replicas.

A small double plays the scheduler on the real bus (tests/api/scheduler_double.py)."""

from __future__ import annotations

import asyncio
import json
import time

import asyncpg

from berth_common import sealing
from berth_common.catalogue import DeploymentProgressed
from tests.api.conftest import make_app, make_project
from tests.api.test_applications import GIT_APP, SECRETS, no_secret_in
from tests.api.test_projects import problem


class SealedAs:
    """Equal to a sealed token that opens to ``plain`` for ``aad`` (the api runs in this process: same key)."""

    def __init__(self, plain: str, aad: str) -> None:
        self.plain, self.aad = plain, aad

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, str) and other.startswith("sealed:v1:") and sealing.unseal(other, self.aad) == self.plain
        )

    def __repr__(self) -> str:
        return f"SealedAs(<{len(self.plain)} chars>, {self.aad!r})"


def opened(env: list[dict]) -> list[dict]:
    """Runtime variables with their secret values unsealed (each serialisation seals with a fresh nonce)."""
    return [{**e, "value": sealing.unseal(e["value"], f"berth/env/{e['name']}")} if e["secret"] else e for e in env]


async def _git_app(client, members) -> dict:
    proj = await make_project(client, members.developer)
    r = await client.post(
        f"/v1/environments/{proj['environments'][0]['id']}/applications", headers=members.developer, json=GIT_APP
    )
    assert r.status_code == 201, r.text
    return r.json()


async def _deploy(client, headers, app_id: str, body: dict | None = None) -> dict:
    r = await client.post(f"/v1/applications/{app_id}/deployments", headers=headers, json=body)
    assert r.status_code == 202, r.text
    return r.json()


async def _until(client, headers, dep_id: str, check, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = (await client.get(f"/v1/deployments/{dep_id}", headers=headers)).json()
        if check(body):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"deployment never matched: {body}")
        await asyncio.sleep(0.05)


async def _db(api_urls) -> asyncpg.Connection:
    return await asyncpg.connect(api_urls["api"].replace("+asyncpg", ""))


async def test_deploy_publishes_exactly_one_start_command_with_the_snapshot(
    client, members, scheduler, api_urls, capfd
):
    app = await _git_app(client, members)
    dep = await _deploy(
        client, members.developer, app["id"], {"options": {"drain_grace_s": 5, "when_busy": "replace_queued"}}
    )
    assert dep["status"] == "queued" and dep["state"] == "queued" and dep["kind"] == "deploy" and dep["number"] == 1
    assert dep["source"] == {"kind": "git", "image": None, "repository": GIT_APP["source"]["repository"], "ref": "main"}
    assert dep["image"] is None and dep["finished_at"] is None and dep["created_at"]
    no_secret_in(str(dep))

    (cmd,) = await scheduler.wait_for("cmd.deployment.start")
    data = cmd.data
    assert cmd.envelope.type == "cmd.deployment.start" and cmd.envelope.source == "berth/api"
    assert (data["deployment_id"], data["application_id"]) == (dep["id"], app["id"])
    me = (await client.get("/v1/me", headers=members.developer)).json()
    assert data["team_id"] == me["team"]["id"]
    assert data["options"] == {
        "drain_grace_s": 5.0,
        "readiness_timeout_s": None,
        "build_timeout_s": None,
        "when_busy": "replace_queued",
    }
    # The scheduler needs the values: the command's JSON carries them sealed (berth_common.sealing), never plain.
    no_secret_in(json.dumps(data))
    assert data["spec"] == {
        "name": "blog",
        "environment": "production",
        "source": {
            "kind": "git",
            "repository": "https://git.example.com/acme/blog.git",
            "ref": "main",
            "subdirectory": "site",
            "dockerfile": "docker/Dockerfile",
            "build_args": [
                {"name": "NODE_ENV", "value": "production", "secret": False},
                {"name": "NPM_TOKEN", "value": SealedAs("npm-s3cr3t-Tok", "berth/build-arg/NPM_TOKEN"), "secret": True},
            ],
        },
        "services": [
            {
                "kind": "web",
                "name": "web",
                "port": 3000,
                "replicas": 1,
                "health_path": "/",
                "command": None,
                "hosts": ["web-blog-production.localhost", "blog.example.com", "www.blog.example.com"],
                "limits": None,
            }
        ],
        "env": [
            {
                "name": "DATABASE_URL",
                "value": SealedAs("postgres://u:pg-s3cr3t-Pw@db/blog", "berth/env/DATABASE_URL"),
                "secret": True,
            },
            {"name": "PORT", "value": "3000", "secret": False},
        ],
        "limits": {"cpus": None, "memory_mb": None},
        "restart_policy": "unless-stopped",
        "stop_timeout_s": 10,
        "network": None,
    }
    # Exactly one, even after the outbox relay had time to run; and the queued event went out too.
    await asyncio.sleep(3.5)
    assert len(scheduler.of("cmd.deployment.start")) == 1
    info = await scheduler.bus.js.stream_info("BERTH_EVT", subjects_filter="evt.deployment.queued")
    assert info.state.subjects == {"evt.deployment.queued": 1}

    # At rest: no plaintext secret in the api's tables (the outbox row is gone once published).
    conn = await _db(api_urls)
    try:
        assert await conn.fetchval("SELECT count(*) FROM api.outbox WHERE subject = 'cmd.deployment.start'") == 0
        for table in ("deployments", "variables", "applications", "outbox"):
            dump = await conn.fetchval(f"SELECT coalesce(string_agg(t::text, ' '), '') FROM api.{table} t")
            no_secret_in(dump)
    finally:
        await conn.close()

    shown = (await client.get(f"/v1/deployments/{dep['id']}", headers=members.viewer)).json()
    assert shown["spec"]["env"][0] == {"name": "DATABASE_URL", "value": None, "secret": True}
    assert shown["spec"]["source"]["build_args"][1] == {"name": "NPM_TOKEN", "value": None, "secret": True}
    no_secret_in(str(shown))
    listed = (await client.get(f"/v1/applications/{app['id']}/deployments", headers=members.viewer)).json()
    assert [d["id"] for d in listed] == [dep["id"]]
    no_secret_in(str(listed))
    # The command's logged form masks the values.
    out, err = capfd.readouterr()
    assert "deployment requested" in out + err and "**********" in out + err
    no_secret_in(out + err)


async def test_status_projection_ignores_stale_and_duplicated_events(client, members, scheduler, api_urls):
    app = await make_app(client, members.developer)
    dep = await _deploy(client, members.developer, app["id"])
    d, a = dep["id"], app["id"]
    h = members.viewer

    await scheduler.progressed(d, a, "queued", "queued", "1 deployment(s) of this application ahead")
    body = await _until(client, h, d, lambda b: b["detail"].startswith("1 deployment"))
    assert body["status"] == "queued" and body["started_at"] is None
    await scheduler.progressed(d, a, "starting", "starting replicas", "image x")
    await scheduler.progressed(d, a, "verifying", "replicas started")
    await scheduler.progressed(d, a, "starting", "starting replicas (late copy)")  # stale: an earlier state
    await scheduler.progressed(d, a, "verifying", "replica ready", "berth-shop-web-1")
    body = await _until(client, h, d, lambda b: b["step"] == "replica ready")
    assert body["state"] == "verifying" and body["status"] == "in_progress" and body["started_at"]

    # A redelivered event (same envelope id, another Nats-Msg-Id so JetStream keeps both) has no second effect.
    env = scheduler.bus.envelope(
        DeploymentProgressed(deployment_id=d, application_id=a, state="routing", step="replicas ready")
    )
    await scheduler.bus.publish_raw("evt.deployment.progressed", env.to_bytes(), {"Nats-Msg-Id": "first-" + env.id})
    body = await _until(client, h, d, lambda b: b["state"] == "routing")
    await scheduler.bus.publish_raw("evt.deployment.progressed", env.to_bytes(), {"Nats-Msg-Id": "again-" + env.id})
    await scheduler.progressed(d, a, "routing", "route step live", "step 1 of 1")  # sentinel, same consumer
    after = await _until(client, h, d, lambda b: b["step"] == "route step live")
    conn = await _db(api_urls)
    try:
        seen = await conn.fetchval("SELECT count(*) FROM api.processed_messages WHERE message_id = $1", env.id)
    finally:
        await conn.close()
    assert seen == 1 and after["updated_at"] >= body["updated_at"]

    # The end arrives before the last progress events (separate consumers): those never move it back.
    team = (await client.get("/v1/me", headers=h)).json()["team"]["id"]
    await scheduler.succeeded(d, a, team, "registry.example.com:5000/acme/shop:1.0")
    done = await _until(client, h, d, lambda b: b["state"] == "succeeded")
    assert done["status"] == "succeeded" and done["finished_at"] and done["duration_s"] == 1.5
    assert done["image"] == "registry.example.com:5000/acme/shop:1.0" and done["reason"] is None
    await scheduler.progressed(d, a, "draining", "new version live")
    await scheduler.progressed(d, a, "routing", "route step live", "a very late copy")
    await scheduler.progressed(d, a, "succeeded", "succeeded", "2 old container(s) stopped")
    await asyncio.sleep(1.0)
    final = (await client.get(f"/v1/deployments/{d}", headers=h)).json()
    assert (
        final["state"] == "succeeded" and final["step"] == "succeeded" and final["finished_at"] == done["finished_at"]
    )


async def test_failure_reason_is_recorded_and_redacted(client, members, scheduler):
    app = await _git_app(client, members)
    dep = await _deploy(client, members.developer, app["id"])
    team = (await client.get("/v1/me", headers=members.viewer)).json()["team"]["id"]
    await scheduler.built(dep["id"], app["id"], "berth/blog:" + dep["id"][:8], "c0ffee" * 6 + "abcd", "FROM scratch\n")
    await _until(client, members.viewer, dep["id"], lambda b: b["commit"] is not None)
    await scheduler.progressed(
        dep["id"], app["id"], "verifying", "failing", f"readiness failed; token {SECRETS[0]} rejected"
    )
    await scheduler.failed(dep["id"], app["id"], team, f"readiness never passed (npm token {SECRETS[0]} refused)")
    body = await _until(client, members.viewer, dep["id"], lambda b: b["state"] == "failed")
    assert body["status"] == "failed" and body["reason"] == "readiness never passed (npm token [redacted] refused)"
    assert body["commit"] == "c0ffee" * 6 + "abcd" and body["generated_dockerfile"] == "FROM scratch\n"
    assert body["image"] == "berth/blog:" + dep["id"][:8]
    no_secret_in(str(body))
    # A late progress event cannot revive it.
    await scheduler.progressed(dep["id"], app["id"], "routing", "replicas ready")
    await asyncio.sleep(0.8)
    assert (await client.get(f"/v1/deployments/{dep['id']}", headers=members.viewer)).json()["state"] == "failed"
    # Deleting it goes through the scheduler (a failed deployment may have left an image): being removed.
    r = await client.delete(f"/v1/applications/{app['id']}", headers=members.admin)
    assert r.status_code == 202 and r.json()["state"] == "removing"
    (remove,) = await scheduler.wait_for("cmd.application.remove")
    assert remove.data["application_id"] == app["id"]


async def test_cancel(client, members, scheduler):
    app = await make_app(client, members.developer)
    dep = await _deploy(client, members.developer, app["id"])
    problem(await client.post(f"/v1/deployments/{dep['id']}/cancel", headers=members.viewer), 403)
    problem(await client.post(f"/v1/deployments/{dep['id']}/cancel", headers=members.other), 404)
    body = problem(
        await client.post(f"/v1/deployments/{dep['id']}/cancel", headers=members.developer, json={"reason": "x\ny"}),
        422,
    )
    assert body["errors"][0]["loc"] == "/body/reason"
    r = await client.post(
        f"/v1/deployments/{dep['id']}/cancel", headers=members.developer, json={"reason": "wrong branch"}
    )
    assert r.status_code == 202, r.text
    assert r.json()["cancel_requested_at"] is not None and r.json()["state"] == "queued"
    (cmd,) = await scheduler.wait_for("cmd.deployment.cancel")
    assert cmd.data == {"deployment_id": dep["id"], "reason": "wrong branch"}
    team = (await client.get("/v1/me", headers=members.viewer)).json()["team"]["id"]
    await scheduler.cancelled(dep["id"], app["id"], team, "wrong branch")
    body = await _until(client, members.viewer, dep["id"], lambda b: b["state"] == "cancelled")
    assert body["status"] == "cancelled" and body["reason"] == "wrong branch" and body["finished_at"]
    problem(await client.post(f"/v1/deployments/{dep['id']}/cancel", headers=members.developer), 409)
    # Once the new version serves traffic it is too late.
    dep2 = await _deploy(client, members.developer, app["id"])
    await scheduler.progressed(dep2["id"], app["id"], "draining", "new version live")
    await _until(client, members.viewer, dep2["id"], lambda b: b["state"] == "draining")
    assert (
        "Too late"
        in problem(await client.post(f"/v1/deployments/{dep2['id']}/cancel", headers=members.developer), 409)["detail"]
    )


async def test_rollback_runs_the_previous_image_without_a_build(client, members, scheduler):
    app = await _git_app(client, members)
    aid = app["id"]
    problem(await client.post(f"/v1/applications/{aid}/rollback", headers=members.developer), 409)  # nothing yet
    images = []
    deps = []
    for n in (1, 2):
        dep = await _deploy(client, members.developer, aid)
        (*_, cmd) = await scheduler.wait_for("cmd.deployment.start", n)
        images.append(await scheduler.run_to_success(cmd))
        await _until(client, members.viewer, dep["id"], lambda b: b["state"] == "succeeded")
        deps.append(dep)
        await asyncio.sleep(0.01)
    detail = (await client.get(f"/v1/applications/{aid}", headers=members.viewer)).json()
    assert detail["live"]["deployment_id"] == deps[1]["id"] and detail["live"]["image"] == images[1]

    problem(await client.post(f"/v1/applications/{aid}/rollback", headers=members.viewer), 403)
    problem(await client.post(f"/v1/applications/{aid}/rollback", headers=members.other), 404)
    r = await client.post(f"/v1/applications/{aid}/rollback", headers=members.developer)
    assert r.status_code == 202, r.text
    back = r.json()
    assert back["kind"] == "rollback" and back["rollback_of"] == deps[0]["id"] and back["number"] == 3
    assert back["source"] == {"kind": "image", "image": images[0], "repository": None, "ref": None}
    cmds = await scheduler.wait_for("cmd.deployment.start", 3)
    spec = cmds[2].data["spec"]
    assert spec["source"] == {"kind": "image", "image": images[0]}  # an ImageSource: no build
    assert (
        opened(spec["env"]) == opened(cmds[1].data["spec"]["env"])
        and spec["services"] == cmds[1].data["spec"]["services"]
    )

    # Naming one: it must be a succeeded deployment of this application.
    r = await client.post(
        f"/v1/applications/{aid}/rollback", headers=members.developer, json={"deployment_id": deps[1]["id"]}
    )
    assert r.status_code == 202 and r.json()["source"]["image"] == images[1]
    problem(
        await client.post(
            f"/v1/applications/{aid}/rollback", headers=members.developer, json={"deployment_id": back["id"]}
        ),
        409,
    )
    problem(
        await client.post(
            f"/v1/applications/{aid}/rollback", headers=members.developer, json={"deployment_id": "0" * 32}
        ),
        404,
    )
    problem(
        await client.post(
            f"/v1/applications/{aid}/rollback", headers=members.developer, json={"deployment_id": "../x"}
        ),
        422,
    )
    # A deployed application is taken down by the scheduler (tests/api/test_application_removal.py).
    r = await client.delete(f"/v1/applications/{aid}", headers=members.admin)
    assert r.status_code == 202 and r.json()["state"] == "removing"


async def test_live_version_replicas_and_a_silent_scheduler(client, members, scheduler):
    app = await make_app(client, members.developer)
    dep = await _deploy(client, members.developer, app["id"])
    (cmd,) = await scheduler.wait_for("cmd.deployment.start")
    await scheduler.run_to_success(cmd)
    await _until(client, members.viewer, dep["id"], lambda b: b["state"] == "succeeded")
    scheduler.set_replicas(app["id"], dep["id"], [("running", "ready"), ("restarting", "unready")])
    detail = (await client.get(f"/v1/applications/{app['id']}", headers=members.viewer)).json()
    assert detail["live"]["deployment_id"] == dep["id"] and detail["live"]["number"] == 1
    rt = detail["runtime"]
    assert rt["available"] is True and rt["error"] is None and rt["live_deployment_id"] == dep["id"]
    assert [(r["replica"], r["state"], r["health"]) for r in rt["replicas"]] == [
        (1, "running", "ready"),
        (2, "restarting", "unready"),
    ]

    await scheduler.stop()  # the scheduler goes away: said so, quickly, never a 500
    started = time.monotonic()
    r = await client.get(f"/v1/applications/{app['id']}", headers=members.viewer)
    assert r.status_code == 200 and time.monotonic() - started < 3
    assert r.json()["runtime"]["available"] is False and "scheduler" in r.json()["runtime"]["error"]
    assert r.json()["live"]["deployment_id"] == dep["id"]


async def test_deployment_isolation_and_roles(client, members, scheduler):
    app = await make_app(client, members.developer)
    aid = app["id"]
    problem(await client.post(f"/v1/applications/{aid}/deployments", headers=members.viewer), 403)
    problem(await client.post(f"/v1/applications/{aid}/deployments", headers=members.other), 404)
    body = problem(
        await client.post(
            f"/v1/applications/{aid}/deployments", headers=members.developer, json={"options": {"drain_grace_s": -1}}
        ),
        422,
    )
    assert body["errors"][0]["loc"].startswith("/body/options/drain_grace_s")
    dep = await _deploy(client, members.developer, aid)
    await scheduler.wait_for("cmd.deployment.start")
    for url in (
        f"/v1/deployments/{dep['id']}",
        f"/v1/applications/{aid}/deployments",
        f"/v1/deployments/{dep['id']}/logs",
    ):
        theirs = problem(await client.get(url, headers=members.other), 404)
        absent = problem(
            await client.get(url.replace(dep["id"], "0" * 32).replace(aid, "0" * 32), headers=members.other), 404
        )
        assert theirs["type"] == absent["type"]
        assert (await client.get(url, headers=members.viewer)).status_code == 200
    assert len(scheduler.of("cmd.deployment.start")) == 1
