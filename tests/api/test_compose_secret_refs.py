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
    text = (
        "services:\n  web:\n    image: busybox\n    healthcheck: {test: ['CMD', 'check', '--token=${DB_PASSWORD}']}\n"
    )
    app = await make_app(client, members.developer, {"name": "probe", "compose": {"inline": TEXT}, "env": ENV})
    r = await client.post(
        f"/v1/environments/{app['environment_id']}/applications",
        headers=members.developer,
        json={"name": "leaky", "compose": {"inline": text}, "env": ENV},
    )
    (err,) = problem(r, 422)["errors"]
    assert err["loc"] == "/body/compose/services/web/health_command/1"
    assert "${DB_PASSWORD} names a secret variable" in err["detail"] and PASSWORD not in r.text
