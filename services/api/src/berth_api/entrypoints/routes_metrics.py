"""Routes of metrics, alert rules and alerts: each asks the metrics service over the bus
(``rpc.metrics.<name>``) for the caller's team. Thin: role, input, query, answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, get_args

from fastapi import Path, Query, Request
from pydantic import Field

from berth_api.domain.identity import Principal
from berth_api.entrypoints.auth import require_role
from berth_api.entrypoints.resources import PathId, Resource, V1Router
from berth_api.entrypoints.rpc_routes import answer_of, relayed_delete
from berth_api.entrypoints.schemas import Timestamp
from berth_api.entrypoints.schemas_metrics import (
    METRIC_PATTERN,
    SERVER_ID_PATTERN,
    AlertRuleIn,
    AlertRuleOut,
    AlertView,
    MetricsOut,
)
from berth_api.entrypoints.state import deps
from berth_api.entrypoints.v1 import Responses, problem_doc
from berth_api.usecases import Deps
from berth_api.usecases import observability as uc
from berth_api.usecases.observability import METRICS, ask
from berth_common.catalogue import (
    AlertList,
    AlertListReply,
    AlertRuleCreate,
    AlertRuleDelete,
    AlertRuleList,
    AlertRuleListReply,
    AlertRuleReply,
    AlertRuleUpdate,
    AlertRuleView,
    MetricsReply,
    QueryMetric,
)

UNAVAILABLE: Responses = {503: problem_doc("The metrics service cannot be reached (down, or no answer in time)")}
NOT_FOUND: Responses = {404: problem_doc("No such application, server or rule in this team"), **UNAVAILABLE}
router = V1Router("metrics", NOT_FOUND)
DEFAULT_SPAN = timedelta(hours=1)
DEFAULT_POINTS = 120
MIN_DEFAULT_STEP_S = 10.0
RULE: dict[str, str] = {"rule": "/body", "rule_id": "/path/rule_id"}

ServerId = Annotated[str, Path(pattern=SERVER_ID_PATTERN, description="`local`: the server Berth runs on")]
From = Annotated[Timestamp | None, Query(alias="from", description="RFC 3339; default: an hour before `to`")]
To = Annotated[Timestamp | None, Query(alias="to", description="RFC 3339; default: now")]
Step = Annotated[
    float | None,
    Query(
        ge=1, le=86400, description="Seconds per point (default: about 120 points); widened to the stored resolution"
    ),
]
# The metrics the metrics service answers, as the schema's enum (an unknown one is its 422 on /query/metric).
MetricName = Annotated[str, Field(pattern=METRIC_PATTERN, json_schema_extra={"enum": list(get_args(QueryMetric))})]
OnServer = Annotated[
    str | None,
    Query(pattern=SERVER_ID_PATTERN, description="Only the containers on this server (its id, or `local`)"),
]
Metrics = Annotated[
    list[MetricName] | None,
    Query(alias="metric", max_length=20, description="Only these metrics (repeat the parameter); default: all"),
]


def _query(
    start: datetime | None, end: datetime | None, step: float | None, metrics: list[str] | None
) -> dict[str, object]:
    start, end = uc.window(start, end, DEFAULT_SPAN)
    if step is None:
        span = ((end or datetime.now(UTC)) - start).total_seconds()
        step = min(86400.0, max(MIN_DEFAULT_STEP_S, float(round(span / DEFAULT_POINTS))))
    return {"start": start, "end": end, "step_s": step, "metrics": metrics or []}


def _out(kind: str, target_id: str, reply: MetricsReply) -> MetricsOut:
    return MetricsOut.model_validate(
        {"target_kind": kind, "target_id": target_id, **reply.model_dump(exclude={"problem"})}
    )


@router.get(
    "/applications/{application_id}/metrics",
    operation_id="get_application_metrics",
    summary="Time series of the application's containers: CPU, memory, network, block I/O, restarts, health",
)
async def application_metrics(
    request: Request,
    application_id: PathId,
    start: From = None,
    end: To = None,
    step: Step = None,
    metrics: Metrics = None,
    server: OnServer = None,
    principal: Principal = require_role("viewer"),
) -> MetricsOut:
    query = _query(start, end, step, metrics)
    reply = await uc.application_metrics(deps(request), principal, application_id, query, server)
    return _out("app", application_id, reply)


@router.get(
    "/servers/{server_id}/metrics",
    operation_id="get_server_metrics",
    summary="Time series of a server (CPU, memory, load) and of each of its disks",
)
async def server_metrics(
    request: Request,
    server_id: ServerId,
    start: From = None,
    end: To = None,
    step: Step = None,
    metrics: Metrics = None,
    principal: Principal = require_role("viewer"),
) -> MetricsOut:
    name, reply = await uc.server_metrics(deps(request), principal, server_id, _query(start, end, step, metrics))
    return _out("server", name, reply)


@router.create(
    "/alert-rules",
    operation_id="create_alert_rule",
    summary="Create a threshold rule: raise an alert when a metric stays above it, resolve below it (hysteresis)",
    responses=UNAVAILABLE,
)
async def create_rule(
    body: AlertRuleIn, request: Request, principal: Principal = require_role("developer")
) -> AlertRuleOut:
    d = deps(request)
    spec = await uc.check_rule_target(d, principal, body)
    q = AlertRuleCreate(team_id=principal.team_id, rule=spec)
    return await _shown(d, principal, await answer_of(d, METRICS, q, AlertRuleReply, lambda r: r.rule, fields=RULE))


async def _shown(d: Deps, principal: Principal, rule: AlertRuleView) -> AlertRuleOut:
    return AlertRuleOut.model_validate((await uc.rules_out(d, principal, [rule]))[0])


@router.get("/alert-rules", operation_id="list_alert_rules", summary="The team's alert rules", responses=UNAVAILABLE)
async def list_rules(request: Request, principal: Principal = require_role("viewer")) -> list[AlertRuleOut]:
    q = AlertRuleList(team_id=principal.team_id)
    d = deps(request)
    rules = (await ask(d, METRICS, q, AlertRuleListReply, fields=RULE)).rules
    return [AlertRuleOut.model_validate(r) for r in await uc.rules_out(d, principal, rules)]


@router.get("/alert-rules/{rule_id}", operation_id="get_alert_rule", summary="An alert rule")
async def get_rule(request: Request, rule_id: PathId, principal: Principal = require_role("viewer")) -> AlertRuleOut:
    d = deps(request)
    return await _shown(d, principal, await uc.rule_of(d, principal, rule_id))


@router.put(
    "/alert-rules/{rule_id}",
    operation_id="replace_alert_rule",
    summary="Replace an alert rule (its open alerts are evaluated against the new one)",
)
async def replace_rule(
    body: AlertRuleIn, request: Request, rule_id: PathId, principal: Principal = require_role("developer")
) -> AlertRuleOut:
    d = deps(request)
    spec = await uc.check_rule_target(d, principal, body)
    q = AlertRuleUpdate(team_id=principal.team_id, rule_id=rule_id, rule=spec)
    return await _shown(d, principal, await answer_of(d, METRICS, q, AlertRuleReply, lambda r: r.rule, fields=RULE))


Resource(router).delete(
    "/alert-rules/{rule_id}",
    "delete_alert_rule",
    relayed_delete(METRICS, AlertRuleDelete),
    "Delete an alert rule; its open alerts end without a resolve event",
)


@router.get(
    "/alerts",
    summary="The team's alerts: firing ones first, newest first",
    responses=UNAVAILABLE,
)
async def list_alerts(
    request: Request,
    open_only: Annotated[bool, Query(description="Only firing alerts")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    principal: Principal = require_role("viewer"),
) -> list[AlertView]:
    q = AlertList(team_id=principal.team_id, open_only=open_only, limit=limit)
    return (await ask(deps(request), METRICS, q, AlertListReply, fields={})).alerts
