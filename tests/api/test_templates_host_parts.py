"""A Dokploy blueprint routing hosts under its generated domain (habitica's ``habitica.${main_domain}``,
garage-with-ui's ``web-ui.${domain}``) imports, deploys and is deployed through the API: the hosts are in the
application's own part of the base domain (the label right under it ends with ``-<app>-<env>``), which no
other application, of the team or another, may claim (a 4xx naming the field)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.conftest import make_project
from tests.api.template_support import FIXTURES, deploy_dokploy, dokploy_files
from tests.api.test_projects import problem

HABITICA = "habitica.main-domain-tasks-production.localhost"
ADMIN = "admin.admin-domain-domain-tasks-production.localhost"
COMPOSE = """services:
  main:
    image: busybox
    expose: ["80"]
"""


async def _create(client: httpx.AsyncClient, headers: dict[str, str], env: str, name: str, host: str | None = None):
    body: dict[str, Any] = {"name": name, "compose": {"inline": COMPOSE}}
    if host is not None:
        body["hosts"] = [{"service": "main", "port": 80, "host": host}]
    return await client.post(f"/v1/environments/{env}/applications", headers=headers, json=body)


def _refused(r: httpx.Response, status: int, loc: str, words: str) -> None:
    (err,) = problem(r, status)["errors"]
    assert err["loc"] == loc and words in err["detail"], err


async def test_a_blueprint_with_hosts_under_its_generated_domain_deploys_and_holds_them(client, members) -> None:
    env = (await make_project(client, members.developer))["environments"][0]["id"]
    files = dokploy_files(FIXTURES / "dokploy" / "subdomain-hosts")
    r = await deploy_dokploy(client, members.developer, env, files, "tasks")
    assert r.status_code == 201, r.text
    app = r.json()
    assert app["compose"]["hosts"] == [
        {"service": "client", "port": 80, "host": HABITICA},
        {"service": "admin", "port": 8080, "host": ADMIN},
    ]
    hosts = {s["name"]: s["hosts"] for s in app["services"] if s["kind"] == "web"}
    assert hosts == {
        "client": ["client-tasks-production.localhost", HABITICA],
        "admin": ["admin-tasks-production.localhost", ADMIN],
    }
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    routed = {s["name"]: s.get("hosts") for s in r.json()["spec"]["services"]}
    assert routed["client"] == hosts["client"] and routed["admin"] == hosts["admin"], routed

    # the same application claims more of its part, at any depth, and keeps what it has
    r = await client.patch(
        f"/v1/applications/{app['id']}",
        headers=members.developer,
        json={
            "compose": {"inline": app["compose"]["inline"]},
            "hosts": [*app["compose"]["hosts"], _route("v1.api.main-domain-tasks-production")],
        },
    )
    assert r.status_code == 200, r.text
    assert "v1.api.main-domain-tasks-production.localhost" in [
        h for s in r.json()["services"] for h in s.get("hosts", [])
    ]

    # another application of the team, or the application of the same name in another environment: the label is
    # not its own (422); one of the same name and environment in another project: its labels end alike, but the
    # part is the first application's (409)
    _refused(
        await _create(client, members.developer, env, "blog", "x.main-domain-tasks-production.localhost"),
        422,
        "/body/hosts/0/host",
        "reserved for generated hosts",
    )
    staging = await client.post(
        f"/v1/projects/{app['project_id']}/environments", headers=members.developer, json={"name": "staging"}
    )
    assert staging.status_code == 201, staging.text
    _refused(
        await _create(client, members.developer, staging.json()["id"], "tasks", f"x.{HABITICA}"),
        422,
        "/body/hosts/0/host",
        "reserved for generated hosts",
    )
    elsewhere = (await make_project(client, members.developer, "elsewhere"))["environments"][0]["id"]
    _refused(
        await _create(client, members.developer, elsewhere, "tasks", "www.main-domain-tasks-production.localhost"),
        409,
        "/body/hosts/0/host",
        "another application holds",
    )

    # another team: its application of the same name may not claim a name of the part, nor the same host, nor
    # have the part as a generated host (an application "domain-tasks" with a service "main")
    other = (await make_project(client, members.other, "rival"))["environments"][0]["id"]
    for host in (f"a.b.{HABITICA.split('.', 1)[1]}", HABITICA, "main-domain-tasks-production.localhost"):
        r = await _create(client, members.other, other, "tasks", host)
        assert problem(r, 409)["errors"][0]["loc"] == "/body/hosts/0/host", (host, r.text)
    _refused(
        await _create(client, members.other, other, "domain-tasks"), 409, "/body/name", "another application holds"
    )
    r = await client.get(f"/v1/environments/{other}/applications", headers=members.other)
    assert r.json() == []


def _route(label: str) -> dict[str, Any]:
    return {"service": "client", "port": 80, "host": f"{label}.localhost"}
