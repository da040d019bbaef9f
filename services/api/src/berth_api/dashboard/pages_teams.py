"""The team page's own teams: switch to another team you belong to, create one (then work in it), leave
one, delete an empty one. Tokens are per team (docs/teams.md), so a switch replaces the session's token
with one minted by the REST API for the chosen team (``POST /v1/me/tokens``, or the first token
``POST /v1/teams`` answers); the cookie and the CSRF secret stay.

The old token: a token the dashboard minted for a switch (named ``SESSION_TOKEN``, expiring in a day, past
the session's twelve hours) is revoked by its owner (``DELETE /v1/me/tokens/{id}``, any role). A token the person pasted to sign in is theirs (their CLI may use it) and is
kept.

Leaving or deleting the team the session acts in revokes the session's token (the REST API revokes your
tokens for a team you leave, and every token of a deleted team). So the page first mints a token for another
team of yours, does the leave or delete, and then acts in that other team; with no other team, the leave
or delete signs the session out. A token minted for a leave or delete that the REST API then refuses is
revoked again."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from berth_api.dashboard import sessions
from berth_api.dashboard.client import Api, ApiError
from berth_api.dashboard.page_forms import Shown, call, form, text
from berth_api.dashboard.pages_team import PAGE, redraw
from berth_api.dashboard.web import back_to, state_of

SESSION_TOKEN = "dashboard session"
SESSION_DAYS = 1


async def _work_in(request: Request, api: Api, base: dict[str, Any], token: str, team: dict[str, Any]) -> None:
    """Make ``token`` (for ``team``) the session's, revoking the old one when the dashboard made it."""
    me = base["me"]
    if me["token"]["name"] == SESSION_TOKEN:
        await _revoke(api, me["token"]["id"])
    label = f"{me['user']['email']} ({team['name']})"
    await sessions.replace_token(state_of(request), request.state.session, token, label)


@form
async def switch_team(request: Request, api: Api, base: dict[str, Any]) -> Response:
    """Act in another team you belong to, with a token the REST API mints for you there."""
    body = {"team_id": text(base, "team_id"), "name": SESSION_TOKEN, "expires_in_days": SESSION_DAYS}
    minted = await call(api, base, redraw, "POST", "/v1/me/tokens", json=body)
    await _work_in(request, api, base, minted["token"], minted["team"])
    return back_to(PAGE)


@form
async def create_team(request: Request, api: Api, base: dict[str, Any]) -> Response:
    """Create a team (you are its admin) and act in it from now on."""
    body = {"name": text(base, "name"), "token_name": SESSION_TOKEN, "expires_in_days": SESSION_DAYS}
    made = await call(api, base, redraw, "POST", "/v1/teams", json=body)
    await _work_in(request, api, base, made["token"]["token"], made)
    return back_to(PAGE)


@form
async def leave_team(request: Request, api: Api, base: dict[str, Any]) -> Response:
    team_id = request.path_params["team_id"]
    if team_id == base["me"]["team"]["id"]:
        return await _out_of_current(request, api, base, "POST", "/v1/me/teams/leave", {"team_id": team_id})
    await call(api, base, redraw, "POST", "/v1/me/teams/leave", json={"team_id": team_id})
    return back_to(PAGE)


@form
async def delete_team(request: Request, api: Api, base: dict[str, Any]) -> Response:
    team_id = request.path_params["team_id"]
    if team_id == base["me"]["team"]["id"]:
        return await _out_of_current(request, api, base, "DELETE", f"/v1/teams/{team_id}", None)
    await call(api, base, redraw, "DELETE", f"/v1/teams/{team_id}")
    return back_to(PAGE)


async def _out_of_current(
    request: Request, api: Api, base: dict[str, Any], method: str, path: str, body: dict[str, Any] | None
) -> Response:
    """Leave or delete the team the session acts in: with a token minted for another team of yours first
    (the session's own is revoked by the leave or delete), then act there; with none, sign out."""
    current = base["me"]["team"]["id"]
    others = [t for t in await api.get("/v1/me/teams") if t["id"] != current]
    if not others:
        await call(api, base, redraw, method, path, json=body)
        state = state_of(request)
        await sessions.delete(state, request.state.session)
        response = back_to("/ui/signin")
        sessions.clear_cookie(response, request)
        return response
    target = next((t for t in others if t["role"] == "admin"), others[0])
    mint = {"team_id": target["id"], "name": SESSION_TOKEN, "expires_in_days": SESSION_DAYS}
    minted = await call(api, base, redraw, "POST", "/v1/me/tokens", json=mint)
    try:
        await call(api, base, redraw, method, path, json=body)
    except Shown:
        await _revoke(api, minted["id"])
        raise
    label = f"{base['me']['user']['email']} ({minted['team']['name']})"
    await sessions.replace_token(state_of(request), request.state.session, minted["token"], label)
    return back_to(PAGE)


async def _revoke(api: Api, token_id: str) -> None:
    """Revoke one of your own tokens that the dashboard minted (``DELETE /v1/me/tokens/{id}``, any role)."""
    try:
        await api.call("DELETE", f"/v1/me/tokens/{token_id}")
    except ApiError:  # already revoked or expired: nothing to undo
        pass
