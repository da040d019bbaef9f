"""What the dashboard's pages need from the REST API in one answer each: every application of the list (the
team's page and an environment's) carries its newest deployment, kept current by the list cache as the
deployment moves; an application's replicas name the server each one runs on."""

from __future__ import annotations

import asyncio

import asyncpg

from berth_common.catalogue import ReplicasReply, ReplicaStatus
from tests.api.conftest import make_app


async def _listed(client, headers, app_id: str, env_id: str) -> tuple[dict, dict]:
    team = (await client.get("/v1/applications", headers=headers)).json()
    env = (await client.get(f"/v1/environments/{env_id}/applications", headers=headers)).json()
    return next(a for a in team if a["id"] == app_id), next(a for a in env if a["id"] == app_id)


async def _until(client, headers, app_id: str, env_id: str, state: str) -> dict:
    for _ in range(100):
        team, env = await _listed(client, headers, app_id, env_id)
        if team["last_deployment"] and team["last_deployment"]["state"] == state:
            assert env["last_deployment"] == team["last_deployment"]
            return team["last_deployment"]
        await asyncio.sleep(0.1)
    raise AssertionError(f"the list never showed {state}: {team['last_deployment']}")


async def test_the_list_carries_the_newest_deployment_and_replicas_their_server(client, members, scheduler, api_urls):
    app = await make_app(client, members.developer)
    env_id = app["environment_id"]
    team, env = await _listed(client, members.viewer, app["id"], env_id)
    assert team["last_deployment"] is None and env["last_deployment"] is None

    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer, json={})
    assert r.status_code == 202, r.text
    first = r.json()
    last = await _until(client, members.viewer, app["id"], env_id, "queued")  # the cached page was dropped
    assert (last["id"], last["number"], last["kind"], last["status"]) == (first["id"], 1, "deploy", "queued")
    assert last["finished_at"] is None

    (start,) = await scheduler.wait_for("cmd.deployment.start")
    assert start.data["number"] == 1  # the request order, for a scheduler that gets the commands out of it
    await scheduler.run_to_success(start)
    last = await _until(client, members.viewer, app["id"], env_id, "succeeded")
    assert last["status"] == "succeeded" and last["finished_at"] is not None

    # A second deployment is the newest while it runs, though the first is still the live one.
    second = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer, json={})
    last = await _until(client, members.viewer, app["id"], env_id, "queued")
    assert (last["id"], last["number"]) == (second.json()["id"], 2)
    starts = await scheduler.wait_for("cmd.deployment.start", 2)
    assert (starts[1].data["deployment_id"], starts[1].data["number"]) == (second.json()["id"], 2)

    # Replicas: on the control plane's engine, on a server of the team (by its name), on a Swarm node.
    conn = await asyncpg.connect(api_urls["api"].replace("+asyncpg", ""))
    try:
        team_id = await conn.fetchval("SELECT team_id FROM api.applications WHERE id = $1", app["id"])
        await conn.execute(
            'INSERT INTO api.servers (id, team_id, name, host, port, "user", sealed, public_key, state, checks) '
            "VALUES ($1, $2, 'edge-1', '10.0.0.5', 22, 'berth', '\\x00', 'ssh-ed25519 AAAA', 'ready', '[]')",
            "a" * 32,
            team_id,
        )
    finally:
        await conn.close()
    live = first["id"]

    def replica(n: int, **where: str) -> ReplicaStatus:
        return ReplicaStatus(deployment_id=live, service="web", replica=n, container=f"c{n}", state="running", **where)

    scheduler.replicas[app["id"]] = ReplicasReply(
        application_id=app["id"],
        live_deployment_id=live,
        replicas=[replica(1, server="local"), replica(2, server="a" * 32), replica(3, node="n0de"), replica(4)],
    )
    detail = (await client.get(f"/v1/applications/{app['id']}", headers=members.viewer)).json()
    assert detail["runtime"]["available"], detail["runtime"]
    where = {r["replica"]: (r["server"], r["server_name"]) for r in detail["runtime"]["replicas"]}
    assert where == {1: ("local", "local"), 2: ("a" * 32, "edge-1"), 3: ("n0de", "n0de"), 4: ("local", "local")}
