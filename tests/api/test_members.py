"""Members and invitations: list, change a role, remove (never the last admin); single-use invitation codes
that expire; a user in several teams with one token per team."""

from __future__ import annotations

import asyncio

import asyncpg

from berth_api.domain.problems import MEDIA_TYPE
from tests.api.conftest import bearer


async def _db(api_urls) -> asyncpg.Connection:
    return await asyncpg.connect(api_urls["api"].replace("+asyncpg", ""))


async def _invite(client, headers, email: str, role: str = "developer") -> dict:
    r = await client.post("/v1/invitations", headers=headers, json={"email": email, "role": role})
    assert r.status_code == 201, r.text
    return r.json()


async def _accept(client, code: str, **extra):
    return await client.post("/v1/invitations/accept", json={"code": code, **extra})


async def test_invitation_makes_a_member_with_a_token_once(client, members, api_urls):
    inv = await _invite(client, members.admin, "Ada@Example.com", "developer")
    assert inv["email"] == "ada@example.com" and inv["role"] == "developer" and inv["state"] == "pending"
    assert inv["code"].startswith("berthinv_")
    listed = (await client.get("/v1/invitations", headers=members.admin)).json()
    assert [i["id"] for i in listed] == [inv["id"]] and "code" not in listed[0]

    r = await _accept(client, inv["code"], name="Ada Lovelace")
    assert r.status_code == 201, r.text
    joined = r.json()
    assert joined["user"]["email"] == "ada@example.com" and joined["user"]["name"] == "Ada Lovelace"
    assert joined["team"]["name"] == "default" and joined["role"] == "developer"
    token = joined["token"]["token"]
    me = (await client.get("/v1/me", headers=bearer(token))).json()
    assert me["role"] == "developer" and me["user"]["email"] == "ada@example.com"

    # Single use: the same code again is a conflict; the invitation shows as accepted.
    again = await _accept(client, inv["code"])
    assert again.status_code == 409 and again.headers["content-type"] == MEDIA_TYPE
    assert "used already" in again.json()["detail"]
    listed = (await client.get("/v1/invitations", headers=members.admin)).json()
    assert listed[0]["state"] == "accepted" and listed[0]["accepted_at"]

    # Only hashes are stored.
    conn = await _db(api_urls)
    try:
        stored = await conn.fetch("SELECT hash, prefix FROM api.invitations")
    finally:
        await conn.close()
    assert inv["code"] not in str([dict(r) for r in stored])


async def test_expired_revoked_and_wrong_codes(client, members, api_urls):
    inv = await _invite(client, members.admin, "late@example.com")
    conn = await _db(api_urls)
    try:
        await conn.execute(
            "UPDATE api.invitations SET expires_at = now() - interval '1 second' WHERE id = $1", inv["id"]
        )
    finally:
        await conn.close()
    r = await _accept(client, inv["code"])
    assert r.status_code == 410 and "expired" in r.json()["detail"]

    inv2 = await _invite(client, members.admin, "nope@example.com")
    r = await client.delete(f"/v1/invitations/{inv2['id']}", headers=members.admin)
    assert r.status_code == 200 and r.json()["state"] == "revoked"
    r = await _accept(client, inv2["code"])
    assert r.status_code == 410 and "revoked" in r.json()["detail"]

    # A wrong secret, an unknown prefix and garbage: one 404 naming the field.
    _, prefix, secret = inv2["code"].split("_", 2)
    for code in (
        f"berthinv_{prefix}_{'A' if secret[0] != 'A' else 'B'}{secret[1:]}",
        "berthinv_" + "0" * 12 + "_" + "x" * 43,
        "junk",
    ):
        r = await _accept(client, code)
        assert r.status_code == 404 and r.json()["errors"][0]["loc"] == "/body/code", r.text
    # Nobody joined.
    emails = {m["email"] for m in (await client.get("/v1/members", headers=members.admin)).json()}
    assert not emails & {"late@example.com", "nope@example.com"}


async def test_invitation_conflicts_and_validation(client, members):
    await _invite(client, members.admin, "dup@example.com")
    r = await client.post("/v1/invitations", headers=members.admin, json={"email": "dup@example.com"})
    assert r.status_code == 409 and r.json()["errors"][0]["loc"] == "/body/email"
    r = await client.post("/v1/invitations", headers=members.admin, json={"email": "view@example.com"})
    assert r.status_code == 409  # a member already
    for bad in ("no-at-sign", "a@b", "a b@example.com", "x@exa mple.com", "é@example.com", "a@-bad-.com"):
        r = await client.post("/v1/invitations", headers=members.admin, json={"email": bad})
        assert r.status_code == 422 and r.json()["errors"][0]["loc"] == "/body/email", bad
    r = await client.post("/v1/invitations", headers=members.admin, json={"email": "x@example.com", "role": "owner"})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == "/body/role"
    for who in (members.developer, members.viewer):
        assert (await client.post("/v1/invitations", headers=who, json={"email": "y@example.com"})).status_code == 403
    # The invitee's name is shown to people: no control characters; the code survives a refused body.
    inv = await _invite(client, members.admin, "named@example.com")
    for bad in ("line\nbreak", "tab\there", "   ", "x" * 101):
        r = await _accept(client, inv["code"], name=bad)
        assert r.status_code == 422 and r.json()["errors"][0]["loc"] == "/body/name", bad
    r = await _accept(client, inv["code"], name="  Grace Hopper ")
    assert r.status_code == 201 and r.json()["user"]["name"] == "Grace Hopper"


async def test_a_user_in_two_teams_has_a_token_per_team(client, members):
    """The other team's admin invites the default team's developer: same user, a second membership."""
    inv = await _invite(client, members.other, "dev@example.com", "viewer")
    r = await _accept(client, inv["code"])
    assert r.status_code == 201, r.text
    other_token = bearer(r.json()["token"]["token"])
    in_other = (await client.get("/v1/me", headers=other_token)).json()
    in_default = (await client.get("/v1/me", headers=members.developer)).json()
    assert in_other["user"]["id"] == in_default["user"]["id"]
    assert (in_other["team"]["name"], in_other["role"]) == ("other", "viewer")
    assert (in_default["team"]["name"], in_default["role"]) == ("default", "developer")
    teams = (await client.get("/v1/me/teams", headers=other_token)).json()
    assert [(t["name"], t["role"]) for t in teams] == [("default", "developer"), ("other", "viewer")]
    # A token is bound to its team: the other team's token sees the other team's (empty) projects only.
    await client.post("/v1/projects", headers=members.developer, json={"name": "mine"})
    assert (await client.get("/v1/projects", headers=other_token)).json() == []
    # Accepting again for a team one belongs to is a conflict.
    inv2 = await _invite(client, members.admin, "someone@example.com")
    await _accept(client, inv2["code"])
    r = await client.post("/v1/invitations", headers=members.admin, json={"email": "someone@example.com"})
    assert r.status_code == 409


async def test_members_roles_and_the_last_admin(client, members):
    listed = (await client.get("/v1/members", headers=members.admin)).json()
    by_email = {m["email"]: m for m in listed}
    assert {e: m["role"] for e, m in by_email.items()} == {
        "admin@localhost": "admin",
        "dev@example.com": "developer",
        "view@example.com": "viewer",
    }
    admin_id = by_email["admin@localhost"]["user_id"]
    viewer_id = by_email["view@example.com"]["user_id"]

    # The only admin can neither step down nor leave.
    r = await client.patch(f"/v1/members/{admin_id}", headers=members.admin, json={"role": "developer"})
    assert r.status_code == 409 and "last admin" in r.json()["detail"]
    r = await client.delete(f"/v1/members/{admin_id}", headers=members.admin)
    assert r.status_code == 409

    # Promote the viewer; its token now acts as admin at once; then the first admin may step down.
    r = await client.patch(f"/v1/members/{viewer_id}", headers=members.admin, json={"role": "admin"})
    assert r.status_code == 200 and r.json()["role"] == "admin"
    assert (await client.get("/v1/members", headers=members.viewer)).status_code == 200
    r = await client.patch(f"/v1/members/{admin_id}", headers=members.admin, json={"role": "developer"})
    assert r.status_code == 200
    assert (await client.get("/v1/members", headers=members.admin)).status_code == 403

    # Removing a member revokes its tokens of this team.
    dev_id = by_email["dev@example.com"]["user_id"]
    assert (await client.delete(f"/v1/members/{dev_id}", headers=members.viewer)).status_code == 204
    assert (await client.get("/v1/me", headers=members.developer)).status_code == 401
    assert (await client.delete(f"/v1/members/{dev_id}", headers=members.viewer)).status_code == 404
    # Another team's member is "missing", and roles are validated.
    other_admin = (await client.get("/v1/me", headers=members.other)).json()["user"]["id"]
    assert (await client.delete(f"/v1/members/{other_admin}", headers=members.viewer)).status_code == 404
    r = await client.patch(f"/v1/members/{viewer_id}", headers=members.viewer, json={"role": "root"})
    assert r.status_code == 422


async def test_two_admins_demoting_each_other_at_once_leave_one(client, members):
    """The admins' rows are locked while checked: of two concurrent demotions one wins, the other is refused
    (409 if it was checked after the first committed, 403 if it authenticated after it)."""
    by_email = {m["email"]: m for m in (await client.get("/v1/members", headers=members.admin)).json()}
    admin_id, viewer_id = by_email["admin@localhost"]["user_id"], by_email["view@example.com"]["user_id"]
    await client.patch(f"/v1/members/{viewer_id}", headers=members.admin, json={"role": "admin"})
    a, b = await asyncio.gather(
        client.patch(f"/v1/members/{admin_id}", headers=members.viewer, json={"role": "developer"}),
        client.patch(f"/v1/members/{viewer_id}", headers=members.admin, json={"role": "developer"}),
    )
    assert sorted([a.status_code, b.status_code]) in ([200, 403], [200, 409]), (a.text, b.text)
    still_admin = members.viewer if a.status_code == 200 else members.admin
    roles = [m["role"] for m in (await client.get("/v1/members", headers=still_admin)).json()]
    assert roles.count("admin") == 1
