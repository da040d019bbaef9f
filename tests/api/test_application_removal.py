"""Taking an application down: DELETE of a deployed application marks it `removing` and sends exactly one
`cmd.application.remove` (outbox, read off the real stream by the scheduler double); while removing it is
neither changed nor deployed; `evt.application.removed` deletes it (host names freed), `removal_failed`
makes it `active` again with the reason; redelivered answers have no second effect; the list and its ETag
follow the state."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from typing import Any

import asyncpg

from berth_common.catalogue import ApplicationRemovalFailed, ApplicationRemoved
from tests.api.conftest import WEB_APP, make_app, make_project
from tests.api.test_projects import problem

REMOVING_TYPE = "urn:berth:problem:application-removing"
REMOVE = "cmd.application.remove"


def _body(name: str, domains: list[str] | None = None) -> dict:
    body = copy.deepcopy(WEB_APP)
    body["name"] = name
    if domains:
        body["services"][0]["domains"] = domains
    return body


async def _team(client, headers) -> str:
    return str((await client.get("/v1/me", headers=headers)).json()["team"]["id"])


async def _deployed(client, members, scheduler, name: str = "shop", domains: list[str] | None = None) -> dict:
    """An application with a live version (the double played its rollout)."""
    app = await make_app(client, members.developer, _body(name, domains))
    before = len(scheduler.of("cmd.deployment.start"))
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    starts = await scheduler.wait_for("cmd.deployment.start", before + 1)
    (start,) = [c for c in starts if c.data["application_id"] == app["id"]]
    await scheduler.run_to_success(start)
    await _until(client, members.viewer, app["id"], lambda b: b["live"] is not None)
    return app


async def _until(client, headers, app_id: str, check: Callable[[Any], bool], timeout: float = 10.0) -> Any:
    """GET the application until ``check(body)`` holds (body None once it is 404)."""
    deadline = time.monotonic() + timeout
    while True:
        r = await client.get(f"/v1/applications/{app_id}", headers=headers)
        assert r.status_code in (200, 404), r.text
        body = r.json() if r.status_code == 200 else None
        if check(body):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"application never matched: {r.status_code} {r.text[:300]}")
        await asyncio.sleep(0.05)


async def _delete(client, headers, app_id: str, **params: Any) -> Any:
    return await client.delete(f"/v1/applications/{app_id}", headers=headers, params=params or None)


async def _listed(client, headers, etag: str | None = None) -> tuple[list[dict], str, int]:
    r = await client.get("/v1/applications", headers={**headers, **({"If-None-Match": etag} if etag else {})})
    assert r.status_code in (200, 304), r.text
    return (r.json() if r.status_code == 200 else []), r.headers["ETag"], r.status_code


async def _processed(api_urls, message_id: str) -> int:
    conn = await asyncpg.connect(api_urls["api"].replace("+asyncpg", ""))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM api.processed_messages WHERE message_id = $1", message_id))
    finally:
        await conn.close()


async def test_a_never_deployed_application_is_deleted_at_once(client, members, scheduler):
    app = await make_app(client, members.developer)
    r = await _delete(client, members.admin, app["id"])
    assert r.status_code == 204 and r.content == b""
    problem(await client.get(f"/v1/applications/{app['id']}", headers=members.viewer), 404)
    assert await scheduler.settled(REMOVE) == []
    problem(await _delete(client, members.admin, app["id"]), 404)


async def test_a_deployed_application_is_taken_down_by_the_scheduler(client, members, scheduler):
    app = await _deployed(client, members, scheduler, domains=["shop.example.com"])
    aid, team = app["id"], await _team(client, members.admin)
    (listed, etag_active, _) = await _listed(client, members.viewer)
    assert [(a["id"], a["state"], a["removal_error"]) for a in listed] == [(aid, "active", None)]
    # While it exists, its custom domain has one owner.
    problem(
        await client.post(
            f"/v1/environments/{app['environment_id']}/applications",
            headers=members.developer,
            json=_body("shop2", ["shop.example.com"]),
        ),
        409,
    )

    r = await _delete(client, members.admin, aid, drain_grace_s=2.5)
    assert r.status_code == 202, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert (body["id"], body["state"], body["removal_error"]) == (aid, "removing", None)
    (cmd,) = await scheduler.settled(REMOVE)
    assert cmd.envelope.type == REMOVE and cmd.envelope.source == "berth/api"
    assert cmd.data == {"application_id": aid, "team_id": team, "drain_grace_s": 2.5}

    detail = await _until(client, members.viewer, aid, lambda b: True)
    assert detail["state"] == "removing" and detail["removal_error"] is None and detail["live"] is not None
    # The list shows the state at once: the cached page of the active application is not served again.
    listed, etag_removing, status = await _listed(client, members.viewer, etag_active)
    assert status == 200 and etag_removing != etag_active
    assert [(a["id"], a["state"]) for a in listed] == [(aid, "removing")]
    assert (await _listed(client, members.viewer, etag_removing))[2] == 304

    # A second DELETE answers the same and sends nothing more.
    again = await _delete(client, members.admin, aid)
    assert again.status_code == 202 and again.json()["state"] == "removing"
    assert len(await scheduler.settled(REMOVE)) == 1
    # Both DELETEs are audited (never the query string).
    audit = (await client.get("/v1/audit", headers=members.admin, params={"method": "DELETE"})).json()
    assert [(a["route"], a["target_id"], a["status"]) for a in audit] == [
        ("/v1/applications/{application_id}", aid, 202)
    ] * 2
    assert "drain_grace_s" not in str(audit)

    await scheduler.answer_removal(cmd)
    assert await _until(client, members.viewer, aid, lambda b: b is None) is None
    problem(await _delete(client, members.admin, aid), 404)
    listed, etag_gone, status = await _listed(client, members.viewer, etag_removing)
    assert status == 200 and listed == [] and etag_gone != etag_removing
    dep_id = detail["live"]["deployment_id"]
    problem(await client.get(f"/v1/deployments/{dep_id}", headers=members.viewer), 404)
    # Its name, generated host and custom domain are free again.
    again_app = await make_app(client, members.developer, _body("shop", ["shop.example.com"]))
    hosts = again_app["services"][0]["hosts"]
    assert hosts == ["web-shop-production.localhost", "shop.example.com"] and again_app["state"] == "active"


async def test_nothing_changes_or_deploys_while_removing(client, members, scheduler):
    app = await _deployed(client, members, scheduler)
    aid = app["id"]
    group = await client.post("/v1/env-groups", headers=members.developer, json={"name": "shared"})
    assert group.status_code == 201, group.text
    gid = group.json()["id"]
    assert (await _delete(client, members.admin, aid)).status_code == 202

    refused = [
        await client.post(f"/v1/applications/{aid}/deployments", headers=members.developer),
        await client.post(f"/v1/applications/{aid}/rollback", headers=members.developer),
        await client.patch(f"/v1/applications/{aid}", headers=members.developer, json={"stop_timeout_s": 5}),
        await client.patch(
            f"/v1/applications/{aid}",
            headers=members.developer,
            json={"services": [{"kind": "web", "name": "web", "port": 8080, "domains": ["new.example.com"]}]},
        ),
        await client.post(
            f"/v1/applications/{aid}/variables/import",
            headers=members.developer,
            json={"content": "A=1\n", "kind": "runtime"},
        ),
        await client.put(f"/v1/applications/{aid}/env-groups/{gid}", headers=members.developer),
    ]
    for r in refused:
        body = problem(r, 409)
        assert body["type"] == REMOVING_TYPE and "being removed" in body["detail"], body
    detail = await _until(client, members.viewer, aid, lambda b: True)
    assert detail["stop_timeout_s"] == 10 and [e["name"] for e in detail["env"]] == ["LOG_LEVEL"]
    assert len(await scheduler.settled("cmd.deployment.start")) == 1  # only the first deployment's
    # Reads and cancelling stay possible; another team still sees nothing.
    assert (await client.get(f"/v1/applications/{aid}/deployments", headers=members.viewer)).status_code == 200
    problem(await _delete(client, members.other, aid), 404)
    problem(await client.get(f"/v1/applications/{aid}", headers=members.other), 404)
    problem(await _delete(client, members.developer, aid), 403)


async def test_a_failed_removal_leaves_it_active_with_the_reason(client, members, scheduler, api_urls):
    app = await _deployed(client, members, scheduler)
    other = await _deployed(client, members, scheduler, name="blog")
    aid, team = app["id"], await _team(client, members.admin)
    assert (await _delete(client, members.admin, aid)).status_code == 202
    (first,) = await scheduler.settled(REMOVE)

    failed = scheduler.bus.envelope(
        ApplicationRemovalFailed(application_id=aid, team_id=team, reason="Traefik did not confirm")
    )
    await scheduler.bus.publish_raw(
        "evt.application.removal_failed", failed.to_bytes(), {"Nats-Msg-Id": "first-" + failed.id}
    )
    body = await _until(client, members.viewer, aid, lambda b: b["state"] == "active")
    assert body["removal_error"] == "Traefik did not confirm"
    (listed, _, _) = await _listed(client, members.viewer)
    assert {a["id"]: (a["state"], a["removal_error"]) for a in listed}[aid] == ("active", "Traefik did not confirm")
    # Active again: it may be changed, and a DELETE tries again with a new command (the reason cleared).
    r = await client.patch(f"/v1/applications/{aid}", headers=members.developer, json={"stop_timeout_s": 5})
    assert r.status_code == 200, r.text
    r = await _delete(client, members.admin, aid, drain_grace_s=0)
    assert r.status_code == 202 and (r.json()["state"], r.json()["removal_error"]) == ("removing", None)
    commands = await scheduler.settled(REMOVE)
    assert len(commands) == 2 and commands[1].envelope.id != first.envelope.id
    assert commands[1].data == {"application_id": aid, "team_id": team, "drain_grace_s": 0.0}

    # The old failure redelivered (same envelope id; another Nats-Msg-Id so JetStream keeps it) changes nothing:
    # the application stays removing. A failure of another application, after it on the same consumer, shows
    # the consumer went past it.
    await scheduler.bus.publish_raw(
        "evt.application.removal_failed", failed.to_bytes(), {"Nats-Msg-Id": "again-" + failed.id}
    )
    assert (await _delete(client, members.admin, other["id"])).status_code == 202
    await scheduler.removal_failed(other["id"], team, "a container would not stop")
    await _until(client, members.viewer, other["id"], lambda b: b["state"] == "active")
    body = await _until(client, members.viewer, aid, lambda b: True)
    assert (body["state"], body["removal_error"]) == ("removing", None)
    assert await _processed(api_urls, failed.id) == 1
    # An answer naming another team is ignored (the other application's, after it on the same consumer, is not).
    assert (await _delete(client, members.admin, other["id"])).status_code == 202
    await scheduler.removed(aid, "0" * 32)
    await scheduler.removed(other["id"], team)
    await _until(client, members.viewer, other["id"], lambda b: b is None)
    assert (await _until(client, members.viewer, aid, lambda b: True))["state"] == "removing"


async def test_the_removal_phase_follows_the_schedulers_progress_and_never_goes_back(client, members, scheduler):
    app = await _deployed(client, members, scheduler)
    aid, team = app["id"], await _team(client, members.admin)
    detail = await _until(client, members.viewer, aid, lambda b: True)
    assert (detail["state"], detail["removal_phase"]) == ("active", None)
    r = await _delete(client, members.admin, aid)
    assert r.status_code == 202 and (r.json()["state"], r.json()["removal_phase"]) == ("removing", "cancelling")

    await scheduler.removal_progressed(aid, team, "routes", 3)
    await _until(client, members.viewer, aid, lambda b: b["removal_phase"] == "routes")
    await scheduler.removal_progressed(aid, team, "stopping", 6)
    await _until(client, members.viewer, aid, lambda b: b["removal_phase"] == "stopping")
    # an earlier step arriving late (the consumers run side by side) does not move it back; another team's
    # event is ignored; the list shows the phase too
    await scheduler.removal_progressed(aid, team, "draining", 4)
    await scheduler.removal_progressed(aid, "0" * 32, "images", 9)
    await scheduler.removal_progressed(aid, team, "images", 8)
    await _until(client, members.viewer, aid, lambda b: b["removal_phase"] == "images")
    (listed, _, _) = await _listed(client, members.viewer)
    assert {a["id"]: a["removal_phase"] for a in listed}[aid] == "images"

    # failed: active again, no phase; a late progress event of that attempt changes nothing
    await scheduler.removal_failed(aid, team, "a container would not stop")
    body = await _until(client, members.viewer, aid, lambda b: b["state"] == "active")
    assert body["removal_phase"] is None
    await scheduler.removal_progressed(aid, team, "images", 10)
    other = await _deployed(client, members, scheduler, name="blog")
    assert (await _delete(client, members.admin, other["id"])).status_code == 202
    await scheduler.removal_progressed(other["id"], team, "routes", 1)  # after it on the same consumer
    await _until(client, members.viewer, other["id"], lambda b: b["removal_phase"] == "routes")
    body = await _until(client, members.viewer, aid, lambda b: True)
    assert (body["state"], body["removal_phase"]) == ("active", None)
    # a new attempt starts again at cancelling, and its steps (later versions) move it on
    assert (await _delete(client, members.admin, aid)).json()["removal_phase"] == "cancelling"
    await scheduler.removal_progressed(aid, team, "draining", 12)
    await _until(client, members.viewer, aid, lambda b: b["removal_phase"] == "draining")


async def test_a_redelivered_removed_event_has_no_second_effect(client, members, scheduler, api_urls):
    app = await _deployed(client, members, scheduler)
    aid, team = app["id"], await _team(client, members.admin)
    assert (await _delete(client, members.admin, aid)).status_code == 202
    removed = scheduler.bus.envelope(ApplicationRemoved(application_id=aid, team_id=team, containers_removed=2))
    await scheduler.bus.publish_raw(
        "evt.application.removed", removed.to_bytes(), {"Nats-Msg-Id": "first-" + removed.id}
    )
    await _until(client, members.viewer, aid, lambda b: b is None)
    # The same name and host taken by a new application, deployed and being removed: the old event again
    # leaves it be, and the consumer goes on (the new application's own answer is applied after it).
    new = await _deployed(client, members, scheduler)
    assert new["services"][0]["hosts"] == app["services"][0]["hosts"]
    assert (await _delete(client, members.admin, new["id"])).status_code == 202
    await scheduler.bus.publish_raw(
        "evt.application.removed", removed.to_bytes(), {"Nats-Msg-Id": "again-" + removed.id}
    )
    await scheduler.removal_failed(new["id"], team, "sentinel")
    await _until(client, members.viewer, new["id"], lambda b: b is not None and b["state"] == "active")
    assert await _processed(api_urls, removed.id) == 1


async def test_drain_grace_s_is_validated(client, members, scheduler):
    app = await _deployed(client, members, scheduler)
    for bad in ("-1", "3601", "soon", "nan"):
        r = await client.delete(f"/v1/applications/{app['id']}?drain_grace_s={bad}", headers=members.admin)
        body = problem(r, 422)
        assert [e["loc"] for e in body["errors"]] == ["/query/drain_grace_s"], (bad, body)
    assert (await _until(client, members.viewer, app["id"], lambda b: True))["state"] == "active"
    assert await scheduler.settled(REMOVE) == []


async def test_an_application_with_only_failed_deployments_goes_through_the_scheduler(client, members, scheduler):
    """A failed deployment may have left a built image: the scheduler removes it, so this is no 204 either."""
    proj = await make_project(client, members.developer, "other")
    r = await client.post(
        f"/v1/environments/{proj['environments'][0]['id']}/applications", headers=members.developer, json=_body("web")
    )
    app = r.json()
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    dep = r.json()
    (start,) = await scheduler.wait_for("cmd.deployment.start")
    await scheduler.failed(dep["id"], app["id"], start.data["team_id"], "readiness never passed")
    deadline = time.monotonic() + 10
    while (await client.get(f"/v1/deployments/{dep['id']}", headers=members.viewer)).json()["state"] != "failed":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    r = await _delete(client, members.admin, app["id"])
    assert r.status_code == 202 and r.json()["state"] == "removing"
    (cmd,) = await scheduler.settled(REMOVE)
    assert cmd.data["application_id"] == app["id"] and cmd.data["drain_grace_s"] is None
