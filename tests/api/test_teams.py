# ruff: noqa: F811 (the module's fixtures are imported from tests.api.module_api by name)
"""Teams through the api: any signed-in user creates a team (and is its admin, with a first token for it);
a token is minted for a team you belong to (tokens are per team: switching is using another one); you
leave a team (never as its last admin); an admin deletes an empty team (409 naming what it still holds).
Audit rows go into the log of the team concerned. One api for the module."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.routing import APIRoute

from berth_api.domain.problems import MEDIA_TYPE
from berth_api.domain.roles import allows
from berth_api.entrypoints import routes_teams
from berth_api.entrypoints.auth import declared_access
from tests.api.conftest import Identities, bearer, make_project
from tests.api.module_api import api, api_settings, api_urls, base_api_settings, client, members  # noqa: F401

HEX_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(scope="module")
async def identities(api_urls) -> AsyncIterator[Identities]:
    ids = Identities(api_urls["api"])
    yield ids
    await ids.close()


async def _person(identities: Identities, email: str, role: str = "developer") -> dict[str, str]:
    """A new member of the default team, with a token for it."""
    token, _ = await identities.token(await identities.member(email, role))  # type: ignore[arg-type]
    return bearer(token)


async def _create(client, headers, name: str, **extra) -> dict:
    r = await client.post("/v1/teams", headers=headers, json={"name": name, **extra})
    assert r.status_code == 201, r.text
    return r.json()


async def _audit(client, headers, route: str) -> list[dict]:
    r = await client.get("/v1/audit", headers=headers, params={"route": route})
    assert r.status_code == 200, r.text
    return r.json()


async def test_any_member_creates_a_team_and_is_its_admin(client, members, identities):
    viewer = await _person(identities, "creator@example.com", "viewer")
    made = await _create(client, viewer, "blue", token_name="blue laptop")
    assert made["name"] == "blue" and made["role"] == "admin" and HEX_ID.fullmatch(made["id"])
    assert made["token"]["name"] == "blue laptop" and made["token"]["token"].startswith("berth_")
    blue = bearer(made["token"]["token"])
    me = (await client.get("/v1/me", headers=blue)).json()
    assert me["team"] == {"id": made["id"], "name": "blue"} and me["role"] == "admin"
    # The old token still acts in the default team, as a viewer; both teams are listed as mine.
    assert (await client.get("/v1/me", headers=viewer)).json()["team"]["name"] == "default"
    mine = (await client.get("/v1/me/teams", headers=viewer)).json()
    assert sorted((t["name"], t["role"]) for t in mine) == [("blue", "admin"), ("default", "viewer")]
    assert (await client.get("/v1/members", headers=blue)).json()[0]["email"] == "creator@example.com"

    # Names are unique across teams and follow the resource-name rule.
    taken = await client.post("/v1/teams", headers=members.other, json={"name": "blue"})
    assert taken.status_code == 409 and taken.headers["content-type"] == MEDIA_TYPE
    assert "exists already" in taken.text
    for bad in ("Blue", "a b", "x" * 64, "-x", "a\x00"):
        assert (await client.post("/v1/teams", headers=viewer, json={"name": bad})).status_code == 422, bad
    assert (await client.post("/v1/teams", headers=viewer, json={"name": "c", "role": "x"})).status_code == 422

    # The creation is in the new team's log (not the default team's), naming the team.
    rows = await _audit(client, blue, "/v1/teams")
    assert [(r["method"], r["status"], r["target_id"]) for r in rows] == [("POST", 201, made["id"])]
    assert rows[0]["fields"] == ["name", "token_name"]
    assert all(r["status"] != 201 for r in await _audit(client, members.admin, "/v1/teams"))


async def test_a_token_is_minted_for_a_team_you_belong_to(client, members, identities):
    dev = await _person(identities, "switcher@example.com", "developer")
    green = await _create(client, dev, "green")
    # Switch back: from the green token, a token for the default team, with the role held there.
    r = await client.post(
        "/v1/me/tokens",
        headers=bearer(green["token"]["token"]),
        json={"team_id": (await client.get("/v1/me", headers=dev)).json()["team"]["id"], "name": "ci"},
    )
    assert r.status_code == 201, r.text
    minted = r.json()
    assert minted["team"]["name"] == "default" and minted["name"] == "ci" and minted["expires_at"] is None
    me = (await client.get("/v1/me", headers=bearer(minted["token"]))).json()
    assert me["team"]["name"] == "default" and me["role"] == "developer" and me["token"]["id"] == minted["id"]
    assert minted["token"] not in str(await _audit(client, members.admin, "/v1/me/tokens"))
    rows = await _audit(client, members.admin, "/v1/me/tokens")
    assert [(r["status"], r["target_id"]) for r in rows] == [(201, minted["id"])]  # in the default team's log

    # An expiry is kept; a team you do not belong to is answered like one that exists nowhere.
    r = await client.post(
        "/v1/me/tokens", headers=dev, json={"team_id": green["id"], "name": "short", "expires_in_days": 1}
    )
    assert r.status_code == 201 and r.json()["expires_at"] is not None
    other_team = (await client.get("/v1/me", headers=members.other)).json()["team"]["id"]
    refused = await client.post("/v1/me/tokens", headers=dev, json={"team_id": other_team, "name": "x"})
    nowhere = await client.post("/v1/me/tokens", headers=dev, json={"team_id": uuid.uuid4().hex, "name": "x"})
    assert refused.status_code == nowhere.status_code == 404
    assert HEX_ID.sub("<id>", refused.text) == HEX_ID.sub("<id>", nowhere.text)
    assert (await client.post("/v1/me/tokens", headers=dev, json={"team_id": "nope", "name": "x"})).status_code == 422


async def test_a_person_revokes_a_token_of_their_own_in_any_team(client, members, identities):
    viewer = await _person(identities, "revoker@example.com", "viewer")
    teal = await _create(client, viewer, "teal")
    teal_token = teal["token"]
    # From the default team (a viewer there), revoke the token that acts in teal: any role may.
    r = await client.delete(f"/v1/me/tokens/{teal_token['id']}", headers=viewer)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == teal_token["id"] and r.json()["revoked_at"] is not None
    assert (await client.get("/v1/me", headers=bearer(teal_token["token"]))).status_code == 401
    again = await client.delete(f"/v1/me/tokens/{teal_token['id']}", headers=viewer)
    assert again.status_code == 200 and again.json()["revoked_at"] == r.json()["revoked_at"]  # idempotent
    # Someone else's token, even an admin's of the same team, is not yours: 404, and it still works.
    admin_id = (await client.get("/v1/me", headers=members.admin)).json()["token"]["id"]
    assert (await client.delete(f"/v1/me/tokens/{admin_id}", headers=viewer)).status_code == 404
    assert (await client.get("/v1/me", headers=members.admin)).status_code == 200
    assert (await client.delete("/v1/me/tokens/nope", headers=viewer)).status_code == 422
    rows = await _audit(client, members.admin, "/v1/me/tokens/{token_id}")
    assert [r["status"] for r in rows] == [422, 404]  # newest first; the revocation is in teal's log


async def test_leave_a_team_but_never_as_its_last_admin(client, members, identities):
    admin_of_red = await _person(identities, "red-admin@example.com", "viewer")
    red = await _create(client, admin_of_red, "red")
    red_admin = bearer(red["token"]["token"])
    last = await client.post("/v1/me/teams/leave", headers=red_admin, json={"team_id": red["id"]})
    assert last.status_code == 409 and "last admin of team red" in last.json()["detail"]

    leaver = await _person(identities, "leaver@example.com", "developer")
    default_id = (await client.get("/v1/me", headers=leaver)).json()["team"]["id"]
    leaver_user = (await client.get("/v1/me", headers=leaver)).json()["user"]["id"]
    r = await client.post("/v1/me/teams/leave", headers=leaver, json={"team_id": default_id})
    assert r.status_code == 204, r.text
    assert (await client.get("/v1/me", headers=leaver)).status_code == 401  # its tokens there are revoked
    assert leaver_user not in [m["user_id"] for m in (await client.get("/v1/members", headers=members.admin)).json()]
    rows = await _audit(client, members.admin, "/v1/me/teams/leave")
    assert [(r["user_id"], r["status"]) for r in rows] == [(leaver_user, 204)]  # in the left team's log

    stranger = await client.post("/v1/me/teams/leave", headers=members.other, json={"team_id": default_id})
    assert stranger.status_code == 404  # not a member: answered like a team that exists nowhere


async def test_delete_an_empty_team_and_the_409_names_what_it_holds(client, members, identities):
    owner = await _person(identities, "owner@example.com", "viewer")
    made = await _create(client, owner, "violet")
    violet = bearer(made["token"]["token"])
    await make_project(client, violet, "site")
    helper_token, _ = await identities.token(
        await identities.member("helper@example.com", "viewer", team="violet"), team="violet"
    )
    helper = bearer(helper_token)

    held = await client.delete(f"/v1/teams/{made['id']}", headers=violet)
    assert held.status_code == 409 and held.headers["content-type"] == MEDIA_TYPE
    detail = held.json()["detail"]
    assert "Team violet still holds" in detail
    assert "1 projects" in detail and "1 environments" in detail and "1 other members" in detail
    assert (await client.delete(f"/v1/teams/{made['id']}", headers=helper)).status_code == 403
    assert (await client.delete(f"/v1/teams/{made['id']}", headers=members.admin)).status_code == 404
    nowhere = await client.delete(f"/v1/teams/{uuid.uuid4().hex}", headers=members.admin)
    assert nowhere.status_code == 404

    project = (await client.get("/v1/projects", headers=violet)).json()[0]
    assert (await client.delete(f"/v1/projects/{project['id']}", headers=violet)).status_code == 204
    assert (await client.post("/v1/me/teams/leave", headers=helper, json={"team_id": made["id"]})).status_code == 204
    r = await client.delete(f"/v1/teams/{made['id']}", headers=violet)
    assert r.status_code == 204, r.text
    assert (await client.get("/v1/me", headers=violet)).status_code == 401  # its tokens went with it
    assert "violet" not in [t["name"] for t in (await client.get("/v1/me/teams", headers=owner)).json()]
    rows = await _audit(client, members.admin, "/v1/teams/{team_id}")
    assert (made["id"], 204) not in [(r["target_id"], r["status"]) for r in rows]  # the owner's token team's log
    assert (await client.post("/v1/teams", headers=owner, json={"name": "violet"})).status_code == 201


EXPECTED_ACCESS = {
    ("POST", "/v1/teams"): "viewer",
    ("POST", "/v1/me/tokens"): "viewer",
    ("POST", "/v1/me/teams/leave"): "viewer",
    ("DELETE", "/v1/teams/{team_id}"): "admin",
    ("DELETE", "/v1/me/tokens/{token_id}"): "viewer",
}


def _operations() -> list[tuple[str, str, str]]:
    ops = []
    for route in routes_teams.router.routes:
        assert isinstance(route, APIRoute)
        for method in route.methods:
            ops.append((method, route.path, declared_access(route.dependant) or ""))
    return ops


async def test_rbac_matrix_of_the_team_routes(client, members, identities):
    """Every team route x {no token, expired, revoked, viewer, developer, admin, another team's admin}."""
    assert {(m, p): a for m, p, a in _operations()} == EXPECTED_ACCESS
    user = (await client.get("/v1/me", headers=members.developer)).json()["user"]["id"]
    expired, _ = await identities.token(user, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    revoked, revoked_id = await identities.token(user)
    assert (await client.delete(f"/v1/tokens/{revoked_id}", headers=members.admin)).status_code == 200
    nowhere = uuid.uuid4().hex  # no mutation the walk makes can succeed, so every identity sees the same
    bodies = {
        ("POST", "/v1/teams"): {"name": "default"},  # taken: 409 for whoever may ask
        ("POST", "/v1/me/tokens"): {"team_id": nowhere, "name": "walk"},
        ("POST", "/v1/me/teams/leave"): {"team_id": nowhere},
    }
    roles = {"viewer": members.viewer, "developer": members.developer, "admin": members.admin}
    violations = []
    for method, path, access in _operations():
        url = path.format(team_id=nowhere, token_id=nowhere)
        body = bodies.get((method, path))
        for who, headers in (("nobody", {}), ("expired", bearer(expired)), ("revoked", bearer(revoked))):
            if (status := (await client.request(method, url, headers=headers, json=body)).status_code) != 401:
                violations.append(f"{method} {path} as {who}: {status}")
        for who, headers in {**roles, "other": members.other}.items():
            status = (await client.request(method, url, headers=headers, json=body)).status_code
            wanted = {403} if not allows("admin" if who == "other" else who, access) else {404, 409}  # type: ignore[arg-type]
            if status not in wanted:
                violations.append(f"{method} {path} as {who}: {status} not in {sorted(wanted)}")
    assert violations == []
