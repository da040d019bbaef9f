"""The pages: overview, application, deployment. Each reads through the REST API with the session's token
and each form turns into one REST call; an API problem is shown on the page it came from (``page_forms.call``)."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from berth_api.dashboard import compose_fields, sessions
from berth_api.dashboard.client import Api, ApiError, items
from berth_api.dashboard.page_forms import Redraw, around, call, form
from berth_api.dashboard.page_forms import text as _form
from berth_api.dashboard.web import api_for, back_to, page, render, state_of

DEPLOYMENTS_PAGE = 50  # the application page's deployments at a time (older ones a link away)
STEPS = ("queued", "building", "starting", "verifying", "routing", "succeeded")


@page
async def overview(request: Request, api: Api, base: dict[str, Any]) -> Response:
    return await _overview(api, base)


async def _overview(api: Api, base: dict[str, Any], status: int = 200, **extra: Any) -> Response:
    """Every project, environment, application (with the newest deployment the list carries) and database:
    three REST calls at once. The template reads the rows by key (``a["id"]``), not by attribute, which Jinja
    tries on a dict before the key: about half the render's time for 1,000 applications."""
    projects, apps, databases = await asyncio.gather(
        api.get("/v1/projects"), api.get("/v1/applications", params={"limit": 1000}), api.maybe("/v1/databases", [])
    )
    apps, databases = items(apps), items(databases)
    by_env: dict[str, list[dict[str, Any]]] = {}
    for app in apps:
        by_env.setdefault(app["environment_id"], []).append(app)
    dbs_by_env: dict[str, list[dict[str, Any]]] = {}
    for db in databases or []:
        dbs_by_env.setdefault(str(db.get("environment_id")), []).append(db)
    return render("overview.html", status, **base, projects=projects, by_env=by_env, dbs_by_env=dbs_by_env, **extra)


@form
async def create_project(request: Request, api: Api, base: dict[str, Any]) -> Response:
    await call(api, base, around(_overview), "POST", "/v1/projects", json={"name": _form(base, "name")})
    return back_to("/ui/")


@form
async def create_application(request: Request, api: Api, base: dict[str, Any]) -> Response:
    env = request.path_params["environment_id"]
    port = _form(base, "port")
    body = {
        "name": _form(base, "name"),
        "source": {"kind": "image", "image": _form(base, "image")},
        "services": [{"kind": "web", "name": "web", "port": int(port) if port.isdigit() else 0}],
    }
    app = await call(api, base, around(_overview), "POST", f"/v1/environments/{env}/applications", json=body)
    return back_to(f"/ui/applications/{app['id']}")


async def _application(
    api: Api, base: dict[str, Any], app_id: str, status: int = 200, before: str = "", **extra: Any
) -> Response:
    """The application page; ``before`` (a deployment number) pages its deployments back, so any earlier
    one can be rolled back to; ``compose_typed`` and ``compose_errors``: a compose form the REST API refused."""
    page_of = {"limit": DEPLOYMENTS_PAGE, **({"before": before} if before else {})}
    app, deployments, certificates, volumes = await asyncio.gather(
        api.get(f"/v1/applications/{app_id}"),
        api.get(f"/v1/applications/{app_id}/deployments", params=page_of),
        api.maybe(f"/v1/applications/{app_id}/certificates", []),
        api.maybe(f"/v1/applications/{app_id}/volumes", {}),
    )
    deployments = items(deployments)
    typed, errors = extra.pop("compose_typed", None), extra.pop("compose_errors", None)
    if app.get("compose"):  # its profiles and placement, the team's servers to place its services on
        extra.update(compose_fields.context(app, items(await api.maybe("/v1/servers", [])), typed, errors))
    older = (
        deployments[-1]["number"] if len(deployments) == DEPLOYMENTS_PAGE and deployments[-1]["number"] > 1 else None
    )
    return render(
        "application.html",
        status,
        **base,
        app=app,
        deployments=deployments,
        older=older,
        paged=bool(before),
        before=before,
        certificates=certificates,
        volumes=(volumes or {}).get("volumes", []),
        **{"route": {}, "route_errors": {}, **extra},
    )


@page
async def application(request: Request, api: Api, base: dict[str, Any]) -> Response:
    before = request.query_params.get("before", "")
    return await _application(
        api, base, request.path_params["application_id"], before=before if before.isdigit() else ""
    )


def _on_app(request: Request) -> Redraw:
    """The application page the form came from, redrawn with the REST API's problem."""
    return around(_application, request.path_params["application_id"])


def _app_path(request: Request, path: str = "") -> str:
    return f"/v1/applications/{request.path_params['application_id']}{path}"


@form
async def deploy(request: Request, api: Api, base: dict[str, Any]) -> Response:
    d = await call(api, base, _on_app(request), "POST", _app_path(request, "/deployments"), json={})
    return back_to(f"/ui/deployments/{d['id']}")


@form
async def rollback(request: Request, api: Api, base: dict[str, Any]) -> Response:
    """Roll back to the deployment picked; a problem is shown on the page of deployments it was picked from."""
    body = {"deployment_id": _form(base, "deployment_id") or None}
    before = _form(base, "before")
    redraw = around(_application, request.path_params["application_id"], before=before if before.isdigit() else "")
    d = await call(api, base, redraw, "POST", _app_path(request, "/rollback"), json=body)
    return back_to(f"/ui/deployments/{d['id']}")


@form
async def scale(request: Request, api: Api, base: dict[str, Any]) -> Response:
    replicas = _form(base, "replicas")
    body = {"services": {_form(base, "service"): int(replicas) if replicas.isdigit() else 0}}
    await call(api, base, _on_app(request), "POST", _app_path(request, "/scale"), json=body)
    return back_to(f"/ui/applications/{request.path_params['application_id']}?scaled=1")


@form
async def set_variable(request: Request, api: Api, base: dict[str, Any]) -> Response:
    """Set one variable: the others are sent back as they are (a secret by name only, so it is kept)."""
    app = await call(api, base, _on_app(request), "GET", _app_path(request))
    name, secret = _form(base, "name"), base["form"].get("secret") == "on"
    env = [{"name": v["name"], "value": v["value"], "secret": v["secret"]} for v in app["env"] if v["name"] != name]
    env.append({"name": name, "value": str(base["form"].get("value") or ""), "secret": secret})
    await call(api, base, _on_app(request), "PATCH", _app_path(request), json={"env": env})
    return back_to(f"/ui/applications/{app['id']}#variables")


def _route_of(base: dict[str, Any]) -> dict[str, Any]:
    """A hosts entry from the routes form: the service and port; the host and the path only when given (the
    REST API checks them: a bad path is its 422 naming ``hosts.<i>.path``)."""
    port = _form(base, "port")
    route: dict[str, Any] = {"service": _form(base, "service"), "port": int(port) if port.isdigit() else 0}
    for name in ("host", "path"):
        if _form(base, name):
            route[name] = _form(base, name)
    return route


def _on_route(request: Request, route: dict[str, Any], index: int) -> Redraw:
    """The application page with the REST API's problem, the route form keeping what was typed and each of
    its fields the problem names marked (``hosts.<index>.<field>``)."""
    app_id = request.path_params["application_id"]

    async def redraw(api: Api, base: dict[str, Any], status: int, error: ApiError) -> Response:
        prefix = f"hosts.{index}."
        errors = {k.removeprefix(prefix): v for k, v in error.fields.items() if k.startswith(prefix)}
        return await _application(api, base, app_id, status, error=error, route=route, route_errors=errors)

    return redraw


@form
async def set_route(request: Request, api: Api, base: dict[str, Any]) -> Response:
    """Add a compose application's route (service, port, host, path), or change the one of that service and
    host; the other routes are sent back as they are (``hosts`` replaces the whole list)."""
    app = await call(api, base, _on_app(request), "GET", _app_path(request))
    route = _route_of(base)
    hosts = list((app.get("compose") or {}).get("hosts", []))
    same = [i for i, h in enumerate(hosts) if (h["service"], h.get("host")) == (route["service"], route.get("host"))]
    index = same[0] if same else len(hosts)
    hosts[index : index + 1] = [route]
    await call(api, base, _on_route(request, route, index), "PATCH", _app_path(request), json={"hosts": hosts})
    return back_to(f"/ui/applications/{app['id']}#routes")


@form
async def remove_route(request: Request, api: Api, base: dict[str, Any]) -> Response:
    app = await call(api, base, _on_app(request), "GET", _app_path(request))
    gone = _route_of(base)
    hosts = [h for h in (app.get("compose") or {}).get("hosts", []) if h != gone]
    await call(api, base, _on_app(request), "PATCH", _app_path(request), json={"hosts": hosts})
    return back_to(f"/ui/applications/{app['id']}#routes")


@form
async def delete_application(request: Request, api: Api, base: dict[str, Any]) -> Response:
    params = {"delete_volumes": "true" if base["form"].get("delete_volumes") == "on" else "false"}
    await call(api, base, _on_app(request), "DELETE", _app_path(request), params=params)
    return back_to("/ui/")


def steps_of(d: dict[str, Any]) -> dict[str, Any]:
    """The deployment's steps for the timeline, and for a failed or cancelled one the step it stopped at
    (``stopped``: the state it was in then, draining and stopping the old version counting as routing)."""
    state = d["state"]
    if state in ("failed", "cancelled"):
        ended = d.get("ended_in")
        ended = "routing" if ended in ("draining", "stopping_old") else ended
        stop = STEPS.index(ended) if ended in STEPS[:-1] else None
        steps = [
            {"name": s, "done": stop is not None and i < stop, "current": False, "stopped": i == stop}
            for i, s in enumerate(STEPS[:-1])
        ]
        steps.append({"name": state, "done": False, "current": stop is None, "stopped": False})
        return {"steps": steps, "stopped": ended if stop is not None else None}
    reached = STEPS.index("routing") if state in ("draining", "stopping_old") else STEPS.index(state)
    steps = [
        {"name": s, "done": i < reached or state == "succeeded", "current": i == reached and state != "succeeded"}
        for i, s in enumerate(STEPS)
    ]
    return {"steps": steps, "stopped": None}


async def _deployment_context(api: Api, deployment_id: str) -> dict[str, Any]:
    d = await api.get(f"/v1/deployments/{deployment_id}")
    app = await api.get(f"/v1/applications/{d['application_id']}")
    return {"d": d, "app": app, **steps_of(d)}


@page
async def deployment(request: Request, api: Api, base: dict[str, Any]) -> Response:
    return render("deployment.html", **base, **await _deployment_context(api, request.path_params["deployment_id"]))


@page
async def timeline(request: Request, api: Api, base: dict[str, Any]) -> Response:
    return render("_timeline.html", **base, **await _deployment_context(api, request.path_params["deployment_id"]))


async def deployment_log(request: Request) -> Response:
    """The deployment's build and rollout log as the REST API streams it (``text/event-stream``), relayed
    with the session's token (a browser's EventSource cannot send a bearer header)."""
    session = await sessions.load(state_of(request), request)
    if session is None:
        return Response(status_code=401)
    api = api_for(request, session)
    deployment_id = request.path_params["deployment_id"]
    after = request.headers.get("last-event-id", "")
    after = after if after.isdigit() else ""
    path = f"/v1/deployments/{deployment_id}/logs?follow=1"

    async def relay() -> Any:
        try:
            async for chunk in api.stream(path, after):
                yield chunk
        finally:
            await api.close()

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(relay(), media_type="text/event-stream", headers=headers)
