"""The servers pages: the team's servers, adding one by SSH (with a key Berth generates, whose public key the
page then shows to install, or a private key pasted into a write-only field), the validation result with its
checks, validating again, the pinned host key and accepting a changed one, draining and removing (a 409's
reason shown on the page). Each form is one REST call; admins alone are offered the forms (the REST API
refuses the others anyway)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from berth_api.dashboard.client import Api
from berth_api.dashboard.page_forms import around, call, form
from berth_api.dashboard.page_forms import text as field
from berth_api.dashboard.web import back_to, page, render


async def _servers(api: Api, base: dict[str, Any], status: int = 200, **extra: Any) -> Response:
    return render("servers.html", status, **base, servers=await api.get("/v1/servers"), **extra)


async def _server(api: Api, base: dict[str, Any], server_id: str, status: int = 200, **extra: Any) -> Response:
    return render("servers_one.html", status, **base, s=await api.get(f"/v1/servers/{server_id}"), **extra)


@page
async def servers(request: Request, api: Api, base: dict[str, Any]) -> Response:
    return await _servers(api, base)


@page
async def server(request: Request, api: Api, base: dict[str, Any]) -> Response:
    drained = [d for d in request.query_params.get("drained", "").split(",") if len(d) == 32 and d.isalnum()]
    return await _server(api, base, request.path_params["server_id"], drained=drained)


@form
async def add_server(request: Request, api: Api, base: dict[str, Any]) -> Response:
    """Add a server: ``key=generate`` leaves the private key out (Berth makes the pair), ``key=paste`` sends
    the pasted one; either way the next page is the server's, with the public key to install."""
    port = field(base, "port")
    body: dict[str, Any] = {
        "name": field(base, "name"),
        "host": field(base, "host"),
        "port": int(port) if port.isdigit() else 0,
        "user": field(base, "user") or "root",
    }
    if field(base, "key") == "paste":
        body["private_key"] = str(base["form"].get("private_key") or "")
    given = {k: body[k] for k in ("name", "host", "user")}
    created = await call(api, base, around(_servers, given=given), "POST", "/v1/servers", json=body)
    return back_to(f"/ui/servers/{created['id']}")


async def _on_server(request: Request, api: Api, base: dict[str, Any], method: str, path: str, **kw: Any) -> Response:
    """One REST call about the server the path names, then its page (with the problem, if there was one)."""
    server_id = request.path_params["server_id"]
    answer = await call(api, base, around(_server, server_id), method, f"/v1/servers/{server_id}{path}", **kw)
    if method == "DELETE":
        return back_to("/ui/servers")
    if path == "/drain":
        started = ",".join(answer.get("deployments") or [])
        return back_to(f"/ui/servers/{server_id}?drained={started}" if started else f"/ui/servers/{server_id}")
    return back_to(f"/ui/servers/{server_id}")


@form
async def validate_server(request: Request, api: Api, base: dict[str, Any]) -> Response:
    return await _on_server(request, api, base, "POST", "/validate")


@form
async def accept_host_key(request: Request, api: Api, base: dict[str, Any]) -> Response:
    return await _on_server(request, api, base, "POST", "/host-key", json={"fingerprint": field(base, "fingerprint")})


@form
async def drain_server(request: Request, api: Api, base: dict[str, Any]) -> Response:
    return await _on_server(request, api, base, "POST", "/drain", json={})


@form
async def remove_server(request: Request, api: Api, base: dict[str, Any]) -> Response:
    return await _on_server(request, api, base, "DELETE", "")
