"""The pages that watch what runs: an application's runtime logs (the last lines, or followed live), metrics
charts (an application's CPU, memory and network per service or per server; a server's CPU, memory and load)
over a picked time range, and alerts (the team's rules and the alerts they raised). Every read and write is
one REST call with the session's token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any, cast
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from berth_api.dashboard import charts, sessions
from berth_api.dashboard.client import Api, ApiError, items
from berth_api.dashboard.page_forms import around, call, form
from berth_api.dashboard.web import api_for, back_to, page, render, state_of

TAIL = 200
Wanted = tuple[tuple[str, str, str], ...]  # (metric, title, unit) of each chart
APP_METRICS: Wanted = (("cpu_pct", "CPU", "percent"), ("mem_used", "Memory", "bytes"))
APP_METRICS += (("net_rx", "Network in", "bytes/s"), ("net_tx", "Network out", "bytes/s"))
SERVER_METRICS: Wanted = (("cpu_pct", "CPU", "percent"), ("mem_used", "Memory", "bytes"))
SERVER_METRICS += (("load1", "Load (1 min)", "load"),)
GROUPS = ("service", "server")
ALERT_METRICS = ("cpu_pct", "mem_pct", "disk_pct", "restarts")
TARGET_KINDS = ("app", "server", "container")


def _services(app: dict[str, Any]) -> list[str]:
    return [s["name"] for s in app.get("services") or []]


# --- runtime logs -----------------------------------------------------------------------------------


@page
async def logs(request: Request, api: Api, base: dict[str, Any]) -> Response:
    """The last lines of every replica (or one service's), or, with ``follow``, a log that grows live."""
    app_id = request.path_params["application_id"]
    app = await api.get(f"/v1/applications/{app_id}")
    service = request.query_params.get("service", "")
    service = service if service in _services(app) else ""
    follow = request.query_params.get("follow") == "1"
    lines: list[dict[str, Any]] = []
    problem: ApiError | None = None
    if not follow:
        params: dict[str, Any] = {"tail": TAIL, **({"service": service} if service else {})}
        try:
            got = await api.get(f"/v1/applications/{app_id}/logs", params=params)
            lines = got.get("lines", [])
        except ApiError as e:
            if e.status in (401, 403):
                raise
            problem = e
    query = urlencode({"service": service} if service else {})
    source = f"/ui/applications/{app_id}/logs/follow" + (f"?{query}" if query else "")
    context = {"app": app, "service": service, "follow": follow, "lines": lines, "problem": problem}
    return render("logs.html", **base, **context, source=source, services=_services(app))


async def follow_logs(request: Request) -> Response:
    """The application's runtime log as the REST API streams it (``text/event-stream``), relayed with the
    session's token (a browser's EventSource cannot send a bearer header); 204 when the REST API refuses it
    (nothing to follow, the scheduler unavailable), so the browser stops asking."""
    session = await sessions.load(state_of(request), request)
    if session is None:
        return Response(status_code=401)
    api = api_for(request, session)
    app_id = request.path_params["application_id"]
    query = {"follow": "true", "tail": str(TAIL)}
    if service := request.query_params.get("service", ""):
        query["service"] = service
    path = f"/v1/applications/{quote(app_id, safe='')}/logs?{urlencode(query)}"
    stream = cast(AsyncGenerator[bytes, None], api.stream(path))
    try:
        first = await anext(stream)
    except StopAsyncIteration:  # refused, or nothing to follow: 204 tells the EventSource not to reconnect
        await api.close()
        return Response(status_code=204)

    async def relay() -> Any:
        try:
            yield first
            async for chunk in stream:
                yield chunk
        finally:
            await stream.aclose()
            await api.close()

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(relay(), media_type="text/event-stream", headers=headers)


# --- metrics ----------------------------------------------------------------------------------------


def _charts(body: dict[str, Any], wanted: Wanted, by: str) -> list[charts.Chart]:
    start = charts.timestamp(body["start"]) if body.get("start") else 0.0
    end = charts.timestamp(body["end"]) if body.get("end") else start
    series = body.get("series") or []
    out = []
    for metric, title, unit in wanted:
        lines = charts.grouped(series, metric, by)
        out.append(charts.Chart(f"{title} by {by}", unit, lines, start, end))
    return out


def _window(request: Request) -> tuple[str, dict[str, Any]]:
    name, start, end = charts.span(request.query_params.get("range"))
    return name, {"from": start.isoformat(), "to": end.isoformat()}


@page
async def metrics_index(request: Request, api: Api, base: dict[str, Any]) -> Response:
    """Where the charts are: the servers (the one Berth runs on first) and the applications."""
    servers, apps = await asyncio.gather(
        api.maybe("/v1/servers", []), api.get("/v1/applications", params={"limit": 1000})
    )
    servers = items(servers)
    return render("metrics_index.html", **base, servers=servers or [], apps=apps)


@page
async def app_metrics(request: Request, api: Api, base: dict[str, Any]) -> Response:
    app_id = request.path_params["application_id"]
    by = request.query_params.get("by", "service")
    by = by if by in GROUPS else "service"
    name, window = _window(request)
    params = {**window, "metric": [m for m, _, _ in APP_METRICS]}
    app = await api.get(f"/v1/applications/{app_id}")
    return await _metrics_page(api, base, app["name"], f"/v1/applications/{app_id}/metrics", params, name, by, app)


@page
async def server_metrics(request: Request, api: Api, base: dict[str, Any]) -> Response:
    server_id = request.path_params["server_id"]
    name, window = _window(request)
    params = {**window, "metric": [m for m, _, _ in SERVER_METRICS]}
    path = f"/v1/servers/{quote(server_id, safe='')}/metrics"
    return await _metrics_page(api, base, server_id, path, params, name, "server", None)


async def _metrics_page(
    api: Api, base: dict[str, Any], title: str, path: str, params: dict[str, Any], range_name: str, by: str, app: Any
) -> Response:
    problem: ApiError | None = None
    drawn: list[tuple[charts.Chart, Any]] = []
    try:
        body = await api.get(path, params=params)
    except ApiError as e:
        if e.status in (401, 403, 404):
            raise
        problem = e  # the metrics service is down: the page says so
    else:
        title = body.get("target_id", title) if app is None else title
        wanted = APP_METRICS if app is not None else SERVER_METRICS
        made = _charts(body, wanted, by)
        drawn = [(c, charts.svg(c, f"chart-{i}")) for i, c in enumerate(made)]
    return render(
        "metrics.html",
        **base,
        title=title,
        app=app,
        drawn=drawn,
        problem=problem,
        ranges=list(charts.RANGES),
        range_name=range_name,
        by=by,
        groups=GROUPS if app is not None else (),
    )


# --- alerts -----------------------------------------------------------------------------------------


async def _alerts(api: Api, base: dict[str, Any], status: int = 200, **extra: Any) -> Response:
    try:
        rules, alerts = await asyncio.gather(api.get("/v1/alert-rules"), api.get("/v1/alerts"))
        problem = None
    except ApiError as e:
        if e.status in (401, 403):
            raise
        rules, alerts, problem = [], [], e
    apps = await api.get("/v1/applications", params={"limit": 1000})
    names = {a["id"]: a["name"] for a in apps}
    firing = [a for a in alerts if a["status"] == "firing"]
    resolved = [a for a in alerts if a["status"] != "firing"]
    context = {"rules": rules, "firing": firing, "resolved": resolved, "names": names, "problem": problem}
    return render(
        "alerts.html", status, **base, **context, metrics=ALERT_METRICS, kinds=TARGET_KINDS, apps=apps, **extra
    )


@page
async def alerts(request: Request, api: Api, base: dict[str, Any]) -> Response:
    return await _alerts(api, base)


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text  # the REST API names the field


@form
async def create_rule(request: Request, api: Api, base: dict[str, Any]) -> Response:
    form = base["form"]
    kind = str(form.get("target_kind") or "app")
    target = str(form.get("app_id") if kind == "app" else form.get("target_id") or "").strip()
    body = {
        "name": str(form.get("name") or "").strip(),
        "target_kind": kind,
        "target_id": target,
        "metric": str(form.get("metric") or ""),
        "threshold": _number(str(form.get("threshold") or "")),
        "for_s": _number(str(form.get("for_s") or "60")),
    }
    await call(api, base, around(_alerts), "POST", "/v1/alert-rules", json=body)
    return back_to("/ui/alerts")


@form
async def delete_rule(request: Request, api: Api, base: dict[str, Any]) -> Response:
    rule_id = request.path_params["rule_id"]
    await call(api, base, around(_alerts), "DELETE", f"/v1/alert-rules/{quote(rule_id, safe='')}")
    return back_to("/ui/alerts")
