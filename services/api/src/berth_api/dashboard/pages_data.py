"""The databases pages: the team's databases, creating one from the engines and versions the REST API lists,
a database's page (its state, the connection details without the password, its last verified backup),
rotating its credentials (admins) and linking it to an application. Each form is one REST call; the
password is never read here (``/connection`` is not called), so no page can show it."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from berth_api.dashboard.client import Api, items
from berth_api.dashboard.page_forms import around, call, form
from berth_api.dashboard.page_forms import text as field
from berth_api.dashboard.web import back_to, page, render


async def _databases(api: Api, base: dict[str, Any], status: int = 200, **extra: Any) -> Response:
    databases, engines, servers = await asyncio.gather(
        api.get("/v1/databases"), api.get("/v1/databases/engines"), api.maybe("/v1/servers", [])
    )
    return render(
        "databases.html", status, **base, databases=items(databases), engines=engines, servers=servers, **extra
    )


async def _database(api: Api, base: dict[str, Any], database_id: str, status: int = 200, **extra: Any) -> Response:
    db, apps = await asyncio.gather(api.get(f"/v1/databases/{database_id}"), api.maybe("/v1/applications", []))
    return render("database.html", status, **base, db=db, apps=items(apps), **extra)


@page
async def databases(request: Request, api: Api, base: dict[str, Any]) -> Response:
    return await _databases(api, base)


@page
async def database(request: Request, api: Api, base: dict[str, Any]) -> Response:
    linked = request.query_params.get("linked", "")
    return await _database(api, base, request.path_params["database_id"], linked=linked)


@form
async def create_database(request: Request, api: Api, base: dict[str, Any]) -> Response:
    """``engine`` is ``<engine>:<version>`` from the engines list (the version left out: the engine's default)."""
    engine, _, version = field(base, "engine").partition(":")
    body: dict[str, Any] = {
        "name": field(base, "name"),
        "engine": engine,
        "server_id": field(base, "server_id") or "local",
    }
    if version:
        body["version"] = version
    created = await call(api, base, around(_databases), "POST", "/v1/databases", json=body)
    return back_to(f"/ui/databases/{created['id']}")


async def _on_database(
    request: Request, api: Api, base: dict[str, Any], method: str, path: str, then: str = "", **kw: Any
) -> Response:
    database_id = request.path_params["database_id"]
    await call(api, base, around(_database, database_id), method, path.format(db=database_id), **kw)
    return back_to(f"/ui/databases/{database_id}{then}")


@form
async def rotate_database(request: Request, api: Api, base: dict[str, Any]) -> Response:
    return await _on_database(request, api, base, "POST", "/v1/databases/{db}/rotate")


@form
async def link_database(request: Request, api: Api, base: dict[str, Any]) -> Response:
    app_id = field(base, "application_id")
    if not (len(app_id) == 32 and app_id.isalnum()):
        app_id = "-"  # the REST API answers 404 for it
    body = {"database_id": request.path_params["database_id"], "variable": field(base, "variable") or None}
    path = f"/v1/applications/{app_id}/links"
    return await _on_database(request, api, base, "POST", path, then=f"?linked={app_id}", json=body)


# --- backups: destinations, each database's backups, schedule and restores ------------------------------


def _chosen(base: dict[str, Any]) -> list[str]:
    """The destinations ticked (one checkbox ``dest-<id>`` each: a form field carries one value)."""
    return [name.removeprefix("dest-") for name, value in base["form"].items() if name.startswith("dest-") and value]


RESTORES_SHOWN = 20  # a database's restores at a time, each linked to its page (older ones a link away)
ID = re.compile(r"^[0-9a-f]{32}$")


async def _backups(api: Api, base: dict[str, Any], status: int = 200, **extra: Any) -> Response:
    destinations, databases = await asyncio.gather(api.get("/v1/backup-destinations"), api.get("/v1/databases"))
    return render("backups.html", status, **base, destinations=destinations, databases=items(databases), **extra)


async def _database_backups(
    api: Api, base: dict[str, Any], database_id: str, status: int = 200, restores_before: str = "", **extra: Any
) -> Response:
    """The database's backups page; ``restores_before`` (a restore's id, the last of a page) pages its
    restores back as the REST API's ``Link: rel="next"`` leads, so every restore is a link away."""
    page_of = {"limit": RESTORES_SHOWN, **({"before": restores_before} if restores_before else {})}
    db, backups, schedule, destinations, (restores, following), databases = await asyncio.gather(
        api.get(f"/v1/databases/{database_id}"),
        api.get(f"/v1/databases/{database_id}/backups"),
        api.get(f"/v1/databases/{database_id}/backup-schedule"),
        api.get("/v1/backup-destinations"),
        api.page(f"/v1/databases/{database_id}/restores", params=page_of),
        api.maybe("/v1/databases", []),
    )
    names = {d["id"]: d["name"] for d in destinations}
    database_names = {d["id"]: d["name"] for d in items(databases)}
    return render(
        "backup_database.html",
        status,
        **base,
        db=db,
        backups=items(backups),
        schedule=schedule,
        destinations=destinations,
        names=names,
        restores=restores,
        older_restores=following.get("before", ""),
        restores_paged=bool(restores_before),
        database_names=database_names,
        **extra,
    )


@page
async def backups(request: Request, api: Api, base: dict[str, Any]) -> Response:
    return await _backups(api, base)


@form
async def create_destination(request: Request, api: Api, base: dict[str, Any]) -> Response:
    """An S3 bucket (its secret key sent once, write-only) or a directory on a server."""
    kind = field(base, "kind")
    body: dict[str, Any] = {"kind": kind, "name": field(base, "name"), "encrypt": base["form"].get("encrypt") == "on"}
    if kind == "directory":
        body.update(path=field(base, "path"), server_id=field(base, "server_id") or "local")
    else:
        keys = ("endpoint", "bucket", "region", "prefix", "access_key")
        body.update({k: field(base, k) for k in keys if field(base, k)})
        body["secret_key"] = str(base["form"].get("secret_key") or "")
    await call(api, base, around(_backups), "POST", "/v1/backup-destinations", json=body)
    return back_to("/ui/backups")


@page
async def database_backups(request: Request, api: Api, base: dict[str, Any]) -> Response:
    before = request.query_params.get("restores_before", "")
    return await _database_backups(
        api, base, request.path_params["database_id"], restores_before=before if ID.match(before) else ""
    )


async def _on_backups(request: Request, api: Api, base: dict[str, Any], method: str, path: str, **kw: Any) -> Any:
    database_id = request.path_params["database_id"]
    return await call(
        api, base, around(_database_backups, database_id), method, f"/v1/databases/{database_id}{path}", **kw
    )


@form
async def run_backup(request: Request, api: Api, base: dict[str, Any]) -> Response:
    await _on_backups(request, api, base, "POST", "/backups", json={"destinations": _chosen(base)})
    return back_to(f"/ui/databases/{request.path_params['database_id']}/backups")


def _count(base: dict[str, Any], name: str) -> int | None:
    value = field(base, name)
    return int(value) if value.isdigit() else None


@form
async def set_schedule(request: Request, api: Api, base: dict[str, Any]) -> Response:
    retention = {k: v for k in ("keep_count", "keep_days") if (v := _count(base, k)) is not None}
    body = {
        "cron": field(base, "cron"),
        "timezone": field(base, "timezone") or "UTC",
        "destinations": _chosen(base),
        "retention": retention,
    }
    await _on_backups(request, api, base, "PUT", "/backup-schedule", json=body)
    return back_to(f"/ui/databases/{request.path_params['database_id']}/backups")


@form
async def restore(request: Request, api: Api, base: dict[str, Any]) -> Response:
    """Into a new database (named) or, for admins, over this one (``confirm`` ticked)."""
    target = "existing" if field(base, "target") == "existing" else "new"
    body: dict[str, Any] = {"backup_id": field(base, "backup_id"), "target": target}
    if target == "new":
        body["name"] = field(base, "name")
    else:
        body["confirm"] = base["form"].get("confirm") == "on"
    got = await _on_backups(request, api, base, "POST", "/restore", json=body)
    return back_to(f"/ui/restores/{got['id']}")


@page
async def restore_page(request: Request, api: Api, base: dict[str, Any]) -> Response:
    r = await api.get(f"/v1/restores/{request.path_params['restore_id']}")
    return render("backup_restore.html", **base, r=r)
