"""The team page: your teams and role; for admins the members and their roles, invitations, API tokens and
the audit log. Each read and each form is a REST call with the session's token. A new invitation's code and
a new token are in the answer to the form that made them, once (never in a URL, never on a later page: the
REST API keeps only their hashes); the REST API refuses what the role may not do, the page leaves it out."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from berth_api.dashboard.client import Api, items
from berth_api.dashboard.page_forms import around, call, form, text
from berth_api.dashboard.web import back_to, page, render

PAGE = "/ui/team"
ROLES = ("viewer", "developer", "admin", "owner")


AUDIT_PAGE = 50


async def _page(api: Api, base: dict[str, Any], status: int = 200, before: str = "", **extra: Any) -> Response:
    teams = await api.get("/v1/me/teams")
    admin: dict[str, Any] = {}
    if base["can"]["admin"]:
        members, invitations, tokens, audit = await asyncio.gather(
            api.get("/v1/members"),
            api.get("/v1/invitations"),
            api.get("/v1/tokens"),
            api.get("/v1/audit", params={"limit": AUDIT_PAGE, **({"before": before} if before else {})}),
        )
        emails = {m["user_id"]: m["email"] for m in items(members)}
        admin = {
            "members": items(members),
            "invitations": [i for i in items(invitations) if i["state"] == "pending"],
            "tokens": [t for t in items(tokens) if not t["revoked_at"]],
            "audit": items(audit),
            "older": items(audit)[-1]["id"] if len(items(audit)) == AUDIT_PAGE else None,
            "emails": emails,
        }
    return render("team.html", status, **base, teams=teams, roles=ROLES, **admin, **extra)


redraw = around(_page)


@page
async def team(request: Request, api: Api, base: dict[str, Any]) -> Response:
    """The page; ``before`` in the query pages the audit log back (entries with lower ids)."""
    before = request.query_params.get("before", "")
    return await _page(api, base, before=before if before.isdigit() else "")


@form
async def change_role(request: Request, api: Api, base: dict[str, Any]) -> Response:
    user = request.path_params["user_id"]
    await call(api, base, redraw, "PATCH", f"/v1/members/{user}", json={"role": text(base, "role")})
    return back_to(PAGE)


@form
async def remove_member(request: Request, api: Api, base: dict[str, Any]) -> Response:
    await call(api, base, redraw, "DELETE", f"/v1/members/{request.path_params['user_id']}")
    return back_to(PAGE)


@form
async def invite(request: Request, api: Api, base: dict[str, Any]) -> Response:
    """Invite someone; the single-use code is on this answer only (to pass on to the invitee)."""
    body = {"email": text(base, "email"), "role": text(base, "role") or "developer"}
    invited = await call(api, base, redraw, "POST", "/v1/invitations", json=body)
    return await _page(api, base, 200, invited=invited)


@form
async def revoke_invitation(request: Request, api: Api, base: dict[str, Any]) -> Response:
    await call(api, base, redraw, "DELETE", f"/v1/invitations/{request.path_params['invitation_id']}")
    return back_to(PAGE)


@form
async def create_token(request: Request, api: Api, base: dict[str, Any]) -> Response:
    """Create a token for yourself; its value is on this answer only."""
    days = text(base, "expires_in_days")
    body: dict[str, Any] = {"name": text(base, "name")}
    if days:
        body["expires_in_days"] = int(days) if days.isdigit() else days
    created = await call(api, base, redraw, "POST", "/v1/tokens", json=body)
    return await _page(api, base, 200, created=created)


@form
async def revoke_token(request: Request, api: Api, base: dict[str, Any]) -> Response:
    await call(api, base, redraw, "DELETE", f"/v1/tokens/{request.path_params['token_id']}")
    return back_to(PAGE)
