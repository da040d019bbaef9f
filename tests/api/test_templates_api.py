"""Templates over REST: the catalogue (list, search, read, logos) for viewers, importing Coolify templates
and Dokploy blueprints, and deploying a template for developers; bad input is a 422 naming the spot."""

from __future__ import annotations

from tests.api.conftest import make_project
from tests.api.template_support import FIXTURES, dokploy_files
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
    # compose applications (compose.inline) are another slice of issue 14: until they exist, a clear 501
    assert r.status_code in (201, 501), r.text
    if r.status_code == 501:
        assert "compose.inline" in r.json()["detail"]
