"""The accessibility test's crawl (``test_accessibility``): every page the links reach from ``SEEDS``, each
opened and checked in a tab of one signed-in browser context (axe-core, the console, a phone's width, no
secret in the HTML, screenshots), ``TABS`` pages at a time in the order a breadth-first crawl of one page at a
time visits them; and the page shapes that group them."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from playwright.async_api import TimeoutError as PlaywrightTimeout

from tests.dashboard import a11y_seed
from tests.support.axe import audit
from tests.support.browser import ARTIFACTS, screenshots_wanted

SECRETS = a11y_seed.SECRETS
WIDE, PHONE = {"width": 1280, "height": 900}, {"width": 390, "height": 844}
SHOT_HEIGHT = 4000  # a screenshot shows the whole page up to this height (the event catalogue is far longer)
MAX_PAGES = 80  # the crawl's bound
TABS = 3  # pages checked at once, each in its own tab of the one signed-in browser context
PER_KIND = 3  # pages of one shape (the same route, other ids) checked at most
PER_ITEM_KIND = 8  # ... where the shape ends in a name (sub-pages such as /ui/team/tokens fall in one)
SEEDS = ("/ui/", "/docs", "/events")
# Swagger UI works through the whole OpenAPI document (~0.5 MB) before it shows anything: 2-3 s alone on an
# idle machine, ten times that beside the other tabs and workers of a loaded two-core run.
REFERENCE_SHOWN_MS = 120_000
ID = re.compile(r"^(?:[0-9a-f]{32}|[0-9a-f-]{36}|\d+|local)$")  # "local": the built-in server's id

# What each seeded page shows once the crawl reaches it (its shape: a selector that finds it on the page).
SHOWS = {
    "/ui/servers/{id}": "#offered-key",  # the validation's checks and a changed host key
    "/ui/databases/{id}": "#db-state.s-running",
    "/ui/databases/{id}/backups": 'form[action$="/restore"]',  # a verified backup's restore forms
    "/ui/restores/{id}": "#restore-state",
    "/ui/backups": 'a[href$="/backups"]',
    "/ui/notifications": "article.channel table tbody code",  # a channel with a subscription
    "/ui/alerts": "tr.alert-firing",
    "/ui/applications/{id}/metrics": ".charts figure svg",
    "/ui/servers/{id}/metrics": ".charts figure svg",
    "/ui/applications/{id}/metrics?by&range": 'nav[aria-label="Time range"] a[aria-current]',
}
POST_FORMS = """(els) => els.map((f) => ({action: f.action, fields: Object.fromEntries(new FormData(f))}))"""


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
    """A screenshot of the page under ``tests/artifacts/``: the whole of it, or its top for a long one (none
    when screenshots are not wanted: ``tests.support.browser.screenshots_wanted``)."""
    if not screenshots_wanted():
        return
    ARTIFACTS.mkdir(exist_ok=True)
    width, height = await page.evaluate("[innerWidth, document.documentElement.scrollHeight]")
    clip = {"x": 0, "y": 0, "width": width, "height": min(height, SHOT_HEIGHT)}
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True, clip=clip)


async def reference_shown(browser, page, seen_errors: int) -> None:
    """Wait for Swagger UI to show the document's title; if it does not, fail with what the page showed
    instead (Swagger UI's own error, when the document did not load) and what the console said meanwhile."""
    try:
        await page.locator(".swagger-ui .info").wait_for(timeout=REFERENCE_SHOWN_MS)
    except PlaywrightTimeout:
        shown = await page.evaluate("(document.querySelector('main') || document.body).innerText")
        console = browser.errors[seen_errors:]
        raise AssertionError(f"the API reference showed no title: {shown[:500]!r}; console: {console}") from None


async def check(browser, page, url: str, name: str, problems: list[str]) -> list[str]:
    """Open ``url``, check it, save its screenshots; the links on it. Other tabs may be checking other pages
    meanwhile: the console errors this page logged are its problems (every page's are asserted at the end)."""
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
        await reference_shown(browser, page, seen_errors)
    await page.evaluate("document.querySelectorAll('details').forEach((d) => { d.open = true; })")  # forms too
    for v in await audit(page):
        problems.append(f"{url}: axe {v}")
    html = await page.content()
    for secret in SECRETS:
        if secret in html:
            problems.append(f"{url}: a secret ({secret[:6]}...) is in the HTML")
    await shot(page, artifact(name))
    await page.set_viewport_size(PHONE)
    wide = await page.evaluate("document.documentElement.scrollWidth")
    if wide > PHONE["width"]:
        culprits = await page.evaluate(WIDEST, PHONE["width"])
        problems.append(f"{url}: scrolls sideways at {PHONE['width']} px (width {wide}; {culprits})")
    await shot(page, artifact(name) + "-phone")
    await page.set_viewport_size(WIDE)
    mine = (f"{url}: ", f"{page.url}: ")
    problems.extend(f"console: {e}" for e in browser.errors[seen_errors:] if e.startswith(mine))
    return await page.eval_on_selector_all("a[href]:not([download])", "els => els.map(e => e.href)")


@dataclass
class Visit:
    """What one page of the crawl gave: its links, its post forms, whether it showed what was seeded (for a
    shape of ``SHOWS``) and the seconds its check took."""

    links: list[str]
    forms: list[dict]
    shows: bool
    seconds: float


async def visit(browser, page, url: str, name: str, problems: list[str]) -> Visit:
    began = time.monotonic()
    links = await check(browser, page, url, name, problems)
    on_it = page.url == url  # not a download or a stream, which leave another page open
    forms = await page.eval_on_selector_all('form[method="post"]', POST_FORMS) if on_it else []
    shape = kind(url)
    shows = shape in SHOWS and on_it and await page.locator(SHOWS[shape]).count() > 0
    return Visit(links, forms, shows, round(time.monotonic() - began, 2))


@dataclass
class Crawl:
    """The admin's crawl: the pages visited in order, how many of each shape, each one's post forms, the
    seconds each took and the shapes of ``SHOWS`` that showed what was seeded."""

    visited: list[str] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    forms: dict[str, list[dict]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    shown: set[str] = field(default_factory=set)


async def crawl(browser, ctx, origin: str, problems: list[str]) -> Crawl:
    """Every page the links reach from ``SEEDS`` (breadth first, bounded), ``TABS`` at a time: a free tab takes
    the next page of the queue, and the links of the pages checked join the queue in the order the pages were
    taken (a page's once every page taken before it is done), so the pages visited are those a crawl of one
    page at a time visits, in its order; a slow page (the API reference) holds up its tab only."""
    tabs = [await ctx.new_page() for _ in range(TABS)]
    queue = deque(origin + s for s in SEEDS)
    seen = set(queue)
    done = Crawl()
    taken: deque[tuple[str, object, asyncio.Task[Visit]]] = deque()  # (url, tab, its check), in visit order
    while True:
        busy = {id(tab) for _, tab, task in taken if not task.done()}
        free = [tab for tab in tabs if id(tab) not in busy]
        while free and queue and len(done.visited) < MAX_PAGES:
            url = queue.popleft()
            shape = kind(url)
            if done.kinds[shape] >= (PER_ITEM_KIND if shape.split("?")[0].endswith("{item}") else PER_KIND):
                continue
            done.kinds[shape] += 1
            done.visited.append(url)
            name = shape.removeprefix("/ui") + (f"-{done.kinds[shape]}" if done.kinds[shape] > 1 else "")
            tab = free.pop()
            taken.append((url, tab, asyncio.create_task(visit(browser, tab, url, name, problems))))
        if not taken:
            return done
        await asyncio.wait([task for _, _, task in taken], return_when=asyncio.FIRST_COMPLETED)
        while taken and taken[0][2].done():
            url, _, task = taken.popleft()
            page = task.result()
            done.seconds[url.removeprefix(origin)] = page.seconds
            done.forms[url] = page.forms
            if page.shows:
                done.shown.add(kind(url))
            for href in page.links:
                nxt = followed(origin, href)
                if nxt and nxt not in seen:
                    seen.add(nxt)
                    queue.append(nxt)
