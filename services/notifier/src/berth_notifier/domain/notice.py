"""What a message says, derived from an event's ``type`` and ``data`` alone (pure).

Known event types get a written sentence; any other ``evt.*`` type is rendered generically from its data,
so a producer adding fields or new event types never breaks a notification.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal, TypeGuard
from urllib.parse import quote

from pydantic import BaseModel, Field

from berth_notifier.domain.backup_notice import BACKUP_TITLES, backup_sentence
from berth_notifier.domain.job_notice import JOB_TITLES, job_sentence
from berth_notifier.domain.schedule_notice import SCHEDULE_TITLES, schedule_sentence

Severity = Literal["info", "success", "warning", "error"]

SECRET_KEY = re.compile(r"(secret|password|token|authorization|api_key|private_key|credential)", re.IGNORECASE)
# Keys that say *where* or *what* and are shown as dedicated parts of a message rather than as facts.
PLACE_KEYS = ("team_id", "team_name", "project_id", "project_name", "application_id", "application_name")
REASON_KEYS = ("reason", "error", "message", "detail")
# Facts shown first (when the event has them), and keys never shown (ids and times nobody reads).
FIRST_FACTS = (
    "deployment_id",
    "service",
    "container_name",
    "image",
    "exit_code",
    "oom_killed",
    "restarts_in_window",
    "metric",
    "value",
    "threshold",
    "peak",
    "server",
    "failed_in",
    "stage",
)
HIDDEN_FACTS = frozenset(
    {
        "alert_id",
        "rule_id",
        "rule_name",
        "target_kind",
        "target_id",
        "target",
        "occurred_at",
        "raised_at",
        "resolved_at",
        "since",
        "labels",
        "loop_threshold",
        "window_s",
        "resolve_below",
        "for_s",
        "outage_id",
        "down_since",
        "last_seen_at",
        "back_at",
        "expires_at",
    }
)
METRIC_WORDS = {
    "cpu_pct": ("CPU", "%"),
    "mem_pct": ("memory", "%"),
    "disk_pct": ("disk", "%"),
    "restarts": ("restarts", ""),
}
MAX_FACTS = 8
MAX_FACT_LEN = 200
MAX_REASON_LEN = 1000

KNOWN: dict[str, tuple[str, Severity]] = {
    "evt.deployment.queued": ("Deployment queued", "info"),
    "evt.deployment.succeeded": ("Deployment succeeded", "success"),
    "evt.deployment.failed": ("Deployment failed", "error"),
    "evt.deployment.cancelled": ("Deployment cancelled", "warning"),
    "evt.build.failed": ("Build failed", "error"),
    "evt.container.crashed": ("Container crashed", "error"),
    "evt.container.restarted": ("Container restarted", "warning"),
    "evt.container.unhealthy": ("Container unhealthy", "warning"),
    "evt.container.healthy": ("Container healthy again", "success"),
    "evt.alert.raised": ("Alert raised", "warning"),
    "evt.alert.resolved": ("Alert resolved", "success"),
    "evt.server.unreachable": ("Server unreachable", "error"),
    "evt.server.back": ("Server reachable again", "success"),
    "evt.certificate.expiring": ("Certificate expiring", "warning"),
    "evt.certificate.issued": ("Certificate issued", "success"),
    "evt.certificate.failed": ("Certificate failed", "error"),
    "evt.application.scaled": ("Application scaled", "info"),
    **BACKUP_TITLES,
    **SCHEDULE_TITLES,
    **JOB_TITLES,
}
_BAD = ("failed", "crashed", "unreachable", "error", "killed", "expired")
_WARN = ("raised", "unhealthy", "restarted", "expiring", "cancelled", "degraded")
_GOOD = ("succeeded", "resolved", "back", "healthy", "recovered", "renewed")


class Notice(BaseModel):
    """A rendered event: what happened, where, why, and a link. Stored with a delivery as JSON."""

    event_id: str
    event_type: str
    time: datetime
    title: str
    summary: str
    severity: Severity = "info"
    reason: str | None = None
    url: str | None = None
    team: str | None = None  # display values (a name when the event carries one, else the id)
    project: str | None = None
    application: str | None = None
    team_id: str | None = None
    project_id: str | None = None
    application_id: str | None = None
    deployment_id: str | None = None
    facts: dict[str, str | int | float | bool] = Field(default_factory=dict)
    count: int = 1
    first_time: datetime | None = None
    last_time: datetime | None = None
    test: bool = False

    def headline(self) -> str:
        """The title, with the count when several events were grouped into this message."""
        if self.count <= 1:
            return self.title
        span = ""
        if self.first_time and self.last_time and self.last_time > self.first_time:
            span = f" in {_duration((self.last_time - self.first_time).total_seconds())}"
        return f"{self.title} ({self.count} times{span})"

    def where(self) -> str:
        parts = [f"{label} {value}" for label, value in self.places()]
        return ", ".join(parts)

    def places(self) -> list[tuple[str, str]]:
        found = [("team", self.team), ("project", self.project), ("application", self.application)]
        return [(label, value) for label, value in found if value]


def _duration(seconds: float) -> str:
    s = round(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h"


def fact_label(key: str) -> str:
    """``exit_code`` -> ``Exit code``, ``deployment_id`` -> ``Deployment ID``, ``duration_s`` -> ``Duration (s)``."""
    words = key.split("_")
    if len(words) > 1 and words[-1] == "id":
        words[-1] = "ID"
    elif len(words) > 1 and words[-1] in ("s", "ms", "mb", "pct"):
        unit = {"s": "s", "ms": "ms", "mb": "MB", "pct": "%"}[words.pop()]
        words[-1] += f" ({unit})"
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def humanize(event_type: str) -> str:
    """``evt.server.disk_full`` -> ``Server disk full``."""
    words = event_type.removeprefix("evt.").replace(".", " ").replace("_", " ").split()
    text = " ".join(words) or event_type
    return text[:1].upper() + text[1:]


def severity_of(event_type: str) -> Severity:
    last = event_type.rsplit(".", 1)[-1]
    if last in _BAD:
        return "error"
    if last in _WARN:
        return "warning"
    if last in _GOOD:
        return "success"
    return "info"


def _text(value: Any, limit: int) -> str:
    text = " ".join(str(value).split()) if not isinstance(value, str) else value.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) and value != ""


def link(public_url: str, data: dict[str, Any]) -> str | None:
    base = public_url.rstrip("/")
    app, dep = data.get("application_id"), data.get("deployment_id")
    if not app and data.get("target_kind") == "app":
        app = data.get("target_id")
    if isinstance(app, str) and app:
        url = f"{base}/applications/{quote(app, safe='')}"
        if isinstance(dep, str) and dep:
            url += f"/deployments/{quote(dep, safe='')}"
        return url
    server = data.get("server_id") or (data.get("target_id") if data.get("target_kind") == "server" else None)
    if isinstance(server, str) and server:
        return f"{base}/servers/{quote(server, safe='')}"
    return base or None


def _sentence(event_type: str, data: dict[str, Any], title: str, app: str | None) -> str:
    """One line saying what happened, with the ids the event carries."""
    of_app = f" of application {app}" if app else ""
    dep = data.get("deployment_id")
    if event_type.startswith("evt.deployment.") and dep:
        verb = title.removeprefix("Deployment ").lower()
        line = f"Deployment {dep}{of_app} {verb}"
        if data.get("image") and event_type == "evt.deployment.succeeded":
            line += f": {data['image']} is live"
        return line
    if event_type == "evt.build.failed":
        return f"Build {data.get('build_id', '?')} for deployment {dep or '?'}{of_app} failed"
    if event_type.startswith("evt.container."):
        return _container_sentence(event_type, data, of_app, title)
    if event_type.startswith("evt.alert."):
        return _alert_sentence(event_type, data)
    if event_type in ("evt.server.unreachable", "evt.server.back"):
        return _server_sentence(event_type, data)
    if event_type == "evt.application.scaled":
        service, trigger = data.get("service", "?"), "autoscaling" if data.get("trigger") == "auto" else "by hand"
        before, after = data.get("from_replicas", "?"), data.get("to_replicas", "?")
        if data.get("outcome") == "failed":
            return f"Service {service}{of_app} could not be scaled ({trigger}): it runs {after} replica(s)"
        return f"Service {service}{of_app} scaled from {before} to {after} replica(s) ({trigger})"
    if (backup := backup_sentence(event_type, data)) is not None:
        return backup
    if (scheduled := schedule_sentence(event_type, data)) is not None:
        return scheduled
    if (job := job_sentence(event_type, data, of_app)) is not None:
        return job
    if event_type == "evt.certificate.expiring" and data.get("domain"):
        days = data.get("days_left")
        left = f" in {days:.0f} days" if _num(days) and days >= 1 else " within a day" if _num(days) else " soon"
        return f"The certificate of {data['domain']}{of_app} expires{left}"
    if event_type == "evt.certificate.issued" and data.get("host"):
        return f"{data['host']}{of_app} has a new certificate from {data.get('issuer') or 'its issuer'}"
    if event_type == "evt.certificate.failed" and data.get("host"):
        return f"{data['host']}{of_app} could not get a certificate: {data.get('reason') or 'no reason given'}"
    return f"{title}{of_app}" if app else title


def _server_sentence(event_type: str, data: dict[str, Any]) -> str:
    server = data.get("server") or data.get("server_id") or "?"
    if event_type == "evt.server.back":
        down_for = data.get("down_for_s")
        after = f" after {_duration(down_for)}" if _num(down_for) else ""
        return f"Server {server} answers again{after}"
    checks = data.get("failed_checks")
    line = f"Server {server} is unreachable: its Docker engine does not answer"
    return line + (f" ({checks:g} checks in a row)" if _num(checks) and checks > 0 else "")


def _container_sentence(event_type: str, data: dict[str, Any], of_app: str, title: str) -> str:
    name = data.get("container_name") or data.get("container_id") or "?"
    who = f"Container {name}{of_app}"
    if event_type == "evt.container.crashed":
        if data.get("oom_killed"):
            return f"{who} was killed: out of memory"
        code = data.get("exit_code")
        return f"{who} exited" + (f" with code {code}" if code is not None else "")
    if event_type == "evt.container.restarted":
        n, window = data.get("restarts_in_window"), data.get("window_s")
        if _num(n) and _num(window) and n > 1:
            return f"{who} restarted {n} times in {_duration(window)}"
        return f"{who} was restarted"
    if event_type == "evt.container.unhealthy":
        return f"{who} fails its health check"
    if event_type == "evt.container.healthy":
        return f"{who} passes its health check again"
    return f"{title}: {name}{of_app}"


def _measure(value: Any, unit: str) -> str:
    return f"{value:g}{unit}" if _num(value) else "?"


def _alert_sentence(event_type: str, data: dict[str, Any]) -> str:
    rule = data.get("rule_name") or data.get("rule_id") or "alert"
    target = data.get("target") or data.get("target_id") or "?"
    what, unit = METRIC_WORDS.get(str(data.get("metric", "")), ("value", ""))
    if data.get("metric") == "down" and data.get("value") is not None:  # the built-in "database down"
        if event_type == "evt.alert.raised":
            return f"{rule}: {target} has been down for {_duration(data['value'])}"
        if event_type == "evt.alert.resolved":
            return f"{rule}: {target} is running again"
    if event_type == "evt.alert.resolved":
        if data.get("value") is None:
            return f"{rule}: {target} is gone, the alert is over"
        return f"{rule}: {what} of {target} is back to {_measure(data.get('value'), unit)}"
    if event_type == "evt.alert.raised":
        line = f"{rule}: {what} of {target} at {_measure(data.get('value'), unit)}"
        line += f" is above {_measure(data.get('threshold'), unit)}"
        for_s = data.get("for_s")
        return line + (f" for {_duration(for_s)}" if _num(for_s) and for_s > 0 else "")
    return f"{rule}: {target}"


def _num(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _reason(event_type: str, data: dict[str, Any]) -> str | None:
    for key in REASON_KEYS:
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return _text(value, MAX_REASON_LEN)
    if event_type == "evt.container.crashed":
        if data.get("oom_killed"):
            return "the container exceeded its memory limit (OOM kill)"
        if data.get("exit_code") is not None:
            return f"the process exited with code {data['exit_code']}"
    return None


def _place(data: dict[str, Any], what: str) -> str | None:
    name, ident = data.get(f"{what}_name"), data.get(f"{what}_id")
    value = name if isinstance(name, str) and name else ident
    return _text(value, 120) if isinstance(value, str) and value else None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def render(
    event_type: str,
    data: dict[str, Any],
    *,
    event_id: str,
    time: datetime,
    public_url: str,
    context: dict[str, str] | None = None,
) -> Notice:
    """Turn an event into a :class:`Notice`. ``context`` fills ``team_id``/``project_id`` the event lacks."""
    merged = {**(context or {}), **{k: v for k, v in data.items() if v is not None}}
    if not merged.get("application_id") and merged.get("target_kind") == "app" and merged.get("target_id"):
        merged["application_id"] = merged["target_id"]  # an alert on an application
    title, severity = KNOWN.get(event_type, (humanize(event_type), severity_of(event_type)))
    if event_type == "evt.application.scaled" and merged.get("outcome") == "failed":
        title, severity = "Scaling failed", "error"
    app = _place(merged, "application")
    facts: dict[str, str | int | float | bool] = {}
    ordered = [k for k in FIRST_FACTS if k in merged] + [k for k in merged if k not in FIRST_FACTS]
    for key in ordered:
        value = merged[key]
        if len(facts) >= MAX_FACTS:
            break
        if key in PLACE_KEYS or key in REASON_KEYS or key in HIDDEN_FACTS or SECRET_KEY.search(key):
            continue
        if not _scalar(value):
            continue
        facts[key] = _text(value, MAX_FACT_LEN) if isinstance(value, str) else value
    return Notice(
        event_id=event_id,
        event_type=event_type,
        time=time,
        title=title,
        summary=_text(_sentence(event_type, merged, title, app), 500),
        severity=severity,
        reason=_reason(event_type, merged),
        url=link(public_url, merged),
        team=_place(merged, "team"),
        project=_place(merged, "project"),
        application=app,
        team_id=_str_or_none(merged.get("team_id")),
        project_id=_str_or_none(merged.get("project_id")),
        application_id=_str_or_none(merged.get("application_id")),
        deployment_id=_str_or_none(merged.get("deployment_id")),
        facts=facts,
        first_time=time,
        last_time=time,
    )


def probe_notice(*, event_id: str, time: datetime, public_url: str, team_id: str, channel_name: str) -> Notice:
    return Notice(
        event_id=event_id,
        event_type="test",
        time=time,
        title="Test message from Berth",
        summary=f"The notification channel {channel_name} works: Berth can reach it.",
        severity="info",
        url=public_url.rstrip("/") or None,
        team=team_id,
        team_id=team_id,
        first_time=time,
        last_time=time,
        test=True,
    )
