"""Templates over REST: the catalogue (list, search, read, logos) for viewers, importing Coolify templates
and Dokploy blueprints, and deploying a template for developers; bad input is a 422 naming the spot."""

from __future__ import annotations

import json

from berth_common import sealing
from tests.api.conftest import make_project
from tests.api.template_support import FIXTURES, deploy_dokploy, dokploy_files
from tests.api.test_projects import problem


async def test_the_catalogue_is_listed_searched_and_read_by_viewers(client, members):
    problem(await client.get("/v1/templates"), 401)
    listed = await client.get("/v1/templates", headers=members.viewer)
    assert listed.status_code == 200, listed.text
    slugs = [t["slug"] for t in listed.json()]
    assert len(slugs) >= 30 and {"plausible", "umami", "n8n", "vaultwarden", "gitea", "minio"} <= set(slugs)
    assert set(listed.json()[0]) == {"slug", "name", "description", "tags", "logo", "docs", "version"}
    found = await client.get("/v1/templates", headers=members.viewer, params={"q": "analytics", "tag": "privacy"})
    assert {t["slug"] for t in found.json()} == {"plausible", "umami"}
    assert (await client.get("/v1/templates", headers=members.other, params={"tag": "git"})).json()[0]["slug"] in (
        "forgejo",
        "gitea",
    )
    one = await client.get("/v1/templates/plausible", headers=members.viewer)
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["variables"]["secret_key_base"] == {"kind": "base64", "bytes": 64}
    assert body["compose"].startswith("services:\n") and "name: Plausible Analytics" in body["document"]
    logo = await client.get(f"/v1/templates/{body['logo']}", headers=members.viewer)
    assert logo.status_code == 200 and logo.headers["content-type"] == "image/svg+xml" and b"<svg" in logo.content
    problem(await client.get("/v1/templates/no-such-app", headers=members.viewer), 404)
    problem(await client.get("/v1/templates/logos/none.svg", headers=members.viewer), 404)
    problem(await client.get("/v1/templates/Bad_Slug", headers=members.viewer), 422)


async def test_imports_answer_a_berth_template_and_what_was_not_carried(client, members):
    text = (FIXTURES / "coolify" / "multi-route.yaml").read_text()
    body = {"format": "coolify", "files": {"multi-route.yaml": text}}
    problem(await client.post("/v1/templates/import", headers=members.viewer, json=body), 403)
    r = await client.post("/v1/templates/import", headers=members.developer, json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["template"]["slug"] == "multi-route"
    assert out["template"]["variables"]["SERVICE_PASSWORD_64_APPWRITE"] == {
        "kind": "password",
        "length": 64,
        "alphabet": "alnum",
    }
    assert "services.mariadb.exclude_from_hc: Berth has no aggregate health exclusion" in out["not_carried"]

    files = dokploy_files(FIXTURES / "dokploy" / "shadowed-mounts")
    r = await client.post("/v1/templates/import", headers=members.developer, json={"format": "dokploy", "files": files})
    assert r.status_code == 200, r.text
    assert r.json()["template"]["files"] == [{"path": "init.sql", "content": "CREATE DATABASE app;"}]
    assert len(r.json()["not_carried"]) == 2

    bad = {"format": "coolify", "files": {"x.yaml": "services:\n  a:\n    image: x\n  a:\n    image: y\n"}}
    err = problem(await client.post("/v1/templates/import", headers=members.developer, json=bad), 422)
    assert err["errors"][0]["loc"] == "/body/files/x.yaml" and "'a' is given twice" in err["errors"][0]["detail"]
    files = {
        "template.toml": '[[config.domains]]\nserviceName = "nope"\nport = 1',
        "docker-compose.yml": "services: {a: {image: x}}",
    }
    err = problem(
        await client.post(
            "/v1/templates/import", headers=members.developer, json={"format": "dokploy", "files": files}
        ),
        422,
    )
    assert err["errors"][0]["loc"] == "/body/files/template.toml/config/domains/0/serviceName"
    err = problem(
        await client.post("/v1/templates/import", headers=members.developer, json={"format": "helm", "files": files}),
        422,
    )
    assert err["errors"][0]["loc"] == "/body/format"
    named = {**body, "name": "Appwrite (mine)"}
    r = await client.post("/v1/templates/import", headers=members.developer, json=named)
    assert r.json()["template"]["name"] == "Appwrite (mine)" and r.json()["template"]["slug"] == "multi-route"
    err = problem(
        await client.post("/v1/templates/import", headers=members.developer, json={**body, "name": "a\nb"}), 422
    )
    assert err["errors"][0]["loc"] == "/body/name"
    two = {"format": "coolify", "files": {"a.yaml": "services: {}", "b.yaml": "services: {}"}}
    err = problem(await client.post("/v1/templates/import", headers=members.developer, json=two), 422)
    assert err["errors"][0]["loc"] == "/body/files"


async def test_deploying_a_template(client, members):
    project = await make_project(client, members.developer)
    env = project["environments"][0]["id"]
    body = {"environment_id": env}
    problem(await client.post("/v1/templates/plausible/deploy", headers=members.viewer, json=body), 403)
    problem(await client.post("/v1/templates/nothing/deploy", headers=members.developer, json=body), 404)
    problem(await client.post("/v1/templates/plausible/deploy", headers=members.other, json=body), 404)  # not its env
    err = problem(
        await client.post(
            "/v1/templates/plausible/deploy", headers=members.developer, json={**body, "variables": {"nope": "1"}}
        ),
        422,
    )
    assert err["errors"][0] == {
        "loc": "/body/variables/nope",
        "detail": "not a variable of this template",
        "type": "template",
    }
    bad_host = {**body, "domain": "not a host;rm"}
    err = problem(await client.post("/v1/templates/plausible/deploy", headers=members.developer, json=bad_host), 422)
    assert err["errors"][0]["loc"] == "/body/domain"
    err = problem(await client.post("/v1/templates/phpmyadmin/deploy", headers=members.developer, json=body), 422)
    assert err["errors"][0]["loc"] == "/body/variables/db_host" and err["errors"][0]["detail"] == "a value is required"
    r = await client.post(
        "/v1/templates/phpmyadmin/deploy",
        headers=members.developer,
        json={**body, "name": "pma", "domain": "pma.example.com", "variables": {"db_host": "db"}},
    )
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "pma"


async def test_an_imported_template_document_is_deployed_as_it_was_edited(client, members):
    project = await make_project(client, members.developer)
    env = project["environments"][0]["id"]
    text = (FIXTURES / "coolify" / "analytics-kit.yaml").read_text()
    imported = await client.post(
        "/v1/templates/import", headers=members.developer, json={"format": "coolify", "files": {"mr.yaml": text}}
    )
    assert imported.status_code == 200, imported.text
    document = imported.json()["template"]["document"]
    edited = document.replace("slug: mr", "slug: edited-app")
    assert edited != document
    body = {"environment_id": env, "document": edited}
    problem(await client.post("/v1/templates/deploy", headers=members.viewer, json=body), 403)
    problem(await client.post("/v1/templates/deploy", headers=members.other, json=body), 404)  # not its env
    err = problem(
        await client.post("/v1/templates/deploy", headers=members.developer, json={**body, "document": "- a list"}),
        422,
    )
    assert err["errors"][0]["loc"] == "/body/document" and "mapping" in err["errors"][0]["detail"]
    unknown = edited + "surprise: 1\n"
    err = problem(
        await client.post("/v1/templates/deploy", headers=members.developer, json={**body, "document": unknown}),
        422,
    )
    assert err["errors"][0] == {"loc": "/body/document/surprise", "detail": "unknown key", "type": "template"}
    problem(await client.post("/v1/templates/deploy", headers=members.developer, json={"environment_id": env}), 422)
    r = await client.post("/v1/templates/deploy", headers=members.developer, json=body)
    assert r.status_code == 201, r.text
    app = r.json()
    assert app["name"] == "edited-app" and app["compose"] is not None
    secrets = {v["name"]: v for v in app["env"] if v.get("secret")}
    assert "SERVICE_PASSWORD_POSTGRES" in secrets and all(v.get("value") is None for v in secrets.values())
    db = next(s for s in app["compose"]["translated"]["services"] if s["name"] == "db")
    assert {"name": "POSTGRES_PASSWORD", "value": None, "parts": [{"secret": "SERVICE_PASSWORD_POSTGRES"}]} in db[
        "environment"
    ]


async def test_every_catalogue_template_creates_its_application(client, members):
    """Deploying each catalogue template creates a compose application (its secrets generated and carried by
    name, its inputs given); what compose applications cannot take yet is a 501 naming it."""
    project = await make_project(client, members.developer)
    env = project["environments"][0]["id"]
    listed = await client.get("/v1/templates", headers=members.viewer)
    created, refused = [], {}
    for t in listed.json():
        detail = (await client.get(f"/v1/templates/{t['slug']}", headers=members.viewer)).json()
        inputs = {n: "db" for n, v in detail["variables"].items() if v["kind"] == "input" and not v.get("default")}
        body = {"environment_id": env, "variables": inputs}
        r = await client.post(f"/v1/templates/{t['slug']}/deploy", headers=members.developer, json=body)
        if r.status_code == 201:
            created.append(t["slug"])
        else:
            refused[t["slug"]] = (r.status_code, r.json()["detail"])
    assert refused == {}, "\n".join(f"{k}: {v}" for k, v in refused.items())
    assert len(created) == len(listed.json()) >= 30


async def test_a_template_routing_services_by_path_creates_its_application(client, members):
    """The routes of one host by path (Coolify's ``SERVICE_URL_APPWRITE=/console``) go to the services under
    their paths, all on the host of the variable (the first service's generated one)."""
    project = await make_project(client, members.developer)
    env = project["environments"][0]["id"]
    text = (FIXTURES / "coolify" / "multi-route.yaml").read_text()
    body = {"format": "coolify", "files": {"multi-route.yaml": text}}
    imported = await client.post("/v1/templates/import", headers=members.developer, json=body)
    assert imported.status_code == 200, imported.text
    document = imported.json()["template"]["document"]
    assert "$$utf8" in document  # the fixture's ``\$utf8``: compose's literal ``$`` is ``$$``
    r = await client.post(
        "/v1/templates/deploy", headers=members.developer, json={"environment_id": env, "document": document}
    )
    assert r.status_code == 201, r.text
    app = r.json()
    host = "appwrite-multi-route-production.localhost"
    assert app["compose"]["hosts"] == [
        {"service": "appwrite", "port": 80},
        {"service": "appwrite-console", "port": 80, "host": host, "path": "/console"},
        {"service": "appwrite-realtime", "port": 80, "host": host, "path": "/v1/realtime"},
    ]
    web = {s["name"]: s for s in app["services"] if s["kind"] == "web"}
    assert {n: (s.get("path_prefix"), host in s["hosts"]) for n, s in web.items()} == {
        "appwrite": (None, True),
        "appwrite-console": ("/console", True),
        "appwrite-realtime": ("/v1/realtime", True),
    }


async def test_a_template_whose_health_checks_use_its_secrets_deploys_them_unseen(client, members, scheduler):
    """Coolify's ``pg_isready -U $SERVICE_USER_POSTGRES`` and ``[CMD, redis-cli, -a, ${SERVICE_PASSWORD_REDIS},
    PING]``: the checks read the generated credentials from the containers' environment."""
    project = await make_project(client, members.developer)
    text = (FIXTURES / "coolify" / "checked-stores.yaml").read_text()
    body = {"format": "coolify", "files": {"checked-stores.yaml": text}}
    imported = await client.post("/v1/templates/import", headers=members.developer, json=body)
    assert imported.status_code == 200, imported.text
    document = imported.json()["template"]["document"]
    env = project["environments"][0]["id"]
    r = await client.post(
        "/v1/templates/deploy", headers=members.developer, json={"environment_id": env, "document": document}
    )
    assert r.status_code == 201, r.text
    app = r.json()
    checks = {s["name"]: s.get("health_command") for s in app["compose"]["translated"]["services"]}
    assert checks == {
        "app": None,
        "postgres": ["/bin/sh", "-c", 'pg_isready -U "${POSTGRES_USER}" -d app -h 127.0.0.1'],
        "redis": ["/bin/sh", "-c", 'redis-cli -a "${BERTH_HEALTH_SERVICE_PASSWORD_REDIS}" PING'],
        "cache": ["/bin/sh", "-c", 'redis-cli -a "${BERTH_HEALTH_SERVICE_PASSWORD_CACHE}" ping | grep PONG'],
    }
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    (cmd,) = await scheduler.wait_for("cmd.deployment.start", 1)
    sent = {s["name"]: s for s in cmd.data["spec"]["services"]}
    assert sent["redis"]["healthcheck"]["test"] == checks["redis"]
    values = {
        e["name"]: sealing.unseal(e["value"], f"berth/env/{e['name']}")
        for s in sent.values()
        for e in s["env"]
        if e.get("secret")
    }
    assert values["BERTH_HEALTH_SERVICE_PASSWORD_REDIS"] in values["REDIS_URL"]
    assert values["POSTGRES_USER"] in values["DATABASE_URL"]
    shown = json.dumps([app, r.json(), [s.get("healthcheck") for s in sent.values()]])
    assert values and not [n for n, v in values.items() if v in shown]


BLUEPRINT_TOML = """[variables]
main_domain = "${domain}"
minio_domain_1 = "${domain}"

[config]
[[config.domains]]
serviceName = "web"
port = 80
host = "${main_domain}"

[[config.domains]]
serviceName = "web"
port = 81
host = "minio_domain_1"

[[config.mounts]]
filePath = "./Caddyfile"
content = ":80 { respond ok }"
"""
BLUEPRINT_COMPOSE = """services:
  web:
    image: caddy:2
    expose: ["80", "81"]
    volumes:
      - ../files/Caddyfile:/etc/caddy/Caddyfile:ro
"""


async def test_a_dokploy_blueprints_dot_slash_file_deploys_and_a_literal_host_is_refused_naming_it(client, members):
    """Dokploy joins ``filePath = "./Caddyfile"`` to the compose's files directory (the file is ``Caddyfile``);
    a domain whose host is a variable's name without ``${}`` (Dokploy's capso) is a 422 naming the host, and
    nothing is created."""
    env = (await make_project(client, members.developer))["environments"][0]["id"]
    files = {"template.toml": BLUEPRINT_TOML, "docker-compose.yml": BLUEPRINT_COMPOSE}
    imported = await client.post(
        "/v1/templates/import", headers=members.developer, json={"format": "dokploy", "files": files}
    )
    assert imported.status_code == 200, imported.text
    assert [f["path"] for f in imported.json()["template"]["files"]] == ["Caddyfile"]
    body = {"environment_id": env, "document": imported.json()["template"]["document"], "name": "caddy"}
    err = problem(await client.post("/v1/templates/deploy", headers=members.developer, json=body), 422)
    assert [e["loc"] for e in err["errors"]] == ["/body/hosts/1/host"]
    assert "minio_domain_1" in err["errors"][0]["detail"]
    assert (await client.get(f"/v1/environments/{env}/applications", headers=members.developer)).json() == []
    fixed = body["document"].replace("minio_domain_1\n", "${var.main_domain}\n", 1)
    assert fixed != body["document"]
    r = await client.post("/v1/templates/deploy", headers=members.developer, json={**body, "document": fixed})
    assert r.status_code == 201, r.text
    assert [f["path"] for f in r.json()["compose"]["files"]] == ["Caddyfile"]


DERIVED_TOML = """[variables]
main_domain = "${domain}"

[config]
[[config.domains]]
serviceName = "web"
port = 3000
host = "${main_domain}"

[[config.domains]]
serviceName = "db"
port = 8090
host = "db.${main_domain}"

[[config.domains]]
serviceName = "search"
port = 7700
host = "search-${main_domain}"

[config.env]
ORIGIN = "http://${main_domain}"
"""
DERIVED_COMPOSE = """services:
  web:
    image: flomp/wanderer-web
    expose: ["3000"]
  db:
    image: flomp/wanderer-db
    expose: ["8090"]
  search:
    image: getmeili/meilisearch
    expose: ["7700"]
"""


async def test_hosts_a_dokploy_blueprint_derives_from_its_generated_host_are_the_applications(client, members):
    """Dokploy's wanderer and shlink route ``db.${main_domain}`` and ``web-${main_domain}``: names in the
    application's own part of the base domain (its label ends with -<app>-<env>), which it may claim; another
    application may not."""
    env = (await make_project(client, members.developer))["environments"][0]["id"]
    files = {"template.toml": DERIVED_TOML, "docker-compose.yml": DERIVED_COMPOSE}
    r = await deploy_dokploy(client, members.developer, env, files, "trails")
    assert r.status_code == 201, r.text
    assert r.json()["compose"]["hosts"] == [
        {"service": "web", "port": 3000},
        {"service": "db", "port": 8090, "host": "db.web-trails-production.localhost"},
        {"service": "search", "port": 7700, "host": "search-web-trails-production.localhost"},
    ]
    url = f"/v1/environments/{env}/applications"
    other = {"name": "other", "compose": {"inline": DERIVED_COMPOSE}}
    other["hosts"] = [{"service": "db", "port": 8090, "host": "db2.web-trails-production.localhost"}]
    err = problem(await client.post(url, headers=members.developer, json=other), 422)
    assert err["errors"][0]["loc"] == "/body/hosts/0/host" and "reserved for generated" in err["errors"][0]["detail"]
    # an application of the same name elsewhere (another project's production): its labels end alike, but a
    # name under the first one's generated host is in a part of the base domain the first one holds
    elsewhere = (await make_project(client, members.developer, "elsewhere"))["environments"][0]["id"]
    compose = DERIVED_COMPOSE.replace("web:", "api:").replace("db:", "store:").replace("search:", "find:")
    twin = {"name": "trails", "compose": {"inline": compose}}  # no generated host of its own collides
    twin["hosts"] = [{"service": "store", "port": 8090, "host": "db2.web-trails-production.localhost"}]
    url = f"/v1/environments/{elsewhere}/applications"
    err = problem(await client.post(url, headers=members.developer, json=twin), 409)
    assert err["errors"][0]["loc"] == "/body/hosts/0/host" and "another application holds" in err["errors"][0]["detail"]
