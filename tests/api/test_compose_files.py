"""A compose application's files (``compose.files``): a bind mount of ``./files/<path>`` is the application's
file (or its files under that directory), the contents are stored sealed and shown only as path, mode, size
and sha256, they travel sealed in the deployment's command and are masked in the deployment shown; bad paths
and mounts of files not given are 422s naming the field; a template with files deploys (no 501)."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from berth_api.adapters.sealed import reseal_all
from berth_api.adapters.secretbox import SecretBox
from berth_api.domain.compose import ComposeRefusal, Policy, translate
from berth_common import sealing
from berth_common.db import make_engine, make_sessionmaker
from tests.api.conftest import make_app, make_project
from tests.api.template_support import FIXTURES, dokploy_files
from tests.api.test_key_rotation import _opens_with
from tests.api.test_projects import problem

SECRET = "s3cr3t-Kq9Zw1-never-shown"
CONF = f"server {{ listen 80; auth_basic_user_file {SECRET}; }}\n"
TEXT = (
    "services:\n  web:\n    image: busybox\n    ports: ['8080']\n    volumes:\n"
    "      - ./files/nginx/default.conf:/etc/nginx/conf.d/default.conf:ro\n"
    "      - ./files/init:/docker-entrypoint-initdb.d\n"
)
FILES = [
    {"path": "nginx/default.conf", "content": CONF},
    {"path": "init/01.sql", "content": "create table t (id int);\n", "mode": 0o600},
    {"path": "init/02.sql", "content": "insert into t values (1);\n"},
]


def _body(files=FILES, text=TEXT) -> dict:
    return {"name": "proxy", "compose": {"inline": text, "files": files}}


def _shown(f: dict) -> dict:
    data = f["content"].encode()
    return {
        "path": f["path"],
        "mode": f.get("mode", 0o644),
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


async def _create(client, members, body: dict):
    projects = (await client.get("/v1/projects", headers=members.developer)).json()
    found = [p for p in projects if p["name"] == "files"]
    project = found[0] if found else await make_project(client, members.developer, "files")
    env = project["environments"][0]["id"]
    return await client.post(f"/v1/environments/{env}/applications", headers=members.developer, json=body)


async def test_files_are_shown_without_content_and_travel_sealed_to_the_scheduler(client, members, scheduler):
    app = await make_app(client, members.developer, _body())
    assert SECRET not in json.dumps(app)
    assert app["compose"]["files"] == [_shown(f) for f in FILES]
    (web,) = app["compose"]["translated"]["services"]
    assert web["files"] == [
        {"source": "nginx/default.conf", "target": "/etc/nginx/conf.d/default.conf", "read_only": True},
        {"source": "init", "target": "/docker-entrypoint-initdb.d"},
    ]
    assert "binds" not in web  # no host path
    got = await client.get(f"/v1/applications/{app['id']}", headers=members.viewer)
    assert SECRET not in got.text and got.json()["compose"]["files"] == [_shown(f) for f in FILES]

    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    assert SECRET not in r.text
    assert r.json()["spec"]["files"][0] == {"path": "nginx/default.conf", "content": None, "mode": 0o644}
    shown = await client.get(f"/v1/deployments/{r.json()['id']}", headers=members.viewer)
    assert SECRET not in shown.text
    (cmd,) = await scheduler.wait_for("cmd.deployment.start", 1)
    assert SECRET not in json.dumps(cmd.data)
    sent = cmd.data["spec"]["files"]
    assert [(f["path"], f["mode"]) for f in sent] == [(f["path"], f.get("mode", 0o644)) for f in FILES]
    assert [sealing.unseal(f["content"], f"berth/file/{f['path']}") for f in sent] == [f["content"] for f in FILES]
    assert cmd.data["spec"]["services"][0]["files"] == web["files"]


async def test_a_patch_keeps_a_stored_file_given_without_content(client, members, scheduler):
    app = await make_app(client, members.developer, _body())
    kept = [{"path": "nginx/default.conf"}, {"path": "init/01.sql", "content": "select 2;\n"}]
    text = TEXT.replace("      - ./files/init:/docker-entrypoint-initdb.d\n", "")
    r = await client.patch(
        f"/v1/applications/{app['id']}", headers=members.developer, json={"compose": {"inline": text, "files": kept}}
    )
    assert r.status_code == 200, r.text
    assert r.json()["compose"]["files"] == [_shown(FILES[0]), _shown({"path": "init/01.sql", "content": "select 2;\n"})]
    d = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert d.status_code == 202, d.text
    (cmd,) = await scheduler.wait_for("cmd.deployment.start", 1)
    opened = {f["path"]: sealing.unseal(f["content"], f"berth/file/{f['path']}") for f in cmd.data["spec"]["files"]}
    assert opened == {"nginx/default.conf": CONF, "init/01.sql": "select 2;\n"}
    missing = {"compose": {"inline": text, "files": [{"path": "nginx/other.conf"}]}}
    err = problem(await client.patch(f"/v1/applications/{app['id']}", headers=members.developer, json=missing), 422)
    assert err["errors"][0]["loc"] == "/body/compose/files/0/content"


async def test_bad_paths_and_mounts_of_files_not_given_are_refused_naming_the_field(client, members):
    for path, words in [("../etc/passwd", "'..'"), ("/etc/passwd", "relative"), ("a//b", "'//'")]:
        err = problem(await _create(client, members, _body([{"path": path, "content": "x"}], "services: {}")), 422)
        assert err["errors"][0]["loc"] == "/body/compose/files/0/path" and words in err["errors"][0]["detail"]
    big = [{"path": "big.conf", "content": "x" * (256 * 1024 + 1)}]
    err = problem(await _create(client, members, _body(big)), 422)
    assert err["errors"][0]["loc"] == "/body/compose/files/0/content"
    err = problem(await _create(client, members, _body(FILES[:1])), 422)  # ./files/init: nothing under it
    assert err["errors"][0]["loc"] == "/body/compose/services/web/volumes/1/source"
    assert "compose.files has no file files/init" in err["errors"][0]["detail"]
    escape = TEXT.replace("./files/init", "./files/../../etc")
    err = problem(await _create(client, members, _body(FILES, escape)), 422)
    assert err["errors"][0]["loc"] == "/body/compose/services/web/volumes/1/source"
    relative = TEXT.replace("./files/init", "./init")
    err = problem(await _create(client, members, _body(FILES, relative)), 422)
    assert "compose.files" in err["errors"][0]["detail"]


DOCUMENT = """name: Static page
slug: static-page
description: A page whose config holds a generated secret
variables:
  TOKEN: {kind: password, length: 24}
files:
  - path: www/index.html
    content: "token=${var.TOKEN}"
compose: |
  services:
    web:
      image: busybox
      ports: ['8080']
      volumes:
        - ./files/www:/www:ro
"""


async def test_a_template_with_files_deploys_its_rendered_files_sealed(client, members, scheduler):
    project = await make_project(client, members.developer, "tpl")
    body = {"environment_id": project["environments"][0]["id"], "document": DOCUMENT}
    r = await client.post("/v1/templates/deploy", headers=members.developer, json=body)
    assert r.status_code == 201, r.text
    app = r.json()
    (shown,) = app["compose"]["files"]
    assert shown["path"] == "www/index.html" and shown["size"] == len("token=") + 24
    d = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert d.status_code == 202, d.text
    (cmd,) = await scheduler.wait_for("cmd.deployment.start", 1)
    (sent,) = cmd.data["spec"]["files"]
    content = sealing.unseal(sent["content"], "berth/file/www/index.html")
    assert content.startswith("token=") and len(content) == 30 and "${" not in content
    assert content[6:] not in json.dumps(cmd.data) and content[6:] not in d.text + json.dumps(app)


async def test_key_rotation_reseals_the_files(api, client, members, api_urls):
    await make_app(client, members.developer, _body())
    old, new = api.settings.secrets_key_path.read_bytes().strip(), os.urandom(32)
    engine = make_engine(api_urls["api"], "api")
    try:
        async with make_sessionmaker(engine)() as s, s.begin():
            out = await reseal_all(s, SecretBox([new, old]))
    finally:
        await engine.dispose()
    assert (out.counts["application_files"], out.current["application_files"]) == (3, 0)
    assert await _opens_with(api_urls, new) == 3  # every file opens with the new key alone


COOLIFY = """# documentation: https://example.org/files
# slogan: An nginx config written by Coolify
# tags: web
# port: 80

services:
  web:
    image: nginx:1.27-alpine
    environment:
      - SERVICE_FQDN_WEB
      - SERVICE_PASSWORD_ADMIN
    volumes:
      - type: bind
        source: ./nginx/default.conf
        target: /etc/nginx/conf.d/default.conf
        content: |
          server { listen 80; set $$admin "${SERVICE_PASSWORD_ADMIN}"; }
"""


async def test_imported_coolify_and_dokploy_templates_with_files_deploy(client, members, scheduler):
    project = await make_project(client, members.developer, "imported")
    env = project["environments"][0]["id"]
    imports = [
        {"format": "coolify", "files": {"nginx-conf.yaml": COOLIFY}},
        {"format": "dokploy", "files": dokploy_files(FIXTURES / "dokploy" / "shadowed-mounts")},
    ]
    made = []
    for i, body in enumerate(imports):
        r = await client.post("/v1/templates/import", headers=members.developer, json=body)
        assert r.status_code == 200, r.text
        deploy = {"environment_id": env, "name": f"imported-{i}", "document": r.json()["template"]["document"]}
        r = await client.post("/v1/templates/deploy", headers=members.developer, json=deploy)
        assert r.status_code == 201, r.text
        made.append(r.json())
    coolify, dokploy = made
    assert [f["path"] for f in coolify["compose"]["files"]] == ["nginx/default.conf"]
    (web,) = coolify["compose"]["translated"]["services"]
    assert web["files"] == [{"source": "nginx/default.conf", "target": "/etc/nginx/conf.d/default.conf"}]
    db = next(s for s in dokploy["compose"]["translated"]["services"] if s["name"] == "db")
    assert db["files"] == [{"source": "init.sql", "target": "/docker-entrypoint-initdb.d/init.sql", "read_only": True}]
    d = await client.post(f"/v1/applications/{coolify['id']}/deployments", headers=members.developer)
    assert d.status_code == 202, d.text
    (cmd,) = await scheduler.wait_for("cmd.deployment.start", 1)
    (sent,) = cmd.data["spec"]["files"]
    content = sealing.unseal(sent["content"], "berth/file/nginx/default.conf")
    password = content.split('"')[1]  # the generated password, rendered into the file
    assert len(password) >= 16 and "${" not in content
    assert password not in json.dumps(cmd.data) + d.text + json.dumps(coolify)


def _bind(source: str, target: str = "/etc/app", **extra) -> dict:
    return {
        "services": {
            "web": {"image": "busybox", "volumes": [{"type": "bind", "source": source, "target": target, **extra}]}
        }
    }


def test_a_bind_of_files_translates_to_the_services_files_exactly():
    policy = Policy(files=frozenset({"nginx/default.conf", "nginx/snippets/a.conf", "init.sql"}))
    model = _bind("./files/nginx/", "/etc/nginx/conf.d", read_only=True, bind={"create_host_path": True})
    translated = translate(model, ["web"], policy=policy)
    (web,) = translated["services"]
    assert web["files"] == [{"source": "nginx", "target": "/etc/nginx/conf.d", "read_only": True}]
    assert "binds" not in web
    assert any(
        n.startswith("services/web/volumes/0/read_only: the files are bind-mounted read-only")
        for n in translated["notes"]
    )
    (web,) = translate(_bind("./files/init.sql", "/docker-entrypoint-initdb.d/1.sql"), ["web"], policy=policy)[
        "services"
    ]
    assert web["files"] == [{"source": "init.sql", "target": "/docker-entrypoint-initdb.d/1.sql"}]
    for source, words in [
        ("./files/nginx/default", "compose.files has no file files/nginx/default (nor files under it)"),
        ("./files/../etc/passwd", "'..'"),
        ("./files/", "a file of compose.files is named ./files/<path>"),
    ]:
        with pytest.raises(ComposeRefusal) as refused:
            translate(_bind(source), ["web"], policy=policy)
        assert refused.value.spot == "services/web/volumes/0/source" and words in refused.value.why, source
    with pytest.raises(ComposeRefusal) as refused:  # no files given: a host path is still the allow-list's
        translate(_bind("/srv/app"), ["web"], policy=Policy())
    assert "allowed only under the paths the administrator lists" in refused.value.why
