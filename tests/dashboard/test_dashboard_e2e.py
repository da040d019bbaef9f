"""The dashboard in a real browser (Debian's chromium through Playwright) against a real platform (`berth up`,
one for the module): sign in with the admin token from the data directory, create a project and an
application from a local image, deploy it and watch the live log reach ``succeeded``, open the application
through its host on the platform's proxy (Traefik), change a variable and see the redeploy serve it, roll
back, scale to two replicas and see both on the page, and see a metrics chart with data. No page logs a
console error, and the secret set in the page is in no page's HTML afterwards. On a phone's width, a compose
application made with a profile and a placement (its services read from the pasted file), both changed on
its page and a bad profile name refused next to its field: each change in the REST API's view."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import bearer
from tests.e2e.conftest import Platform, make_platform
from tests.support.axe import audit
from tests.support.browser import chromium, screenshot
from tests.support.images import DOCKER, busybox_image, httpd_script

pytestmark = pytest.mark.slow

SECRET = "s3cr3t-e2e-d4shboard-value"
# The site's image serves $GREETING at / (so a changed variable shows in the body once deployed).
SERVE = httpd_script('mkdir -p /www && printf %s "$GREETING" > /www/index.html')
DEPLOY_MS = 180_000  # ms: the longest a deployment may take on a loaded machine
PAGE_MS = 30_000
RELOAD_S = 0.25  # a page waited for is loaded again this often (each load is one render of the api)


@pytest.fixture(scope="module")
def running(tmp_root: Path) -> Iterator[tuple[Platform, str]]:
    """The module's platform (`berth up`), and the site's image (``build_site_image``) built meanwhile."""
    gen = make_platform(tmp_root / "platform-dashboard")
    p = next(gen)
    p.env["BERTH_METRICS_INTERVAL_S"] = "2"  # a chart has data within seconds of the first deployment
    p.env["BERTH_DRAIN_GRACE_S"] = "1"  # a redeploy does not wait 30 s for the old replica's requests
    tags: list[str] = []
    try:
        with ThreadPoolExecutor(1) as pool:
            building = pool.submit(build_site_image)
            try:
                p.up()
            finally:
                tags.append(building.result())
        yield p, tags[0]
    finally:
        gen.close()  # the application's containers first: then nothing uses the image
        for tag in tags:
            subprocess.run([DOCKER, "rmi", tag], capture_output=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def platform(running: tuple[Platform, str]) -> Platform:
    return running[0]


@pytest.fixture(scope="module")
def site_image(running: tuple[Platform, str]) -> str:
    return running[1]


def build_site_image() -> str:
    """A local image (no registry) built on the busybox base: ``httpd`` serving ``$GREETING``; its tag."""
    tag = f"berth/dashboard-e2e-{uuid.uuid4().hex[:10]}:1"
    cmd = json.dumps(["sh", "-c", SERVE])
    dockerfile = f'FROM {busybox_image()}\nENV GREETING="hello v1"\nEXPOSE 8080\nCMD {cmd}\n'
    built = subprocess.run(
        [DOCKER, "build", "-q", "-t", tag, "-"], input=dockerfile, capture_output=True, text=True, timeout=120
    )
    assert built.returncode == 0, built.stderr
    return tag


async def deployed(page, number: int, kind: str = "") -> str:
    """On the deployment page the form led to: the live log and the timeline reach ``succeeded``."""
    await page.wait_for_url(re.compile(r"/ui/deployments/[0-9a-f]{32}$"))
    title = f"Deployment #{number} of "
    assert (await page.locator("h1").text_content() or "").startswith(title)
    if kind:
        assert f"({kind})" in (await page.locator("h1").text_content() or "")
    ended = "document.getElementById('log').dataset.ended"
    await page.wait_for_function(f"{ended} !== undefined", timeout=DEPLOY_MS)
    log = await page.locator("#log").text_content() or ""
    assert await page.evaluate(ended) == "succeeded", log
    assert "[routing]" in log and log.rstrip().endswith("-- succeeded"), log  # the rollout's steps, live
    await page.locator("#state", has_text="succeeded").wait_for(timeout=PAGE_MS)  # the timeline followed
    return page.url


async def running_replicas(page) -> list[str]:
    """The replicas (``service.replica``) the application page shows running."""
    rows = await page.locator("section[aria-labelledby=services] table").nth(1).locator("tbody tr").all()
    cells = [await row.locator("td").all_inner_texts() for row in rows]
    return [c[1].strip() for c in cells if len(c) == 5 and c[2].strip() == "running"]


async def reloaded_until(page, ready: Callable[[], Awaitable[bool]], timeout_s: float, shown: Callable) -> None:
    """Reload ``page`` (the server renders it once: a change shows on its next load) every ``RELOAD_S`` until
    it is ``ready``; failing after ``timeout_s`` with what it has ``shown`` last."""
    deadline = time.monotonic() + timeout_s
    while not await ready():
        assert time.monotonic() < deadline, await shown()
        await asyncio.sleep(RELOAD_S)
        await page.reload()


async def test_a_person_runs_an_application_on_a_real_platform(platform: Platform, site_image: str):
    ui = f"http://127.0.0.1:{platform.ports['api']}/ui/"
    proxy = httpx.AsyncClient(base_url=f"http://127.0.0.1:{platform.ports['proxy']}", timeout=10)
    htmls: list[tuple[str, str]] = []  # (url, html) of every page seen once the secret may be set

    async def seen(page) -> None:
        htmls.append((page.url, await page.content()))

    try:
        async with chromium() as browser:
            ctx = await browser.context(viewport={"width": 1280, "height": 900})
            page = await ctx.new_page()
            await page.goto(ui)
            assert page.url.endswith("/ui/signin")
            await page.get_by_label("API token", exact=True).fill(platform.paths.admin_token.read_text().strip())
            await page.get_by_role("button", name="Sign in", exact=True).click()
            await page.wait_for_url(ui)

            # A project, and an application from the local image.
            await page.get_by_label("Project name", exact=True).fill("dash")
            await page.get_by_role("button", name="Create project").click()
            await page.get_by_role("heading", name="dash", exact=True).wait_for()
            await page.get_by_text("New application in production").click()
            await page.get_by_label("Name", exact=True).fill("hello")
            await page.get_by_label("Image", exact=True).fill(site_image)
            await page.get_by_label("Port", exact=True).fill("8080")
            await page.get_by_role("button", name="Create application").click()
            await page.get_by_role("heading", name=re.compile("^hello")).wait_for()
            app_url = page.url
            app_id = app_url.rsplit("/", 1)[1]
            services = page.locator("section[aria-labelledby=services] table").first
            host = (await services.locator("tbody tr td").nth(3).text_content() or "").strip()
            assert re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", host), host  # the generated host, first

            # Deploy: the live log and the timeline reach succeeded; the host answers through Traefik.
            await page.get_by_role("button", name="Deploy", exact=True).click()
            first = await deployed(page, 1)
            await seen(page)
            await screenshot(page, "dashboard-e2e-deployment")
            answer = await proxy.get("/", headers={"Host": host})
            assert (answer.status_code, answer.text) == (200, "hello v1")

            # A changed variable (and a secret beside it), deployed: the body follows.
            await page.goto(app_url)
            for name, value, secret in (("API_TOKEN", SECRET, True), ("GREETING", "hello v2", False)):
                await page.get_by_label("Name", exact=True).fill(name)
                await page.get_by_label("Value", exact=True).fill(value)
                await page.get_by_label("Secret (never shown again)").set_checked(secret)
                await page.get_by_role("button", name="Set variable").click()
                await page.get_by_role("cell", name=name, exact=True).wait_for()
            assert await page.get_by_role("row", name="API_TOKEN secret (write-only)").count() == 1
            await seen(page)
            await page.get_by_role("button", name="Deploy", exact=True).click()
            await deployed(page, 2)
            await seen(page)
            assert (await proxy.get("/", headers={"Host": host})).text == "hello v2"

            # Roll back to #1: its image, with the application's current variables.
            await page.goto(app_url)
            await page.get_by_role("button", name="Roll back to #1").click()
            await deployed(page, 3, "rollback")
            await seen(page)
            answer = await proxy.get("/", headers={"Host": host})
            assert (answer.status_code, answer.text) == (200, "hello v2")
            assert page.url != first

            # Scale to two: both replicas on the page once they run.
            await page.goto(app_url)
            assert "live: #3" in (await page.locator("p.hint").first.text_content() or "")
            await page.get_by_label("Replicas of web").fill("2")
            await page.get_by_role("button", name="Scale", exact=True).click()
            await page.wait_for_url(re.compile(r"\?scaled=1$"))
            assert await page.get_by_role("alert").count() == 0

            async def both_run() -> bool:
                return len(await running_replicas(page)) == 2

            await reloaded_until(page, both_run, 120, lambda: running_replicas(page))
            running = await running_replicas(page)
            assert all(r.startswith("web.") for r in running) and len(set(running)) == 2, running
            await seen(page)
            await screenshot(page, "dashboard-e2e-application")

            # A chart with data: the metrics service sampled the replicas.
            await page.goto(f"{app_url}/metrics")
            cpu = page.locator("figure", has=page.get_by_role("heading", name="CPU by service"))

            async def charted() -> bool:
                return await cpu.locator('svg polyline[data-line="web"]').count() > 0

            await reloaded_until(page, charted, 60, cpu.inner_text)
            legend = await cpu.locator(".legend li").all_inner_texts()
            assert len(legend) == 1 and re.fullmatch(r"web: \d+\.\d %", legend[0].strip()), legend
            await seen(page)
            await screenshot(page, "dashboard-e2e-metrics")

            # The overview and the runtime logs, for the secret check.
            for url in (ui, f"{app_url}/logs"):
                await page.goto(url)
                await seen(page)
            await ctx.close()
        assert browser.errors == []
        assert len({url for url, _ in htmls}) >= 8, [url for url, _ in htmls]
        assert [url for url, html in htmls if SECRET in html] == []
        assert all(app_id in html for _, html in htmls)  # pages of the application, not error pages
    finally:
        await proxy.aclose()


STACK = """services:
  web:
    image: {image}
    expose: ['8080']
  worker:
    image: {image}
    command: [sleep, infinity]
  debug:
    image: {image}
    command: [sleep, infinity]
    profiles: [debug]
"""


async def test_a_person_sets_compose_profiles_and_placement_on_a_real_platform(platform: Platform, site_image: str):
    """A compose application made on its page with a profile and a placement (the services read from the
        pasted file, the platform's server ticked), then its placement and profiles changed on the application's
        page, a bad profile refused next to its field: each change is in the REST API's view of the application.
    axe-core finds nothing serious on the page with the rows nor on the one with the refusal."""
    origin = f"http://127.0.0.1:{platform.ports['api']}"
    token = platform.paths.admin_token.read_text().strip()
    async with chromium() as browser, httpx.AsyncClient(base_url=origin, headers=bearer(token), timeout=10) as api:
        ctx = await browser.context(viewport={"width": 390, "height": 844})  # a phone
        page = await ctx.new_page()
        await page.goto(origin + "/ui/signin")
        await page.get_by_label("API token", exact=True).fill(token)
        await page.get_by_role("button", name="Sign in", exact=True).click()
        await page.wait_for_url(origin + "/ui/")
        await page.get_by_label("Project name", exact=True).fill("composed")
        await page.get_by_role("button", name="Create project").click()
        project = page.locator("section", has=page.get_by_role("heading", name="composed", exact=True))
        await project.get_by_role("link", name="New compose application in production").click()

        # The file pasted, its services read into placement rows, a profile typed, the server ticked.
        await page.get_by_label("Name", exact=True).fill("stack")
        await page.get_by_label("Compose file (YAML)").fill(STACK.format(image=site_image))
        await page.get_by_label("Profile 1", exact=True).fill("debug")
        await page.get_by_role("button", name="Read the services").click()
        rows = page.get_by_role("group", name=re.compile("^Servers of "))
        await rows.first.wait_for()
        names = [(await r.locator("legend").inner_text()).strip() for r in await rows.all()]
        assert names == ["Servers of web", "Servers of worker", "Servers of debug (profiles debug)"], names
        assert await page.get_by_label("Profile 1", exact=True).input_value() == "debug"  # kept
        assert [str(v) for v in await audit(page)] == []
        for service in ("worker", "debug"):
            await page.get_by_role("group", name=f"Servers of {service}").get_by_label("local").check()
        await page.get_by_role("button", name="Create compose application").click()
        await page.wait_for_url(re.compile(r"/ui/applications/[0-9a-f]{32}$"))
        app_url = page.url
        app_id = app_url.rsplit("/", 1)[1]
        await screenshot(page, "dashboard-e2e-compose-phone")
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390

        shown = (await api.get(f"/v1/applications/{app_id}")).json()
        assert shown["compose"]["profiles"] == ["debug"]
        assert shown["compose"]["placement"] == [
            {"service": "worker", "servers": ["local"]},
            {"service": "debug", "servers": ["local"]},
        ]
        assert [(s["name"], s.get("servers")) for s in shown["services"]] == [
            ("web", None),
            ("worker", ["local"]),
            ("debug", ["local"]),
        ]

        # On the application's page: debug no longer placed, web placed; then its profile dropped.
        placement = page.locator("section[aria-labelledby=placement]")
        assert await placement.get_by_role("row", name="debug local").count() == 1
        await placement.get_by_role("group", name=re.compile("^Servers of debug")).get_by_label("local").uncheck()
        await placement.get_by_role("group", name="Servers of web").get_by_label("local").check()
        await placement.get_by_role("button", name="Set placement").click()
        await page.wait_for_url(app_url + "#placement")
        shown = (await api.get(f"/v1/applications/{app_id}")).json()
        assert shown["compose"]["placement"] == [
            {"service": "web", "servers": ["local"]},
            {"service": "worker", "servers": ["local"]},
        ]

        profiles = page.locator("section[aria-labelledby=profiles]")
        await profiles.get_by_label("Profile 1", exact=True).fill("")
        await profiles.get_by_label("Profile 2", exact=True).fill("-x")
        await profiles.get_by_role("button", name="Set profiles").click()
        bad = page.locator("section[aria-labelledby=profiles]").get_by_label("Profile 2", exact=True)
        await page.get_by_role("alert").wait_for()
        assert await bad.get_attribute("aria-invalid") == "true" and await bad.input_value() == "-x"
        said = await page.locator("#profile-1-error").inner_text()
        assert said.startswith("compose.profiles.0: "), said
        assert (await api.get(f"/v1/applications/{app_id}")).json()["compose"]["profiles"] == ["debug"]  # unchanged
        assert [str(v) for v in await audit(page)] == []

        await bad.fill("")
        await page.locator("section[aria-labelledby=profiles]").get_by_role("button", name="Set profiles").click()
        await page.wait_for_url(app_url + "#profiles")
        shown = (await api.get(f"/v1/applications/{app_id}")).json()
        assert "profiles" not in shown["compose"]
        assert [s["name"] for s in shown["services"]] == ["web", "worker"]
        assert await page.get_by_text("services/debug: not deployed: it has profiles [debug]").count() == 1
        await ctx.close()
    assert browser.errors == []
