"""Notifications and metrics: the api asks the notifier and the metrics service over the bus (core
request/reply, ``rpc.<service>.<name>``) and turns their answers into HTTP answers.

The team always comes from the token, never from the request. A refusal in a reply (``problem``: status,
slug, field) becomes problem+json with the same status and the field named as a JSON pointer into the HTTP
request; a service that is down or silent is a 503 naming it, a service that failed on its side a 502.
Before the metrics service is asked about an application or a rule's target, the api checks it belongs to
the caller's team (the metrics service only knows the containers' ``berth.*`` labels).
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from berth_api.adapters import applications as apps_repo
from berth_api.adapters import databases as db_repo
from berth_api.adapters import projects as projects_repo
from berth_api.adapters import servers as servers_repo
from berth_api.domain.identity import Principal
from berth_api.domain.problems import STANDARD, ProblemError, field_errors, invalid_field, json_pointer, not_in_team
from berth_api.usecases import Deps
from berth_api.usecases.applications import application_missing
from berth_common.bus import QueryFailedError, ServiceUnavailableError
from berth_common.catalogue import (
    AlertRuleList,
    AlertRuleListReply,
    AlertRuleSpec,
    AlertRuleView,
    MetricsQuery,
    MetricsReply,
    Query,
)
from berth_common.logging import get_logger

log = get_logger(__name__)
R = TypeVar("R", bound=BaseModel)
Q = TypeVar("Q", bound=Query)
NOTIFIER, METRICS = "notifier", "metrics"
LOCAL_SERVER = "local"  # the server id of the machine Berth runs on
RETRY_AFTER_S = 5
# A reply's problem type -> the api's slug, so one kind of refusal has one type whichever service said it.
SLUGS = {"invalid": STANDARD[422][0], "internal": STANDARD[500][0]}

Fields = Mapping[str, str]  # a query's field (dotted) -> the JSON pointer of the request field it came from


class _LocalServer(BaseSettings):
    """The name the metrics service gives this machine: its ``BERTH_METRICS_SERVER_NAME``, else the host name
    (the metrics service's own default). Read from the same environment every Berth process shares."""

    model_config = SettingsConfigDict(env_prefix="BERTH_", extra="ignore", env_file=None)
    metrics_server_name: str = Field(default_factory=socket.gethostname, min_length=1, max_length=128)


def local_server_name() -> str:
    return _LocalServer().metrics_server_name


# --- asking a service ---------------------------------------------------------------------------------


def pointer(field: str | None, fields: Fields) -> str | None:
    """``target.url`` -> ``/body/target/url``; the longest prefix found in ``fields`` is renamed."""
    if not field:
        return None
    parts = field.split(".")
    for n in range(len(parts), 0, -1):
        base = fields.get(".".join(parts[:n]))
        if base is not None:
            return base + json_pointer(parts[n:])
    return json_pointer(["body", *parts])


def unavailable(service: str, reason: str) -> ProblemError:
    return ProblemError(
        503,
        f"The {service} service is unavailable: {reason}. Try again shortly.",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def upstream_failed(service: str, what: str) -> ProblemError:
    return ProblemError(
        502,
        f"The {service} service failed to answer {what}; it has been logged.",
        slug="upstream-error",
        title="Bad gateway",
    )


def refusal(service: str, name: str, problem: Any, fields: Fields) -> ProblemError:
    """A reply's ``problem`` as problem+json: its status, its slug, its message, its field as a pointer."""
    status = int(problem.status)
    if status >= 500 or status < 400:
        log.warning("query refused with a server error", service=service, query=name, status=status)
        return upstream_failed(service, name)
    slug = SLUGS.get(problem.type, problem.type)
    message = (problem.detail or problem.title or "refused").strip()
    loc = pointer(problem.field, fields)
    if loc is None:
        return ProblemError(status, message[:1].upper() + message[1:] + ".", slug=slug)
    errors = [{"loc": loc, "detail": message, "type": slug}]
    return ProblemError(status, f"{message[:1].upper()}{message[1:]} ({loc}).", slug=slug, errors=errors)


def build(model: type[Q], fields: Fields, **values: Any) -> Q:
    """The query, or a 422 naming the request field (the routes' schemas should have refused it already)."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        errors = field_errors(exc.errors(include_input=False, include_url=False))
        for err in errors:
            err["loc"] = pointer(err["loc"].strip("/").replace("/", "."), fields) or err["loc"]
        raise ProblemError(422, f"The request has invalid fields: {errors[0]['loc']}.", errors=errors) from None


async def ask(
    deps: Deps, service: str, query: Query, reply: type[R], *, fields: Fields, timeout: float | None = None
) -> R:
    """Ask ``service`` and return its reply, or raise the ``ProblemError`` the HTTP answer should be."""
    name = query.TYPE.removeprefix("rpc.")
    if not deps.bus.connected:
        raise unavailable(service, "the bus cannot be reached")
    try:
        answer = await deps.bus.request(service, name, query, reply, timeout=timeout or deps.settings.rpc_timeout_s)
    except ServiceUnavailableError as exc:
        raise unavailable(service, str(exc).replace(f"service {service!r} ", "it ")) from None
    except QueryFailedError as exc:
        log.warning("query failed", service=service, query=name, error=str(exc)[:300])
        raise upstream_failed(service, name) from None
    except ValidationError:
        log.warning("query answered with an unexpected shape", service=service, query=name)
        raise upstream_failed(service, name) from None
    except Exception as exc:  # the connection dropped while asking
        log.warning("query not sent", service=service, query=name, error=type(exc).__name__)
        raise unavailable(service, "the bus cannot be reached") from None
    problem = getattr(answer, "problem", None)
    if problem is not None:
        raise refusal(service, name, problem, fields)
    return answer


# --- ownership checks in the api's own tables ---------------------------------------------------------


async def owned_applications(deps: Deps, principal: Principal, application_ids: Iterable[str]) -> set[str]:
    """Those of ``application_ids`` that are applications of the caller's team."""
    found = set()
    async with deps.sessionmaker() as s:
        for app_id in set(application_ids):
            if await apps_repo.get_application(s, principal.team_id, app_id) is not None:
                found.add(app_id)
    return found


async def owned_databases(deps: Deps, principal: Principal, database_ids: Iterable[str]) -> set[str]:
    """Those of ``database_ids`` that are databases of the caller's team."""
    async with deps.sessionmaker() as s:
        return {r["id"] for r in await db_repo.list_databases(s, principal.team_id)} & set(database_ids)


async def rules_out(deps: Deps, principal: Principal, rules: list[AlertRuleView]) -> list[dict[str, Any]]:
    """The rules as the api shows them: one watching a team's database (stored as its ``app``) is named a
    ``database`` rule again."""
    ids = await owned_databases(deps, principal, [r.target_id for r in rules if r.target_kind == "app"])
    shown = [r.model_dump() for r in rules]
    for rule in shown:
        if rule["target_kind"] == "app" and rule["target_id"] in ids:
            rule["target_kind"] = "database"
    return shown


async def check_filters(deps: Deps, principal: Principal, project_id: str | None, application_id: str | None) -> None:
    """A subscription may only be narrowed to the team's own project or application."""
    async with deps.sessionmaker() as s:
        if project_id is not None and await projects_repo.get_project(s, principal.team_id, project_id) is None:
            raise invalid_field("/body/project_id", f"no project {project_id} in team {principal.team_name}")
        if application_id is not None and (
            await apps_repo.get_application(s, principal.team_id, application_id) is None
        ):
            raise invalid_field(
                "/body/application_id", f"no application {application_id} in team {principal.team_name}"
            )


# --- metrics ------------------------------------------------------------------------------------------

QUERY_FIELDS: Fields = {"start": "/query/from", "end": "/query/to", "step_s": "/query/step", "metrics": "/query/metric"}


def window(start: datetime | None, end: datetime | None, default_span: timedelta) -> tuple[datetime, datetime | None]:
    """``from`` defaults to ``default_span`` before ``to`` (or now); naive times are UTC."""
    end = end.replace(tzinfo=UTC) if end is not None and end.tzinfo is None else end
    if start is None:
        start = (end or datetime.now(UTC)) - default_span
    elif start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    if end is not None and end <= start:
        raise invalid_field("/query/to", "must be after from")
    return start, end


async def application_metrics(
    deps: Deps, principal: Principal, application_id: str, query: dict[str, Any], server_id: str | None = None
) -> MetricsReply:
    """Series of the application's containers (those labelled ``berth.app=<id>``); none yet: empty."""
    if not await owned_applications(deps, principal, [application_id]):
        raise application_missing(principal, application_id)
    fields = {**QUERY_FIELDS, "target_id": "/path/application_id"}
    fields["server_id"] = "/query/server"
    q = build(MetricsQuery, fields, target_kind="app", target_id=application_id, server_id=server_id, **query)
    return await labelled_metrics(deps, q, fields)


async def labelled_metrics(deps: Deps, q: MetricsQuery, fields: Fields) -> MetricsReply:
    """The series of the containers ``q`` names by their ``berth.app`` label; none seen yet: no series."""
    try:
        return await ask(deps, METRICS, q, MetricsReply, fields=fields)
    except ProblemError as exc:
        if exc.status != 404:
            raise
        return MetricsReply(start=q.start, end=q.end or datetime.now(UTC), step_s=q.step_s)


async def server_metrics(
    deps: Deps, principal: Principal, server_id: str, query: dict[str, Any]
) -> tuple[str, MetricsReply]:
    """Series of a server and its mounts; ``local`` (or its name) is the machine Berth runs on (the
    platform's, seen by every team). An added server's are seen only by the team that owns it or runs containers on it: for
    another team it is missing."""
    local = server_id in (LOCAL_SERVER, local_server_name())
    name = local_server_name() if local else server_id
    fields = {**QUERY_FIELDS, "target_id": "/path/server_id"}
    team = None if local else principal.team_id
    q = build(MetricsQuery, fields, target_kind="server", target_id=name, team_id=team, **query)
    try:
        return name, await ask(deps, METRICS, q, MetricsReply, fields=fields)
    except ProblemError as exc:
        if exc.status == 404:
            if not local and not await _owns_server(deps, principal, server_id):
                raise not_in_team("server", server_id, principal.team_name) from None
            raise ProblemError(404, f"No metrics of a server {server_id} (yet).") from None
        raise


async def _owns_server(deps: Deps, principal: Principal, server_id: str) -> bool:
    async with deps.sessionmaker() as s:
        return await servers_repo.get_server(s, principal.team_id, server_id) is not None


async def check_rule_target(deps: Deps, principal: Principal, given: AlertRuleSpec) -> AlertRuleSpec:
    """A rule may watch ``*`` (the metrics service limits it to the team), the team's applications, the
    containers of those (as far as the metrics service has seen them), a server (``local``: this one), or one
    of the team's databases (``database``: the metrics service watches it as the ``app`` its container is
    labelled with, the database id, so its readings and alerts are those of that target)."""
    kind, target = given.target_kind, given.target_id
    as_app = kind == "database"  # type: ignore[comparison-overlap]  # the api's rule body adds the kind
    spec = AlertRuleSpec.model_validate({**given.model_dump(), "target_kind": "app" if as_app else kind})
    if as_app:
        if target == "*" or not await owned_databases(deps, principal, [target]):
            raise invalid_field("/body/target_id", f"no database {target} in team {principal.team_name}")
        return spec
    if target == "*":
        return spec
    if kind == "server":
        return spec.model_copy(update={"target_id": local_server_name()}) if target == LOCAL_SERVER else spec
    if kind == "app":
        if not await owned_applications(deps, principal, [target]):
            raise invalid_field("/body/target_id", f"no application {target} in team {principal.team_name}")
        return spec
    since = datetime.now(UTC) - timedelta(days=1)
    fields = {"target_id": "/body/target_id"}
    q = build(
        MetricsQuery,
        fields,
        target_kind="container",
        target_id=target,
        start=since,
        step_s=86400.0,
        metrics=["cpu_pct"],
    )
    try:
        found = (await ask(deps, METRICS, q, MetricsReply, fields=fields)).series
    except ProblemError as exc:
        if exc.status != 404:
            raise
        found = []
    apps = {s.labels.get("app", "") for s in found if s.labels.get("team") != principal.team_id}
    if not found or (apps and await owned_applications(deps, principal, apps - {""}) != apps):
        detail = f"no container {target} of team {principal.team_name}'s applications has been seen in the last day"
        raise invalid_field("/body/target_id", detail)
    return spec


async def rule_of(deps: Deps, principal: Principal, rule_id: str) -> AlertRuleView:
    listed = await ask(deps, METRICS, AlertRuleList(team_id=principal.team_id), AlertRuleListReply, fields={})
    for rule in listed.rules:
        if rule.id == rule_id:
            return rule
    raise not_in_team("alert rule", rule_id, principal.team_name)
