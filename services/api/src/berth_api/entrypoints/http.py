"""The api's FastAPI application: /v1 routes, health and metrics, the OpenAPI and AsyncAPI documents, and the
pages that describe them (/docs, /events)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute
from prometheus_client import Counter, Histogram, generate_latest
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from berth_api.dashboard import mount as dashboard
from berth_api.domain.problems import MEDIA_TYPE
from berth_api.entrypoints import (
    routes_applications,
    routes_backups,
    routes_certificates,
    routes_config,
    routes_database_ops,
    routes_databases,
    routes_deployments,
    routes_docs,
    routes_drills,
    routes_git_access,
    routes_jobs,
    routes_members,
    routes_metrics,
    routes_notifications,
    routes_previews,
    routes_projects,
    routes_registries,
    routes_runs,
    routes_runtime_logs,
    routes_scale,
    routes_servers,
    routes_swarms,
    routes_teams,
    routes_templates,
    routes_volume_backups,
    routes_volumes,
    routes_webhooks,
    v1,
)
from berth_api.entrypoints.audit import AuditMiddleware
from berth_api.entrypoints.auth import anonymous, check_before_body, declared_access, declared_elevation
from berth_api.entrypoints.errors import BodyLimitMiddleware, ConcretePathMiddleware, install_error_handlers
from berth_api.entrypoints.state import ApiState, api_state
from berth_api.settings import ApiSettings
from berth_common.httpd import health_response
from berth_common.runtime import Context
from berth_common.scrape import platform_exposition

REQUESTS = Counter("berth_api_requests_total", "HTTP requests handled by the api", ["method", "route", "status"])
LATENCY = Histogram(
    "berth_api_request_seconds",
    "Time to handle an HTTP request",
    ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class MetricsMiddleware:
    """Count requests by route template (never the raw path: bounded label values)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        code = 500

        async def send_status(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            REQUESTS.labels(scope["method"], route, str(code)).inc()
            LATENCY.labels(scope["method"], route).observe(time.perf_counter() - start)


async def _health(request: Request) -> Response:
    state = api_state(request)
    ctx = state.ctx

    async def ready() -> dict[str, bool]:
        return await ctx.ready() if ctx is not None else {"bus": False, "db": False}

    token = state.settings.metrics_token.get_secret_value()
    exposition = platform_exposition(token, generate_latest)  # /metrics: the platform's scrape token only
    authorization = request.headers.get("authorization", "")
    code, ctype, body = await health_response(request.url.path, ready, exposition, authorization)
    challenge = {"WWW-Authenticate": 'Bearer realm="berth-metrics"'} if code == 401 else {}
    return Response(body, status_code=code, media_type=ctype, headers={"Cache-Control": "no-store", **challenge})


def _problems_in_openapi(app: FastAPI, max_body_bytes: int) -> None:
    """Errors are documented as application/problem+json (not application/json), with a default for any other;
    every operation that takes a body documents the body limit's 413 (``BodyLimitMiddleware``)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = generate()
        problem = {"schema": {"$ref": "#/components/schemas/Problem"}}
        for item in spec.get("paths", {}).values():
            for op in item.values():
                responses = op.setdefault("responses", {})
                for response in responses.values():
                    content = response.get("content", {})
                    if MEDIA_TYPE in content and content.get("application/json") == problem:
                        content[MEDIA_TYPE] = content.pop("application/json")
                if "requestBody" in op:
                    too_large = f"The request body exceeds the limit of {max_body_bytes} bytes (BERTH_MAX_BODY_BYTES)"
                    responses.setdefault("413", {"description": too_large, "content": {MEDIA_TYPE: problem}})
                responses.setdefault("default", {"description": "Any other error", "content": {MEDIA_TYPE: problem}})
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def operation_id(route: APIRoute) -> str:
    """A route's OpenAPI operation id: the name it declares (``operation_id=``, else its endpoint's), the
    method a generated client gets (``list_projects``, not FastAPI's ``list_projects_v1_projects_get``)."""
    return route.name


def check_operation_ids(routes: list[BaseRoute]) -> None:
    """Every documented operation has its own id: two would make one client method hide the other."""
    seen: dict[str, str] = {}
    for route in routes:
        if isinstance(route, APIRoute) and route.include_in_schema:
            for method in sorted(route.methods or ()):
                key = route.operation_id or route.unique_id
                where = f"{method} {route.path}"
                if key in seen and seen[key] != where:
                    raise ValueError(f"operation id {key!r} names both {seen[key]} and {where}")
                seen[key] = where


def create_app(settings: ApiSettings, ctx: Context | None = None) -> FastAPI:
    """Build the app. Without ``ctx`` it can be introspected (OpenAPI, routes) but not serve /v1."""
    app = FastAPI(
        title="Berth API",
        version="0.1.0",
        description="Self-hosted platform-as-a-service. Every error is application/problem+json (RFC 9457).",
        docs_url=None,
        redoc_url=None,
    )
    app.state.api = state = ApiState(settings=settings, ctx=ctx)
    if ctx is not None:
        ctx.cleanups.append(state.read_pool.close)
    install_error_handlers(app)
    # The routers' routes are added as they are (full paths, responses already merged) rather than through
    # include_router, so app.routes lists every APIRoute for the access checks below and in the tests.
    routers = (v1, routes_projects, routes_applications, routes_deployments, routes_notifications, routes_metrics)
    for router in (module.router for module in routers):
        app.router.routes.extend(router.routes)
    for router in (
        routes_members.router,
        routes_teams.router,
        routes_config.router,
        routes_registries.router,
        routes_servers.router,
        routes_swarms.router,
        routes_databases.router,
        routes_database_ops.router,
        routes_backups.router,
        routes_templates.router,
    ):
        app.router.routes.extend(router.routes)
    for router in (routes_scale.router, routes_volumes.router, routes_volume_backups.router, routes_drills.router):
        app.router.routes.extend(router.routes)
    app.router.routes.extend(routes_certificates.router.routes)
    app.router.routes.extend(routes_runtime_logs.router.routes)
    app.router.routes.extend(routes_runs.router.routes)
    app.router.routes.extend(routes_jobs.router.routes)
    app.router.routes.extend(routes_webhooks.router.routes)
    app.router.routes.extend(routes_git_access.router.routes)
    app.router.routes.extend(routes_previews.router.routes)
    app.router.routes.extend(dashboard.routes())

    for path in ("/livez", "/readyz", "/metrics"):
        app.add_api_route(path, _health, methods=["GET"], include_in_schema=False, dependencies=[anonymous()])

    app.router.routes.extend(routes_docs.router.routes)  # /asyncapi.json, /docs, /events

    # Declare each route's access in the OpenAPI too (x-berth-role), for clients and the RBAC matrix.
    for route in app.routes:
        if isinstance(route, APIRoute) and route.operation_id is None:
            route.operation_id = operation_id(route)  # the routers' routes were made before the app
        if isinstance(route, APIRoute) and (access := declared_access(route.dependant)) is not None:
            route.openapi_extra = {**(route.openapi_extra or {}), "x-berth-role": access}
            if (elevated := declared_elevation(route.dependant)) is not None:
                route.openapi_extra["x-berth-role-elevated"] = elevated

    check_before_body(app.routes)
    check_operation_ids(app.routes)
    _problems_in_openapi(app, settings.max_body_bytes)

    # Outermost last: metrics see every answer, including a 413 from the body limit.
    app.add_middleware(AuditMiddleware, api=app.state.api)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(ConcretePathMiddleware)
    app.add_middleware(MetricsMiddleware)
    return app
