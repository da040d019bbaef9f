"""Every page of the dashboard, found by following links from the overview as an admin (same origin, GET
only, bounded), plus the API reference (``/docs``), the event catalogue (``/events``) and the sign-in page,
checked in a real browser: axe-core finds no serious or critical violation, no console error is logged, the
page does not scroll sideways at 390 px, and no secret is in its HTML; a screenshot of each (wide and
phone) goes to ``tests/artifacts/``. Pages are found by their links rather than listed, so a page added to
the dashboard is checked as soon as something links to it."""

from __future__ import annotations

import re
from collections import Counter, deque
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from tests.api.conftest import bearer
from tests.support.axe import audit, install
from tests.support.browser import ARTIFACTS, Browser, chromium

pytestmark = [pytest.mark.slow]

SECRET = "s3cr3t-a11y-value"
WIDE, PHONE = {"width": 1280, "height": 900}, {"width": 390, "height": 844}
SHOT_HEIGHT = 4000  # a screenshot shows the whole page up to this height (the event catalogue is far longer)
MAX_PAGES = 80  # the crawl's bound
PER_KIND = 3  # pages of one shape (the same route, other ids) checked at most
PER_ITEM_KIND = 8  # ... where the shape ends in a name (sub-pages such as /ui/team/tokens fall in one)
SEEDS = ("/ui/", "/docs", "/events")
ID = re.compile(r"^(?:[0-9a-f]{32}|[0-9a-f-]{36}|\d+)$")


# The elements that reach past the viewport: the outermost that no ancestor clips or scrolls, and positioned
# ones (an ancestor's overflow does not hold an element it is not the containing block of).
WIDEST = """(w) => [...document.querySelectorAll("body *")].filter((e) => {
    if (e.getBoundingClientRect().right <= w + 1) return false;
    if (["absolute", "fixed"].includes(getComputedStyle(e).position)) return true;  // escapes its ancestors
    for (let a = e.parentElement; a && a !== document.body; a = a.parentElement)
        if (getComputedStyle(a).overflowX !== "visible") return false;
    const p = e.parentElement;
    return p === document.body || p.getBoundingClientRect().right <= w + 1;
}).slice(0, 5).map((e) => e.outerHTML.slice(0, 120))"""


def kind(url: str) -> str:
    """A page's shape: its path with ids (and the items of a literal collection, ``/ui/templates/<slug>``) made
    placeholders, and the names of its query parameters."""
    parts = urlsplit(url)
    segments = parts.path.rstrip("/").split("/")
    out: list[str] = []
    for i, seg in enumerate(segments):
        if ID.match(seg):
            out.append("{id}")
        elif i >= 3 and i == len(segments) - 1 and out[-1] != "{id}":
            out.append("{item}")
        else:
            out.append(seg)
    keys = sorted({k for k, _ in parse_qsl(parts.query, keep_blank_values=True)})
    return "/".join(out) + ("?" + "&".join(keys) if keys else "")


def followed(origin: str, href: str) -> str | None:
    """The address to visit for a link, or None: same origin, the dashboard (not its static files) or the
    documentation pages, without the fragment."""
    parts = urlsplit(href)
    if f"{parts.scheme}://{parts.netloc}" != origin:
        return None
    path = parts.path
    if not (path.startswith("/ui/") or path in ("/ui", "/docs", "/events")) or path.startswith("/ui/static/"):
        return None
    return origin + path + (f"?{parts.query}" if parts.query else "")


def artifact(name: str) -> str:
    return "a11y-" + (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "root")


async def shot(page, name: str) -> None:
    """A screenshot of the page under ``tests/artifacts/``: the whole of it, or its top for a long one."""
    ARTIFACTS.mkdir(exist_ok=True)
    width, height = await page.evaluate("[innerWidth, document.documentElement.scrollHeight]")
    clip = {"x": 0, "y": 0, "width": width, "height": min(height, SHOT_HEIGHT)}
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True, clip=clip)


@pytest.fixture(scope="module")
async def browser():
    async with chromium() as b:
        yield b


@pytest.fixture(scope="module")
async def seeded(dashboard):
    """A project with an application that has a succeeded deployment (with its log, replicas and variables,
    one of them secret) and a failed one, so the application and deployment pages have something to show;
    and a compose application with a path route."""
    sched = dashboard.scheduler
    async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(dashboard.admin)) as api:
        project = (await api.post("/v1/projects", json={"name": "access"})).json()
        env = project["environments"][0]["id"]
        body = {
            "name": "reader",
            "source": {"kind": "image", "image": "nginx:1.27"},
            "services": [{"kind": "web", "name": "web", "port": 80, "domains": ["reader.example.com"]}],
            "env": [
                {"name": "API_KEY", "value": SECRET, "secret": True},
                {"name": "LOG_LEVEL", "value": "info"},
            ],
        }
        r = await api.post(f"/v1/environments/{env}/applications", json=body)
        assert r.status_code == 201, r.text
        app = r.json()
        for number, ok in ((1, True), (2, False)):
            r = await api.post(f"/v1/applications/{app['id']}/deployments", json={})
            assert r.is_success, r.text
            start = (await sched.wait_for("cmd.deployment.start", count=number))[number - 1]
            dep = start.data["deployment_id"]
            await sched.log(dep, "Step 1/2 : FROM nginx:1.27", stream="build")
            await sched.log(dep, "[starting] starting replicas")
            if ok:
                await sched.run_to_success(start)
                sched.set_replicas(app["id"], dep, [("running", "ready"), ("running", "unready")])
            else:
                await sched.failed(dep, app["id"], start.data["team_id"], "replica web.1 exited with code 1")
            for _ in range(100):
                state = (await api.get(f"/v1/deployments/{dep}")).json()["state"]
                if state in ("succeeded", "failed"):
                    break
                await _sleep()
        compose = {
            "name": "routed",
            "compose": {"inline": "services:\n  front:\n    image: nginx:1.27\n  api:\n    image: nginx:1.27\n"},
            "hosts": [{"service": "front", "port": 80}, {"service": "api", "port": 80, "path": "/api"}],
        }
        r = await api.post(f"/v1/environments/{env}/applications", json=compose)  # its page has the routes form
        assert r.status_code == 201, r.text
    return app


async def _sleep() -> None:
    import asyncio

    await asyncio.sleep(0.1)


async def check(browser, page, url: str, name: str, problems: list[str]) -> list[str]:
    """Open ``url``, check it, save its screenshots; the links on it."""
    seen_errors = len(browser.errors)
    try:
        response = await page.goto(url, wait_until="commit")
    except Exception as e:  # a link to a download: not a page
        if "Download is starting" in str(e):
            return []
        raise
    if response is None or response.status != 200:
        problems.append(f"{url}: answered {response.status if response else 'nothing'}")
        return []
    if not (await response.header_value("content-type") or "").startswith("text/html"):
        await page.goto("about:blank")  # a link to a stream or a file: not a page
        return []
    await page.wait_for_load_state("load")
    if url.endswith("/docs"):
        await page.locator(".swagger-ui .info").wait_for()
    await page.evaluate("document.querySelectorAll('details').forEach((d) => { d.open = true; })")  # forms too
    for v in await audit(page):
        problems.append(f"{url}: axe {v}")
    html = await page.content()
    if SECRET in html:
        problems.append(f"{url}: the secret is in the HTML")
    await shot(page, artifact(name))
    await page.set_viewport_size(PHONE)
    wide = await page.evaluate("document.documentElement.scrollWidth")
    if wide > PHONE["width"]:
        culprits = await page.evaluate(WIDEST, PHONE["width"])
        problems.append(f"{url}: scrolls sideways at {PHONE['width']} px (width {wide}; {culprits})")
    await shot(page, artifact(name) + "-phone")
    await page.set_viewport_size(WIDE)
    problems.extend(f"console: {e}" for e in browser.errors[seen_errors:])
    return await page.eval_on_selector_all("a[href]:not([download])", "els => els.map(e => e.href)")


async def test_every_page_is_accessible_has_no_console_error_and_fits_a_phone(dashboard, seeded, browser):
    origin = dashboard.api.url.rstrip("/")
    problems: list[str] = []
    ctx = await browser.context(viewport=WIDE)
    await install(ctx)
    page = await ctx.new_page()

    # Signed out: the sign-in page, as it first shows and with the problem a wrong token gives.
    await check(browser, page, origin + "/ui/signin", "signin", problems)
    await page.get_by_label("API token", exact=True).fill("not-a-token")
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await page.get_by_role("alert").wait_for()
    for v in await audit(page):
        problems.append(f"sign-in with a wrong token: axe {v}")

    # Signed in as an admin (who sees every form): every page the links reach.
    await page.get_by_label("API token", exact=True).fill(dashboard.admin)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await page.wait_for_url(origin + "/ui/")
    queue = deque(origin + s for s in SEEDS)
    seen = set(queue)
    kinds: Counter[str] = Counter()
    visited: list[str] = []
    while queue and len(visited) < MAX_PAGES:
        url = queue.popleft()
        shape = kind(url)
        if kinds[shape] >= (PER_ITEM_KIND if shape.split("?")[0].endswith("{item}") else PER_KIND):
            continue
        kinds[shape] += 1
        visited.append(url)
        name = shape.removeprefix("/ui") + (f"-{kinds[shape]}" if kinds[shape] > 1 else "")
        for href in await check(browser, page, url, name, problems):
            nxt = followed(origin, href)
            if nxt and nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    await ctx.close()

    assert not problems, "\n".join(problems)
    assert browser.errors == []
    shapes = set(kinds)
    assert {"/ui", "/ui/applications/{id}", "/ui/deployments/{id}", "/docs", "/events"} <= shapes, shapes
    assert seeded["id"] in " ".join(visited)


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
    origin = "http://h:1"
    assert followed(origin, "http://h:1/ui/servers?page=2#top") == "http://h:1/ui/servers?page=2"
    assert followed(origin, "http://h:1/docs") == "http://h:1/docs"
    for other in ("http://elsewhere/ui/", "http://h:1/ui/static/app.css", "http://h:1/v1/projects"):
        assert followed(origin, other) is None


def test_a_load_aborted_by_a_network_change_is_kept_apart_from_page_errors():
    b = Browser(object())
    b.console("http://x/ui/", "error", "Failed to load resource: net::ERR_NETWORK_CHANGED")
    b.console("http://x/ui/", "error", "Uncaught ReferenceError: x")
    b.console("http://x/ui/", "warning", "deprecated")
    assert b.errors == ["http://x/ui/: Uncaught ReferenceError: x"]
    assert b.network_changes == ["http://x/ui/: Failed to load resource: net::ERR_NETWORK_CHANGED"]
