"""Git forge webhooks against the real api (NATS, Postgres): the webhook's secret shown once and sealed,
each forge's real signature verified over the raw body, tampered, unsigned, wrong-secret and unknown
deliveries refused alike, replays refused, bodies capped, pings answered, skip markers and watch paths
obeyed, several pushes debounced into one deployment of the newest commit, and a waiting push deployed
after an api restart. The scheduler's stand-in takes the commands off the real bus."""

from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace

import asyncpg
import httpx
import pytest

from berth_api.settings import ApiSettings
from berth_api.usecases import Deps
from berth_api.usecases.webhook_deliveries import Debouncer
from tests.api.conftest import RunningApi, bearer, make_app, start_api
from tests.api.forge_bodies import FORGES, headers, push_body, signed_push
from tests.api.test_applications import GIT_APP
from tests.api.test_projects import problem

START = "cmd.deployment.start"
DEBOUNCE_S = 0.6


@pytest.fixture
def api_settings(api_settings):
    return api_settings.model_copy(
        update={
            "webhook_debounce_s": DEBOUNCE_S,
            "webhook_debounce_max_s": 20.0,
            "webhook_max_body_bytes": 64 * 1024,
            "webhook_failures_per_webhook": 1000,  # these tests refuse many deliveries on purpose
            "webhook_failures_per_address": 1000,  # (test_webhook_audit_limits.py covers the limits)
        }
    )


def sha(n: int) -> str:
    return f"{n:040x}"


async def git_app(client, members, name: str = "blog") -> dict:
    services = [{"kind": "web", "name": "web", "port": 3000}]  # no custom domain: several apps per test
    return await make_app(client, members.developer, {**GIT_APP, "name": name, "services": services})


async def hook(client, members, app_id: str, **body) -> dict:
    r = await client.post(f"/v1/applications/{app_id}/webhook", headers=members.developer, json=body or None)
    assert r.status_code == 201, r.text
    return r.json()


async def deliver(client, url: str, raw: bytes, h: dict) -> httpx.Response:
    return await client.post(httpx.URL(url).path, content=raw, headers=h)


async def deployments(client, members, app_id: str) -> list[dict]:
    r = await client.get(f"/v1/applications/{app_id}/deployments", headers=members.viewer)
    assert r.status_code == 200, r.text
    return r.json()


async def until_deployed(client, members, app_id: str, count: int = 1, timeout: float = 15.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        found = await deployments(client, members, app_id)
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"{len(found)} of {count} deployments"
        await asyncio.sleep(0.1)


async def test_webhook_secret_shown_once_sealed_and_rotated(client, members, api, api_urls):
    app = await git_app(client, members)
    created = await hook(client, members, app["id"], watch_paths=["site"], tags=True)
    secret = created["secret"]
    assert secret.startswith("bwhs_") and len(secret) > 40
    assert created["url"] == f"{api.url}/v1/webhooks/{created['id']}"
    r = await client.get(f"/v1/applications/{app['id']}/webhook", headers=members.viewer)
    assert r.status_code == 200 and "secret" not in r.json() and secret not in r.text
    assert r.json()["watch_paths"] == ["site"] and r.json()["tags"] is True
    problem(await client.post(f"/v1/applications/{app['id']}/webhook", headers=members.developer), 409)
    problem(await client.post(f"/v1/applications/{app['id']}/webhook", headers=members.viewer), 403)
    problem(await client.get(f"/v1/applications/{app['id']}/webhook", headers=members.other), 404)
    conn = await asyncpg.connect(api_urls["api"].replace("+asyncpg", ""))
    try:
        sealed = await conn.fetchval("SELECT sealed FROM api.webhooks WHERE id = $1", created["id"])
    finally:
        await conn.close()
    assert secret.encode() not in bytes(sealed)

    rotated = (await client.post(f"/v1/applications/{app['id']}/webhook/rotate", headers=members.developer)).json()
    assert rotated["secret"] != secret and rotated["url"] == created["url"] and rotated["rotated_at"]
    raw, h = signed_push("github", secret, "main", sha(1), files=["site/index.html"])
    assert problem(await deliver(client, created["url"], raw, h), 401)["detail"].startswith("The delivery could not")
    raw, h = signed_push("github", rotated["secret"], "main", sha(1), files=["site/index.html"])
    assert (await deliver(client, created["url"], raw, h)).status_code == 202

    r = await client.patch(f"/v1/applications/{app['id']}/webhook", headers=members.developer, json={"tags": False})
    assert r.status_code == 200 and r.json()["tags"] is False and r.json()["watch_paths"] == ["site"]
    bad = await client.patch(
        f"/v1/applications/{app['id']}/webhook", headers=members.developer, json={"watch_paths": ["../etc"]}
    )
    assert problem(bad, 422)["errors"][0]["loc"].startswith("/body/watch_paths")
    assert (await client.delete(f"/v1/applications/{app['id']}/webhook", headers=members.admin)).status_code == 204
    problem(await deliver(client, created["url"], raw, h), 401)  # gone: as unknown as any other URL


async def test_every_forge_push_deploys_its_commit(client, members, scheduler):
    hooks = {}
    for i, forge in enumerate(FORGES):
        app = await git_app(client, members, f"app-{i}")
        hooks[forge] = (app, await hook(client, members, app["id"]))
    for i, forge in enumerate(FORGES):
        app, created = hooks[forge]
        raw, h = signed_push(forge, created["secret"], "main", sha(100 + i))
        r = await deliver(client, created["url"], raw, h)
        assert r.status_code == 202, r.text
        assert r.json()["result"] == "queued" and r.json()["forge"] == forge and r.json()["commit"] == sha(100 + i)
    for i, forge in enumerate(FORGES):
        app, _ = hooks[forge]
        (dep,) = await until_deployed(client, members, app["id"])
        assert dep["commit"] == sha(100 + i), forge
        assert dep["spec"]["source"]["ref"] == sha(100 + i)
        assert dep["options"]["when_busy"] == "replace_queued" and dep["created_by"] is None
    starts = await scheduler.wait_for(START, len(FORGES))
    assert {s.data["spec"]["source"]["ref"] for s in starts} == {sha(100 + i) for i in range(len(FORGES))}
    r = await client.get(f"/v1/applications/{hooks['gitlab'][0]['id']}/webhook", headers=members.viewer)
    assert r.json()["last_result"].startswith("gitlab queued") and r.json()["waiting"] is None


async def test_unverified_deliveries_are_refused_alike(client, members, scheduler):
    app = await git_app(client, members)
    created = await hook(client, members, app["id"])
    secret, url = created["secret"], created["url"]
    answers = []
    for forge in FORGES:
        raw, h = signed_push(forge, secret, "main", sha(7))
        wrong = headers(forge, secret + "x", raw)
        answers.append(await deliver(client, url, raw, wrong))
        if forge != "gitlab":  # a changed body: the MAC no longer matches
            answers.append(await deliver(client, url, raw.replace(b"main", b"prod"), h))
        sigs = {"x-hub-signature-256", "x-hub-signature", "x-gitea-signature", "x-gogs-signature"}
        sigs |= {"x-forgejo-signature", "x-gitlab-token"}
        answers.append(await deliver(client, url, raw, {k: v for k, v in h.items() if k.lower() not in sigs}))
    raw, h = signed_push("github", secret, "main", sha(7))
    answers.append(await deliver(client, "/v1/webhooks/" + "0" * 32, raw, h))  # no such webhook
    details = {problem(r, 401)["detail"] for r in answers}
    assert len(details) == 1  # which part failed is not said
    assert problem(await deliver(client, url, raw, {"Content-Type": "application/json"}), 400)
    await asyncio.sleep(DEBOUNCE_S + 0.5)
    assert await deployments(client, members, app["id"]) == []
    assert scheduler.of(START) == []


async def test_replay_ping_oversize_and_bad_body(client, members, scheduler):
    app = await git_app(client, members)
    created = await hook(client, members, app["id"])
    secret, url = created["secret"], created["url"]
    ping_raw = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
    r = await deliver(client, url, ping_raw, headers("github", secret, ping_raw, event="ping"))
    assert r.status_code == 200 and r.json()["result"] == "pong"
    r = await deliver(client, url, b"{}", headers("bitbucket-server", secret, b"{}", event="diagnostics:ping"))
    assert r.status_code == 200 and r.json()["result"] == "pong"
    problem(await deliver(client, url, ping_raw, headers("github", secret + "x", ping_raw, event="ping")), 401)

    raw, h = signed_push("github", secret, "main", sha(9))
    assert (await deliver(client, url, raw, h)).status_code == 202
    assert "already received" in problem(await deliver(client, url, raw, h), 409)["detail"]
    raw, h = signed_push("gitlab", secret, "main", sha(9))
    del h["X-Gitlab-Event-UUID"]  # no delivery id: the body's digest stands for it
    assert (await deliver(client, url, raw, h)).status_code == 202
    problem(await deliver(client, url, raw, h), 409)

    doc = push_body("github", "main", sha(10), files=[f"f{i:05d}/" + "x" * 80 for i in range(1000)])
    big = json.dumps(doc).encode()
    assert len(big) > 64 * 1024
    problem(await deliver(client, url, big, headers("github", secret, big)), 413)

    async def chunks():
        yield big[:40000]
        yield big[40000:]

    streamed = await client.post(httpx.URL(url).path, content=chunks(), headers=headers("github", secret, big))
    problem(streamed, 413)
    assert problem(await deliver(client, url, b"nope", headers("github", secret, b"nope")), 400)
    r = await deliver(client, url, b"{}", headers("github", secret, b"{}", event="issues"))
    assert r.status_code == 200 and r.json()["result"] == "skipped"
    (dep,) = await until_deployed(client, members, app["id"])
    assert dep["commit"] == sha(9)


async def test_skip_markers_branches_tags_and_watch_paths(client, members, scheduler):
    app = await git_app(client, members)
    created = await hook(client, members, app["id"], watch_paths=["site", "!site/**/*.md"])
    secret, url = created["secret"], created["url"]

    async def push(branch, n, **kw) -> dict:
        raw, h = signed_push("gitea", secret, branch, sha(n), **kw)
        r = await deliver(client, url, raw, h)
        assert r.status_code in (200, 202), r.text
        return r.json()

    assert (await push("main", 1, message="wip [skip ci]", files=["site/a.py"]))["result"] == "skipped"
    assert "[skip deploy]" in (await push("main", 2, message="x [Skip Deploy]", files=["site/a"]))["detail"]
    assert "tracks branch main" in (await push("dev", 3, files=["site/a.py"]))["detail"]
    assert (await push("refs/tags/v1", 4, files=["site/a.py"]))["result"] == "skipped"  # tags off
    assert (await push("main", 5, files=["api/a.py", "README.md"]))["detail"].startswith("no changed file")
    assert (await push("main", 6, files=["site/docs/a.md"]))["result"] == "skipped"
    await asyncio.sleep(DEBOUNCE_S + 0.5)
    assert await deployments(client, members, app["id"]) == []
    assert (await push("main", 7, files=["site/docs/a.md", "site/app.py"]))["result"] == "queued"
    (dep,) = await until_deployed(client, members, app["id"])
    assert dep["commit"] == sha(7)
    r = await client.patch(f"/v1/applications/{app['id']}/webhook", headers=members.developer, json={"tags": True})
    assert r.status_code == 200
    assert (await push("refs/tags/v2", 8, files=["site/x.py"]))["result"] == "queued"
    deps = await until_deployed(client, members, app["id"], 2)
    assert deps[0]["commit"] == sha(8)


async def test_pushes_in_quick_succession_deploy_only_the_newest(client, members, scheduler):
    app = await git_app(client, members)
    created = await hook(client, members, app["id"])
    for n in range(1, 7):
        raw, h = signed_push("github", created["secret"], "main", sha(n))
        r = await deliver(client, created["url"], raw, h)
        assert r.status_code == 202
        if n > 1:
            assert f"replacing {sha(n - 1)}" in r.json()["detail"]
        await asyncio.sleep(0.1)
    waiting = (await client.get(f"/v1/applications/{app['id']}/webhook", headers=members.viewer)).json()["waiting"]
    assert waiting["commit"] == sha(6) and waiting["pushes"] == 6
    (dep,) = await until_deployed(client, members, app["id"])
    assert dep["commit"] == sha(6)
    await asyncio.sleep(DEBOUNCE_S + 0.5)
    assert len(await deployments(client, members, app["id"])) == 1
    assert [s.data["spec"]["source"]["ref"] for s in await scheduler.settled(START)] == [sha(6)]


async def test_a_waiting_push_survives_an_api_restart(api_settings):
    slow = api_settings.model_copy(update={"webhook_debounce_s": 4.0})
    first = await start_api(slow)  # the only api on this database: no other one fires the push
    admin = SimpleNamespace(developer=bearer(first.admin_token()), viewer=bearer(first.admin_token()))
    try:
        async with httpx.AsyncClient(base_url=first.url, timeout=10) as client:
            app = await git_app(client, admin)
            created = await hook(client, admin, app["id"])
            raw, h = signed_push("forgejo", created["secret"], "main", sha(42))
            pushed = time.monotonic()
            assert (await deliver(client, created["url"], raw, h)).status_code == 202
            hook_now = (await client.get(f"/v1/applications/{app['id']}/webhook", headers=admin.viewer)).json()
            assert hook_now["waiting"]["commit"] == sha(42)
    finally:
        await first.shutdown()
    assert time.monotonic() - pushed < 4.0  # the first api stopped before the push was due
    second: RunningApi = await start_api(slow)
    try:
        async with httpx.AsyncClient(base_url=second.url, timeout=10) as client:
            (dep,) = await until_deployed(client, admin, app["id"], timeout=20)
            assert dep["commit"] == sha(42)
    finally:
        await second.shutdown()


async def test_key_rotation_reseals_the_webhook_secret(api, client, members, api_urls):
    from berth_api.usecases.rotation import rotate
    from berth_common.db import make_engine, make_sessionmaker

    app = await git_app(client, members)
    created = await hook(client, members, app["id"])
    engine = make_engine(api_urls["api"], "api")
    try:
        done = await rotate(make_sessionmaker(engine), api.settings.secrets_key_path)
    finally:
        await engine.dispose()
    assert done.resealed.counts["webhooks"] == 1
    raw, h = signed_push("gogs", created["secret"], "main", sha(5))  # the running api opens it with the new key
    assert (await deliver(client, created["url"], raw, h)).status_code == 202


@pytest.mark.parametrize("forge", ["github", "gitlab", "gitea", "bitbucket", "bitbucket-server"])
async def test_commit_statuses_reach_the_forge(client, members, scheduler, forge):
    from tests.api.forge_receivers import StatusReceiver

    token = "forge-token-" + forge
    receiver = await StatusReceiver(forge, token, script=[503]).start()  # the first send fails: retried
    try:
        app = await git_app(client, members)
        created = await hook(client, members, app["id"])
        target = {"forge": forge, "api_url": f"{receiver.base}/api", "repository": "acme/blog", "token": token}
        r = await client.put(f"/v1/applications/{app['id']}/webhook/status", headers=members.developer, json=target)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == {k: v for k, v in target.items() if k != "token"} and token not in r.text
        raw, h = signed_push(forge, created["secret"], "main", sha(77))
        assert (await deliver(client, created["url"], raw, h)).status_code == 202
        (dep,) = await until_deployed(client, members, app["id"])
        (pending,) = await receiver.wait_accepted(1, timeout=15)
        assert sha(77) in pending.path
        link = pending.json.get("target_url") or pending.json.get("url")
        assert link.endswith(f"/v1/deployments/{dep['id']}")
        (start,) = await scheduler.wait_for(START)
        await scheduler.succeeded(dep["id"], app["id"], start.data["team_id"], "berth/blog:1")
        await receiver.wait_accepted(2, timeout=15)
        assert receiver.states() == (
            ["INPROGRESS", "SUCCESSFUL"]
            if forge.startswith("bitbucket")
            else ["running" if forge == "gitlab" else "pending", "success"]
        )
        assert receiver.unauthorized == 0 and len(receiver.requests) == 3  # the 503, then both statuses
    finally:
        await receiver.stop()


async def test_a_refused_commit_status_is_shown_and_not_retried(client, members, scheduler):
    from tests.api.forge_receivers import StatusReceiver

    receiver = await StatusReceiver("github", "the-right-token").start()
    try:
        app = await git_app(client, members)
        created = await hook(client, members, app["id"])
        target = {"forge": "github", "api_url": f"{receiver.base}/api", "repository": "acme/blog", "token": "wrong"}
        r = await client.put(f"/v1/applications/{app['id']}/webhook/status", headers=members.developer, json=target)
        assert r.status_code == 200
        bad = {**target, "repository": "acme/../admin"}
        r = await client.put(f"/v1/applications/{app['id']}/webhook/status", headers=members.developer, json=bad)
        assert problem(r, 422)["errors"][0]["loc"] == "/body/repository"
        raw, h = signed_push("github", created["secret"], "main", sha(78))
        assert (await deliver(client, created["url"], raw, h)).status_code == 202
        await receiver.wait_requests(1, timeout=15)
        deadline = time.monotonic() + 10
        while True:
            shown = (await client.get(f"/v1/applications/{app['id']}/webhook", headers=members.viewer)).json()
            if "not sent" in (shown["last_result"] or ""):
                break
            assert time.monotonic() < deadline, shown
            await asyncio.sleep(0.1)
        assert "refused: the forge answered 401" in shown["last_result"] and "wrong" not in shown["last_result"]
        await asyncio.sleep(1.5)
        assert len(receiver.requests) == 1 and receiver.unauthorized == 1
    finally:
        await receiver.stop()


async def test_a_cancelled_deployment_owes_no_more_statuses(client, members, scheduler, api_urls):
    from tests.api.forge_receivers import StatusReceiver

    receiver = await StatusReceiver("gitea", "tok").start()
    try:
        app = await git_app(client, members)
        created = await hook(client, members, app["id"])
        target = {"forge": "gitea", "api_url": f"{receiver.base}/api", "repository": "acme/blog", "token": "tok"}
        r = await client.put(f"/v1/applications/{app['id']}/webhook/status", headers=members.developer, json=target)
        assert r.status_code == 200
        raw, h = signed_push("gitea", created["secret"], "main", sha(79))
        assert (await deliver(client, created["url"], raw, h)).status_code == 202
        (dep,) = await until_deployed(client, members, app["id"])
        await receiver.wait_accepted(1, timeout=15)
        (start,) = await scheduler.wait_for(START)
        await scheduler.cancelled(dep["id"], app["id"], start.data["team_id"], "replaced by a newer commit")
        conn = await asyncpg.connect(api_urls["api"].replace("+asyncpg", ""))
        try:
            deadline = time.monotonic() + 10
            while await conn.fetchval("SELECT count(*) FROM api.webhook_status_reports"):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
        finally:
            await conn.close()
        assert receiver.states() == ["pending"]
    finally:
        await receiver.stop()


def test_the_status_poll_is_a_setting(monkeypatch):
    """How often owed commit statuses (and previews) are looked at: BERTH_WEBHOOK_STATUS_POLL_S, a second unless
    set (these tests set a tenth: tests/api/conftest.py)."""

    def debouncer(settings: ApiSettings) -> Debouncer:
        return Debouncer(Deps(settings=settings, sessionmaker=None, bus=None, box=None))  # type: ignore[arg-type]

    monkeypatch.delenv("BERTH_WEBHOOK_STATUS_POLL_S", raising=False)
    assert debouncer(ApiSettings()).status_poll_s == 1.0
    monkeypatch.setenv("BERTH_WEBHOOK_STATUS_POLL_S", "0.05")
    assert debouncer(ApiSettings()).status_poll_s == 0.05
    assert Debouncer(debouncer(ApiSettings()).deps, status_poll_s=2.0).status_poll_s == 2.0
    for bad in ("0", "-1", "61"):
        monkeypatch.setenv("BERTH_WEBHOOK_STATUS_POLL_S", bad)
        with pytest.raises(ValueError, match="webhook_status_poll_s"):
            ApiSettings()
