"""A compose application's placement through the REST API: ``placement`` names the servers each service of
the file runs on (by name, by id, or ``local``), stored as ids, given to the services at each translation
and sent in the deployment's snapshot. A port a service publishes on the server is claimed on each of its
servers: two applications publish the same port on two servers, never on one; moving a service to another
server releases the claim of the one it left. A drain moves the placement too."""

from __future__ import annotations

from typing import Any

import pytest

from berth_api.domain.placements import compose_placed, drained_config
from berth_api.domain.problems import ProblemError
from tests.api.conftest import make_app
from tests.api.test_compose_published_ports import MQTT, _create, api_settings  # noqa: F401 (ports allowed)
from tests.api.test_placement_api import _server
from tests.api.test_projects import locs, problem


def _placed(name: str, *servers: str, service: str = "mqtt") -> dict[str, Any]:
    return {"name": name, "compose": {"inline": MQTT}, "placement": [{"service": service, "servers": list(servers)}]}


async def _post(client, headers, body: dict[str, Any]) -> Any:
    found = [p for p in (await client.get("/v1/projects", headers=headers)).json() if p["name"] == "acme"]
    env = found[0]["environments"][0]["id"]
    return await client.post(f"/v1/environments/{env}/applications", headers=headers, json=body)


async def _added(client, members, name: str) -> str:
    """A server added through the API (its key made and sealed by the api; validation is the scheduler's)."""
    r = await client.post("/v1/servers", headers=members.admin, json={"name": name, "host": "203.0.113.7"})
    assert r.status_code in (201, 202), r.text
    return str(r.json()["id"])


async def test_a_port_is_claimed_on_each_server_the_service_runs_on(client, members, identities, scheduler) -> None:
    a = await _server(identities, "edge-a")
    b = await _server(identities, "edge-b")
    c = await _server(identities, "edge-c")
    first = await make_app(client, members.developer, _placed("broker", "edge-a"))
    web, mqtt = first["services"]
    assert (web.get("servers"), mqtt["servers"]) == (None, [a])
    assert first["compose"]["placement"] == [{"service": "mqtt", "servers": [a]}]

    # the same port on another server is free; on the same one it is the first application's
    r = await _post(client, members.developer, _placed("broker-b", b))
    assert r.status_code == 201, r.text
    r = await _post(client, members.developer, _placed("broker-a", "edge-a"))
    (err,) = problem(r, 409)["errors"]
    assert err == {
        "loc": "/body/compose/services/mqtt/ports",
        "detail": f"the port 21883/tcp of server {a} is published by the application broker ({first['id']}, "
        "service mqtt): each port of a server is one application's",
        "type": "conflict",
    }
    r = await _create(client, members.developer, "broker-local")  # nothing is claimed on local
    assert r.status_code == 201, r.text

    # moved to another server: the claim of the server it left is released
    r = await client.patch(
        f"/v1/applications/{first['id']}",
        headers=members.developer,
        json={"placement": [{"service": "mqtt", "servers": ["edge-c"]}]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["services"][1]["servers"] == [c]
    r = await _post(client, members.developer, _placed("broker-a", "edge-a"))
    assert r.status_code == 201, r.text
    r = await _post(client, members.developer, _placed("broker-c", c))
    assert problem(r, 409)["errors"][0]["detail"].startswith(f"the port 21883/tcp of server {c} is published by")

    r = await client.post(f"/v1/applications/{first['id']}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    (cmd,) = await scheduler.wait_for("cmd.deployment.start")
    assert [s.get("servers") for s in cmd.data["spec"]["services"]] == [None, [c]]
    assert cmd.data["spec"]["services"][1]["published_ports"][0]["published"] == 21883


async def test_a_placement_that_cannot_be_is_a_422_naming_the_entry(client, members, identities) -> None:
    await _server(identities, "edge-a")
    await make_app(
        client, members.developer, {"name": "probe", "compose": {"inline": "services:\n  p:\n    image: x\n"}}
    )
    cases = {
        "/body/placement/0/service": _placed("x1", "edge-a", service="nope"),
        "/body/placement/0/servers/1": _placed("x2", "edge-a", "nowhere", service="web"),
    }
    for loc, body in cases.items():
        assert locs(problem(await _post(client, members.developer, body), 422)) == {loc}
    (err,) = problem(await _post(client, members.developer, _placed("x5", "edge-a", "local")), 422)["errors"]
    assert (err["loc"], err["detail"]) == (
        "/body/placement/0/servers",
        "the service mqtt publishes ports on its server (21883/tcp, 21884/udp) and runs on one server: its one "
        "replica binds them there",
    )
    web_on_two = _placed("x6", "edge-a", "local", service="web")
    assert (await _post(client, members.developer, web_on_two)).status_code == 201  # no published port
    twice = _placed("x3", "edge-a")
    twice["placement"].append({"service": "mqtt", "servers": ["local"]})
    assert locs(problem(await _post(client, members.developer, twice), 422)) == {"/body/placement/1/service"}
    app = await make_app(client, members.developer, _placed("x4", "edge-a"))
    r = await client.patch(
        f"/v1/applications/{app['id']}",
        headers=members.developer,
        json={"placement": [{"service": "web", "servers": ["edge-a", "edge-a"]}]},
    )
    assert locs(problem(r, 422)) == {"/body/placement/0/servers/1"}


async def test_a_drain_moves_the_services_and_their_ports_claims(client, members, scheduler) -> None:
    a, b = [await _added(client, members, name) for name in ("edge-a", "edge-b")]
    app = await make_app(client, members.developer, _placed("broker", "edge-a"))
    r = await client.post(f"/v1/servers/{a}/drain", headers=members.admin, json={"to": ["edge-b"]})
    assert r.status_code == 202, r.text
    (cmd,) = await scheduler.wait_for("cmd.deployment.start")
    assert [s.get("servers") for s in cmd.data["spec"]["services"]] == [None, [b]]
    shown = (await client.get(f"/v1/applications/{app['id']}", headers=members.viewer)).json()
    assert shown["compose"]["placement"] == [{"service": "mqtt", "servers": [b]}]
    r = await _post(client, members.developer, _placed("broker-b", "edge-b"))
    assert problem(r, 409)["errors"][0]["detail"].startswith(f"the port 21883/tcp of server {b} is published by")
    # translated again (a change of the application): the placement stays where the drain put it
    r = await client.patch(f"/v1/applications/{app['id']}", headers=members.developer, json={"hosts": []})
    assert r.status_code == 200, r.text
    assert r.json()["services"][1]["servers"] == [b]


def test_a_compose_placement_is_given_to_the_services_and_moved_by_a_drain() -> None:
    config = {
        "services": [{"name": "web", "servers": ["old"]}, {"name": "my-api"}],
        "compose_placement": [{"service": "my_api", "servers": ["s1", "s2"]}],
        "compose_translated": {"services": [{"name": "web"}, {"name": "my-api"}]},
    }
    assert compose_placed(config)["services"] == [{"name": "web"}, {"name": "my-api", "servers": ["s1", "s2"]}]
    drained = drained_config(compose_placed(config), "s1", ["s3"])
    assert drained["compose_placement"] == [{"service": "my_api", "servers": ["s3", "s2"]}]
    assert compose_placed(drained)["services"] == drained["services"]
    waiting = {**config, "services": [], "compose_translated": None}  # a file of the repository not read yet
    assert compose_placed(waiting) == waiting
    with pytest.raises(ProblemError) as refused:
        compose_placed({**config, "compose_placement": [{"service": "db", "servers": ["s1"]}]})
    assert refused.value.errors == [
        {
            "loc": "/body/placement/0/service",
            "detail": "the compose file deploys no service 'db'",
            "type": "value_error",
        }
    ]
