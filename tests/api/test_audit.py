"""The audit log: one row per mutating request (who, team, action = method + route template, target, time,
outcome), readable by admins only at /v1/audit with filters and pages, never holding a secret value."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg

from tests.api.conftest import make_app
from tests.api.test_applications import GIT_APP, SECRETS, no_secret_in

SECRET_VALUE = "audit-s3cr3t-value-9f2c"


async def _audit(client, headers, **params) -> list[dict]:
    r = await client.get("/v1/audit", headers=headers, params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def test_mutations_are_recorded_with_who_what_and_outcome(client, members):
    me = (await client.get("/v1/me", headers=members.developer)).json()
    r = await client.post("/v1/projects", headers=members.developer, json={"name": "acme", "description": "shop"})
    project = r.json()
    await client.post("/v1/projects", headers=members.developer, json={"name": "acme"})  # 409
    await client.post("/v1/projects", headers=members.developer, json={"name": "Bad Name"})  # 422
    await client.delete(f"/v1/projects/{project['id']}", headers=members.developer)  # 403
    await client.get("/v1/projects", headers=members.developer)  # a read: not recorded
    await client.post("/v1/projects", json={"name": "anon"})  # no token: not attributable, not recorded

    rows = await _audit(client, members.admin)
    assert [(r["action"], r["status"]) for r in rows] == [
        ("DELETE /v1/projects/{project_id}", 403),
        ("POST /v1/projects", 422),
        ("POST /v1/projects", 409),
        ("POST /v1/projects", 201),
    ]
    created = rows[-1]
    assert created["target_id"] == project["id"]  # the id of what was created
    assert created["user_id"] == me["user"]["id"] and created["token_id"] == me["token"]["id"]
    assert created["fields"] == ["description", "name"] and created["source"] == "127.0.0.1"
    assert rows[0]["target_id"] == project["id"] and rows[0]["fields"] is None  # from the path; refused: no fields
    assert datetime.fromisoformat(created["at"]) > datetime.now(UTC) - timedelta(minutes=1)
    assert rows[1]["fields"] is None  # an invalid body's keys are not kept (they could be anything)

    # Another team sees none of it.
    assert await _audit(client, members.other) == []


async def test_filters_and_pages(client, members):
    for name in ("p1", "p2", "p3", "p4", "p5"):
        await client.post("/v1/projects", headers=members.developer, json={"name": name})
    await client.post("/v1/projects", headers=members.admin, json={"name": "p1"})  # 409, by the admin
    dev = (await client.get("/v1/me", headers=members.developer)).json()["user"]["id"]

    page1 = await _audit(client, members.admin, limit=2)
    page2 = await _audit(client, members.admin, limit=2, before=page1[-1]["id"])
    page3 = await _audit(client, members.admin, limit=10, before=page2[-1]["id"])
    ids = [r["id"] for r in page1 + page2 + page3]
    assert len(ids) == 6 and ids == sorted(ids, reverse=True)

    assert len(await _audit(client, members.admin, user_id=dev)) == 5
    assert [r["status"] for r in await _audit(client, members.admin, outcome="failure")] == [409]
    assert len(await _audit(client, members.admin, outcome="success", method="POST", route="/v1/projects")) == 5
    assert await _audit(client, members.admin, method="DELETE") == []
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert await _audit(client, members.admin, since=future) == []
    assert len(await _audit(client, members.admin, until=future)) == 6
    for bad in (
        {"limit": 0},
        {"method": "TRACE"},
        {"user_id": "x"},
        {"since": "2025-01-01T00:00:00"},
        {"route": "/etc"},
    ):
        r = await client.get("/v1/audit", headers=members.admin, params=bad)
        assert r.status_code == 422, (bad, r.text)


async def test_only_admins_read_it(client, members):
    for who in (members.viewer, members.developer):
        r = await client.get("/v1/audit", headers=who)
        assert r.status_code == 403
    assert (await client.get("/v1/audit")).status_code == 401


async def test_a_secret_set_through_the_api_never_reaches_the_audit_log(client, members, api_urls, scheduler):
    body = json.loads(json.dumps(GIT_APP))
    body["env"].append({"name": "API_KEY", "value": SECRET_VALUE, "secret": True})
    app = await make_app(client, members.developer, body)
    await client.patch(
        f"/v1/applications/{app['id']}",
        headers=members.developer,
        json={"env": [{"name": "API_KEY", "value": SECRET_VALUE + "-2", "secret": True}]},
    )
    env_id = app["environment_id"]
    await client.put(
        f"/v1/environments/{env_id}/variables",
        headers=members.developer,
        json={"variables": [{"name": "SHARED", "value": SECRET_VALUE + "-env", "secret": True}]},
    )
    await client.post(
        f"/v1/applications/{app['id']}/variables/import",
        headers=members.developer,
        json={"content": f"TOKEN={SECRET_VALUE}-import\n", "secret": True},
    )
    await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    r = await client.get(
        f"/v1/applications/{app['id']}/variables/export", headers=members.admin, params={"reveal_secrets": "true"}
    )
    assert SECRET_VALUE + "-import" in r.text  # the admin asked for it explicitly

    rows = await _audit(client, members.admin, limit=500)
    text = json.dumps(rows)
    assert SECRET_VALUE not in text
    no_secret_in(text)
    actions = [r["action"] for r in rows]
    assert "POST /v1/environments/{environment_id}/applications" in actions
    assert "PUT /v1/environments/{environment_id}/variables" in actions
    reveal = rows[0]
    assert reveal["action"] == "GET /v1/applications/{application_id}/variables/export"
    assert reveal["fields"] == ["reveal_secrets"] and reveal["target_id"] == app["id"]

    # Straight from the table too: every column of every row.
    conn = await asyncpg.connect(api_urls["api"].replace("+asyncpg", ""))
    try:
        raw = [dict(r) for r in await conn.fetch("SELECT * FROM api.audit_log")]
    finally:
        await conn.close()
    assert len(raw) == len(rows)
    assert SECRET_VALUE not in str(raw) and not any(s in str(raw) for s in SECRETS)


async def test_invitation_accept_is_recorded_for_the_new_member(client, members):
    r = await client.post("/v1/invitations", headers=members.admin, json={"email": "new@example.com"})
    code = r.json()["code"]
    joined = (await client.post("/v1/invitations/accept", json={"code": code})).json()
    rows = await _audit(client, members.admin)
    assert rows[0]["action"] == "POST /v1/invitations/accept" and rows[0]["user_id"] == joined["user"]["id"]
    assert rows[0]["token_id"] == joined["token"]["id"] and rows[0]["fields"] == ["code"]
    assert rows[1]["action"] == "POST /v1/invitations" and rows[1]["status"] == 201
    assert code not in json.dumps(rows) and joined["token"]["token"] not in json.dumps(rows)
