"""Placement through the REST API: a service names the servers it runs on (by name, by id, or ``local``);
they are stored as ids, shown by GET and sent in the deployment's snapshot; an unknown server, another
team's, a removed one or one being drained is a 422 naming the list item."""

from __future__ import annotations

import copy

import sqlalchemy as sa

from berth_api.adapters.tables import servers, teams
from berth_api.usecases.placement import refusal
from berth_common.envelope import new_id
from tests.api.conftest import WEB_APP, make_app
from tests.api.test_projects import locs, problem


async def _server(identities, name: str, team: str = "default", state: str = "ready") -> str:
    server_id = new_id()
    async with identities.sessionmaker() as s, s.begin():
        team_id = (await s.execute(sa.select(teams.c.id).where(teams.c.name == team))).scalar_one()
        await s.execute(
            sa.insert(servers).values(
                id=server_id, team_id=team_id, name=name, host="203.0.113.7", port=22, user="berth",
                sealed=b"x", public_key="", checks=[], state=state,
            )
        )  # fmt: skip
    return server_id


def _placed(web: list[str], jobs: list[str] | None = None) -> dict:
    body = copy.deepcopy(WEB_APP)
    body["services"][0]["servers"] = web
    if jobs is not None:
        body["services"][1]["servers"] = jobs
    return body


async def test_servers_are_resolved_to_ids_shown_and_sent(client, members, identities, scheduler):
    a = await _server(identities, "edge-a")
    b = await _server(identities, "edge-b")
    app = await make_app(client, members.developer, _placed(["edge-a", b, "local"], ["edge-b"]))
    web, jobs = app["services"]
    assert web["servers"] == [a, b, "local"] and jobs["servers"] == [b]
    shown = (await client.get(f"/v1/applications/{app['id']}", headers=members.viewer)).json()
    assert [s.get("servers") for s in shown["services"]] == [[a, b, "local"], [b]]

    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer, json={})
    assert r.status_code == 202, r.text
    (cmd,) = await scheduler.wait_for("cmd.deployment.start")
    assert [s.get("servers") for s in cmd.data["spec"]["services"]] == [[a, b, "local"], [b]]

    # an update replaces the placement; a service naming none runs on local and shows no list
    services = copy.deepcopy(WEB_APP["services"])
    services[1]["servers"] = ["edge-a"]
    r = await client.patch(f"/v1/applications/{app['id']}", headers=members.developer, json={"services": services})
    assert r.status_code == 200, r.text
    assert [s.get("servers") for s in r.json()["services"]] == [None, [a]]


async def test_a_server_that_cannot_run_it_is_a_422_naming_the_item(client, members, identities):
    a = await _server(identities, "edge-a")
    await _server(identities, "theirs", team="other")
    env = (await client.post("/v1/projects", headers=members.developer, json={"name": "acme"})).json()
    url = f"/v1/environments/{env['environments'][0]['id']}/applications"
    cases = {
        "/body/services/0/servers/1": _placed(["edge-a", "nowhere"]),
        "/body/services/1/servers/0": _placed(["edge-a"], ["theirs"]),
    }
    for loc, body in cases.items():
        r = await client.post(url, headers=members.developer, json=body)
        assert locs(problem(r, 422)) == {loc}, r.text
    r = await client.post(url, headers=members.developer, json=_placed(["edge-a", "edge-a"]))
    assert locs(problem(r, 422)) == {"/body/services/0/servers/1"}
    r = await client.post(url, headers=members.developer, json=_placed(["bad name!"]))
    assert locs(problem(r, 422)) == {"/body/services/0/web/servers/0"}  # request shape: the union's tag named
    # another team's server is answered like a missing one
    theirs = problem(await client.post(url, headers=members.developer, json=_placed(["theirs"])), 422)
    missing = problem(await client.post(url, headers=members.developer, json=_placed(["gone"])), 422)
    assert theirs["errors"][0]["detail"].replace("theirs", "X") == missing["errors"][0]["detail"].replace("gone", "X")

    app = await make_app(client, members.developer, _placed(["edge-a"]))
    services = _placed(["edge-a", "nowhere"])["services"]
    r = await client.patch(f"/v1/applications/{app['id']}", headers=members.developer, json={"services": services})
    assert locs(problem(r, 422)) == {"/body/services/0/servers/1"}
    kept = (await client.get(f"/v1/applications/{app['id']}", headers=members.developer)).json()
    assert kept["services"][0]["servers"] == [a]


def test_a_server_being_drained_or_removed_takes_no_new_replicas():
    """(The api's server states gain ``draining`` with server drains; the rule is ready for it.)"""
    assert refusal({"name": "edge-a", "state": "ready"}) is None
    assert refusal({"name": "edge-a", "state": "unreachable"}) is None
    assert refusal({"name": "edge-a", "state": "draining"}) == (
        "the server edge-a is being drained: no new replicas are placed on it"
    )
    assert refusal({"name": "edge-a", "state": "removed"}) == (
        "the server edge-a has been removed: no new replicas are placed on it"
    )
