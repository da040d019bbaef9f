"""Compose ports published on the server (a game server, an SMTP relay, a DNS server, an MQTT broker): carried
as the service's ``published_ports`` (short and long syntax, TCP and UDP) for a team an administrator allowed
published ports within a range (BERTH_PUBLISHED_PORTS_ALLOW, ..._TEAMS), refused by name otherwise (422 naming
the spot); a routed web port's entry is still served by the proxy (noted). Each (server, port, protocol) is one
application's: a second application, or a database's public port, asking it is a 409 naming the port and who
holds it; the claim is released when the definition drops the port or the application is removed. The
deployment's snapshot carries the ports; scaling such a service above one replica is refused."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from berth_api.adapters.compose_parser import normalise
from berth_api.domain.compose import ComposeRefusal, Policy, precheck, translate
from berth_api.settings import ApiSettings
from berth_api.usecases import published_ports as published_ports_uc
from tests.api.conftest import make_app
from tests.api.test_application_removal import _delete, _team, _until
from tests.api.test_previews import compose_preview
from tests.api.test_projects import problem

RANGE = ((21000, 21999),)
MQTT = """
services:
  web:
    image: berth/site:1
    expose: ['8080']
    ports: ['8080:8080']
  mqtt:
    image: berth/mqtt:2
    ports:
      - "21883:1883"
      - target: 1884
        published: 21884
        protocol: udp
        host_ip: "::"
"""


def _translated(text: str, ranges: Any = RANGE) -> dict[str, Any]:
    found = asyncio.run(normalise(text, {}))
    return translate(found.model, precheck(text), policy=Policy(published=ranges))


def _refusal(text: str, ranges: Any = RANGE) -> ComposeRefusal:
    with pytest.raises(ComposeRefusal) as caught:
        _translated(text, ranges)
    return caught.value


def _one(ports: str, more: str = "") -> str:
    return f"services:\n  mqtt:\n    image: berth/mqtt:2\n    ports: {ports}\n{more}"


def test_published_ports_are_carried_for_a_team_allowed_them() -> None:
    web, mqtt = _translated(MQTT)["services"]
    assert (web["kind"], web["port"], "published_ports" in web) == ("web", 8080, False)
    assert mqtt["kind"] == "worker" and mqtt["strategy"] == "recreate"
    assert mqtt["published_ports"] == [
        {"target": 1883, "published": 21883, "protocol": "tcp"},
        {"target": 1884, "published": 21884, "protocol": "udp"},
    ]
    notes = _translated(MQTT)["notes"]
    assert notes == ["services/web/ports/0/published: not carried: Berth routes hosts through its proxy, no host port"]


def test_without_an_allowance_a_published_port_is_listed_as_not_carried() -> None:
    """A template's side port (a git server's SSH) does not stop its web service from deploying."""
    translated = _translated(MQTT, None)
    web, mqtt = translated["services"]
    assert "published_ports" not in mqtt and "published_ports" not in web
    assert translated["notes"] == [
        "services/web/ports/0/published: not carried: Berth routes hosts through its proxy, no host port",
        *(
            f"services/mqtt/ports/{i}/published: not carried: the team may not publish ports on the server (an "
            "administrator allows a range: BERTH_PUBLISHED_PORTS_ALLOW_TEAMS: team id -> ranges; "
            "BERTH_PUBLISHED_PORTS_ALLOW: every team); the service is reached by the application's other services only"
            for i in (0, 1)
        ),
    ]
    # a file without hosts: its published port is routed through the proxy, as before (no allowance needed)
    (echo,) = _translated(_one("['7000:7000']"), None)["services"]
    assert (echo["kind"], echo["port"], "published_ports" in echo) == ("web", 7000, False)


def test_a_udp_port_without_a_published_port_is_listed_as_not_carried() -> None:
    """Compose would publish it on a random port of the server: nothing a client could be told to reach."""
    translated = _translated(_one("['8090', '3478/udp']"))
    (svc,) = translated["services"]
    assert (svc["kind"], svc["port"], "published_ports" in svc) == ("web", 8090, False)
    assert translated["notes"] == [
        "services/mqtt/ports/1: not carried: a UDP port is reached only through a port published on the server "
        "(Berth's proxy routes HTTP over TCP)"
    ]


def test_a_team_allowed_published_ports_publishes_what_the_file_publishes() -> None:
    """As ``docker compose up``: a service with published ports only is not given the generated host."""
    (echo,) = _translated(_one("['21000:7000']"))["services"]
    assert echo["kind"] == "worker"
    assert echo["published_ports"] == [{"target": 7000, "published": 21000, "protocol": "tcp"}]


@pytest.mark.parametrize(
    ("text", "ranges", "spot", "why"),
    [
        (_one("['127.0.0.1:21000:1883']"), RANGE, "ports/0/host_ip", "leave host_ip out, or 0.0.0.0 or ::"),
        (_one("['22000:1883']"), RANGE, "ports/0/published", "the port 22000 is outside the ports the administrator"),
        (_one("['53:53/udp']"), RANGE, "ports/0/published", "Ports below 1024 are the server's own services'"),
        (_one("['80:8080']"), ((1, 65535),), "ports/0/published", "the port 80 is Berth's proxy's"),
        (_one("['21000-21005:1883']"), RANGE, "ports/0/published", "one port of the server (1-65535)"),
        (_one("['21000:1883', '21000:1884']"), RANGE, "ports", "the port 21000/tcp is published twice"),
        (_one("['21000:1883']", "    deploy: {replicas: 2}\n"), RANGE, "deploy/replicas", "runs 1 replica"),
    ],
)
def test_a_port_that_cannot_be_published_is_refused_naming_the_spot(text, ranges, spot, why) -> None:
    err = _refusal(text, ranges)
    assert err.spot == f"services/mqtt/{spot}" and why in err.why, (err.spot, err.why)


def test_a_port_below_1024_needs_a_range_that_names_it() -> None:
    (dns,) = _translated(_one("['53:53/udp', '53:53']"), ((53, 53), *RANGE))["services"]
    assert dns["published_ports"] == [
        {"target": 53, "published": 53, "protocol": "udp"},
        {"target": 53, "published": 53, "protocol": "tcp"},
    ]


def test_the_ranges_are_the_platforms_and_the_teams_own(api_settings) -> None:
    default = ApiSettings(**{**api_settings.model_dump(), "published_ports_allow": []})
    assert default.published_ranges("t1") is None  # the default: no team publishes ports
    settings = ApiSettings(
        **{
            **api_settings.model_dump(),
            "published_ports_allow": ["25565"],  # every team
            "published_ports_allow_teams": {"t1": ["20000-20999", "53"]},
        }
    )
    assert settings.published_ranges("t1") == ((25565, 25565), (20000, 20999), (53, 53))
    assert settings.published_ranges("t2") == ((25565, 25565),)
    with pytest.raises(ValueError, match="BERTH_PUBLISHED_PORTS_ALLOW_TEAMS: t1: '9-8' is not a port range"):
        ApiSettings(**{**api_settings.model_dump(), "published_ports_allow_teams": {"t1": ["9-8"]}})


@pytest.fixture
def api_settings(api_settings):
    """The conftest's settings with published ports allowed to every team within 21000-21999 (and a pull
    request's preview debounced as ``test_previews.py`` has it)."""
    return api_settings.model_copy(update={"published_ports_allow": ["21000-21999"], "webhook_debounce_s": 0.2})


def _body(name: str, text: str = MQTT) -> dict[str, Any]:
    return {"name": name, "compose": {"inline": text}}


async def _create(client, headers, name: str, text: str = MQTT) -> Any:
    """POST an application into the team's ``acme`` project (made with a probe application when missing)."""
    found = [p for p in (await client.get("/v1/projects", headers=headers)).json() if p["name"] == "acme"]
    if found:
        env = found[0]["environments"][0]["id"]
    else:
        env = (await make_app(client, headers, _body("probe", "services:\n  p:\n    image: x\n")))["environment_id"]
    return await client.post(f"/v1/environments/{env}/applications", headers=headers, json=_body(name, text))


async def test_a_port_of_a_server_is_one_applications(client, members, scheduler) -> None:
    first = await make_app(client, members.developer, _body("broker"))
    (_, mqtt) = first["compose"]["translated"]["services"]
    assert [p["published"] for p in mqtt["published_ports"]] == [21883, 21884]

    r = await _create(client, members.developer, "broker-2")
    (err,) = problem(r, 409)["errors"]
    assert err["loc"] == "/body/compose/services/mqtt/ports"
    assert err["detail"] == (
        f"the port 21883/tcp of server local is published by the application broker ({first['id']}, service mqtt): "
        "each port of a server is one application's"
    )
    r = await _create(client, members.other, "theirs")  # another team: who holds it is not told
    assert "published by an application of another team" in problem(r, 409)["errors"][0]["detail"]

    # the same numbers over the other protocols are free
    swapped = _one("['21883:1883/udp', '21884:1884']")
    assert (await _create(client, members.developer, "swapped", swapped)).status_code == 201

    # the definition drops the port: released
    r = await client.patch(
        f"/v1/applications/{first['id']}",
        headers=members.developer,
        json={"compose": {"inline": MQTT.replace('"21883:1883"', '"21885:1883"').replace("21884", "21886")}},
    )
    assert r.status_code == 200, r.text
    second = await _create(client, members.developer, "broker-2")
    assert second.status_code == 201, second.text

    # the application removed: released
    gone = second.json()["id"]  # deployed once: its removal is the scheduler's, and the claim lasts until then
    assert (await client.post(f"/v1/applications/{gone}/deployments", headers=members.developer)).status_code == 202
    assert (await _delete(client, members.admin, gone)).status_code == 202
    assert (await _create(client, members.developer, "broker-3")).status_code == 409
    await scheduler.removed(gone, await _team(client, members.admin))
    await _until(client, members.viewer, gone, lambda b: b is None)
    assert (await _create(client, members.developer, "broker-3")).status_code == 201


async def test_a_databases_public_port_and_an_applications_published_port_never_collide(client, members) -> None:
    app = await make_app(client, members.developer, _body("broker"))
    r = await client.post(
        "/v1/databases",
        headers=members.developer,
        json={"name": "orders", "engine": "postgresql", "public": {"port": 21883, "allow": ["0.0.0.0/0"]}},
    )
    (err,) = problem(r, 409)["errors"]
    assert err["loc"] == "/body/public/port"
    assert (
        err["detail"] == f"port 21883 of this server is published by the application broker ({app['id']}, service mqtt)"
    )

    r = await client.post(
        "/v1/databases",
        headers=members.developer,
        json={"name": "orders", "engine": "postgresql", "public": {"port": 21500, "allow": ["0.0.0.0/0"]}},
    )
    assert r.status_code in (201, 202), r.text
    db = r.json()
    r = await _create(client, members.developer, "relay", _one("['21500:25']"))
    (err,) = problem(r, 409)["errors"]
    assert err["detail"] == f"the port 21500/tcp of server local is the public port of the database orders ({db['id']})"
    assert (await _create(client, members.developer, "relay", _one("['21500:53/udp']"))).status_code == 201


async def test_the_snapshot_carries_the_ports_and_scaling_stays_at_one(client, members) -> None:
    app = await make_app(client, members.developer, _body("broker"))
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    web, mqtt = r.json()["spec"]["services"]
    assert "published_ports" not in web and mqtt["strategy"] == "recreate"
    assert mqtt["published_ports"] == [
        {"target": 1883, "published": 21883, "protocol": "tcp"},
        {"target": 1884, "published": 21884, "protocol": "udp"},
    ]
    r = await client.post(
        f"/v1/applications/{app['id']}/scale", headers=members.developer, json={"services": {"mqtt": 2}}
    )
    (err,) = problem(r, 422)["errors"]
    assert (
        err["loc"] == "/body/services/mqtt" and "runs 1 replica: two containers cannot bind one port" in err["detail"]
    )


async def test_a_port_claimed_meanwhile_is_a_conflict_naming_it(client, members, monkeypatch) -> None:
    """Another application's claim committed between the check and the insert: the table's key refuses it,
    and the answer names the port (not the application's name)."""
    text = _one("['21990:1883']")
    assert (await _create(client, members.developer, "first", text)).status_code == 201

    async def nobody(*_: Any) -> dict:
        return {}  # the check saw nothing yet

    monkeypatch.setattr(published_ports_uc.repo, "holders", nobody)
    r = await _create(client, members.developer, "second", text)
    (err,) = problem(r, 409)["errors"]
    assert err == {
        "loc": "/body/compose/services/mqtt/ports",
        "detail": "a port (21990/tcp) was just published by another application",
        "type": "conflict",
    }


async def test_a_preview_publishes_no_port_of_the_application(client, members, scheduler) -> None:
    """The preview of a pull request runs the services, not on the application's ports (they stay claimed by
    the application): its translation notes them as not published."""
    body = {
        "name": "broker",
        "source": {"kind": "git", "repository": "https://git.example.com/acme/broker.git", "branch": "main"},
        "compose": {"inline": MQTT},
    }
    start = await compose_preview(client, members, scheduler, body, "github", 3)
    spec = start.data["spec"]
    assert spec["name"] == "broker-pr-3"
    assert [svc.get("published_ports") for svc in spec["services"]] == [None, None]
    apps = (await client.get("/v1/applications", headers=members.viewer)).json()
    apps = apps.get("items", apps) if isinstance(apps, dict) else apps
    (preview,) = [a for a in apps if a["name"] == "broker-pr-3"]
    note = (
        "services/mqtt/ports: not published in a preview: the server's ports 21883/tcp, 21884/udp are the application's"
    )
    assert note in preview["compose"]["translated"]["notes"]
