"""How the developer's forms of ``a11y_posts`` are posted: each ``Post`` opened on its page, its form found
(by a label or a button inside it, or its action), filled by field name (a checkbox ticked for "on"), sent
with its own submit button (or, where a form has two, the one named), and the answer checked: its status,
no problem on the page it leads to, its title, what it shows, axe once per shape of page, no console
error, and the change in the REST API (read back as the admin) or in the browser."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from tests.api.conftest import bearer
from tests.support.axe import audit

Effect = Callable[[httpx.AsyncClient], Awaitable[bool]]
Seen = Callable[[Any], Awaitable[bool]]
ID = re.compile(r"(?<=/)[0-9a-f]{32}(?=/|$)")


@dataclass(frozen=True)
class Post:
    """One shown form: the page it is on (empty: the page the last answer led to), how to find it there (a
    label or a button name inside it), what the developer fills in (by field name), and how the REST API
    tells it was done (or, where the REST API cannot, the answer's page or the browser's session)."""

    what: str
    page: str
    within: tuple[str, str]  # ("label" | "button", accessible name) of something inside it, or ("action", path)
    effect: Effect | None
    fields: dict[str, str] = field(default_factory=dict)
    heading: str = ""  # what the page the answer leads to has as its title (its h1), when it says
    status: int = 303  # the POST's answer: the redirect of a done change, or 200 for a form that shows a result
    shows: str = ""  # a selector the page the answer leads to matches (what the form showed)
    seen: Seen | None = None  # what the browser's page tells of the change (given the page)
    audit: bool = False  # axe on the page the answer leads to even when a page of its shape was audited


async def fill(form: Any, fields: dict[str, str]) -> None:
    """Fill the form's fields by name; a checkbox is ticked for "on" and unticked otherwise."""
    for name, value in fields.items():
        control = form.locator(f'[name="{name}"]')
        tag = await control.evaluate("e => e.type === 'checkbox' ? 'checkbox' : e.tagName.toLowerCase()")
        if tag == "select":
            await control.select_option(value)
        elif tag == "checkbox":
            await control.set_checked(value == "on")
        else:
            await control.fill(value)


def shape(url: str) -> str:
    """A page's route (ids made placeholders) and the names of its query parameters."""
    parts = urlsplit(url)
    keys = sorted({k for k, _ in parse_qsl(parts.query, keep_blank_values=True)})
    return ID.sub("{id}", parts.path) + ("?" + "&".join(keys) if keys else "")


async def post_shown(page: Any, origin: str, post: Post, problems: list[str], audited: set[str]) -> None:
    """Open the post's page, fill its form and submit it with its own button; record what went wrong (axe's
    findings on the page the answer leads to too, once per shape of page: ``audited``)."""
    if post.page and page.url.split("#")[0] != origin + post.page:  # the last answer may be this page already
        await page.goto(origin + post.page)
    await page.evaluate("document.querySelectorAll('details').forEach((d) => { d.open = true; })")
    kind, name = post.within
    if kind == "action":
        form = page.locator(f'form[method="post"][action="{name}"]')
    else:
        inside = page.get_by_role("button", name=name, exact=True) if kind == "button" else page.get_by_label(name)
        form = page.locator('form[method="post"]', has=inside)
    if await form.count() != 1:
        problems.append(f"developer: {post.what}: {await form.count()} forms on {post.page}, not one")
        return
    await fill(form, post.fields)
    # the button named (a form may have two: "Read the services" and "Create compose application"), else its own
    submit = (
        form.get_by_role("button", name=name, exact=True) if kind == "button" else form.locator('button[type="submit"]')
    )
    async with page.expect_response(lambda r: r.request.method == "POST") as posted:
        await submit.click()
    answer = await posted.value
    await page.wait_for_load_state("load")
    if answer.status != post.status:
        problems.append(f"developer: {post.what}: the POST answered {answer.status}, not {post.status}")
    if post.audit or shape(page.url) not in audited:
        audited.add(shape(page.url))
        problems.extend(f"developer: {post.what}: {page.url}: axe {v}" for v in await audit(page))
    alerts = page.get_by_role("alert")
    if await alerts.count():
        problems.append(f"developer: {post.what}: {await alerts.first.text_content()}")
    if post.heading and post.heading not in (title := await page.locator("h1").first.text_content() or ""):
        problems.append(f"developer: {post.what}: the page says {title!r}, not {post.heading!r}")
    if post.shows and not await page.locator(post.shows).count():
        problems.append(f"developer: {post.what}: {page.url} does not show {post.shows}")


async def post_developer_forms(
    page: Any,
    origin: str,
    admin: str,
    todo: list[Post],
    took: dict[str, float] | None = None,
    errors: list[str] | None = None,
) -> list[str]:
    """Each post in order on ``page`` (signed in as the developer), its effect read back as the admin; the
    problems. ``took``: the seconds of each post (with its effect's check), by what it does; ``errors``: the
    browser's console errors so far (those a post adds are its problems)."""
    problems: list[str] = []
    took = {} if took is None else took
    errors = [] if errors is None else errors
    audited: set[str] = set()
    page.on("dialog", lambda dialog: dialog.accept())  # a form's data-confirm question, answered yes
    # an idle connection is let go well before the api's keep-alive of 5 s ends it (a post can take that long),
    # so a check never reuses one the api is closing at that moment (a read error, not an answer)
    limits = httpx.Limits(keepalive_expiry=1.0)
    async with httpx.AsyncClient(base_url=origin, headers=bearer(admin), limits=limits) as api:
        for post in todo:
            began, logged = time.monotonic(), len(errors)
            await post_shown(page, origin, post, problems, audited)
            if post.effect is not None and not await post.effect(api):
                problems.append(f"developer: {post.what}: the REST API does not have it")
            if post.seen is not None and not await post.seen(page):
                problems.append(f"developer: {post.what}: the browser does not see it")
            problems.extend(f"developer: {post.what}: console: {e}" for e in errors[logged:])
            took[post.what] = round(time.monotonic() - began, 2)
    return problems
