"""Compose applications through ``berth`` against the real api: created from a local compose file with
``--host SERVICE:PORT=HOST/PATH``, shown with their file, start order and services (path prefixes, hosts,
images), their path routes' URLs in ``apps show`` and ``open``, updated with a new file or new hosts, their
services' replicas in ``status``; and the api's problems (a bad path) shown as their title and field."""

from __future__ import annotations

import json

from berth_common.catalogue import ReplicasReply, ReplicaStatus
from tests.api.conftest import bearer

STACK = (
    "services:\n"
    "  front:\n    image: nginx:1.27\n    expose: ['80']\n    depends_on: [api]\n"
    "  api:\n    image: registry.example.com/acme/api:1.4\n    expose: ['8080']\n    depends_on: [db]\n"
    "  db:\n    image: postgres:16\n    volumes: ['db-data:/var/lib/postgresql/data']\n"
    "volumes:\n  db-data: {}\n"
)
FRONT = "front-stack-production.localhost"
API = "api-stack-production.localhost"


async def _created(berth, tmp_path, *extra: str) -> dict:
    stack = tmp_path / "compose.yml"
    stack.write_text(STACK)
    assert (await berth("projects", "create", "acme")).code == 0
    r = await berth("apps", "create", "stack", "-p", "acme", "--compose", str(stack), *extra, "--json")
    assert r.code == 0, r
    return json.loads(r.out)


async def test_a_compose_app_is_created_and_its_services_shown(logged_in, client, api, tmp_path):
    berth, admin = logged_in, bearer(api.admin_token())
    hosts = ["--host", "front:80=shop.example.com", "--host", "api:8080=shop.example.com/api"]
    app = await _created(berth, tmp_path, *hosts, "--env", "MODE=prod")
    assert app["compose"]["inline"] == STACK
    assert app["compose"]["hosts"] == [
        {"service": "front", "port": 80, "host": "shop.example.com"},
        {"service": "api", "port": 8080, "host": "shop.example.com", "path": "/api"},
    ]
    assert app["env"] == [{"name": "MODE", "value": "prod", "secret": False}]
    detail = (await client.get(f"/v1/applications/{app['id']}", headers=admin)).json()
    assert [(s["name"], s.get("hosts")) for s in detail["services"]] == [
        ("front", [FRONT, "shop.example.com"]),
        ("api", [API, "shop.example.com"]),
        ("db", None),
    ]

    r = await berth("apps", "show", "stack")
    assert (r.code, r.err) == (0, "")
    assert r.out == (
        "name:     stack\n"
        f"id:       {app['id']}\n"
        "project:  acme/production\n"
        "source:   nginx:1.27\n"
        "compose:  inline (14 lines)\n"
        "start:    db -> api -> front\n"
        "state:    active\n"
        "live:     -\n"
        "env:      MODE=prod\n"
        f"urls:     http://{FRONT}/ http://shop.example.com/ http://{API}/api http://shop.example.com/api\n"
        "\n"
        "SERVICE  KIND    REPLICAS  PORT  PATH  HOSTS                                              IMAGE\n"
        f"front    web     1         80    -     {FRONT} shop.example.com  nginx:1.27\n"
        f"api      web     1         8080  /api  {API} shop.example.com    registry.example.com/acme/api:1.4\n"
        "db       worker  1         -     -     -                                                  postgres:16\n"
    )
    assert json.loads((await berth("apps", "show", "stack", "--json")).out) == detail
    r = await berth("open", "stack", "--service", "api", "--print")
    assert (r.code, r.out) == (0, f"http://{API}/api\n")


async def test_an_update_replaces_the_file_or_the_hosts(logged_in, client, api, tmp_path):
    berth, admin = logged_in, bearer(api.admin_token())
    app = await _created(berth, tmp_path, "--host", "front:80")
    bigger = tmp_path / "bigger.yml"
    bigger.write_text(STACK.replace("  db:\n", "  worker:\n    image: busybox:1.36\n  db:\n"))
    r = await berth("apps", "update", "stack", "--compose", str(bigger))
    assert (r.code, r.err) == (0, "")
    assert r.out == (
        "Updated stack: front (web), api (worker), worker (worker), db (worker)\n"
        "It applies at the next deployment: berth deploy stack\n"
    )
    stored = (await client.get(f"/v1/applications/{app['id']}", headers=admin)).json()["compose"]
    assert stored["inline"] == bigger.read_text() and stored["hosts"] == [{"service": "front", "port": 80}]

    r = await berth("apps", "update", "stack", "--host", "api:8080=shop.example.com/v2", "--json")
    assert r.code == 0, r
    assert json.loads(r.out)["compose"]["hosts"] == [
        {"service": "api", "port": 8080, "host": "shop.example.com", "path": "/v2"}
    ]
    assert [s["kind"] for s in json.loads(r.out)["services"]] == ["worker", "web", "worker", "worker"]

    r = await berth("apps", "update", "stack", "--host", "api:8080=shop.example.com/a/../b")
    assert (r.code, r.out) == (1, "")
    assert r.err.startswith("berth: Invalid request: ") and "\n  hosts.0.path: " in r.err, r.err
    assert "'..'" in r.err
    r = await berth("apps", "update", "stack", "--host", "nope:80")
    assert r.code == 1 and "\n  hosts.0.service: the compose file has no service nope\n" in r.err, r.err
    r = await berth("apps", "update", "stack")
    assert r.code == 2 and "nothing to change" in r.err


async def test_status_counts_each_compose_service(logged_in, api, scheduler, tmp_path):
    berth = logged_in
    app = await _created(berth, tmp_path)
    live = "d" * 32
    states = [("front", "running", "ready"), ("front", "running", "unready"), ("api", "running", "ready")]
    scheduler.replicas[app["id"]] = ReplicasReply(
        application_id=app["id"],
        live_deployment_id=live,
        replicas=[
            ReplicaStatus(
                deployment_id=live, service=svc, replica=1, container=f"berth-x-{svc}-{i}", state=state, health=health
            )  # type: ignore[arg-type]
            for i, (svc, state, health) in enumerate(states)
        ],
    )
    r = await berth("status", "stack")
    assert (r.code, r.err) == (0, "")
    assert r.out == (
        "stack: not deployed\n"
        "\n"
        "SERVICE  KIND    WANTED  RUNNING  READY\n"
        "front    web     1       2        1\n"
        "api      worker  1       1        1\n"
        "db       worker  1       0        0\n"
        "\n"
        "SERVICE  REPLICA  STATE    HEALTH   RESTARTS  CONTAINER\n"
        "front    1        running  ready    0         berth-x-front-0\n"
        "front    1        running  unready  0         berth-x-front-1\n"
        "api      1        running  ready    0         berth-x-api-2\n"
    )


async def test_an_update_with_deploy_follows_the_deployment(logged_in, scheduler, tmp_path):
    berth = logged_in
    app = await _created(berth, tmp_path)
    task = berth.start("apps", "update", "stack", "--host", "api:8080=shop.example.com/api", "--deploy")
    start = (await scheduler.wait_for("cmd.deployment.start"))[0]
    routed = {s["name"]: s.get("path_prefix") for s in start.data["spec"]["services"]}
    assert routed["api"] == "/api"  # the deployment runs the updated hosts
    dep = start.data["deployment_id"]
    await scheduler.log(dep, "[starting] starting replicas")
    await scheduler.run_to_success(start)
    r = await task
    assert (r.code, r.err) == (0, "")
    assert r.out == (
        "Updated stack: front (worker), api (web), db (worker)\n"
        f"Deployment #1 of stack started ({dep})\n"
        "[starting] starting replicas\n"
        "Deployment #1 of stack succeeded\n"
    )
    assert start.data["application_id"] == app["id"]
