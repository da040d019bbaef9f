"""Preview environments against the real api (NATS, Postgres): a pull request's delivery makes a preview
application from its head commit (its own host, variables layered, deployed through the normal deployment
path), new commits redeploy it, closing destroys it with its volumes and its fresh database, and what is
left is listed and found empty; forks are refused unless allowed, the limit and the time-to-live hold, and
one comment on the pull request is updated in place at a local stand-in of each forge's API. The
scheduler's stand-in takes the commands off the real bus."""

from __future__ import annotations

import json
import re
from typing import Any

import asyncpg
import pytest

from tests.api.conftest import make_app
from tests.api.module_api import until as _until
from tests.api.preview_bodies import CommentReceiver, signed_pr
from tests.api.test_databases_api import DatabaseDouble
from tests.api.test_webhooks import deliver, hook, sha

START, REMOVE = "cmd.deployment.start", "cmd.application.remove"
APP = {
    "name": "blog",
    "source": {"kind": "git", "repository": "https://git.example.com/acme/blog.git", "branch": "main"},
    "services": [{"kind": "web", "name": "web", "port": 3000}],
    "env": [{"name": "MODE", "value": "production"}, {"name": "KEEP", "value": "kept"}],
}


@pytest.fixture
def api_settings(api_settings):
    return api_settings.model_copy(update={"webhook_debounce_s": 0.2})


async def previews(client, members, app_id: str) -> list[dict]:
    r = await client.get(f"/v1/applications/{app_id}/previews", headers=members.viewer)
    assert r.status_code == 200, r.text
    return r.json()


async def left_in_api(client, members, api_urls, app_id: str) -> dict:
    """Everything of the application's previews the api still holds."""
    apps = (await client.get("/v1/applications", headers=members.viewer)).json()
    apps = apps.get("items", apps) if isinstance(apps, dict) else apps
    dbs = (await client.get("/v1/databases", headers=members.viewer)).json()
    conn = await asyncpg.connect(api_urls["api"].replace("+asyncpg", ""))
    try:
        hosts = await conn.fetch("SELECT host FROM api.hosts WHERE host LIKE 'pr-%'")
        rows = await conn.fetch("SELECT id FROM api.previews WHERE application_id = $1", app_id)
    finally:
        await conn.close()
    return {
        "applications": [a["name"] for a in apps if "-pr-" in a["name"]],
        "databases": [d["name"] for d in (dbs.get("items", dbs) if isinstance(dbs, dict) else dbs)],
        "hosts": [r["host"] for r in hosts],
        "previews": [r["id"] for r in rows],
    }


async def setup(client, members, forge: str, receiver: CommentReceiver | None = None, **settings) -> tuple:
    app = await make_app(client, members.developer, APP)
    created = await hook(client, members, app["id"])
    if receiver is not None:
        target = {"forge": forge, "api_url": f"{receiver.base}/api", "repository": "acme/blog", "token": "t0k"}
        if forge == "bitbucket-server":
            target["repository"] = "ACME/blog"
        r = await client.put(f"/v1/applications/{app['id']}/webhook/status", headers=members.developer, json=target)
        assert r.status_code == 200, r.text
    body = {"env": [{"name": "MODE", "value": "preview"}, {"name": "TOKEN", "value": "s3cr3t", "secret": True}]}
    r = await client.put(
        f"/v1/applications/{app['id']}/previews/settings", headers=members.developer, json={**body, **settings}
    )
    assert r.status_code == 200, r.text
    assert "s3cr3t" not in r.text
    return app, created


@pytest.mark.parametrize("forge", ["github", "gitlab", "forgejo", "bitbucket", "bitbucket-server"])
async def test_a_pull_request_preview_is_made_updated_and_destroyed(client, members, scheduler, api_urls, forge):
    receiver = await CommentReceiver(forge, "t0k").start()
    try:
        app, created = await setup(client, members, forge, receiver)
        raw, h = signed_pr(forge, created["secret"], "opened", 7, sha(1))
        r = await deliver(client, created["url"], raw, h)
        assert r.status_code == 202 and r.json()["result"] == "queued", r.text
        (start,) = await scheduler.wait_for(START)
        spec = start.data["spec"]
        assert spec["name"] == "blog-pr-7" and spec["source"]["ref"] == sha(1)
        assert start.data["options"]["drain_grace_s"] == 2.0  # not the scheduler's 30 s: its status waits on it
        env = {v["name"]: v.get("value") for v in spec["env"]}
        assert env["MODE"] == "preview" and env["KEEP"] == "kept"  # preview-only values win
        assert "pr-7-blog.localhost" in json.dumps(spec["services"])

        async def recorded():
            found = await previews(client, members, app["id"])
            return found if found and found[0]["deployment_id"] else None

        (preview,) = await _until(recorded, what="the preview's deployment recorded")
        assert preview["number"] == 7 and preview["host"] == "pr-7-blog.localhost"
        assert preview["deployment_id"] and preview["head_commit"] == sha(1)
        await scheduler.succeeded(preview["deployment_id"], start.data["application_id"], start.data["team_id"], "i:1")

        async def deployed():
            texts = list(receiver.comments.values())
            return texts if texts and "deployed" in texts[0] else None

        (text,) = await _until(deployed, what="the comment saying deployed")
        assert "pr-7-blog.localhost" in text and sha(1)[:12] in text

        async def reported():  # the preview's own commit status, beside the comment
            final = [d for d in receiver.statuses if d["state"] in ("success", "SUCCESSFUL")]
            return final or None

        (final,) = await _until(reported, what="the preview's commit status")
        assert {d.get("context") or d.get("name") for d in receiver.statuses} == {"berth/preview"}
        assert all(d.get("key", "berth-preview") == "berth-preview" for d in receiver.statuses)
        paths = [r.path for r in receiver.accepted if re.match(receiver.status.rule["path"], r.path)]
        assert paths and all(sha(1) in p for p in paths)
        assert preview["deployment_id"] in (final.get("target_url") or final.get("url"))

        raw, h = signed_pr(forge, created["secret"], "synchronize", 7, sha(1))  # e.g. a title edited: same commit
        r = await deliver(client, created["url"], raw, h)
        assert r.status_code == 200 and "already" in r.json()["detail"], r.text
        raw, h = signed_pr(forge, created["secret"], "synchronize", 7, sha(2))
        assert (await deliver(client, created["url"], raw, h)).status_code == 202
        _, again = await scheduler.wait_for(START, 2)
        assert again.data["application_id"] == start.data["application_id"]
        assert again.data["spec"]["source"]["ref"] == sha(2)
        assert again.data["options"] == start.data["options"]

        raw, h = signed_pr(forge, created["secret"], "closed", 7, sha(2))
        assert (await deliver(client, created["url"], raw, h)).status_code == 202
        (remove,) = await scheduler.wait_for(REMOVE)
        assert remove.data["application_id"] == start.data["application_id"] and remove.data["delete_volumes"]
        assert remove.data["drain_grace_s"] == 2.0
        await scheduler.answer_removal(remove)

        async def destroyed():
            texts = list(receiver.comments.values())
            return texts if texts and "destroyed" in texts[0] else None

        await _until(destroyed, what="the comment saying destroyed")
        assert len(receiver.comments) == 1 and not receiver.problems  # one comment, updated in place
        left = await left_in_api(client, members, api_urls, app["id"])
        assert left == {"applications": [], "databases": [], "hosts": [], "previews": []}
    finally:
        await receiver.stop()


async def test_a_pull_request_body_that_does_not_read_is_refused(client, members, scheduler):
    app, created = await setup(client, members, "github")
    raw = json.dumps({"action": "opened", "number": 3, "pull_request": {"head": {"ref": "x"}}}).encode()
    from tests.api.forge_bodies import headers

    r = await deliver(client, created["url"], raw, headers("github", created["secret"], raw, event="pull_request"))
    assert r.status_code == 400 and "pull_request.head.sha" in r.text, r.text
    assert await previews(client, members, app["id"]) == []


async def test_forks_are_refused_unless_allowed(client, members, scheduler):
    app, created = await setup(client, members, "github")
    raw, h = signed_pr("github", created["secret"], "opened", 3, sha(3), fork=True)
    r = await deliver(client, created["url"], raw, h)
    assert r.status_code == 200 and r.json()["result"] == "skipped" and "fork" in r.json()["detail"]
    assert await previews(client, members, app["id"]) == []
    r = await client.put(
        f"/v1/applications/{app['id']}/previews/settings", headers=members.developer, json={"allow_forks": True}
    )
    assert r.status_code == 200, r.text
    raw, h = signed_pr("github", created["secret"], "opened", 3, sha(3), fork=True)
    assert (await deliver(client, created["url"], raw, h)).status_code == 202
    (start,) = await scheduler.wait_for(START)
    assert start.data["spec"]["source"]["repository"] == "https://git.example.com/mallory/blog.git"


async def test_previews_off_the_limit_and_the_time_to_live(client, members, scheduler, api_urls):
    app = await make_app(client, members.developer, APP)
    created = await hook(client, members, app["id"])
    raw, h = signed_pr("github", created["secret"], "opened", 1, sha(1))
    r = await deliver(client, created["url"], raw, h)
    assert r.status_code == 200 and "previews are off" in r.json()["detail"]
    body = {"max_previews": 1, "ttl_hours": 1, "host_pattern": "{app}-{number}.{base}"}
    r = await client.put(f"/v1/applications/{app['id']}/previews/settings", headers=members.developer, json=body)
    assert r.status_code == 200, r.text
    raw, h = signed_pr("github", created["secret"], "opened", 1, sha(1))
    assert (await deliver(client, created["url"], raw, h)).status_code == 202
    raw, h = signed_pr("github", created["secret"], "opened", 2, sha(2))
    r = await deliver(client, created["url"], raw, h)
    assert r.status_code == 200 and "limit" in r.json()["detail"]
    (start,) = await scheduler.wait_for(START)
    (preview,) = await previews(client, members, app["id"])
    assert preview["host"] == "blog-1.localhost"
    conn = await asyncpg.connect(api_urls["api"].replace("+asyncpg", ""))
    try:  # no activity for two hours: past the time-to-live
        await conn.execute("UPDATE api.previews SET last_activity_at = now() - interval '2 hours'")
    finally:
        await conn.close()
    (remove,) = await scheduler.wait_for(REMOVE, timeout=15)
    assert remove.data["application_id"] == start.data["application_id"]
    await scheduler.answer_removal(remove)
    await _until(lambda: _empty(client, members, app["id"]), what="the expired preview gone")


async def _empty(client, members, app_id: str) -> bool:
    return await previews(client, members, app_id) == []


def test_a_bad_host_pattern_is_refused_by_the_domain():
    from berth_api.domain.previews import check_pattern, preview_host

    assert check_pattern("pr.{base}") is not None
    assert check_pattern("pr-{number}-{nope}.{base}") is not None
    assert check_pattern("pr-{number}-{app}.{base}") is None
    assert preview_host("pr-{number}-{app}.{base}", 4, "shop", "prod", "api", "example.com", False) == (
        "api-pr-4-shop.example.com"
    )


@pytest.fixture
async def dbs(nats_server, api):
    double = await DatabaseDouble(nats_server.url).start()
    yield double
    await double.stop()


async def test_a_fresh_database_per_preview_is_linked_and_deleted(client, members, scheduler, dbs, api_urls):
    app, created = await setup(client, members, "github", database="fresh")
    raw, h = signed_pr("github", created["secret"], "opened", 5, sha(5))
    assert (await deliver(client, created["url"], raw, h)).status_code == 202
    (start,) = await scheduler.wait_for(START)
    assert any(v["name"] == "DATABASE_URL" for v in start.data["spec"]["env"])
    (run,) = await dbs.wait_for("cmd.database.run")
    await dbs.changed(run[2], "running")
    (preview,) = await previews(client, members, app["id"])
    assert preview["database_id"]
    raw, h = signed_pr("github", created["secret"], "closed", 5, sha(5))
    assert (await deliver(client, created["url"], raw, h)).status_code == 202
    (remove,) = await scheduler.wait_for(REMOVE)
    await scheduler.answer_removal(remove)
    (gone,) = await dbs.wait_for("cmd.database.remove", timeout=15)
    assert gone[2].data["keep_volume"] is False  # the preview's data goes with it
    await dbs.changed(gone[2], "removed")
    await _until(lambda: _empty(client, members, app["id"]), what="the preview gone")
    left = await left_in_api(client, members, api_urls, app["id"])
    assert left == {"applications": [], "databases": [], "hosts": [], "previews": []}


COMPOSE = """services:
  web:
    build: .
    ports: ["8080", "9001"]
  cache:
    image: busybox
    command: ["sleep", "infinity"]
"""


async def compose_preview(client, members, scheduler, body: dict, forge: str, number: int) -> Any:
    """The application ``body`` made with previews on, and the start of the preview of its pull request
    ``number`` opened on ``forge``."""
    app = await make_app(client, members.developer, body)
    created = await hook(client, members, app["id"])
    r = await client.put(f"/v1/applications/{app['id']}/previews/settings", headers=members.developer, json={})
    assert r.status_code == 200, r.text
    raw, h = signed_pr(forge, created["secret"], "opened", number, sha(number))
    assert (await deliver(client, created["url"], raw, h)).status_code == 202
    (start,) = await scheduler.wait_for(START)
    return start


async def test_a_compose_application_gets_previews_too(client, members, scheduler):
    body = {
        "name": "shop",
        "source": {"kind": "git", "repository": "https://git.example.com/acme/shop.git", "branch": "main"},
        "compose": {"inline": COMPOSE},
        "hosts": [
            {"service": "web", "port": 8080, "host": "shop.example.com"},
            {"service": "web", "port": 9001, "host": "admin.shop.example.com"},  # another port: a custom host only
        ],
    }
    start = await compose_preview(client, members, scheduler, body, "gitlab", 4)
    spec = start.data["spec"]
    assert spec["name"] == "shop-pr-4" and spec["source"]["ref"] == sha(4)
    services = json.dumps(spec["services"])
    assert "pr-4-shop.localhost" in services and "shop.example.com" not in services  # custom domains stay
    # the other port is routed too, on its own preview host from the pattern (its custom host stays)
    (web,) = [svc for svc in spec["services"] if svc["name"] == "web"]
    assert web["port_hosts"] == [{"port": 9001, "hosts": ["web-9001-pr-4-shop.localhost"]}], web
    assert web["hosts"] == ["pr-4-shop.localhost", "web-9001-pr-4-shop.localhost"], web


PORTS = """services:
  web:
    build: .
    ports: ["8080", "9001", "9002"]
  files:
    image: busybox
    command: ["httpd", "-f", "-p", "9000"]
    expose: ["9000", "9100"]
"""


async def test_a_preview_routes_each_port_of_a_service_as_the_application_does(client, members, scheduler):
    """A second port on a generated host of its own keeps its path on its preview host (``<service>-<port>``
    in the pattern); one routed under a path of another service's host keeps that path under that service's
    preview host; the preview hosts follow the pattern, ``{service}`` included."""
    body = {
        "name": "shop",
        "source": {"kind": "git", "repository": "https://git.example.com/acme/shop.git", "branch": "main"},
        "compose": {"inline": PORTS},
        "hosts": [
            {"service": "web", "port": 8080, "host": "shop.example.com"},
            {"service": "web", "port": 9001, "path": "/ui"},  # a generated host of its own, under a path
            {"service": "files", "port": 9000},
            {"service": "files", "port": 9100, "host": "shop.example.com", "path": "/files"},
        ],
    }
    app = await make_app(client, members.developer, body)
    assert [svc["hosts"] for svc in app["services"] if svc["kind"] == "web"] == [
        ["web-shop-production.localhost", "web-9001-shop-production.localhost", "shop.example.com"],
        ["files-shop-production.localhost", "shop.example.com"],
    ], app["services"]
    created = await hook(client, members, app["id"])
    settings = {"host_pattern": "{service}-pr-{number}.{base}"}
    r = await client.put(f"/v1/applications/{app['id']}/previews/settings", headers=members.developer, json=settings)
    assert r.status_code == 200, r.text
    raw, h = signed_pr("github", created["secret"], "opened", 6, sha(6))
    assert (await deliver(client, created["url"], raw, h)).status_code == 202
    (start,) = await scheduler.wait_for(START)
    services = {svc["name"]: svc for svc in start.data["spec"]["services"]}
    web, files = services["web"], services["files"]
    assert (web["hosts"], web["port_hosts"]) == (
        ["web-pr-6.localhost", "web-9001-pr-6.localhost"],
        [{"port": 9001, "hosts": ["web-9001-pr-6.localhost"], "path": "/ui"}],
    ), web
    assert (files["hosts"], files["port_hosts"]) == (
        ["files-pr-6.localhost", "web-pr-6.localhost"],
        [{"port": 9100, "hosts": ["web-pr-6.localhost"], "path": "/files"}],
    ), files
    assert "shop.example.com" not in json.dumps(services) and "shop-production" not in json.dumps(services)
    preview = start.data["application_id"]
    shown = (await client.get(f"/v1/applications/{preview}", headers=members.viewer)).json()
    assert [sorted(svc["hosts"]) for svc in shown["services"] if svc["kind"] == "web"] == [
        sorted(web["hosts"]),
        sorted(files["hosts"]),
    ]


SHARED = """services:
  web:
    build: .
    ports: ["8080"]
  api:
    image: busybox
    command: ["httpd", "-f", "-p", "9000"]
    ports: ["9000"]
  admin:
    image: busybox
    command: ["httpd", "-f", "-p", "9100"]
    ports: ["9100"]
"""


async def test_a_preview_keeps_a_service_routed_under_a_path_of_another_services_host(client, members, scheduler):
    """``/api`` of the application's host (custom, or another service's generated host) stays ``/api`` of
    the preview's host for that service: the preview keeps one origin, as the application has."""
    body = {
        "name": "shop",
        "source": {"kind": "git", "repository": "https://git.example.com/acme/shop.git", "branch": "main"},
        "compose": {"inline": SHARED},
        "hosts": [
            {"service": "web", "port": 8080, "host": "shop.example.com"},
            {"service": "api", "port": 9000, "host": "shop.example.com", "path": "/api"},
            {"service": "admin", "port": 9100, "path": "/admin"},  # its own generated host, under a path
        ],
    }
    start = await compose_preview(client, members, scheduler, body, "gitlab", 5)
    services = {svc["name"]: svc for svc in start.data["spec"]["services"]}
    web_host = "pr-5-shop.localhost"
    assert web_host in services["web"]["hosts"] and "shop.example.com" not in json.dumps(services)
    assert web_host in services["api"]["hosts"] and services["api"]["path_prefix"] == "/api", services["api"]
    assert web_host not in services["admin"]["hosts"] and services["admin"]["path_prefix"] == "/admin"
    preview = (await client.get(f"/v1/applications/{start.data['application_id']}", headers=members.viewer)).json()
    assert {(h["service"], h.get("host"), h.get("path")) for h in preview["compose"]["hosts"]} == {
        ("web", None, None),
        ("api", web_host, "/api"),
        ("admin", None, "/admin"),
    }, preview["compose"]["hosts"]


async def test_deleting_the_application_destroys_its_previews(client, members, scheduler, api_urls):
    app, created = await setup(client, members, "github")
    raw, h = signed_pr("github", created["secret"], "opened", 9, sha(9))
    assert (await deliver(client, created["url"], raw, h)).status_code == 202
    (start,) = await scheduler.wait_for(START)
    r = await client.delete(f"/v1/applications/{app['id']}", headers=members.admin)
    assert r.status_code == 204, r.text  # never deployed itself: deleted at once
    (remove,) = await scheduler.wait_for(REMOVE, timeout=15)
    assert remove.data["application_id"] == start.data["application_id"] and remove.data["delete_volumes"]
    await scheduler.answer_removal(remove)

    async def no_preview_row():
        conn = await asyncpg.connect(api_urls["api"].replace("+asyncpg", ""))
        try:
            return await conn.fetchval("SELECT count(*) FROM api.previews") == 0
        finally:
            await conn.close()

    await _until(no_preview_row, what="the orphaned preview gone")
    left = await left_in_api(client, members, api_urls, app["id"])
    assert left == {"applications": [], "databases": [], "hosts": [], "previews": []}


async def test_key_rotation_reseals_the_preview_variables(api, client, members, scheduler, api_urls):
    from berth_api.usecases.rotation import rotate
    from berth_common.db import make_engine, make_sessionmaker

    _app, created = await setup(client, members, "github")
    engine = make_engine(api_urls["api"], "api")
    try:
        done = await rotate(make_sessionmaker(engine), api.settings.secrets_key_path)
    finally:
        await engine.dispose()
    assert done.resealed.counts["preview_settings"] == 1
    raw, h = signed_pr("github", created["secret"], "opened", 2, sha(2))
    assert (await deliver(client, created["url"], raw, h)).status_code == 202
    (start,) = await scheduler.wait_for(START)  # the running api opens them with the new key
    env = {v["name"]: v.get("value") for v in start.data["spec"]["env"]}
    assert env["MODE"] == "preview" and "TOKEN" in env


async def test_settings_off_shown_and_a_preview_destroyed_by_hand(client, members, scheduler):
    quiet = await make_app(client, members.developer, {**APP, "name": "quiet"})
    r = await client.get(f"/v1/applications/{quiet['id']}/previews/settings", headers=members.viewer)
    assert r.status_code == 200 and r.json()["enabled"] is False, r.text
    app, created = await setup(client, members, "github", max_previews=2)
    shown = (await client.get(f"/v1/applications/{app['id']}/previews/settings", headers=members.viewer)).json()
    assert shown["enabled"] and shown["max_previews"] == 2
    assert {"name": "TOKEN", "value": None, "secret": True} in shown["env"]  # never the secret's value
    raw, h = signed_pr("github", created["secret"], "opened", 6, sha(6))
    assert (await deliver(client, created["url"], raw, h)).status_code == 202
    (start,) = await scheduler.wait_for(START)
    (preview,) = await previews(client, members, app["id"])
    path = f"/v1/applications/{app['id']}/previews/{preview['id']}"
    assert (await client.delete(path, headers=members.developer)).status_code == 403
    assert (await client.delete(path, headers=members.admin)).status_code == 202
    (remove,) = await scheduler.wait_for(REMOVE, timeout=15)
    assert remove.data["application_id"] == start.data["application_id"]


async def test_a_preview_keeps_two_ports_of_a_service_on_one_host_by_path(client, members, scheduler):
    """The application's one host for the web port at ``/`` and the API port at ``/api`` is the preview's
    host for both, by the same paths."""
    body = {
        "name": "shop",
        "source": {"kind": "git", "repository": "https://git.example.com/acme/shop.git", "branch": "main"},
        "compose": {"inline": PORTS},
        "hosts": [
            {"service": "web", "port": 8080, "host": "shop.example.com"},
            {"service": "web", "port": 9001, "host": "shop.example.com", "path": "/api"},
        ],
    }
    start = await compose_preview(client, members, scheduler, body, "github", 7)
    (web,) = [svc for svc in start.data["spec"]["services"] if svc["name"] == "web"]
    assert (web["hosts"], web["port_hosts"], web["shared_hosts"]) == (
        ["pr-7-shop.localhost"],
        [{"port": 9001, "hosts": ["pr-7-shop.localhost"], "path": "/api"}],
        ["pr-7-shop.localhost"],
    ), web


async def test_a_preview_keeps_a_service_under_a_path_of_a_second_ports_generated_host(client, members, scheduler):
    """``/docs`` of the console port's generated host stays ``/docs`` of that port's preview host."""
    two = "services:\n  minio:\n    image: minio/minio\n    expose: ['9000', '9001']\n  docs:\n    image: nginx\n"
    body = {
        "name": "shop",
        "source": {"kind": "git", "repository": "https://git.example.com/acme/shop.git", "branch": "main"},
        "compose": {"inline": two},
        "hosts": [
            {"service": "minio", "port": 9000},
            {"service": "minio", "port": 9001},
            {"service": "docs", "port": 80, "host": "minio-9001-shop-production.localhost", "path": "/docs"},
        ],
    }
    start = await compose_preview(client, members, scheduler, body, "github", 8)
    services = {svc["name"]: svc for svc in start.data["spec"]["services"]}
    console = "minio-9001-pr-8-shop.localhost"
    assert services["minio"]["port_hosts"] == [{"port": 9001, "hosts": [console]}], services["minio"]
    assert (services["docs"]["hosts"], services["docs"]["path_prefix"]) == (
        ["docs-pr-8-shop.localhost", console],
        "/docs",
    ), services["docs"]
