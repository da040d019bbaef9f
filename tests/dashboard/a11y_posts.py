"""The developer's shown forms, posted from the page as a person would (fields filled, the form's own submit
button clicked), on objects the accessibility test made for the purpose: a variable and a route set on its
compose application and the route removed again, a webhook channel created, subscribed and disabled, an
alert rule created, a database linked and backed up. Each answer is checked: the form's POST is answered
with the redirect of a done change (a refused or invalid one is drawn again with the problem instead), the
page it leads to shows no problem, and the REST API has the change. Only what cannot deploy, delete the
seeded objects or change the session is posted (deploy, scale, rollback and team switching are not)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.api.conftest import bearer
from tests.dashboard.a11y_seed import Seeded

Effect = Callable[[httpx.AsyncClient], Awaitable[bool]]
PROBE = "dev-probe"  # the name of what the developer makes


@dataclass(frozen=True)
class Post:
    """One shown form: the page it is on, how to find it there (a label or a button name inside it), what
    the developer fills in (by field name), and how the REST API tells it was done."""

    what: str
    page: str
    within: tuple[str, str]  # ("label" | "button", accessible name) of something inside the form
    effect: Effect
    fields: dict[str, str] = field(default_factory=dict)


async def rows(api: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    """A listing's rows (a list, or a page of ``items``)."""
    got = (await api.get(path)).json()
    return got["items"] if isinstance(got, dict) else got


def posts(seeded: Seeded, hook_url: str) -> list[Post]:
    app, db = seeded.routed["id"], seeded.database

    async def env_has(api: httpx.AsyncClient) -> bool:
        got = (await api.get(f"/v1/applications/{app}")).json()
        return any(v["name"] == "A11Y_PROBE" and v["value"] == "on" for v in got["env"])

    async def route_is(api: httpx.AsyncClient, present: bool) -> bool:
        hosts = (await api.get(f"/v1/applications/{app}")).json()["compose"]["hosts"]
        return any(h.get("host") == "probe.example.com" for h in hosts) == present

    async def route_set(api: httpx.AsyncClient) -> bool:
        return await route_is(api, True)

    async def route_gone(api: httpx.AsyncClient) -> bool:
        return await route_is(api, False)

    async def channel(api: httpx.AsyncClient) -> dict[str, Any] | None:
        return next((c for c in await rows(api, "/v1/notification-channels") if c["name"] == PROBE), None)

    async def channel_made(api: httpx.AsyncClient) -> bool:
        return await channel(api) is not None

    async def subscribed(api: httpx.AsyncClient) -> bool:
        c = await channel(api)
        subs = await rows(api, "/v1/notification-subscriptions")
        return c is not None and any(s["channel_id"] == c["id"] and s["event_types"] == ["evt.alert.>"] for s in subs)

    async def disabled(api: httpx.AsyncClient) -> bool:
        c = await channel(api)
        return c is not None and c["enabled"] is False

    async def rule_made(api: httpx.AsyncClient) -> bool:
        rules = await rows(api, "/v1/alert-rules")
        return any(r["name"] == PROBE and r["target_id"] == app and r["threshold"] == 95 for r in rules)

    async def linked(api: httpx.AsyncClient) -> bool:
        links = await rows(api, f"/v1/applications/{app}/links")
        return any(link["database_id"] == db and link["variable"] == "LEDGER_URL" for link in links)

    async def backed_up(api: httpx.AsyncClient) -> bool:
        return len(await rows(api, f"/v1/databases/{db}/backups")) == 2  # the seeded one and this

    on_app, on_db = f"/ui/applications/{app}", f"/ui/databases/{db}"
    return [
        Post("set a variable", on_app, ("button", "Set variable"), env_has, {"name": "A11Y_PROBE", "value": "on"}),
        Post(
            "set a route",
            on_app,
            ("button", "Set route"),
            route_set,
            {"service": "front", "port": "80", "host": "probe.example.com"},
        ),
        Post("remove the route", on_app, ("button", "Remove the route of front on probe.example.com"), route_gone),
        Post(
            "create a channel",
            "/ui/notifications",
            ("button", "Create webhook channel"),
            channel_made,
            {"name": PROBE, "webhook.url": hook_url, "webhook.signing_secret": "whsec-dev-probe-0815"},
        ),
        Post(
            "subscribe it",
            "/ui/notifications",
            ("label", f"Events for {PROBE}"),
            subscribed,
            {"event_types": "evt.alert.>"},
        ),
        Post("disable it", "/ui/notifications", ("button", f"Disable {PROBE}"), disabled),
        Post(
            "create an alert rule",
            "/ui/alerts",
            ("button", "Create rule"),
            rule_made,
            {"name": PROBE, "target_kind": "app", "app_id": app, "metric": "cpu_pct", "threshold": "95"},
        ),
        Post("link the database", on_db, ("button", "Link"), linked, {"application_id": app, "variable": "LEDGER_URL"}),
        Post("back it up now", f"{on_db}/backups", ("button", "Run backup now"), backed_up),
    ]


async def fill(form: Any, fields: dict[str, str]) -> None:
    for name, value in fields.items():
        control = form.locator(f'[name="{name}"]')
        tag = await control.evaluate("e => e.tagName.toLowerCase()")
        if tag == "select":
            await control.select_option(value)
        else:
            await control.fill(value)


async def post_shown(page: Any, origin: str, post: Post, problems: list[str]) -> None:
    """Open the post's page, fill its form and submit it with its own button; record what went wrong."""
    if page.url.split("#")[0] != origin + post.page:  # the last post's answer may be this page already
        await page.goto(origin + post.page)
    await page.evaluate("document.querySelectorAll('details').forEach((d) => { d.open = true; })")
    kind, name = post.within
    inside = page.get_by_role("button", name=name, exact=True) if kind == "button" else page.get_by_label(name)
    form = page.locator('form[method="post"]', has=inside)
    if await form.count() != 1:
        problems.append(f"developer: {post.what}: {await form.count()} forms on {post.page}, not one")
        return
    await fill(form, post.fields)
    async with page.expect_response(lambda r: r.request.method == "POST") as posted:
        await form.locator('button[type="submit"]').click()
    answer = await posted.value
    await page.wait_for_load_state("load")
    if answer.status != 303:
        problems.append(f"developer: {post.what}: the POST answered {answer.status}, not a redirect")
    alerts = page.get_by_role("alert")
    if await alerts.count():
        problems.append(f"developer: {post.what}: {await alerts.first.text_content()}")


async def post_developer_forms(page: Any, origin: str, admin: str, todo: list[Post]) -> list[str]:
    """Each post in order on ``page`` (signed in as the developer), its effect read back as the admin; the
    problems."""
    problems: list[str] = []
    async with httpx.AsyncClient(base_url=origin, headers=bearer(admin)) as api:
        for post in todo:
            await post_shown(page, origin, post, problems)
            if not await post.effect(api):
                problems.append(f"developer: {post.what}: the REST API does not have it")
    return problems
