"""A secret variable inside a compose service's environment value (``postgres://app:${DB_PASSWORD}@db/app``,
the shape every catalogue and imported template uses): the stored translation names the secret and never
holds its value; the deployment's command carries the rendered value as a sealed secret of that service,
and the deployment as shown masks it. So does an argument of a command (``redis-server --requirepass
${DB_PASSWORD}``). Anywhere else it is refused naming the spot."""

from __future__ import annotations

import json

from berth_common import sealing
from tests.api.conftest import make_app
from tests.api.test_projects import problem

PASSWORD = "pa55-w0rd-never-shown"
TEXT = (
    "services:\n  web:\n    image: busybox\n    ports: ['8080']\n    environment:\n"
    "      DATABASE_URL: 'postgres://app:${DB_PASSWORD}@db:5432/app'\n      MODE: '${MODE}'\n"
    "  db:\n    image: postgres:16\n    environment: {POSTGRES_PASSWORD: '${DB_PASSWORD}'}\n"
)
ENV = [{"name": "DB_PASSWORD", "value": PASSWORD, "secret": True}, {"name": "MODE", "value": "prod"}]


async def test_a_secret_in_an_environment_value_reaches_the_service_sealed(client, members, scheduler) -> None:
    app = await make_app(client, members.developer, {"name": "secrets", "compose": {"inline": TEXT}, "env": ENV})
    assert PASSWORD not in json.dumps(app)
    web, db = app["compose"]["translated"]["services"]
    assert web["environment"] == [
        {
            "name": "DATABASE_URL",
            "value": None,
            "parts": [{"text": "postgres://app:"}, {"secret": "DB_PASSWORD"}, {"text": "@db:5432/app"}],
        },
        {"name": "MODE", "value": "prod"},
    ]
    assert db["environment"] == [{"name": "POSTGRES_PASSWORD", "value": None, "parts": [{"secret": "DB_PASSWORD"}]}]
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    assert PASSWORD not in r.text
    shown = {s["name"]: s for s in r.json()["spec"]["services"]}
    assert {"name": "DATABASE_URL", "value": None, "secret": True} in shown["web"]["env"]
    (cmd,) = await scheduler.wait_for("cmd.deployment.start", 1)
    assert PASSWORD not in json.dumps(cmd.data)
    services = {s["name"]: {e["name"]: e for e in s["env"]} for s in cmd.data["spec"]["services"]}
    url = services["web"]["DATABASE_URL"]
    assert url["secret"] is True
    assert sealing.unseal(url["value"], "berth/env/DATABASE_URL") == f"postgres://app:{PASSWORD}@db:5432/app"
    assert sealing.unseal(services["db"]["POSTGRES_PASSWORD"]["value"], "berth/env/POSTGRES_PASSWORD") == PASSWORD
    assert services["web"]["MODE"]["value"] == "prod"


async def test_a_secret_in_a_command_argument_reaches_the_container_only_sealed(client, members, scheduler) -> None:
    text = (
        "services:\n  cache:\n    image: redis:7\n    command: redis-server --requirepass ${DB_PASSWORD} --port 6379\n"
    )
    app = await make_app(client, members.developer, {"name": "argv", "compose": {"inline": text}, "env": ENV})
    assert PASSWORD not in json.dumps(app)
    (cache,) = app["compose"]["translated"]["services"]
    assert cache["command"] == ["redis-server", "--requirepass", "${DB_PASSWORD}", "--port", "6379"]
    assert cache["secret_args"] == [{"argv": "command", "index": 2, "parts": [{"secret": "DB_PASSWORD"}]}]
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    assert PASSWORD not in r.text
    (shown,) = r.json()["spec"]["services"]
    assert shown["secret_args"] == [{"argv": "command", "index": 2, "value": None}]
    (cmd,) = await scheduler.wait_for("cmd.deployment.start", 1)
    assert PASSWORD not in json.dumps(cmd.data)
    (svc,) = cmd.data["spec"]["services"]
    (arg,) = svc["secret_args"]
    assert svc["command"][2] == "${DB_PASSWORD}"
    assert sealing.unseal(arg["value"], "berth/arg/command/2") == PASSWORD


async def test_a_secret_anywhere_else_is_refused_naming_the_spot(client, members) -> None:
    text = "services:\n  web:\n    image: busybox\n    working_dir: '/srv/${DB_PASSWORD}'\n"
    app = await make_app(client, members.developer, {"name": "probe", "compose": {"inline": TEXT}, "env": ENV})
    r = await client.post(
        f"/v1/environments/{app['environment_id']}/applications",
        headers=members.developer,
        json={"name": "leaky", "compose": {"inline": text}, "env": ENV},
    )
    (err,) = problem(r, 422)["errors"]
    assert err["loc"] == "/body/compose/services/web/working_dir"
    assert "${DB_PASSWORD} names a secret variable" in err["detail"] and PASSWORD not in r.text


async def test_a_secret_in_a_healthcheck_is_read_from_the_containers_environment(
    client, members, scheduler, api_urls
) -> None:
    """The check refers to the service's variable holding the secret; neither the application, the
    deployment as shown, the command on the bus nor the audit log holds the value."""
    text = (
        "services:\n  cache:\n    image: redis:7\n    command: redis-server --requirepass ${DB_PASSWORD}\n"
        "    healthcheck: {test: ['CMD', 'redis-cli', '-a', '${DB_PASSWORD}', 'PING']}\n"
        "  db:\n    image: postgres:16\n    environment: {POSTGRES_PASSWORD: '${DB_PASSWORD}'}\n"
        "    healthcheck: {test: ['CMD-SHELL', 'PGPASSWORD=${DB_PASSWORD} pg_isready -U app']}\n"
    )
    app = await make_app(client, members.developer, {"name": "checks", "compose": {"inline": text}, "env": ENV})
    shown = [app, (await client.get(f"/v1/applications/{app['id']}", headers=members.developer)).json()]
    cache, db = app["compose"]["translated"]["services"]
    assert cache["health_command"] == ["/bin/sh", "-c", 'redis-cli -a "${BERTH_HEALTH_DB_PASSWORD}" PING']
    assert cache["environment"] == [
        {"name": "BERTH_HEALTH_DB_PASSWORD", "value": None, "parts": [{"secret": "DB_PASSWORD"}]}
    ]
    assert db["health_command"] == ["/bin/sh", "-c", 'PGPASSWORD="${POSTGRES_PASSWORD}" pg_isready -U app']
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    shown.append(r.json())
    shown.append((await client.get(f"/v1/deployments/{r.json()['id']}", headers=members.developer)).json())
    services = {s["name"]: s for s in r.json()["spec"]["services"]}
    assert {"name": "BERTH_HEALTH_DB_PASSWORD", "value": None, "secret": True} in services["cache"]["env"]
    (cmd,) = await scheduler.wait_for("cmd.deployment.start", 1)
    shown.append(cmd.data)
    sent = {s["name"]: s for s in cmd.data["spec"]["services"]}
    assert sent["cache"]["healthcheck"]["test"] == cache["health_command"]
    assert sent["db"]["healthcheck"]["test"] == db["health_command"]
    (own,) = sent["cache"]["env"]
    assert sealing.unseal(own["value"], "berth/env/BERTH_HEALTH_DB_PASSWORD") == PASSWORD
    audit = await client.get("/v1/audit", headers=members.admin, params={"limit": 500})
    assert audit.status_code == 200, audit.text
    shown.append(audit.json())
    assert PASSWORD not in json.dumps(shown)
