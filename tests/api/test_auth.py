"""Bearer tokens: bad, unknown, expired and revoked tokens get one 401; roles are enforced per route."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from berth_api.domain.problems import MEDIA_TYPE
from tests.api.conftest import bearer


def assert_401(r):
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == MEDIA_TYPE
    assert r.headers["www-authenticate"].startswith('Bearer realm="berth"')
    body = r.json()
    assert body["type"] == "urn:berth:problem:unauthorized"
    assert body["status"] == 401 and body["title"] and body["detail"]


async def test_missing_token(client):
    r = await client.get("/v1/me")
    assert_401(r)
    assert "error=" not in r.headers["www-authenticate"]
    assert_401(await client.get("/v1/me", headers={"Authorization": "Basic YWRtaW46YWRtaW4="}))


@pytest.mark.parametrize(
    "token",
    [
        "nonsense",
        "berth_",
        "berth_0123456789ab_" + "A" * 43,  # well-formed, unknown prefix
        "berth_0123456789ab_" + "A" * 5000,  # very long
        "berth_../../etc_passwd",
    ],
)
async def test_malformed_or_unknown_token(client, token):
    r = await client.get("/v1/me", headers=bearer(token))
    assert_401(r)
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


async def test_right_prefix_wrong_secret(api, client):
    admin = api.admin_token()
    _, prefix, secret = admin.split("_", 2)
    forged = f"berth_{prefix}_{'B' if secret[0] != 'B' else 'C'}{secret[1:]}"
    assert_401(await client.get("/v1/me", headers=bearer(forged)))
    assert (await client.get("/v1/me", headers=bearer(admin))).status_code == 200


async def test_expired_token(api, client, identities):
    user = await identities.member("old@example.com", "developer")
    expired, _ = await identities.token(user, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    live, _ = await identities.token(user, expires_at=datetime.now(UTC) + timedelta(hours=1))
    assert_401(await client.get("/v1/me", headers=bearer(expired)))
    assert (await client.get("/v1/me", headers=bearer(live))).status_code == 200


async def test_revoked_token(api, client):
    admin = bearer(api.admin_token())
    r = await client.post("/v1/tokens", headers=admin, json={"name": "ci deploy", "expires_in_days": 30})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["token"].startswith(f"berth_{created['prefix']}_")
    assert (await client.get("/v1/me", headers=bearer(created["token"]))).status_code == 200

    listed = (await client.get("/v1/tokens", headers=admin)).json()
    assert {t["name"] for t in listed} == {"bootstrap", "ci deploy"}
    assert all("token" not in t and "hash" not in t for t in listed)

    r = await client.delete(f"/v1/tokens/{created['id']}", headers=admin)
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    assert_401(await client.get("/v1/me", headers=bearer(created["token"])))
    # Revoking again keeps the first time; an unknown id is 404 problem+json.
    again = await client.delete(f"/v1/tokens/{created['id']}", headers=admin)
    assert again.json()["revoked_at"] == r.json()["revoked_at"]
    missing = await client.delete(f"/v1/tokens/{'0' * 32}", headers=admin)
    assert missing.status_code == 404 and missing.headers["content-type"] == MEDIA_TYPE


async def test_member_removed_from_team_loses_access(api, client, identities, api_urls):
    user = await identities.member("gone@example.com", "admin")
    token, _ = await identities.token(user)
    assert (await client.get("/v1/me", headers=bearer(token))).status_code == 200
    conn = await asyncpg.connect(api_urls["api"].replace("+asyncpg", ""))
    try:
        await conn.execute("DELETE FROM api.memberships WHERE user_id = $1", user)
    finally:
        await conn.close()
    assert_401(await client.get("/v1/me", headers=bearer(token)))


async def test_another_teams_token_cannot_be_revoked(api, client, identities):
    other_admin = await identities.member("boss@other.example", "admin", team="other")
    other_token, other_id = await identities.token(other_admin, team="other")
    r = await client.delete(f"/v1/tokens/{other_id}", headers=bearer(api.admin_token()))
    assert r.status_code == 404  # exactly like a missing one
    assert (await client.get("/v1/me", headers=bearer(other_token))).json()["team"]["name"] == "other"


@pytest.mark.parametrize(
    ("role", "me", "status", "tokens_list", "tokens_create"),
    [
        ("viewer", 200, 200, 403, 403),
        ("developer", 200, 200, 403, 403),
        ("admin", 200, 200, 200, 201),
    ],
)
async def test_roles_are_enforced(api, client, identities, role, me, status, tokens_list, tokens_create):
    user = await identities.member(f"{role}@example.com", role)
    token, _ = await identities.token(user)
    h = bearer(token)
    r = await client.get("/v1/me", headers=h)
    assert r.status_code == me and r.json()["role"] == role
    assert (await client.get("/v1/status", headers=h)).status_code == status
    r = await client.get("/v1/tokens", headers=h)
    assert r.status_code == tokens_list
    r2 = await client.post("/v1/tokens", headers=h, json={"name": "mine"})
    assert r2.status_code == tokens_create
    if tokens_create == 403:
        assert r2.headers["content-type"] == MEDIA_TYPE
        body = r2.json()
        assert body["type"] == "urn:berth:problem:forbidden" and "admin" in body["detail"]


async def test_last_used_is_recorded_cheaply(api, client, identities, api_urls):
    user = await identities.member("busy@example.com", "viewer")
    token, token_id = await identities.token(user)

    async def last_used():
        conn = await asyncpg.connect(api_urls["api"].replace("+asyncpg", ""))
        try:
            return await conn.fetchval("SELECT last_used_at FROM api.api_tokens WHERE id = $1", token_id)
        finally:
            await conn.close()

    assert await last_used() is None
    assert (await client.get("/v1/me", headers=bearer(token))).status_code == 200
    first = await last_used()
    assert first is not None
    for _ in range(3):  # within the touch interval: no further writes
        assert (await client.get("/v1/me", headers=bearer(token))).status_code == 200
    assert await last_used() == first


async def test_who_asks_is_checked_before_the_body_is_read(api, client, identities):
    """A body that is not JSON, or far from valid, gets 401 without a token and 403 for a role too low: the
    guard runs before the body is parsed. With the role it takes, the same body is a 422."""
    viewer = bearer((await identities.token(await identities.member("v@example.com", "viewer")))[0])
    broken = {"content-type": "application/json"}
    for path in ("/v1/tokens", "/v1/projects"):
        for body in (b'{"name": ', b"not json at all", b'{"name": 42, "unknown": true}'):
            assert_401(await client.post(path, headers=broken, content=body))
            assert_401(await client.post(path, headers={**broken, **bearer("berth_x")}, content=body))
            refused = await client.post(path, headers={**broken, **viewer}, content=body)
            assert refused.status_code == 403 and refused.json()["type"] == "urn:berth:problem:forbidden"
            admitted = await client.post(path, headers={**broken, **bearer(api.admin_token())}, content=body)
            assert admitted.status_code == 422, admitted.text
    # The elevated role of a query flag is checked before the route runs too.
    r = await client.get("/v1/environments/" + "0" * 32 + "/variables/export?reveal_secrets=true", headers=viewer)
    assert r.status_code == 403 and "admin" in r.json()["detail"]
