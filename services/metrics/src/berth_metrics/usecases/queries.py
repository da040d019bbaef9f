"""The metrics service's queries: one async function per query it answers.

Answers ``rpc.metrics.query`` (time series), ``rpc.metrics.alert_rule.create``, ``rpc.metrics.alert_rule.update``,
``rpc.metrics.alert_rule.list``, ``rpc.metrics.alert_rule.delete`` and ``rpc.metrics.alert.list``.

Bad input is answered with a ``problem`` naming the field (the api turns it into problem+json), never an
exception. Rules and alerts are always filtered by ``team_id``: another team's rule is "not found", and
another team's server (one it neither owns nor runs containers on) has "no metrics".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import wraps
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_common.catalogue import (
    AlertList,
    AlertListReply,
    AlertRuleCreate,
    AlertRuleDelete,
    AlertRuleDeleteReply,
    AlertRuleList,
    AlertRuleListReply,
    AlertRuleReply,
    AlertRuleUpdate,
    MetricsProblem,
    MetricsQuery,
    MetricsReply,
    SeriesData,
    ServerStatus,
)
from berth_metrics.adapters import queries, rules_repo
from berth_metrics.domain.series import ALL_METRICS, Retention, derive, metrics_for, pick_resolution
from berth_metrics.usecases.alerts import Evaluator

MAX_POINTS = 11000
UNITS = {"cpu_pct": "percent", "mem_pct": "percent", "disk_pct": "percent", "restarts": "count", "health": "state"}
UNITS |= {m: "load" for m in ("load1", "load5", "load15")}
Q = TypeVar("Q", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)


@dataclass
class Deps:
    sessionmaker: async_sessionmaker[AsyncSession]
    evaluator: Evaluator
    retention: Retention
    interval_s: float


def problem(status: int, type_: str, title: str, field: str | None = None, detail: str = "") -> MetricsProblem:
    return MetricsProblem(status=status, type=type_, title=title, field=field, detail=detail)


def _answers(
    request: type[Q], reply: Callable[..., R]
) -> Callable[[Callable[[Deps, Q], Awaitable[R]]], Callable[[Deps, dict[str, Any]], Awaitable[R]]]:
    """The query reads its data as a ``request``; data that does not validate is answered with a ``reply``
    whose problem names the first bad field, and the query does not run."""

    def wrap(run: Callable[[Deps, Q], Awaitable[R]]) -> Callable[[Deps, dict[str, Any]], Awaitable[R]]:
        @wraps(run)
        async def answer(deps: Deps, data: dict[str, Any]) -> R:
            try:
                q = request.model_validate(data)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or None
                return reply(problem=problem(422, "invalid", "invalid request", where, first["msg"]))
            return await run(deps, q)

        return answer

    return wrap


@_answers(MetricsQuery, MetricsReply)
async def query(deps: Deps, q: MetricsQuery) -> MetricsReply:
    now = datetime.now(UTC)
    end = q.end or now
    if end <= q.start:
        return MetricsReply(problem=problem(422, "invalid", "end must be after start", "end"))
    unknown = [m for m in q.metrics if m not in ALL_METRICS]
    if unknown:
        detail = f"unknown metrics {unknown}; known: {', '.join(ALL_METRICS)}"
        return MetricsReply(problem=problem(422, "invalid", "unknown metric", "metrics", detail))
    resolution, step_s = pick_resolution(q.start, q.step_s, now, deps.retention, deps.interval_s)
    if (end - q.start).total_seconds() / step_s > MAX_POINTS:
        detail = f"at most {MAX_POINTS} points per series: widen step_s or narrow the range"
        return MetricsReply(problem=problem(422, "invalid", "too many points", "step_s", detail))
    async with deps.sessionmaker() as session:
        hidden = q.target_kind == "server" and q.team_id is not None
        if hidden and q.team_id is not None and await queries.server_visible(session, q.target_id, q.team_id):
            hidden = False
        found = [] if hidden else await queries.find_series(session, q.target_kind, q.target_id, q.team_id, q.server_id)
        if not found:
            title = f"no metrics for {q.target_kind} {q.target_id}"
            return MetricsReply(problem=problem(404, "not-found", title, "target_id"))
        data_by_id = await queries.buckets(session, resolution, [s.id for s in found], q.start, end, step_s)
        status = await _status(session, q.target_id) if q.target_kind == "server" else None
    out = []
    for s in found:
        for metric in metrics_for(s.kind, q.metrics or None):
            points = [(bucket, derive(metric, values)) for bucket, values in data_by_id[s.id]]
            unit = UNITS.get(metric, "bytes")
            out.append(SeriesData(key=s.key, kind=s.kind, name=s.name, server=s.server, server_id=s.server_id,
                                  labels=s.labels, metric=metric, unit=unit, points=points))  # fmt: skip
    return MetricsReply(resolution=resolution, step_s=step_s, start=q.start, end=end, series=out, server_status=status)


async def _status(session: AsyncSession, server: str) -> ServerStatus:
    row = await queries.server_status(session, server)
    if row is None:
        return ServerStatus(status="up")
    return ServerStatus(
        status="down" if row["status"] == "down" else "up",
        failures=row["failures"],
        failing_since=row["failing_since"],
        last_seen_at=row["last_seen_at"],
        error=row["error"],
    )


def _not_found(rule_id: str) -> MetricsProblem:
    return problem(404, "not-found", f"no alert rule {rule_id}", "rule_id")


@_answers(AlertRuleCreate, AlertRuleReply)
async def rule_create(deps: Deps, q: AlertRuleCreate) -> AlertRuleReply:
    async with deps.sessionmaker() as session, session.begin():
        view = await rules_repo.create_rule(session, q.team_id, q.rule)
    await deps.evaluator.reload_rules()
    return AlertRuleReply(rule=view)


@_answers(AlertRuleUpdate, AlertRuleReply)
async def rule_update(deps: Deps, q: AlertRuleUpdate) -> AlertRuleReply:
    async with deps.sessionmaker() as session, session.begin():
        view = await rules_repo.update_rule(session, q.team_id, q.rule_id, q.rule)
    if view is None:
        return AlertRuleReply(problem=_not_found(q.rule_id))
    await deps.evaluator.reload_rules()
    return AlertRuleReply(rule=view)


@_answers(AlertRuleList, AlertRuleListReply)
async def rule_list(deps: Deps, q: AlertRuleList) -> AlertRuleListReply:
    async with deps.sessionmaker() as session:
        return AlertRuleListReply(rules=await rules_repo.list_rules(session, q.team_id))


@_answers(AlertRuleDelete, AlertRuleDeleteReply)
async def rule_delete(deps: Deps, q: AlertRuleDelete) -> AlertRuleDeleteReply:
    async with deps.sessionmaker() as session, session.begin():
        deleted = await rules_repo.delete_rule(session, q.team_id, q.rule_id)
    if not deleted:
        return AlertRuleDeleteReply(problem=_not_found(q.rule_id))
    await deps.evaluator.reload_rules()
    return AlertRuleDeleteReply(deleted=True)


@_answers(AlertList, AlertListReply)
async def alert_list(deps: Deps, q: AlertList) -> AlertListReply:
    async with deps.sessionmaker() as session:
        return AlertListReply(alerts=await rules_repo.list_alerts(session, q.team_id, q.open_only, q.limit))
