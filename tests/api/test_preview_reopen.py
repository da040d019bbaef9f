# ruff: noqa: F811 (the module's fixtures are imported from tests.api.module_api by name)
"""Preview leftovers against the real api (NATS, Postgres; one api, one bus and one scheduler stand-in for
the module): a pull request reopened while its preview is being destroyed gets its preview back once the
destroy ends (a new preview application from the new head commit, not lost), and a Bitbucket Cloud pull
request from a fork gets a preview from the fork's repository, like the other forges."""

from __future__ import annotations

import asyncio

import httpx

from berth_api.domain.forges import identify
from berth_api.domain.previews import read_pull_request
from tests.api.conftest import make_app
from tests.api.module_api import (  # noqa: F401
    api,
    api_settings,
    api_urls,
    base_api_settings,
    client,
    members,
    scheduler,
    until,
)
from tests.api.preview_bodies import pr_body, signed_pr
from tests.api.test_webhooks import deliver, hook, sha

START, REMOVE = "cmd.deployment.start", "cmd.application.remove"


async def _starts(scheduler, name: str, count: int) -> list:
    async def arrived():
        found = [m for m in scheduler.of(START) if m.data["spec"]["name"] == name]
        return found if len(found) >= count else None

    return await until(arrived, what=f"{count} deployment(s) of {name}")


async def _removal(scheduler, application_id: str):
    async def arrived():
        found = [m for m in scheduler.of(REMOVE) if m.data["application_id"] == application_id]
        return found[0] if found else None

    return await until(arrived, what=f"the removal of {application_id}")


async def _previews(client, members, app_id: str) -> list[dict]:
    r = await client.get(f"/v1/applications/{app_id}/previews", headers=members.viewer)
    assert r.status_code == 200, r.text
    return r.json()


async def _setup(client, members, name: str, forge: str, **settings) -> tuple[dict, dict]:
    body = {
        "name": name,
        "source": {"kind": "git", "repository": "https://git.example.com/acme/blog.git", "branch": "main"},
        "services": [{"kind": "web", "name": "web", "port": 3000}],
    }
    app = await make_app(client, members.developer, body)
    created = await hook(client, members, app["id"])
    r = await client.put(f"/v1/applications/{app['id']}/previews/settings", headers=members.developer, json=settings)
    assert r.status_code == 200, r.text
    return app, created


async def test_a_preview_reopened_while_it_is_destroyed_is_made_again(client, members, scheduler):
    app, created = await _setup(client, members, "reblog", "github")
    secret, url = created["secret"], created["url"]
    r = await deliver(client, url, *signed_pr("github", secret, "opened", 5, sha(51)))
    assert r.status_code == 202, r.text
    (first,) = await _starts(scheduler, "reblog-pr-5", 1)
    old_app = first.data["application_id"]

    async def recorded():
        found = await _previews(client, members, app["id"])
        return found if found and found[0]["deployment_id"] else None

    (preview,) = await until(recorded, what="the preview's deployment recorded")
    await scheduler.succeeded(preview["deployment_id"], old_app, first.data["team_id"], "i:1")

    assert (await deliver(client, url, *signed_pr("github", secret, "closed", 5, sha(51)))).status_code == 202
    remove = await _removal(scheduler, old_app)  # the destroy runs: the scheduler has not answered yet
    r = await deliver(client, url, *signed_pr("github", secret, "opened", 5, sha(52)))
    assert r.status_code == 202 and r.json()["result"] == "queued", r.text
    assert "once destroyed" in r.json()["detail"]
    await asyncio.sleep(0.5)
    assert len([m for m in scheduler.of(START) if m.data["spec"]["name"] == "reblog-pr-5"]) == 1  # not yet

    await scheduler.answer_removal(remove)  # the destroy ends: the preview is made again from the new head
    _, again = await _starts(scheduler, "reblog-pr-5", 2)
    assert again.data["application_id"] != old_app and again.data["spec"]["source"]["ref"] == sha(52)

    async def remade():
        found = await _previews(client, members, app["id"])
        return found if found and found[0]["deployment_id"] not in (None, preview["deployment_id"]) else None

    (back,) = await until(remade, what="the preview made again")
    assert back["number"] == 5 and back["head_commit"] == sha(52) and back["state"] == "active"
    assert back["host"] == "pr-5-reblog.localhost"

    # closed again while destroying, then reopened and closed before the destroy ends: it stays gone
    await scheduler.succeeded(back["deployment_id"], again.data["application_id"], again.data["team_id"], "i:2")
    assert (await deliver(client, url, *signed_pr("github", secret, "closed", 5, sha(52)))).status_code == 202
    remove = await _removal(scheduler, again.data["application_id"])
    assert (await deliver(client, url, *signed_pr("github", secret, "opened", 5, sha(53)))).status_code == 202
    assert (await deliver(client, url, *signed_pr("github", secret, "closed", 5, sha(53)))).status_code == 202
    await scheduler.answer_removal(remove)

    async def gone():
        return await _previews(client, members, app["id"]) == []

    await until(gone, what="the preview gone")
    await asyncio.sleep(0.5)
    assert len([m for m in scheduler.of(START) if m.data["spec"]["name"] == "reblog-pr-5"]) == 2


async def test_a_bitbucket_cloud_pull_request_from_a_fork_gets_a_preview(client, members, scheduler):
    app, created = await _setup(client, members, "bbblog", "bitbucket")
    secret, url = created["secret"], created["url"]
    r = await deliver(client, url, *signed_pr("bitbucket", secret, "opened", 8, sha(81), fork=True))
    assert r.status_code == 200 and r.json()["result"] == "skipped" and "allow_forks is off" in r.json()["detail"]
    assert await _previews(client, members, app["id"]) == []

    r = await client.put(
        f"/v1/applications/{app['id']}/previews/settings", headers=members.developer, json={"allow_forks": True}
    )
    assert r.status_code == 200, r.text
    r = await deliver(client, url, *signed_pr("bitbucket", secret, "opened", 8, sha(81), fork=True))
    assert r.status_code == 202 and r.json()["result"] == "queued", r.text
    (start,) = await _starts(scheduler, "bbblog-pr-8", 1)
    source = start.data["spec"]["source"]
    assert source["repository"] == "https://bitbucket.org/mallory/blog.git" and source["ref"] == sha(81)

    # a body naming the fork only by its full name still gives its clone URL; a same-repository one none
    doc = pr_body("bitbucket", "opened", 9, sha(9), fork=True)
    del doc["pullrequest"]["source"]["repository"]["links"]
    delivery = identify(httpx.Headers(signed_pr("bitbucket", secret, "opened", 9, sha(9))[1]))
    assert delivery is not None
    pr = read_pull_request(delivery, doc)
    assert pr.fork and pr.head_repository == "https://bitbucket.org/mallory/blog.git"
    pr = read_pull_request(delivery, pr_body("bitbucket", "opened", 9, sha(9)))
    assert not pr.fork and pr.head_repository is None


async def test_a_reopened_pull_request_counts_against_the_limit_like_a_new_one(client, members, scheduler):
    app, created = await _setup(client, members, "limblog", "github", max_previews=1)
    secret, url = created["secret"], created["url"]

    async def preview_of(number: int, old: str | None = None):
        async def recorded():
            found = {p["number"]: p for p in await _previews(client, members, app["id"])}
            p = found.get(number)
            return p if p and p["deployment_id"] not in (None, old) else None

        return await until(recorded, what=f"the preview of #{number} deploying")

    async def up(number: int, commit: str, count: int = 1, old: str | None = None) -> dict:
        starts = await _starts(scheduler, f"limblog-pr-{number}", count)
        preview = await preview_of(number, old)
        await scheduler.succeeded(
            preview["deployment_id"], starts[-1].data["application_id"], starts[0].data["team_id"], "i"
        )
        return {**preview, "app": starts[-1].data["application_id"]}

    assert (await deliver(client, url, *signed_pr("github", secret, "opened", 5, sha(51)))).status_code == 202
    five = await up(5, sha(51))
    assert (await deliver(client, url, *signed_pr("github", secret, "closed", 5, sha(51)))).status_code == 202
    remove = await _removal(scheduler, five["app"])
    # #5 is being destroyed: its place is free, and #6 takes it
    r = await deliver(client, url, *signed_pr("github", secret, "opened", 6, sha(61)))
    assert r.status_code == 202 and r.json()["result"] == "queued", r.text
    six = await up(6, sha(61))
    # #5 reopened now would make two previews: refused like a new pull request would be
    r = await deliver(client, url, *signed_pr("github", secret, "opened", 5, sha(52)))
    assert r.status_code == 200 and r.json()["result"] == "skipped", r.text
    assert r.json()["detail"] == "pull request #5 is not previewed again: the application has 1 previews: the limit"
    await scheduler.answer_removal(remove)

    async def only_six():
        found = await _previews(client, members, app["id"])
        return found if [p["number"] for p in found] == [6] else None

    await until(only_six, what="#5 gone, #6 kept")
    await asyncio.sleep(0.5)
    assert len([m for m in scheduler.of(START) if m.data["spec"]["name"] == "limblog-pr-5"]) == 1

    # #6 closed and reopened while destroyed holds its place: a new #7 is refused, #6 comes back
    assert (await deliver(client, url, *signed_pr("github", secret, "closed", 6, sha(61)))).status_code == 202
    remove = await _removal(scheduler, six["app"])
    r = await deliver(client, url, *signed_pr("github", secret, "opened", 6, sha(62)))
    assert r.status_code == 202 and "once destroyed" in r.json()["detail"], r.text
    r = await deliver(client, url, *signed_pr("github", secret, "opened", 7, sha(71)))
    assert r.status_code == 200 and r.json()["result"] == "skipped", r.text
    assert r.json()["detail"] == "the application has 1 previews: the limit"
    await scheduler.answer_removal(remove)
    back = await up(6, sha(62), count=2, old=six["deployment_id"])
    assert back["head_commit"] == sha(62) and back["app"] != six["app"]
    assert [p["number"] for p in await _previews(client, members, app["id"])] == [6]
    assert not [m for m in scheduler.of(START) if m.data["spec"]["name"] == "limblog-pr-7"]
