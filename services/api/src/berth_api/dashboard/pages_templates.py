"""The template pages: the catalogue (search by text, filter by tag), one template (its variables and
compose) and deploying it into an environment; an imported template is deployed from the document the
page shows (edited or not). Each read and each form is a REST call with the session's
token; the REST API refuses a viewer's deploy, the page only leaves the form out."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from berth_api.dashboard import sessions
from berth_api.dashboard.client import Api
from berth_api.dashboard.page_forms import around, call, form, text
from berth_api.dashboard.web import api_for, back_to, page, render, state_of

VAR_PREFIX = "var."
LOGO_TYPES = {"svg": "image/svg+xml", "png": "image/png", "webp": "image/webp"}


async def _catalogue(
    api: Api, base: dict[str, Any], status: int = 200, q: str = "", tag: str = "", **extra: Any
) -> Response:
    """The catalogue page; with an imported template (or a document being deployed) also the environments
    it can be deployed into."""
    params = {k: v for k, v in (("q", q), ("tag", tag)) if v}
    found, everything = await asyncio.gather(api.get("/v1/templates", params=params), api.get("/v1/templates"))
    tags = sorted({t for template in everything for t in template["tags"]})
    if extra.get("imported") or extra.get("document") is not None:
        extra["environments"] = await _environments(api)
    return render("templates.html", status, **base, templates=found, tags=tags, q=q, tag=tag, **extra)


async def _environments(api: Api) -> list[dict[str, str]]:
    projects = await api.get("/v1/projects")
    return [{"id": env["id"], "label": f"{p['name']} / {env['name']}"} for p in projects for env in p["environments"]]


@page
async def catalogue(request: Request, api: Api, base: dict[str, Any]) -> Response:
    q = request.query_params.get("q", "").strip()[:100]
    tag = request.query_params.get("tag", "").strip()[:63]
    return await _catalogue(api, base, q=q, tag=tag)


def _import_files(base: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """The format and the files of the import form: a Coolify template is one compose file (its name gives
    the slug), a Dokploy blueprint its ``template.toml`` and ``docker-compose.yml`` (``meta.json`` optional)."""
    fmt = text(base, "format")
    form = base["form"]
    if fmt == "coolify":
        filename = text(base, "filename") or "imported.yaml"
        return fmt, {filename: str(form.get("compose") or "")}
    names = (("template.toml", "toml"), ("docker-compose.yml", "compose"), ("meta.json", "meta"))
    return fmt, {name: str(form.get(field) or "") for name, field in names if form.get(field)}


@form
async def import_template(request: Request, api: Api, base: dict[str, Any]) -> Response:
    """Convert a pasted Coolify template or Dokploy blueprint into a Berth template and show it (or the
    REST API's problem, naming the file and the spot), with the pasted text kept in the form."""
    fmt, files = _import_files(base)
    body: dict[str, Any] = {"format": fmt, "files": files}
    if text(base, "name"):
        body["name"] = text(base, "name")
    keep = {"pasted": base["form"], "pasted_format": fmt}
    imported = await call(api, base, around(_catalogue, **keep), "POST", "/v1/templates/import", json=body)
    return await _catalogue(api, base, imported=imported, **keep)


async def _template(api: Api, base: dict[str, Any], slug: str, status: int = 200, **extra: Any) -> Response:
    template, environments = await asyncio.gather(api.get(f"/v1/templates/{slug}"), _environments(api))
    inputs = {name: v for name, v in template["variables"].items() if v.get("kind") == "input"}
    return render("template.html", status, **base, template=template, environments=environments, inputs=inputs, **extra)


@page
async def template(request: Request, api: Api, base: dict[str, Any]) -> Response:
    return await _template(api, base, request.path_params["slug"])


def _deploy_body(base: dict[str, Any]) -> dict[str, Any]:
    """A template deploy request from the form: environment, name and domain when given, the variables
    given (``var.<name>`` fields; the rest are generated)."""
    body: dict[str, Any] = {"environment_id": text(base, "environment_id")}
    for name in ("name", "domain"):
        if text(base, name):
            body[name] = text(base, name)
    variables = {k.removeprefix(VAR_PREFIX): str(v) for k, v in base["form"].items() if k.startswith(VAR_PREFIX)}
    body["variables"] = {k: v for k, v in variables.items() if v}
    return body


@form
async def deploy_template(request: Request, api: Api, base: dict[str, Any]) -> Response:
    """Create the application from the template (variables given in the form, the rest generated)."""
    slug = request.path_params["slug"]
    body = _deploy_body(base)
    app = await call(api, base, around(_template, slug), "POST", f"/v1/templates/{slug}/deploy", json=body)
    return back_to(f"/ui/applications/{app['id']}")


@form
async def deploy_document(request: Request, api: Api, base: dict[str, Any]) -> Response:
    """Create the application from a template document: an imported template as the page showed it, edited
    or not. A problem redraws the catalogue with it and the document kept to be corrected."""
    document = str(base["form"].get("document") or "")
    body = {**_deploy_body(base), "document": document}
    redraw = around(_catalogue, document=document, picked=body)
    app = await call(api, base, redraw, "POST", "/v1/templates/deploy", json=body)
    return back_to(f"/ui/applications/{app['id']}")


async def logo(request: Request) -> Response:
    """A catalogue logo, relayed with the session's token (an ``<img>`` cannot send a bearer header)."""
    session = await sessions.load(state_of(request), request)
    if session is None:
        return Response(status_code=401)
    name = request.path_params["logo_file"]
    api = api_for(request, session)
    try:
        r = await api.http.get(f"/v1/templates/logos/{name}")
    finally:
        await api.close()
    kind = LOGO_TYPES.get(name.rsplit(".", 1)[-1])
    if r.status_code != 200 or kind is None:
        return Response(status_code=r.status_code if r.status_code >= 400 else 404)
    headers = {"Cache-Control": "private, max-age=3600", "Content-Security-Policy": "default-src 'none'"}
    return Response(r.content, media_type=kind, headers=headers)
