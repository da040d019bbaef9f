"""Records from the use cases -> response bodies. Secret values never get this far (null here anyway)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from pydantic import TypeAdapter

from berth_api.adapters.applications import StoredVariable
from berth_api.domain.deployments import status_of
from berth_api.domain.identity import Principal
from berth_api.entrypoints.page_cache import Page
from berth_api.entrypoints.schemas_apps_out import (
    ApplicationDetail,
    ApplicationListItem,
    ApplicationOut,
)
from berth_api.entrypoints.schemas_deployments import DeploymentOut, SourceSummary
from berth_api.entrypoints.schemas_projects import EnvironmentOut, ProjectOut
from berth_api.entrypoints.schemas_runtime import LiveVersion, ReplicaOut, RuntimeStatus
from berth_api.entrypoints.state import api_state
from berth_api.usecases import applications as uc
from berth_api.usecases import compose_files
from berth_api.usecases.applications import AppRecord
from berth_api.usecases.replicas import ReplicasAnswer
from berth_common.catalogue import ReplicaStatus

APPLICATIONS = TypeAdapter(list[ApplicationListItem])  # what response_model=list[ApplicationListItem] dumps with
ITEM = TypeAdapter(ApplicationListItem)


def project_out(row: dict[str, Any]) -> ProjectOut:
    return ProjectOut.model_validate({**row, "environments": [environment_out(e) for e in row["environments"]]})


def environment_out(row: dict[str, Any]) -> EnvironmentOut:
    return EnvironmentOut.model_validate(row)


def _variables(stored: list[StoredVariable], kind: str) -> list[dict[str, Any]]:
    return [
        {"name": v.name, "value": None if v.secret else v.value, "secret": v.secret} for v in stored if v.kind == kind
    ]


def application_fields(rec: AppRecord) -> dict[str, Any]:
    """An application as the plain data ``ApplicationOut`` validates (a page validates them all at once)."""
    row, cfg = rec.row, rec.row["config"]
    src = cfg["source"]
    source: dict[str, Any]
    if src["kind"] == "image":
        source = {"kind": "image", "image": src["image"], "pull_policy": src.get("pull_policy")}
    else:
        source = {
            "kind": "git",
            "repository": src["repository"],
            "branch": src.get("branch"),
            "commit": src.get("commit"),
            "subdirectory": src.get("subdirectory") or "",
            "dockerfile": src.get("dockerfile"),
            "build_args": _variables(rec.variables, "build"),
            "build_server": src.get("build_server"),
        }
    services: list[dict[str, Any]] = []
    for svc in cfg["services"]:
        if svc["kind"] == "web":
            generated = [h.host for h in rec.hosts if h.service == svc["name"] and h.generated]
            services.append({**svc, "hosts": generated + list(svc.get("domains") or [])})
        else:
            services.append(svc)
    return {
        "id": row["id"],
        "name": row["name"],
        "project_id": row["project_id"],
        "environment_id": row["environment_id"],
        "environment": row["environment"],
        "source": source,
        "services": services,
        "env": _variables(rec.variables, "runtime"),
        "limits": cfg.get("limits") or {},
        "restart_policy": cfg.get("restart_policy", "unless-stopped"),
        "stop_timeout_s": cfg.get("stop_timeout_s", 10),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "state": row.get("state", "active"),
        "removal_error": row.get("removal_error"),
        "removal_phase": row.get("removal_phase") if row.get("state") == "removing" else None,
        "compose": _compose(cfg),
        "tls": cfg.get("tls") or {},
        "pre_deploy": cfg.get("pre_deploy"),
    }


def _compose(cfg: dict[str, Any]) -> dict[str, Any] | None:
    """A compose application's file, hosts, placement and translation (None for an application of services)."""
    if not cfg.get("compose"):
        return None
    return {
        **cfg["compose"],
        "files": compose_files.shown(cfg),  # never their contents
        "hosts": cfg.get("compose_hosts") or [],
        "placement": cfg.get("compose_placement") or [],
        "translated": cfg.get("compose_translated"),
    }


def application_out(rec: AppRecord) -> ApplicationOut:
    return ApplicationOut.model_validate(application_fields(rec))


def application_item(rec: AppRecord) -> dict[str, Any]:
    """An application of a list: its fields and its newest deployment."""
    row = rec.last_deployment
    last = None if row is None else {**row, "status": status_of(row["state"])}
    return {**application_fields(rec), "last_deployment": last}


def application_detail(rec: AppRecord, live: dict[str, Any] | None, runtime: ReplicasAnswer) -> ApplicationDetail:
    status = RuntimeStatus(available=runtime.available, error=runtime.error)
    if runtime.reply is not None:
        status.live_deployment_id = runtime.reply.live_deployment_id
        status.replicas = [_replica(r, runtime.server_names) for r in runtime.reply.replicas]
    live_out = None
    if live is not None:
        live_out = LiveVersion(
            deployment_id=live["id"], number=live["number"], image=live["image"], finished_at=live["finished_at"]
        )
    base = application_out(rec).model_dump()
    return ApplicationDetail.model_validate({**base, "live": live_out, "runtime": status})


def _replica(r: ReplicaStatus, names: dict[str, str]) -> ReplicaOut:
    """A replica with the server it runs on: the engine's server, else a Swarm task's node, else ``local``."""
    server = r.server or r.node or "local"
    return ReplicaOut.model_validate({**r.model_dump(), "server": server, "server_name": names.get(server, server)})


def deployment_out(row: dict[str, Any]) -> DeploymentOut:
    src = row["spec"]["source"]
    if src["kind"] == "image":
        source = SourceSummary(kind="image", image=src["image"])
    else:
        source = SourceSummary(kind="git", repository=src["repository"], ref=src.get("ref"))
    return DeploymentOut.model_validate({**row, "status": status_of(row["state"]), "source": source})


async def list_page(request: Request, principal: Principal, project_id: str | None, limit: int, offset: int) -> Page:
    """A page of ``GET /v1/applications`` as JSON bytes, from the cache while the team's revision holds."""

    async def build() -> Page:
        pool = api_state(request).read_pool
        entries, total = await uc.list_page(pool, principal, project_id=project_id, limit=limit, offset=offset)
        items = api_state(request).items
        parts: list[bytes] = []
        for entry in entries:  # each item as the model dumps it, reused while its row is the same (item_cache)
            item = items.get(entry.id, entry.digest)
            if item is None:
                item = ITEM.dump_json(ITEM.validate_python(application_item(uc.record_of(entry))), by_alias=True)
                items.put(entry.id, entry.digest, item)
            parts.append(item)
        body = b"[" + b",".join(parts) + b"]"  # what APPLICATIONS.dump_json writes for the list of them
        headers = [("X-Total-Count", str(total))]
        if offset + limit < total:
            query = {**({"project_id": project_id} if project_id else {}), "limit": limit, "offset": offset + limit}
            headers.append(("Link", f'<{request.url.path}?{urlencode(query)}>; rel="next"'))
        return Page.of(body, tuple(headers))

    revision = getattr(request.state, "team_revision", None)
    if revision is None:  # not authenticated by the guard (cannot happen on a guarded route): no cache
        return await build()
    return await api_state(request).pages.get((principal.team_id, revision, (project_id, limit, offset)), build)
