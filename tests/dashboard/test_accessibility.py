"""Every page of the dashboard, found by following links from the overview as an admin (same origin, GET
only, bounded), plus the API reference (``/docs``), the event catalogue (``/events``) and the sign-in page,
checked in a real browser (``a11y_crawl``: several tabs at once, in a one-tab crawl's order): axe-core finds
no serious or critical violation, no console error is logged, the page does not scroll sideways at 390 px,
and no secret is in its HTML; a screenshot of each (wide and phone) goes to ``tests/artifacts/``. Pages are found by their links rather than listed, so a page added to
the dashboard is checked as soon as something links to it.

Then as a developer and as a viewer, in the same browser, the pages of the admin's crawl that hold a form
(one of each shape: what a role may not do is what differs between roles) get the same checks, and none
offers a control the role may not use: a viewer's page posts to no route but its own session's and teams',
and a sample of the forms the admin's page has and the role's lacks, forged with the role's session and
CSRF value, is refused by the server (403, the REST API's "This needs the ... role"); and the developer's
shown forms are posted from the page, each answer checked (``a11y_posts``): those on objects made for them,
those that make or deploy things (a Coolify template and a Dokploy blueprint imported too, each result
audited), and last those that change the session (team switch, leave, create and delete, sign out). A restore's page is reached by its link on its backups page.

What the pages show is seeded through the REST API and the bus (``a11y_seed``), with the real notifier and
the metrics service played: applications with deployments, a team server, a database with a verified backup
and a restore, notification channels with a delivery log, alert rules and metrics charts. The pages of
``SHOWS`` must show what was seeded, so a crawl that stops reaching one fails."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest

from berth_common.db.provision import provision
from tests.api.conftest import bearer
from tests.dashboard import a11y_posting, a11y_posts, a11y_seed
from tests.dashboard.a11y_crawl import ID, POST_FORMS, SHOWS, TABS, WIDE, check, crawl, followed, kind
from tests.dashboard.test_observe import MetricsDouble
from tests.support.axe import audit, script
from tests.support.browser import ARTIFACTS, Browser, chromium
from tests.support.notifier import serving_notifier
from tests.support.receivers import WebhookReceiver

pytestmark = [pytest.mark.slow]

ROLES = ("developer", "viewer")
# What a viewer may post: its own session and its memberships (any member may create a team and leave one).
VIEWER_MAY_POST = {"/ui/signout", "/ui/teams", "/ui/teams/switch", "/ui/teams/{id}/leave"}
FORGED = 6  # forms hidden from a role forged per role, spread over the hidden ones


def action_of(url: str) -> str:
    """A form's route: its path with ids made placeholders."""
    segments = urlsplit(url).path.rstrip("/").split("/")
    return "/".join("{id}" if ID.match(seg) else seg for seg in segments) or "/"


def spread(items: list, n: int) -> list:
    """At most ``n`` of ``items``, evenly spread over them (first included)."""
    k = min(n, len(items))
    return [items[i * len(items) // k] for i in range(k)]


@pytest.fixture(scope="module")
async def browser():
    async with chromium() as b:
        yield b


@pytest.fixture(scope="module")
async def notifier(dashboard, module_nats_server, module_database) -> AsyncIterator[None]:
    """The real notifier (started after the api, which declared the streams), so the notifications page shows
    channels, subscriptions and the delivery log rather than its "unavailable" notice."""
    urls = await provision(module_database, "test-secret")
    async with serving_notifier(module_nats_server.url, urls["notifier"], "notifier-a11y-secret-0123456789abcdef"):
        async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(dashboard.viewer)) as http:
            for _ in range(300):  # until it answers through the api
                if (await http.get("/v1/notification-channels")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
        yield


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[WebhookReceiver]:
    """The webhook channel's endpoint (the test message is delivered to it)."""
    r = await WebhookReceiver(a11y_seed.HOOK_SECRET).start()
    yield r
    await r.stop()


@pytest.fixture(scope="module")
async def seeded(dashboard, notifier, receiver) -> AsyncIterator[a11y_seed.Seeded]:
    """A project with an application that has a succeeded deployment (with its log, replicas and variables,
    one of them secret) and a failed one, so the application and deployment pages have something to show;
    a compose application with a path route; the metrics service played (charts, rules, alerts); and what
    ``a11y_seed`` adds: a server, a database with a backup and a restore, notification channels, two more
    teams of the developer's."""
    app, routed = await a11y_seed.applications(dashboard)
    metrics = await MetricsDouble(dashboard.scheduler.url).start(app["id"])
    try:
        url = receiver.url(a11y_seed.HOOK_PATH)
        own = await a11y_seed.developer_teams(dashboard.api.url, dashboard.identities, dashboard.developer)
        yield await a11y_seed.seed(dashboard.api.url, dashboard.admin, dashboard.scheduler.bus, app, routed, url, own)
    finally:
        await metrics.bus.close()


async def test_every_page_is_accessible_has_no_console_error_and_fits_a_phone(dashboard, seeded, browser, receiver):
    script()  # skip here, before the crawl, where axe-core is not installed
    origin = dashboard.api.url.rstrip("/")
    problems: list[str] = []
    ctx = await browser.context(viewport=WIDE)
    page = await ctx.new_page()

    # Signed out: the sign-in page, as it first shows and with the problem a wrong token gives.
    await check(browser, page, origin + "/ui/signin", "signin", problems)
    await page.get_by_label("API token", exact=True).fill("not-a-token")
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await page.get_by_role("alert").wait_for()
    for v in await audit(page):
        problems.append(f"sign-in with a wrong token: axe {v}")

    # Signed in as an admin (who sees every form): every page the links reach.
    await sign_in(page, origin, dashboard.admin)
    phases = {"start": time.monotonic()}  # when each part began, for the artifact
    admin = await crawl(browser, ctx, origin, problems)
    await ctx.close()

    phases["roles"] = time.monotonic()
    # The other roles: one page of each shape whose admin page has a form (what differs by role).
    shaped: dict[str, str] = {}
    for url in admin.visited:  # of each shape, the page with the most kinds of form (a database with backups)
        routes = {action_of(f["action"]) for f in admin.forms[url]} - {"/ui/signout"}
        best = shaped.get(kind(url))
        if routes and (best is None or len(routes) > len({action_of(f["action"]) for f in admin.forms[best]})):
            shaped[kind(url)] = url
    forged = await asyncio.gather(
        *(crawl_as(browser, origin, role, getattr(dashboard, role), shaped, admin.forms, problems) for role in ROLES)
    )
    refused = dict(zip(ROLES, forged, strict=True))

    phases["posts"] = time.monotonic()
    # The developer's shown forms that are safe, posted on objects made for them; each answer checked.
    ctx = await browser.context(viewport=WIDE)
    page = await ctx.new_page()
    await page.goto(origin + "/ui/signin")
    await sign_in(page, origin, dashboard.developer)
    todo = [
        *a11y_posts.posts(seeded, receiver.url("/hooks/dev-probe")),
        *a11y_posts.making(seeded, dashboard.scheduler),
        *a11y_posts.session(origin, dashboard.developer, seeded),
    ]
    post_seconds: dict[str, float] = {}
    problems.extend(
        await a11y_posting.post_developer_forms(page, origin, dashboard.admin, todo, post_seconds, browser.errors)
    )
    await ctx.close()

    marks = [*phases.values(), time.monotonic()]
    took = {name: round(marks[i + 1] - marks[i], 1) for i, name in enumerate(("admin", "roles", "posts"))}
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "a11y-roles.json").write_text(
        json.dumps(
            {
                "pages": shaped,
                "forged": refused,
                "posted": post_seconds,
                "seconds": admin.seconds,
                "phases": took,
            },
            indent=2,
        )
    )
    problems.extend(f"no page {shape} shows what was seeded ({SHOWS[shape]})" for shape in set(SHOWS) - admin.shown)
    assert not problems, "\n".join(problems)
    assert {"/ui", "/ui/applications/{id}"} <= set(shaped), shaped  # the pages where roles differ most
    assert all(refused.values()), refused  # each role had forms hidden, and the server refused them
    assert browser.errors == []
    shapes = set(admin.kinds)
    assert {"/ui", "/ui/applications/{id}", "/ui/deployments/{id}", "/docs", "/events", *SHOWS} <= shapes, shapes
    for made in (seeded.app["id"], seeded.server, seeded.database, seeded.restore):
        assert made in " ".join(admin.visited), made


async def sign_in(page, origin: str, token: str) -> None:
    await page.get_by_label("API token", exact=True).fill(token)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await page.wait_for_url(origin + "/ui/")


async def crawl_as(browser, origin: str, role: str, token: str, shaped: dict, forms: dict, problems: list) -> list:
    """Check the pages in ``shaped`` signed in as ``role`` (``TABS`` at a time); none may offer what the role
    may not do (a viewer: no post but to ``VIEWER_MAY_POST``), and a sample of the admin's forms the role's
    pages lack, forged with the role's session, is refused with 403 by the REST API. The routes forged."""
    ctx = await browser.context(viewport=WIDE)
    page = await ctx.new_page()
    await page.goto(origin + "/ui/signin")
    await sign_in(page, origin, token)
    tabs: asyncio.Queue = asyncio.Queue()  # the free tabs
    for tab in [page, *[await ctx.new_page() for _ in range(TABS - 1)]]:
        tabs.put_nowait(tab)

    async def own_forms(shape: str, url: str) -> list[dict]:
        tab = await tabs.get()
        try:
            await check(browser, tab, url, f"{role}{shape.removeprefix('/ui')}", problems)
            return await tab.eval_on_selector_all('form[method="post"]', POST_FORMS)
        finally:
            tabs.put_nowait(tab)

    pages = list(shaped.items())
    shown = await asyncio.gather(*(own_forms(shape, url) for shape, url in pages))
    hidden: dict[str, dict] = {}
    csrf = ""
    for (_, url), own in zip(pages, shown, strict=True):  # in the order of ``shaped``, as one tab would
        mine = {action_of(f["action"]) for f in own}
        csrf = csrf or next((f["fields"]["csrf"] for f in own if "csrf" in f["fields"]), "")
        if role == "viewer":
            problems.extend(f"{url}: a viewer is offered a post to {a}" for a in sorted(mine - VIEWER_MAY_POST))
        for f in forms[url]:
            if action_of(f["action"]) not in mine:
                hidden.setdefault(action_of(f["action"]), f)
    assert csrf, f"no form with a CSRF value on the pages of the {role}"
    sample = spread(sorted(hidden), FORGED)

    async def forge(route: str) -> None:
        f = hidden[route]
        r = await ctx.request.post(f["action"], form={**f["fields"], "csrf": csrf}, max_redirects=0)
        body = await r.text()
        if r.status != 403 or "This needs the" not in body:
            problems.append(f"{role}: a forged post to {route} (hidden from the page) answered {r.status}")

    await asyncio.gather(*(forge(route) for route in sample))
    await ctx.close()
    return sample


def test_axe_core_is_pinned_exactly_without_a_lock_file():
    from tests.support.axe import PACKAGE, pinned_version

    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned_version())  # no range: the same axe everywhere
    assert not (PACKAGE.parent / "package-lock.json").exists()  # a lock file would name the registry's URLs


def test_the_crawl_groups_pages_by_their_shape():
    app, dep = "0" * 32, "a" * 32
    assert kind("http://h/ui/") == "/ui"
    assert kind(f"http://h/ui/applications/{app}") == kind(f"http://h/ui/applications/{dep}")
    assert kind(f"http://h/ui/applications/{app}/logs") == "/ui/applications/{id}/logs"
    assert kind("http://h/ui/templates/ghost?x=1") == kind("http://h/ui/templates/wordpress?x=2")
    assert kind("http://h/ui/servers") != kind("http://h/ui/databases")
    assert kind("http://h/ui/servers/local/metrics?range=1h") == kind(f"http://h/ui/servers/{app}/metrics?range=6h")
    origin = "http://h:1"
    assert followed(origin, "http://h:1/ui/servers?page=2#top") == "http://h:1/ui/servers?page=2"
    assert followed(origin, "http://h:1/docs") == "http://h:1/docs"
    for other in ("http://elsewhere/ui/", "http://h:1/ui/static/app.css", "http://h:1/v1/projects"):
        assert followed(origin, other) is None


def test_form_routes_and_the_sample_of_hidden_ones():
    app = "0" * 32
    assert action_of(f"http://h:1/ui/applications/{app}/deploy") == "/ui/applications/{id}/deploy"
    assert action_of("http://h:1/ui/notifications#deliveries") == "/ui/notifications"
    assert action_of("http://h:1/ui/teams/switch") == "/ui/teams/switch"
    assert spread(list(range(10)), 3) == [0, 3, 6]
    assert spread(list(range(13)), 6) == [0, 2, 4, 6, 8, 10]
    assert spread(list(range(2)), 6) == [0, 1]
    assert spread([], 6) == []


def test_a_load_aborted_by_a_network_change_is_kept_apart_from_page_errors():
    b = Browser(object())
    b.console("http://x/ui/", "error", "Failed to load resource: net::ERR_NETWORK_CHANGED")
    b.console("http://x/ui/", "error", "Uncaught ReferenceError: x")
    b.console("http://x/ui/", "warning", "deprecated")
    assert b.errors == ["http://x/ui/: Uncaught ReferenceError: x"]
    assert b.network_changes == ["http://x/ui/: Failed to load resource: net::ERR_NETWORK_CHANGED"]
