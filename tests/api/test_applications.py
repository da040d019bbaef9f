"""Applications: create, read, update, delete; every bad input class is a 422 naming its field; hosts;
secrets masked in every response; team isolation and roles."""

from __future__ import annotations

import copy

import httpx

from tests.api.conftest import WEB_APP, bearer, make_app, make_project, start_api
from tests.api.test_projects import locs, problem

GIT_APP = {
    "name": "blog",
    "source": {
        "kind": "git",
        "repository": "https://git.example.com/acme/blog.git",
        "branch": "main",
        "subdirectory": "site",
        "dockerfile": "docker/Dockerfile",
        "build_args": [
            {"name": "NODE_ENV", "value": "production"},
            {"name": "NPM_TOKEN", "value": "npm-s3cr3t-Tok", "secret": True},
        ],
    },
    "services": [{"kind": "web", "name": "web", "port": 3000, "domains": ["blog.example.com", "www.blog.example.com"]}],
    "env": [
        {"name": "DATABASE_URL", "value": "postgres://u:pg-s3cr3t-Pw@db/blog", "secret": True},
        {"name": "PORT", "value": "3000"},
    ],
}
SECRETS = ("npm-s3cr3t-Tok", "pg-s3cr3t-Pw")


def no_secret_in(text: str) -> None:
    for s in SECRETS:
        assert s not in text


async def test_create_and_read_an_image_application(client, members):
    app = await make_app(client, members.developer)
    assert app["name"] == "shop" and app["environment"] == "production"
    assert app["source"] == {"kind": "image", "image": "registry.example.com:5000/acme/shop:1.0"}
    web, jobs = app["services"]
    assert web["hosts"] == ["web-shop-production.localhost"] and web["domains"] == []
    assert web["replicas"] == 2 and web["health_path"] == "/healthz" and web["port"] == 8080
    assert jobs == {
        "kind": "worker",
        "name": "jobs",
        "replicas": 1,
        "command": ["python", "-m", "jobs"],
        "health_command": None,
        "limits": None,
    }
    assert app["env"] == [{"name": "LOG_LEVEL", "value": "debug", "secret": False}]
    assert app["limits"] == {"cpus": 0.5, "memory_mb": 256}
    assert app["restart_policy"] == "unless-stopped" and app["stop_timeout_s"] == 10

    detail = (await client.get(f"/v1/applications/{app['id']}", headers=members.viewer)).json()
    assert {k: v for k, v in detail.items() if k not in ("live", "runtime")} == app
    assert detail["live"] is None
    # No scheduler on the bus: said so, not a 500.
    assert detail["runtime"]["available"] is False and "scheduler" in detail["runtime"]["error"]
    listed = (await client.get("/v1/applications", headers=members.viewer)).json()
    assert [a["id"] for a in listed] == [app["id"]]
    env_id = app["environment_id"]
    assert [
        a["id"] for a in (await client.get(f"/v1/environments/{env_id}/applications", headers=members.viewer)).json()
    ] == [app["id"]]
    by_project = (await client.get(f"/v1/applications?project_id={app['project_id']}", headers=members.viewer)).json()
    assert len(by_project) == 1
    assert (await client.get("/v1/applications?offset=1", headers=members.viewer)).json() == []
    assert (await client.get("/v1/applications?limit=0", headers=members.viewer)).status_code == 422


async def test_git_application_secrets_are_masked_everywhere(client, members):
    proj = await make_project(client, members.developer)
    env_id = proj["environments"][0]["id"]
    r = await client.post(f"/v1/environments/{env_id}/applications", headers=members.developer, json=GIT_APP)
    assert r.status_code == 201, r.text
    no_secret_in(r.text)
    app = r.json()
    assert app["source"]["build_args"] == [
        {"name": "NODE_ENV", "value": "production", "secret": False},
        {"name": "NPM_TOKEN", "value": None, "secret": True},
    ]
    assert app["env"][0] == {"name": "DATABASE_URL", "value": None, "secret": True}
    assert app["services"][0]["hosts"] == ["web-blog-production.localhost", "blog.example.com", "www.blog.example.com"]
    assert app["source"]["dockerfile"] == "docker/Dockerfile" and app["source"]["subdirectory"] == "site"
    aid = app["id"]
    for h in (members.viewer, members.developer, members.admin):
        for url in (f"/v1/applications/{aid}", "/v1/applications", f"/v1/environments/{env_id}/applications"):
            r = await client.get(url, headers=h)
            assert r.status_code == 200
            no_secret_in(r.text)

    # Sending the secret back without a value keeps it; a new plain variable needs a value.
    env = [{"name": "DATABASE_URL", "secret": True}, {"name": "PORT", "value": "4000"}]
    r = await client.patch(f"/v1/applications/{aid}", headers=members.developer, json={"env": env})
    assert r.status_code == 200, r.text
    assert r.json()["env"] == [
        {"name": "DATABASE_URL", "value": None, "secret": True},
        {"name": "PORT", "value": "4000", "secret": False},
    ]
    no_secret_in(r.text)
    body = problem(
        await client.patch(f"/v1/applications/{aid}", headers=members.developer, json={"env": [{"name": "NEW"}]}), 422
    )
    assert locs(body) == {"/body/env/0/value"}
    # A secret turns plain only with a new value (else its value would be shown).
    body = problem(
        await client.patch(
            f"/v1/applications/{aid}",
            headers=members.developer,
            json={"env": [{"name": "DATABASE_URL", "secret": False}]},
        ),
        422,
    )
    assert locs(body) == {"/body/env/0/value"}
    # A plain variable may become secret without repeating its value.
    r = await client.patch(
        f"/v1/applications/{aid}", headers=members.developer, json={"env": [{"name": "PORT", "secret": True}]}
    )
    assert r.json()["env"] == [{"name": "PORT", "value": None, "secret": True}]
    # Switching to an image source drops the build args.
    r = await client.patch(
        f"/v1/applications/{aid}", headers=members.developer, json={"source": {"kind": "image", "image": "nginx"}}
    )
    assert r.status_code == 200 and r.json()["source"] == {"kind": "image", "image": "nginx"}


async def test_update_replaces_fields_and_keeps_the_rest(client, members):
    app = await make_app(client, members.developer)
    aid = app["id"]
    services = copy.deepcopy(WEB_APP["services"])
    services[0]["domains"] = ["shop.example.com"]
    services[0]["replicas"] = 3
    r = await client.patch(
        f"/v1/applications/{aid}",
        headers=members.developer,
        json={"services": services, "restart_policy": "always", "limits": {"memory_mb": 512}},
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["services"][0]["hosts"] == ["web-shop-production.localhost", "shop.example.com"]
    assert out["services"][0]["replicas"] == 3 and out["restart_policy"] == "always"
    assert out["limits"] == {"cpus": None, "memory_mb": 512}
    assert out["env"] == app["env"] and out["source"] == app["source"]
    problem(await client.patch(f"/v1/applications/{aid}", headers=members.developer, json={"name": "renamed"}), 422)


async def test_hosts_have_one_owner(client, members):
    first = copy.deepcopy(WEB_APP)
    first["services"][0]["domains"] = ["shop.example.com"]
    await make_app(client, members.developer, first)
    pid = (await client.get("/v1/projects", headers=members.developer)).json()[0]["id"]
    # Same generated host from another project: 409 naming the application's name.
    other = await make_project(client, members.developer, "beta")
    url = f"/v1/environments/{other['environments'][0]['id']}/applications"
    body = problem(await client.post(url, headers=members.developer, json=WEB_APP), 409)
    assert locs(body) == {"/body/name"} and "web-shop-production.localhost" in body["errors"][0]["detail"]
    # A custom domain taken by another application, even of another team: 409 naming it.
    second = copy.deepcopy(WEB_APP)
    second["name"] = "shop2"
    second["services"][0]["domains"] = ["ok.example.com", "shop.example.com"]
    body = problem(await client.post(url, headers=members.developer, json=second), 409)
    assert locs(body) == {"/body/services/0/domains/1"}
    # Names under the base domain belong to generated hosts; the same domain twice in one application.
    second["services"][0]["domains"] = ["web-shop-production.localhost"]
    assert locs(problem(await client.post(url, headers=members.developer, json=second), 422)) == {
        "/body/services/0/domains/0"
    }
    second["services"][0]["domains"] = ["a.example.com", "a.example.com"]
    problem(await client.post(url, headers=members.developer, json=second), 422)
    second["services"][0]["domains"] = ["a.example.com"]
    second["services"].append({"kind": "web", "name": "api", "port": 9000, "domains": ["A.Example.com"]})
    assert locs(problem(await client.post(url, headers=members.developer, json=second), 422)) == {
        "/body/services/2/domains/0"
    }
    assert pid


BAD_INPUTS: list[tuple[str, object, str]] = [
    # (JSON path to set, bad value, expected loc prefix)
    ("name", "Shop", "/body/name"),
    ("name", "s" * 33, "/body/name"),
    ("name", "--upload-pack=x", "/body/name"),
    ("name", "shop\nx", "/body/name"),
    ("source.image", "Nginx:latest", "/body/source/image/image"),
    ("source.image", "-nginx", "/body/source/image/image"),
    ("source.image", "nginx;rm -rf /", "/body/source/image/image"),
    ("source.image", "a" * 300, "/body/source/image/image"),
    ("services.0.port", 0, "/body/services/0/web/port"),
    ("services.0.port", 70000, "/body/services/0/web/port"),
    ("services.0.replicas", 0, "/body/services/0/web/replicas"),
    ("services.0.health_path", "healthz", "/body/services/0/web/health_path"),
    ("services.0.health_path", "/x\ny", "/body/services/0/web/health_path"),
    ("services.0.domains", ["exa mple.com"], "/body/services/0/web/domains/0"),
    ("services.0.domains", ["ex\u0430mple.com"], "/body/services/0/web/domains/0"),  # Cyrillic a
    ("services.0.domains", ["-bad.example.com"], "/body/services/0/web/domains/0"),
    ("services.0.domains", ["localhost"], "/body/services/0/web/domains/0"),
    ("services.0.domains", ["10.0.0.1"], "/body/services/0/web/domains/0"),
    ("services.0.domains", ["a" * 64 + ".example.com"], "/body/services/0/web/domains/0"),
    ("services.0.name", "Web", "/body/services/0/web/name"),
    ("services.1.command", ["ok", "nul\x00byte"], "/body/services/1/worker/command/1"),
    ("services.1.command", [], "/body/services/1/worker/command"),
    ("env", [{"name": "1BAD", "value": "x"}], "/body/env/0/name"),
    ("env", [{"name": "BAD-NAME", "value": "x"}], "/body/env/0/name"),
    ("env", [{"name": "A;B", "value": "x"}], "/body/env/0/name"),
    ("env", [{"name": "OK", "value": "nul\x00"}], "/body/env/0/value"),
    ("env", [{"name": "OK", "value": "v" * 70000}], "/body/env/0/value"),
    ("env", [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}], "/body/env"),
    ("limits.cpus", 0, "/body/limits/cpus"),
    ("limits.memory_mb", 1, "/body/limits/memory_mb"),
    ("restart_policy", "sometimes", "/body/restart_policy"),
    ("stop_timeout_s", -1, "/body/stop_timeout_s"),
]

GIT_BAD_INPUTS: list[tuple[str, object, str]] = [
    ("source.repository", "ext::sh -c touch% /tmp/pwned", "/body/source/git/repository"),
    ("source.repository", "--upload-pack=touch /tmp/x", "/body/source/git/repository"),
    ("source.repository", "-uhttps://x.example/r.git", "/body/source/git/repository"),
    ("source.repository", "file:///etc", "/body/source/repository"),
    ("source.repository", "/srv/git/repo", "/body/source/repository"),
    ("source.repository", "https://example.com/repo.git\n", "/body/source/git/repository"),
    ("source.repository", "https://exa mple.com/r.git", "/body/source/git/repository"),
    ("source.repository", "https://user:tok@example.com/r.git", "/body/source/git/repository"),
    ("source.repository", "ftp://example.com/r.git", "/body/source/git/repository"),
    ("source.repository", "https://example.com/" + "r" * 3000, "/body/source/git/repository"),
    ("source.branch", "--upload-pack=x", "/body/source/git/branch"),
    ("source.branch", "main..dev", "/body/source/git/branch"),
    ("source.branch", "feat/x.lock", "/body/source/git/branch"),
    ("source.branch", "bad name", "/body/source/git/branch"),
    ("source.branch", "main\n", "/body/source/git/branch"),
    ("source.branch", "@{-1}", "/body/source/git/branch"),
    ("source.commit", "xyz1234", "/body/source/git/commit"),
    ("source.subdirectory", "../../x", "/body/source/git/subdirectory"),
    ("source.subdirectory", "/etc", "/body/source/git/subdirectory"),
    ("source.subdirectory", "a/../../b", "/body/source/git/subdirectory"),
    ("source.subdirectory", "--output=x", "/body/source/git/subdirectory"),
    ("source.dockerfile", "../Dockerfile", "/body/source/git/dockerfile"),
    ("source.dockerfile", "", "/body/source/git/dockerfile"),
    ("source.build_args", [{"name": "X Y", "value": "1"}], "/body/source/git/build_args/0/name"),
]


def _set(body: dict, path: str, value: object) -> dict:
    body = copy.deepcopy(body)
    node = body
    parts = path.split(".")
    for p in parts[:-1]:
        node = node[int(p)] if isinstance(node, list) else node[p]
    node[parts[-1]] = value
    return body


async def test_every_bad_input_class_is_422_naming_the_field(client, members):
    proj = await make_project(client, members.developer)
    url = f"/v1/environments/{proj['environments'][0]['id']}/applications"
    failures = []
    for base, cases in ((WEB_APP, BAD_INPUTS), (GIT_APP, GIT_BAD_INPUTS)):
        for path, value, loc in cases:
            r = await client.post(url, headers=members.developer, json=_set(base, path, value))
            if r.status_code != 422 or not any(e["loc"].startswith(loc) for e in r.json().get("errors", [])):
                failures.append((path, repr(value)[:60], r.status_code, r.text[:300]))
            elif "Traceback" in r.text:
                failures.append((path, "traceback", r.status_code, r.text[:300]))
    assert failures == []
    # Branch and commit together; both valid alone.
    both = _set(_set(GIT_APP, "source.commit", "a" * 40), "source.branch", "main")
    assert (await client.post(url, headers=members.developer, json=both)).status_code == 422
    ok = _set(_set(GIT_APP, "source.commit", "ABCDEF1"), "source.branch", None)
    r = await client.post(url, headers=members.developer, json=ok)
    assert r.status_code == 201, r.text
    assert r.json()["source"]["commit"] == "abcdef1"
    assert (await client.get("/v1/applications", headers=members.viewer)).json()[0]["name"] == "blog"


async def test_local_repositories_when_allowed(api_settings):
    """file:// and absolute paths are refused unless BERTH_ALLOW_LOCAL_GIT is on (as for the builder)."""
    running = await start_api(api_settings.model_copy(update={"allow_local_git": True}))
    try:
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as client:
            h = bearer(running.admin_token())
            proj = await make_project(client, h)
            url = f"/v1/environments/{proj['environments'][0]['id']}/applications"
            r = await client.post(url, headers=h, json=_set(GIT_APP, "source.repository", "file:///srv/git/blog"))
            assert r.status_code == 201, r.text
            for bad in ("file:///srv/git/../blog", "ext::sh", "--upload-pack=x"):
                r = await client.post(url, headers=h, json=_set(GIT_APP, "source.repository", bad))
                assert r.status_code == 422, bad
    finally:
        await running.shutdown()


async def test_isolation_and_roles(client, members):
    app = await make_app(client, members.developer)
    aid = app["id"]
    o = members.other
    missing = "0" * 32
    for method, url, body in (
        ("GET", f"/v1/applications/{aid}", None),
        ("PATCH", f"/v1/applications/{aid}", {"restart_policy": "no"}),
        ("DELETE", f"/v1/applications/{aid}", None),
        ("GET", f"/v1/environments/{app['environment_id']}/applications", None),
        ("POST", f"/v1/environments/{app['environment_id']}/applications", WEB_APP),
    ):
        theirs = problem(await client.request(method, url, headers=o, json=body), 404)
        ghost = url.replace(aid, missing).replace(app["environment_id"], missing)
        absent = problem(await client.request(method, ghost, headers=o, json=body), 404)
        assert theirs["type"] == absent["type"] and theirs["title"] == absent["title"]
    assert (await client.get("/v1/applications", headers=o)).json() == []

    v = members.viewer
    problem(await client.patch(f"/v1/applications/{aid}", headers=v, json={"restart_policy": "no"}), 403)
    problem(await client.post(f"/v1/environments/{app['environment_id']}/applications", headers=v, json=WEB_APP), 403)
    problem(await client.delete(f"/v1/applications/{aid}", headers=members.developer), 403)
    assert (await client.delete(f"/v1/applications/{aid}", headers=members.admin)).status_code == 204
    problem(await client.get(f"/v1/applications/{aid}", headers=v), 404)
