"""The team page's own teams: switch to another team you belong to, create one (then work in it), leave
one, delete an empty one. Tokens are per team (docs/teams.md), so a switch replaces the session's token
with one minted by the REST API for the chosen team (``POST /v1/me/tokens``, or the first token
``POST /v1/teams`` answers); the cookie and the CSRF secret stay.

The old token: a token the dashboard minted for a switch (named ``SESSION_TOKEN``, expiring in a day, past
the session's twelve hours) is revoked when the role allows (``DELETE /v1/tokens/{id}`` is an admin's),
else it lapses within the day. A token the person pasted to sign in is theirs (their CLI may use it) and is
kept. Leaving or deleting the team the session acts in is not offered: the REST API would revoke the
session's token; switch first."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from berth_api.dashboard import sessions
from berth_api.dashboard.client import Api, ApiError
from berth_api.dashboard.page_forms import call, form, text
from berth_api.dashboard.pages_team import PAGE, redraw
from berth_api.dashboard.web import back_to, state_of

SESSION_TOKEN = "dashboard session"
SESSION_DAYS = 1


async def _work_in(request: Request, api: Api, base: dict[str, Any], token: str, team: dict[str, Any]) -> None:
    """Make ``token`` (for ``team``) the session's, revoking the old one when the dashboard made it."""
    me = base["me"]
    if me["token"]["name"] == SESSION_TOKEN and base["can"]["admin"]:
        try:
            await api.call("DELETE", f"/v1/tokens/{me['token']['id']}")
        except ApiError:  # already revoked or expired: nothing to undo
            pass
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
    await call(api, base, redraw, "POST", "/v1/me/teams/leave", json={"team_id": request.path_params["team_id"]})
    return back_to(PAGE)


@form
async def delete_team(request: Request, api: Api, base: dict[str, Any]) -> Response:
    await call(api, base, redraw, "DELETE", f"/v1/teams/{request.path_params['team_id']}")
    return back_to(PAGE)
