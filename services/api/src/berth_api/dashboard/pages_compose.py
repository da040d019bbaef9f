"""A compose application's profiles and placement: the page that creates a compose application (its file,
the compose profiles to activate, the servers each of its services runs on, picked from the team's) and the
application page's forms that change its profiles and its placement. Each form is one REST call (``POST
/v1/environments/<id>/applications``, ``PATCH /v1/applications/<id>``), so the REST API checks every name
and server; its problem is drawn next to the field it names (``compose_fields.errors_of``), with what was
typed kept. "Read the services" only draws a placement row for each service of the pasted file."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from berth_api.dashboard import compose_fields as cf
from berth_api.dashboard.client import Api, ApiError, items
from berth_api.dashboard.page_forms import Redraw, call, form, text
from berth_api.dashboard.pages import _app_path, _application, _on_app
from berth_api.dashboard.web import back_to, page, render

READ = "read"  # the value of the "Read the services" button (``step``): draw the rows, create nothing


async def _environment(api: Api, env_id: str) -> dict[str, str]:
    """The environment the application goes into, named as ``project / environment``."""
    for p in await api.get("/v1/projects"):
        for env in p["environments"]:
            if env["id"] == env_id:
                return {"id": env_id, "label": f"{p['name']} / {env['name']}"}
    raise ApiError(404, "No such environment in this team.")


async def _new(
    api: Api,
    base: dict[str, Any],
    env_id: str,
    status: int = 200,
    typed: cf.Given | None = None,
    compose: str = "",
    name: str = "",
    errors: cf.Errors | None = None,
    name_error: str = "",
    **extra: Any,
) -> Response:
    """The new compose application's page: the fields as typed, and a placement row for each service of the
    file typed (with the servers ticked for it)."""
    env, servers = await asyncio.gather(_environment(api, env_id), api.maybe("/v1/servers", []))
    typed = typed or cf.Given([], [])
    rows, unread = cf.rows_of_file(compose) if compose.strip() else ([], "")
    rows = cf.kept(rows, typed.rows) if rows else typed.rows
    return render(
        "compose_new.html",
        status,
        **base,
        env=env,
        servers=items(servers),
        app_name=name,
        compose=compose,
        name_error=name_error,
        profiles=cf.profile_inputs(typed.profiles),
        declared=sorted({p for r in rows for p in r.profiles}),
        rows=rows,
        unread=unread,
        errors=errors or cf.Errors(),
        **extra,
    )


@page
async def new_compose(request: Request, api: Api, base: dict[str, Any]) -> Response:
    return await _new(api, base, request.path_params["environment_id"])


@form
async def create_compose(request: Request, api: Api, base: dict[str, Any]) -> Response:
    """Create the compose application (name, file, profiles, placement), or (``step=read``) draw the page
    again with a placement row for each service of the file."""
    env_id = request.path_params["environment_id"]
    typed = cf.given(base["form"])
    compose, name = str(base["form"].get("compose") or "").replace("\r\n", "\n"), text(base, "name")
    if base["form"].get("step") == READ:
        return await _new(api, base, env_id, typed=typed, compose=compose, name=name)
    profiles, profile_at = typed.profiles_body()
    placement, placed = typed.placement_body()
    body: dict[str, Any] = {"name": name, "compose": {"inline": compose, "profiles": profiles}}
    if placement:
        body["placement"] = placement

    async def redraw(api: Api, base: dict[str, Any], status: int, error: ApiError) -> Response:
        errors = cf.errors_of(error.fields, profile_at, placed)
        return await _new(
            api, base, env_id, status, typed, compose, name, errors, error.fields.get("name", ""), error=error
        )

    app = await call(api, base, redraw, "POST", f"/v1/environments/{env_id}/applications", json=body)
    return back_to(f"/ui/applications/{app['id']}")


def _on_compose(request: Request, typed: cf.Given, profile_at: list[int], placed: list[str]) -> Redraw:
    """The application page with the REST API's problem next to the profile or placement field it names, and
    what was typed kept."""
    app_id = request.path_params["application_id"]

    async def redraw(api: Api, base: dict[str, Any], status: int, error: ApiError) -> Response:
        errors = cf.errors_of(error.fields, profile_at, placed)
        return await _application(api, base, app_id, status, error=error, compose_typed=typed, compose_errors=errors)

    return redraw


@form
async def set_profiles(request: Request, api: Api, base: dict[str, Any]) -> Response:
    """Activate the profiles given (all of them: the list replaces the stored one): the stored compose file
    is sent again with them, its files kept by path. A placed service the profiles leave out is refused at
    its placement row."""
    app = await call(api, base, _on_app(request), "GET", _app_path(request))
    if not app.get("compose"):
        return back_to(f"/ui/applications/{app['id']}")  # an application of services has no profiles
    typed = cf.given(base["form"])
    profiles, profile_at = typed.profiles_body()
    body = {"compose": cf.compose_body(app["compose"], profiles)}
    placed = [str(e["service"]) for e in app["compose"].get("placement") or []]  # a placed service left out
    await call(api, base, _on_compose(request, typed, profile_at, placed), "PATCH", _app_path(request), json=body)
    return back_to(f"/ui/applications/{app['id']}#profiles")


@form
async def set_placement(request: Request, api: Api, base: dict[str, Any]) -> Response:
    """Place each service on the servers ticked for it (the list replaces the stored one; a service with
    none ticked runs on ``local``)."""
    typed = cf.given(base["form"])
    placement, placed = typed.placement_body()
    redraw = _on_compose(request, typed, [], placed)
    await call(api, base, redraw, "PATCH", _app_path(request), json={"placement": placement})
    return back_to(f"/ui/applications/{request.path_params['application_id']}#placement")
