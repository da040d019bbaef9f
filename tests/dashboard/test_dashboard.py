"""The dashboard in a real browser (Debian's chromium through Playwright) against one in-process api per
module, the scheduler played on the bus: sign in with a token, create a project and an application from an
image, deploy it and watch the live log and the timeline reach ``succeeded``, set a variable and a secret,
roll back to an earlier deployment, scale; a viewer sees no deploy button and the server refuses what the
page does not offer; a forged POST is refused; a secret set in the page is in no page's HTML afterwards;
sign-out ends the session; an invitation signs a new member in; no console errors on any page."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import bearer
from tests.support.browser import chromium, screenshot

pytestmark = [pytest.mark.slow]

SECRET = "s3cr3t-d4shboard-value"
STATIC = Path(__file__).resolve().parents[2] / "services/api/src/berth_api/dashboard/static"
LINES = [("build", "Step 1/2 : FROM nginx:1.27"), ("deploy", "[starting] starting replicas")]


async def sign_in(ctx, url: str, token: str):
    page = await ctx.new_page()
    await page.goto(url.removesuffix("ui/"))  # a browser opening / is sent to the dashboard
    assert page.url.endswith("/ui/signin")
    await page.get_by_label("API token", exact=True).fill(token)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await page.wait_for_load_state()
    assert page.url == url, await page.content()
    return page


async def session_rows(dashboard) -> list[dict]:
    from berth_api.adapters.ui_tables import ui_sessions

    async with dashboard.identities.sessionmaker() as s:
        return [dict(r) for r in (await s.execute(ui_sessions.select())).mappings()]


async def roll_out(dashboard, page, number: int) -> None:
    """Play the scheduler for the deployment the page shows, and see the page follow it to the end."""
    start = (await dashboard.scheduler.wait_for("cmd.deployment.start", count=number))[number - 1]
    dep = start.data["deployment_id"]
    assert page.url.endswith(f"/ui/deployments/{dep}")
    await page.locator("#log[data-src]").wait_for()
    for stream, line in LINES:
        await dashboard.scheduler.log(dep, line, stream=stream)
    await page.wait_for_function("document.getElementById('log').textContent.includes('[starting]')")
    await dashboard.scheduler.progressed(dep, start.data["application_id"], "starting", "starting replicas")
    await page.locator("#timeline li.current", has_text="starting").wait_for()  # the timeline moves
    await dashboard.scheduler.log(dep, "[succeeded] succeeded")
    await dashboard.scheduler.run_to_success(start)
    await page.wait_for_function("document.getElementById('log').dataset.ended === 'succeeded'", timeout=20000)
    await page.locator("#state", has_text="succeeded").wait_for(timeout=20000)
    assert "Step 1/2 : FROM nginx:1.27" in await page.locator("#log").text_content()


async def test_a_person_runs_an_application_from_the_dashboard(dashboard, tmp_path):
    visited: set[str] = set()
    async with chromium() as browser:
        ctx = await browser.context(viewport={"width": 1280, "height": 900})
        page = await sign_in(ctx, dashboard.url, dashboard.developer)
        cookie = next(c for c in await ctx.cookies() if c["name"] == "berth_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and not cookie["secure"]  # plain HTTP here
        assert dashboard.developer not in await page.content()
        rows = await session_rows(dashboard)
        assert len(rows) == 1 and dashboard.developer.encode() not in rows[0]["sealed_token"]  # sealed

        # A problem from the REST API is shown on the page, naming the field.
        await page.get_by_label("Project name", exact=True).fill("Not a slug!")
        await page.get_by_role("button", name="Create project").click()
        await page.get_by_role("alert").wait_for()
        assert "name" in (await page.get_by_role("alert").text_content() or "")
        await page.get_by_label("Project name", exact=True).fill("acme")
        await page.get_by_role("button", name="Create project").click()
        await page.get_by_role("heading", name="acme").wait_for()
        await page.get_by_text("New application in production").click()
        await page.get_by_label("Name", exact=True).fill("shop")
        await page.get_by_label("Image", exact=True).fill("nginx:1.27")
        await page.get_by_role("button", name="Create application").click()
        await page.get_by_role("heading", name=re.compile("^shop")).wait_for()
        app_url = page.url
        await screenshot(page, "dashboard-application")

        await page.get_by_role("button", name="Deploy", exact=True).click()
        await page.wait_for_url(re.compile(r"/ui/deployments/[0-9a-f]{32}$"))
        await roll_out(dashboard, page, 1)
        first = page.url
        await screenshot(page, "dashboard-deployment")

        # Variables: a plain one shown, a secret one write-only.
        await page.goto(app_url)
        for name, value, secret in (("API_KEY", SECRET, True), ("LOG_LEVEL", "debug", False)):
            await page.get_by_label("Name", exact=True).fill(name)
            await page.get_by_label("Value", exact=True).fill(value)
            await page.get_by_label("Secret (never shown again)").set_checked(secret)
            await page.get_by_role("button", name="Set variable").click()
            await page.get_by_role("cell", name=name).wait_for()
        assert await page.get_by_role("row", name="LOG_LEVEL debug").count() == 1
        assert await page.get_by_role("row", name="API_KEY secret (write-only)").count() == 1

        # A second deployment (by keyboard: the skip link comes first, the Deploy button takes Enter), then
        # roll back to the first.
        await page.goto(app_url)
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
        await page.get_by_role("button", name="Deploy", exact=True).focus()
        await page.keyboard.press("Enter")
        await page.wait_for_url(re.compile(r"/ui/deployments/[0-9a-f]{32}$"))
        await roll_out(dashboard, page, 2)
        await page.goto(app_url)
        await page.get_by_role("button", name="Roll back to #1").click()
        await page.wait_for_url(re.compile(r"/ui/deployments/[0-9a-f]{32}$"))
        assert page.url != first
        await roll_out(dashboard, page, 3)
        assert "(rollback)" in (await page.locator("h1").text_content() or "")

        # Scale the web service.
        await page.goto(app_url)
        await page.get_by_label("Replicas of web").fill("3")
        await page.get_by_role("button", name="Scale", exact=True).click()
        await page.wait_for_url(re.compile(r"\?scaled=1$"))
        assert await page.get_by_role("alert").count() == 0
        assert await page.get_by_label("Replicas of web").input_value() == "3"  # recorded on the application
        await screenshot(page, "dashboard-application-deployed")

        # The overview at phone width: no sideways scrolling.
        phone = await browser.context(viewport={"width": 390, "height": 844}, is_mobile=True)
        await phone.add_cookies([cookie])
        small = await phone.new_page()
        await small.goto(dashboard.url)
        await small.get_by_role("link", name="shop").wait_for()
        assert await small.evaluate("document.documentElement.scrollWidth") <= 390
        await screenshot(small, "dashboard-overview-phone")
        await phone.close()

        # The secret is in no page's HTML.
        async with httpx.AsyncClient(cookies={"berth_session": cookie["value"]}) as http:
            deployments = (
                await http.get(
                    f"{dashboard.api.url}/v1/applications/{app_url.rsplit('/', 1)[1]}/deployments",
                    headers=bearer(dashboard.developer),
                )
            ).json()
            visited = {dashboard.url, app_url, *(f"{dashboard.url}deployments/{d['id']}" for d in deployments)}
            for url in visited:
                r = await http.get(url)
                assert r.status_code == 200 and SECRET not in r.text, url

        # Sign out: the session's row is gone, the old cookie opens nothing.
        await page.goto(dashboard.url)
        await page.get_by_role("button", name="Sign out").click()
        await page.wait_for_url(re.compile("/ui/signin$"))
        async with httpx.AsyncClient(cookies={"berth_session": cookie["value"]}) as http:
            r = await http.get(dashboard.url)
            assert (r.status_code, r.headers["location"]) == (303, "/ui/signin")
        assert rows[0]["id"] not in {row["id"] for row in await session_rows(dashboard)}
        await ctx.close()
    assert browser.errors == []
    assert len(visited) >= 5


async def test_a_viewer_sees_no_deploy_and_forged_posts_are_refused(dashboard):
    async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(dashboard.admin)) as admin:
        projects = (await admin.get("/v1/projects")).json()
        project = projects[0] if projects else (await admin.post("/v1/projects", json={"name": "acme"})).json()
        env = project["environments"][0]["id"]
        body = {
            "name": "viewed",
            "source": {"kind": "image", "image": "nginx:1.27"},
            "services": [{"kind": "web", "name": "web", "port": 80}],
        }
        app = (await admin.post(f"/v1/environments/{env}/applications", json=body)).json()
        invitation = (await admin.post("/v1/invitations", json={"email": "new@example.com", "role": "viewer"})).json()

    # Behind HTTPS (as the proxy says), the cookies are Secure too.
    async with httpx.AsyncClient(base_url=dashboard.api.url, headers={"X-Forwarded-Proto": "https"}) as http:
        r = await http.get("/ui/signin")
        value = r.cookies["berth_csrf"]
        assert "secure" in r.headers["set-cookie"].lower()
        form = {"csrf": value, "token": dashboard.viewer}
        r = await http.post("/ui/signin", data=form, headers={"Cookie": f"berth_csrf={value}"})
        session = next(c for c in r.headers.get_list("set-cookie") if c.startswith("berth_session="))
        assert r.status_code == 303 and {"HttpOnly", "Secure", "SameSite=lax"} <= {
            a.strip() for a in session.split(";")
        }

    async with chromium() as browser:
        ctx = await browser.context()
        page = await sign_in(ctx, dashboard.url, dashboard.viewer)
        await page.goto(f"{dashboard.url}applications/{app['id']}")
        await page.get_by_role("heading", name=re.compile("^viewed")).wait_for()
        assert await page.get_by_role("button", name="Deploy", exact=True).count() == 0
        assert await page.locator("form").count() == 1  # sign out only
        await screenshot(page, "dashboard-application-viewer")

        # The server refuses what the page does not offer: with the session's own CSRF value (403 from the API),
        csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
        r = await ctx.request.post(f"{dashboard.url}applications/{app['id']}/deploy", form={"csrf": csrf})
        assert r.status == 403
        # and a forged POST (no CSRF value, or another one) is refused before anything is called.
        for form in ({}, {"csrf": "forged"}):
            r = await ctx.request.post(f"{dashboard.url}applications/{app['id']}/deploy", form=form)
            assert r.status == 403
        r = await ctx.request.post(f"{dashboard.url}signin", form={"token": dashboard.admin, "csrf": "x"})
        assert r.status == 403
        await ctx.close()

        # An invitation signs a new member in (the code is the only thing typed).
        ctx = await browser.context()
        page = await ctx.new_page()
        await page.goto(dashboard.url)
        await page.get_by_label("Invitation code", exact=True).fill(invitation["code"])
        await page.get_by_label("Your name (optional)").fill("New Person")
        await page.get_by_role("button", name="Accept and sign in").click()
        await page.wait_for_url(dashboard.url)
        assert "new@example.com" in await page.locator("header").text_content()
        await screenshot(page, "dashboard-overview")
        await ctx.close()
    assert browser.errors == []
    deployments = [c for c in dashboard.scheduler.commands if c.data.get("application_id") == app["id"]]
    assert deployments == []


def test_the_application_page_ships_little_js_and_css():
    """The app page's own and vendored JS and CSS, compressed, stay far under the issue's 150 KB."""
    files = [STATIC / "app.css", STATIC / "app.js", *sorted((STATIC / "vendor").glob("*.js"))]
    assert sum(len(gzip.compress(f.read_bytes())) for f in files) < 150_000


def test_the_api_does_not_load_the_dashboard_until_it_is_opened():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from berth_api.entrypoints.http import create_app\n"
        "from berth_api.settings import ApiSettings\n"
        "create_app(ApiSettings(nats_url='nats://x', database_url='postgresql://x/y'))\n"
        "print(sorted(m for m in sys.modules if m.startswith(('jinja2', 'berth_api.dashboard.'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['berth_api.dashboard.keys', 'berth_api.dashboard.mount']"
