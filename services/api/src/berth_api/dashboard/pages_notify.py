"""The notifications page: channels (their secrets write-only: a form sends them, no page shows them, the
REST API answers only which are set), subscriptions, a test send and the delivery log. Each read and each
form is a REST call with the session's token (the api asks the notifier); the REST API refuses what the
role may not do, the page only leaves those forms out."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from berth_api.dashboard.client import Api, ApiError
from berth_api.dashboard.page_forms import around, call, form, text
from berth_api.dashboard.web import back_to, page, render

PAGE = "/ui/notifications"
CHANNELS = "/v1/notification-channels"
# Each kind's form fields, as the REST API names them in the channel's target (secrets marked True).
KINDS: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "webhook": (("url", "URL", True), ("signing_secret", "Signing secret", True)),
    "slack": (("webhook_url", "Webhook URL", True),),
    "discord": (("webhook_url", "Webhook URL", True), ("username", "Username", False)),
    "telegram": (("bot_token", "Bot token", True), ("chat_id", "Chat", False)),
    "email": (
        ("host", "SMTP host", False),
        ("port", "SMTP port", False),
        ("security", "Security (starttls, tls or plain)", False),
        ("username", "SMTP user", False),
        ("password", "SMTP password", True),
        ("from_addr", "From", False),
        ("to_addrs", "To (comma-separated)", False),
    ),
}


def _target(base: dict[str, Any], kind: str) -> dict[str, Any]:
    target: dict[str, Any] = {"kind": kind}
    for name, _, _ in KINDS.get(kind, ()):
        value = text(base, f"{kind}.{name}")
        if not value:
            continue
        if name == "to_addrs":
            target[name] = [a.strip() for a in value.split(",") if a.strip()]
        elif name == "port":
            target[name] = int(value) if value.isdigit() else value
        else:
            target[name] = value
    return target


STATUSES = ("pending", "sending", "delivered", "failed")


async def _page(
    api: Api, base: dict[str, Any], status: int = 200, log: dict[str, str] | None = None, **extra: Any
) -> Response:
    log = log or {}
    projects = await api.get("/v1/projects")
    try:
        channels, subscriptions, deliveries = await asyncio.gather(
            api.get(CHANNELS),
            api.get("/v1/notification-subscriptions"),
            api.get("/v1/notification-deliveries", params={"limit": 50, **log}),
        )
    except ApiError as e:
        if e.status != 503:
            raise
        # The notifier is down or slow: the page says so (and offers no form) instead of failing whole.
        channels, subscriptions, deliveries = [], [], []
        extra.setdefault("unavailable", e.detail)
    by_channel: dict[str, list[dict[str, Any]]] = {}
    for sub in subscriptions:
        by_channel.setdefault(sub["channel_id"], []).append(sub)
    names = {c["id"]: c["name"] for c in channels}
    return render(
        "notifications.html",
        status,
        **base,
        channels=channels,
        by_channel=by_channel,
        deliveries=deliveries,
        names=names,
        projects=projects,
        kinds=KINDS,
        statuses=STATUSES,
        log=log,
        **extra,
    )


@page
async def notifications(request: Request, api: Api, base: dict[str, Any]) -> Response:
    """The page; ``channel`` and ``status`` in the query narrow the delivery log (as the REST API does)."""
    query = request.query_params
    tested = query.get("tested", "")
    log = {name: query[name] for name in ("channel_id", "status") if query.get(name, "").isalnum()}
    return await _page(api, base, log=log, tested=tested if tested.isalnum() else "")


_redraw = around(_page)


@form
async def create_channel(request: Request, api: Api, base: dict[str, Any]) -> Response:
    kind = text(base, "kind")
    body = {"name": text(base, "name"), "target": _target(base, kind)}
    await call(api, base, _redraw, "POST", CHANNELS, json=body)
    return back_to(PAGE)


@form
async def switch_channel(request: Request, api: Api, base: dict[str, Any]) -> Response:
    channel = request.path_params["channel_id"]
    await call(api, base, _redraw, "PATCH", f"{CHANNELS}/{channel}", json={"enabled": text(base, "enabled") == "true"})
    return back_to(PAGE)


@form
async def configure_channel(request: Request, api: Api, base: dict[str, Any]) -> Response:
    """Change where a channel sends (same kind): a secret left empty is kept as it is."""
    channel = request.path_params["channel_id"]
    target = _target(base, text(base, "kind"))
    await call(api, base, _redraw, "PATCH", f"{CHANNELS}/{channel}", json={"target": target})
    return back_to(PAGE)


@form
async def delete_channel(request: Request, api: Api, base: dict[str, Any]) -> Response:
    await call(api, base, _redraw, "DELETE", f"{CHANNELS}/{request.path_params['channel_id']}")
    return back_to(PAGE)


@form
async def test_channel(request: Request, api: Api, base: dict[str, Any]) -> Response:
    """Send a test message; the page then shows its outcome (and the delivery log has it)."""
    channel = request.path_params["channel_id"]
    delivery = await call(api, base, _redraw, "POST", f"{CHANNELS}/{channel}/test", json={"wait_s": 5})
    return back_to(f"{PAGE}?{urlencode({'tested': delivery['id']})}#deliveries")


@form
async def create_subscription(request: Request, api: Api, base: dict[str, Any]) -> Response:
    channel = request.path_params["channel_id"]
    events = [e.strip() for e in text(base, "event_types").replace(",", " ").split() if e.strip()]
    body: dict[str, Any] = {"event_types": events}
    if text(base, "project_id"):
        body["project_id"] = text(base, "project_id")
    await call(api, base, _redraw, "POST", f"{CHANNELS}/{channel}/subscriptions", json=body)
    return back_to(PAGE)


@form
async def delete_subscription(request: Request, api: Api, base: dict[str, Any]) -> Response:
    await call(api, base, _redraw, "DELETE", f"/v1/notification-subscriptions/{request.path_params['subscription_id']}")
    return back_to(PAGE)
