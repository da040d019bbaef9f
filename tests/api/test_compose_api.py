"""Compose applications through the api: created from an inline compose file with hosts per service and
port, shown with what Berth will run (the translation), updated (translated again), and refused with a 422
naming the spot in the compose file; deployed with each service's own image, aliases and start order (a
compose file not translated yet is not deployable: 409, by name)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import make_app
from tests.api.test_projects import problem

DATA = Path(__file__).parent / "data" / "compose"
PLAUSIBLE = (DATA / "plausible.yml").read_text()
ALLOWED = "/srv/berth-compose"


@pytest.fixture
def api_settings(api_settings):
    """The conftest's settings with a bind-mount path and one dangerous key an administrator allows."""
    return api_settings.model_copy(update={"bind_mount_allow": [ALLOWED], "compose_allow": ["cap_add"]})


def _body(text: str = PLAUSIBLE, name: str = "stats", **extra: Any) -> dict:
    return {"name": name, "compose": {"inline": text}, **extra}


def _error(r) -> dict:
    (err,) = problem(r, 422)["errors"]
    return err


async def _environment(client, headers) -> str:
    app = await make_app(client, headers, _body("services:\n  probe:\n    image: busybox\n", name="probe"))
    return app["environment_id"]


async def test_a_compose_app_is_created_translated_and_shown(client, members) -> None:
    hosts = [{"service": "plausible", "port": 8000, "host": "stats.example.com"}]
    env = [{"name": "PLAUSIBLE_TAG", "value": "v2.2"}, {"name": "SECRET_KEY_BASE", "value": "s3cr3t", "secret": True}]
    app = await make_app(client, members.developer, _body(hosts=hosts, env=env))
    assert [(s["kind"], s["name"]) for s in app["services"]] == [
        ("web", "plausible"),
        ("worker", "migrate"),
        ("worker", "plausible-db"),
        ("worker", "plausible-events-db"),
    ]
    web = app["services"][0]
    assert (web["port"], web["replicas"], web["health_path"]) == (8000, 2, "/api/health")
    assert web["hosts"][1:] == ["stats.example.com"] and web["hosts"][0].startswith("plausible-stats-")
    db = app["services"][2]
    assert db["volumes"] == [{"name": "db-data", "path": "/var/lib/postgresql/data", "single_writer": True}]
    assert db["strategy"] == "recreate" and "strategy" not in web  # web services roll
    assert app["restart_policy"] == "unless-stopped" and app["stop_timeout_s"] == 30
    compose = app["compose"]
    assert compose["inline"] == PLAUSIBLE and compose["hosts"] == hosts
    translated = compose["translated"]
    assert translated["services"][0]["image"] == "plausible/analytics:v2.2"  # interpolated
    assert translated["start_order"] == [["plausible-db", "plausible-events-db"], ["migrate"], ["plausible"]]
    assert "s3cr3t" not in str(app)

    r = await client.get(f"/v1/applications/{app['id']}", headers=members.viewer)
    assert r.status_code == 200, r.text
    assert r.json()["compose"] == compose
    r = await client.get("/v1/applications", headers=members.viewer)
    (listed,) = [a for a in r.json() if a["id"] == app["id"]]
    assert listed["compose"] == compose and listed["services"] == app["services"]

    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    spec = r.json()["spec"]
    assert spec["private_network"] is True
    by_name = {s["name"]: s for s in spec["services"]}
    assert by_name["plausible-db"]["image"] == {"kind": "image", "image": "postgres:16-alpine"}
    assert by_name["plausible-db"]["aliases"] == ["plausible_db"]
    assert by_name["plausible"]["depends_on"] == [
        {"service": "migrate", "condition": "service_completed_successfully"},
        {"service": "plausible-db", "condition": "service_healthy"},
        {"service": "plausible-events-db", "condition": "service_healthy"},
    ]
    assert "image" not in by_name["plausible"]  # the application's image
    assert by_name["migrate"]["restart"] == "no"


async def test_an_update_translates_again(client, members) -> None:
    app = await make_app(client, members.developer, _body())
    # plausible no longer routed: its published port would be published on the server (refused for a team not
    # allowed published ports, ``test_compose_published_ports.py``), so the file only exposes it
    text = PLAUSIBLE.replace("replicas: 2", "replicas: 3").replace('"8000:8000"', '"8000"')
    r = await client.patch(
        f"/v1/applications/{app['id']}",
        headers=members.developer,
        json={"compose": {"inline": text}, "hosts": [{"service": "plausible_events_db", "port": 8123}]},
    )
    assert r.status_code == 200, r.text
    got = r.json()
    assert [(s["kind"], s["name"], s.get("replicas")) for s in got["services"]] == [
        ("worker", "plausible", 3),
        ("worker", "migrate", 1),
        ("worker", "plausible-db", 1),
        ("web", "plausible-events-db", 1),
    ]
    r = await client.patch(
        f"/v1/applications/{app['id']}",
        headers=members.developer,
        json={"env": [{"name": "PLAUSIBLE_TAG", "value": "v3"}]},
    )
    assert r.json()["compose"]["translated"]["services"][0]["image"] == "plausible/analytics:v3"
    r = await client.patch(
        f"/v1/applications/{app['id']}",
        headers=members.developer,
        json={"services": [{"kind": "worker", "name": "x"}]},
    )
    assert _error(r)["loc"] == "/body/services"


async def test_an_application_of_services_becomes_a_compose_one(client, members) -> None:
    app = await make_app(client, members.developer)
    assert "compose" not in app
    r = await client.patch(
        f"/v1/applications/{app['id']}", headers=members.developer, json={"hosts": [{"service": "web", "port": 80}]}
    )
    assert _error(r)["loc"] == "/body/hosts"
    text = "services:\n  web:\n    image: nginx:1.27\n    expose: ['80']\n"
    r = await client.patch(
        f"/v1/applications/{app['id']}", headers=members.developer, json={"compose": {"inline": text}}
    )
    assert r.status_code == 200, r.text
    assert [(s["kind"], s["name"], s["port"]) for s in r.json()["services"]] == [("web", "web", 80)]
    assert r.json()["source"] == {"kind": "image", "image": "nginx:1.27"}


REFUSED = [
    ("    privileged: true\n", "/body/compose/services/db/privileged", "BERTH_COMPOSE_ALLOW"),
    ("    network_mode: host\n", "/body/compose/services/db/network_mode", "server's network"),
    ("    devices: ['/dev/fuse']\n", "/body/compose/services/db/devices", "devices"),
    ("    volumes: ['/etc:/host-etc']\n", "/body/compose/services/db/volumes/0/source", ALLOWED),
    ("    sysctls: {kernel.shmmax: 1024}\n", "/body/compose/services/db/sysctls/kernel.shmmax", "net.* sysctls only"),
    ("    runtime: nvidia\n", "/body/compose/services/db/runtime", "BERTH_COMPOSE_RUNTIMES_TEAMS"),
    ("    env_file: /etc/passwd\n", "/body/compose/services/db/env_file", "never read"),
    ("    build: .\n", "/body/compose/services/db/build", "git repository"),
    ("    working_dir: '/srv/${TOKEN}'\n", "/body/compose/services/db/working_dir", "secret"),
    (
        "    healthcheck: {test: ['CMD-SHELL', 'check \\${TOKEN}']}\n",
        "/body/compose/services/db/healthcheck/test",
        "secret",
    ),
]


async def test_refusals_name_the_spot(client, members) -> None:
    env = await _environment(client, members.developer)
    for line, loc, words in REFUSED:
        text = "services:\n  db:\n    image: postgres:16\n" + line
        body = _body(text, env=[{"name": "TOKEN", "value": "t0k3n", "secret": True}])
        r = await client.post(f"/v1/environments/{env}/applications", headers=members.developer, json=body)
        err = _error(r)
        assert err["loc"] == loc and words in err["detail"], err
        assert "t0k3n" not in r.text


async def test_a_refused_host_is_named_where_the_request_gave_it(client, members) -> None:
    env = await _environment(client, members.developer)
    url = f"/v1/environments/{env}/applications"
    text = "services:\n  web:\n    image: nginx:1.27\n"
    mine = [{"service": "web", "port": 80}, {"service": "web", "port": 80, "host": "web-x-production.localhost"}]
    err = _error(await client.post(url, headers=members.developer, json=_body(text, hosts=mine)))
    assert err["loc"] == "/body/hosts/1/host" and "reserved for generated hosts" in err["detail"]
    taken = [{"service": "web", "port": 80, "host": "shop.example.com"}]
    r = await client.post(url, headers=members.developer, json=_body(text, name="one", hosts=taken))
    assert r.status_code == 201, r.text
    r = await client.post(url, headers=members.developer, json=_body(text, name="two", hosts=taken))
    body = problem(r, 409)
    assert body["errors"][0]["loc"] == "/body/hosts/0/host" and "/body/hosts/0/host" in body["detail"]


async def test_a_build_is_the_builders_build_of_the_git_source(client, members) -> None:
    git = {"kind": "git", "repository": "https://github.com/acme/stats.git", "branch": "main", "subdirectory": "stack"}
    text = "services:\n  web:\n    build: {context: ./web, args: {MODE: prod}}\n    ports: ['3000']\n"
    app = await make_app(client, members.developer, _body(text, source=git))
    (web,) = app["compose"]["translated"]["services"]
    assert web["build"] == {
        "subdirectory": "stack/web",
        "dockerfile": "Dockerfile",
        "build_args": [{"name": "MODE", "value": "prod"}],
    }
    assert app["source"]["repository"] == git["repository"] and app["services"][0]["port"] == 3000


async def test_what_the_administrator_allowed_and_allows_is_accepted(client, members) -> None:
    text = f"services:\n  db:\n    image: postgres:16\n    cap_add: [NET_ADMIN]\n    volumes: ['{ALLOWED}/x:/x']\n"
    app = await make_app(client, members.developer, _body(text))
    (db,) = app["compose"]["translated"]["services"]
    assert db["allowed"] == {"cap_add": ["NET_ADMIN"]} and db["binds"][0]["host_path"] == f"{ALLOWED}/x"


async def test_the_parsers_message_a_path_and_bad_bodies(client, members) -> None:
    env = await _environment(client, members.developer)
    url = f"/v1/environments/{env}/applications"
    twice = "services:\n  a:\n    image: x\n  a:\n    image: y\n"
    err = _error(await client.post(url, headers=members.developer, json=_body(twice)))
    assert err["loc"] == "/body/compose/services/a" and "defined twice (lines 2 and 4)" in err["detail"]
    broken = "services:\n  a:\n    image: x\n    bogus: 1\n"
    err = _error(await client.post(url, headers=members.developer, json=_body(broken)))
    assert err["loc"] == "/body/compose/inline" and "additional properties 'bogus' not allowed" in err["detail"]

    err = _error(await client.post(url, headers=members.developer, json=_body(hosts=[{"service": "x", "port": 1}])))
    assert err["loc"] == "/body/hosts/0/service"

    for path, loc in (("../x.yml", "/body/compose/path"), ("/etc/x.yml", "/body/compose/path")):
        r = await client.post(url, headers=members.developer, json={"name": "p", "compose": {"path": path}})
        assert problem(r, 422)["errors"][0]["loc"] == loc
    r = await client.post(url, headers=members.developer, json={"name": "p", "compose": {"path": "deploy/compose.yml"}})
    assert _error(r)["loc"] == "/body/source"  # a path is in the git repository
    git = {"kind": "git", "repository": "https://github.com/acme/stats.git", "branch": "main"}
    body = {"name": "p", "compose": {"path": "deploy/compose.yml"}, "source": git}
    r = await client.post(url, headers=members.developer, json=body)
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["compose"] == {"path": "deploy/compose.yml", "hosts": [], "translated": None} and got["services"] == []
    r = await client.post(f"/v1/applications/{got['id']}/deployments", headers=members.developer)
    assert problem(r, 409)["type"].endswith("compose-not-deployable")

    both = {**_body(), "services": [{"kind": "worker", "name": "w"}], "source": {"kind": "image", "image": "x"}}
    assert problem(await client.post(url, headers=members.developer, json=both), 422)
