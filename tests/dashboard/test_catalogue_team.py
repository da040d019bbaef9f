"""The templates, notifications and team pages in a real browser (Debian's chromium through Playwright)
against one in-process api per module, with the real notifier beside it and a local webhook receiver as the
channel's endpoint: browse, search, filter by tag and deploy a template; create a channel whose secrets are
write-only, subscribe it, send a test message and see it in the delivery log; invite, change roles, create
a token shown once, revoke, read the audit log. Viewers see none of the forms and the REST API refuses
their forged POSTs; no secret is in any page's HTML; no console errors."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from berth_common.db.provision import provision
from tests.api.conftest import bearer
from tests.dashboard.test_dashboard import sign_in
from tests.support.browser import chromium, screenshot
from tests.support.notifier import serving_notifier
from tests.support.receivers import WebhookReceiver

pytestmark = [pytest.mark.slow]

HOOK_PATH = "/hooks/d4shb0ardHookPath77"
HOOK_SECRET = "whsec-D4shboard-Signing-Secret-91"
NEW_PATH = "/hooks/r0tatedHookPath88"


@pytest.fixture(scope="module")
async def notifier(dashboard, module_nats_server, module_database) -> AsyncIterator[None]:
    """The real notifier, started after the api (which declared the streams), for the whole module."""
    urls = await provision(module_database, "test-secret")
    secret = "notifier-dashboard-test-secret-0123456789"
    async with serving_notifier(module_nats_server.url, urls["notifier"], secret):
        async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(dashboard.viewer)) as http:
            for _ in range(300):  # until it answers through the api
                if (await http.get("/v1/notification-channels")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
        yield


@pytest.fixture(scope="module")
async def browser():
    async with chromium() as b:
        yield b


@pytest.fixture(scope="module")
async def project(dashboard) -> dict:
    async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(dashboard.admin)) as admin:
        r = await admin.post("/v1/projects", json={"name": "catalogue"})
        assert r.status_code == 201, r.text
        return r.json()


PAGES = ("", "templates", "templates/adminer", "notifications", "team")


async def pages_hold_none_of(dashboard, session: str, urls: set[str], secrets: tuple[str, ...]) -> None:
    """Each page's HTML (these and every page of this file), fetched again with the session's cookie, holds
    none of the secrets."""
    async with httpx.AsyncClient(cookies={"berth_session": session}) as http:
        for url in urls | {dashboard.url + p for p in PAGES}:
            r = await http.get(url)
            assert r.status_code == 200, url
            for secret in secrets:
                assert secret not in r.text, (url, secret)


async def forged_as(ctx, url: str, paths: list[tuple[str, dict[str, str]]]) -> None:
    """POST each form the page left out, with the session's own CSRF value: the REST API answers 403."""
    page = await ctx.new_page()
    await page.goto(url)
    csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
    for path, form in paths:
        r = await ctx.request.post(url.rsplit("/ui/", 1)[0] + "/ui/" + path, form={"csrf": csrf, **form})
        assert r.status == 403, (path, await r.text())
    await page.close()


def session_of(cookies: list[dict]) -> str:
    return next(c["value"] for c in cookies if c["name"] == "berth_session")


async def test_templates_are_browsed_searched_and_deployed(dashboard, browser, project):
    ctx = await browser.context(viewport={"width": 1280, "height": 900})
    page = await sign_in(ctx, dashboard.url, dashboard.developer)
    await page.get_by_role("link", name="Templates", exact=True).click()
    await page.get_by_role("heading", name="Templates", exact=True).wait_for()
    count = await page.locator(".cards > article").count()
    assert count >= 30
    logo = page.locator(".cards img").first
    await logo.wait_for()
    await page.wait_for_function("[...document.querySelectorAll('.cards img')].every(i => i.complete)")
    assert await logo.evaluate("i => i.naturalWidth") > 0  # relayed with the session's token
    await screenshot(page, "dashboard-templates")

    await page.get_by_label("Search templates").fill("analytics")
    await page.get_by_role("button", name="Search", exact=True).click()
    await page.wait_for_url(re.compile(r"\?q=analytics$"))
    await page.get_by_role("navigation", name="Tags").get_by_role("link", name="privacy", exact=True).click()
    await page.wait_for_url(re.compile(r"tag=privacy"))
    names = await page.locator(".cards h2").all_text_contents()
    assert sorted(n.strip() for n in names) == ["Plausible Analytics", "Umami"]
    assert "2 templates matching “analytics” tagged privacy" in await page.locator("#template-count").text_content()

    await page.goto(f"{dashboard.url}templates?tag=database")
    await page.get_by_role("link", name="Adminer", exact=True).click()
    await page.get_by_role("heading", name="Adminer", exact=True).wait_for()
    assert await page.get_by_role("cell", name="default_server", exact=True).count() == 1
    await page.get_by_label("Environment").select_option(label="catalogue / production")
    await page.get_by_label("Application name").fill("Bad Name!")
    await page.get_by_role("button", name="Deploy template").click()
    alert = page.get_by_role("alert")
    await alert.wait_for()
    assert "name" in (await alert.text_content() or "")  # the REST API's 422, shown on the template page
    await page.get_by_label("Application name").fill("dbadmin")
    await page.get_by_label("Domain").fill("dbadmin.example.com")
    assert await page.get_by_label("default_server").input_value() == "db"
    await page.get_by_label("default_server").fill("postgres")
    await page.get_by_role("button", name="Deploy template").click()
    await page.get_by_role("heading", name=re.compile("^dbadmin")).wait_for()
    assert re.search(r"/ui/applications/[0-9a-f]{32}$", page.url)
    async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(dashboard.developer)) as http:
        app = (await http.get(f"/v1/applications/{page.url.rsplit('/', 1)[1]}")).json()
    assert app["environment_id"] == project["environments"][0]["id"]
    await screenshot(page, "dashboard-template-deployed")

    # The notifier is not running yet (it starts for the next test): the notifications page says so.
    await page.get_by_role("link", name="Notifications", exact=True).click()
    assert "cannot be shown now" in (await page.locator("#unavailable").text_content() or "")
    assert await page.get_by_role("heading", name="New channel").count() == 0
    await ctx.close()

    # A viewer browses the catalogue but is offered no deploy, and the REST API refuses the forged one.
    ctx = await browser.context()
    page = await sign_in(ctx, dashboard.url, dashboard.viewer)
    await page.goto(f"{dashboard.url}templates/adminer")
    await page.get_by_role("heading", name="Adminer", exact=True).wait_for()
    assert await page.get_by_role("button", name="Deploy template").count() == 0
    env = project["environments"][0]["id"]
    await forged_as(ctx, page.url, [("templates/adminer/deploy", {"environment_id": env, "name": "sneaky"})])
    await ctx.close()
    assert browser.errors == []


async def test_notification_channels_subscriptions_test_send_and_log(dashboard, browser, notifier, project):
    receiver = await WebhookReceiver(HOOK_SECRET).start()
    hook_url = receiver.url(HOOK_PATH)
    secrets = (HOOK_PATH.strip("/"), HOOK_SECRET, hook_url, NEW_PATH.strip("/"))
    try:
        ctx = await browser.context(viewport={"width": 1280, "height": 900})
        page = await sign_in(ctx, dashboard.url, dashboard.developer)
        await page.get_by_role("link", name="Notifications", exact=True).click()
        await page.get_by_role("heading", name="Notifications", exact=True).wait_for()
        await page.get_by_text("New webhook channel").click()
        await page.get_by_label("Name of the webhook channel").fill("ops-hook")
        await page.get_by_label("URL", exact=True).fill(hook_url)
        await page.get_by_label("Signing secret").fill(HOOK_SECRET)
        assert await page.get_by_label("Signing secret").get_attribute("type") == "password"
        await page.get_by_role("button", name="Create webhook channel").click()
        channel = page.locator("article.channel", has=page.get_by_role("heading", name=re.compile("^ops-hook")))
        await channel.wait_for()
        hint = await channel.locator(".hint").text_content() or ""
        assert "127.0.0.1" in hint and "secrets set: signing_secret, url (write-only)" in hint
        assert await page.get_by_role("button", name="Delete ops-hook").count() == 0  # deleting is for admins

        # A second channel with the same name: the REST API's conflict, shown on the page.
        await page.get_by_text("New slack channel").click()
        await page.get_by_label("Name of the slack channel").fill("ops-hook")
        await page.get_by_label("Webhook URL").first.fill("https://hooks.slack.com/services/T0/B0/xyz")
        await page.get_by_role("button", name="Create slack channel").click()
        await page.get_by_role("alert").wait_for()

        # Subscribe it to failed deployments of one project.
        await page.get_by_label("Events for ops-hook").fill("evt.deployment.failed")
        await page.get_by_label("Project of ops-hook's subscription").select_option(label="catalogue")
        await page.get_by_role("button", name="Subscribe").click()
        await channel.get_by_role("cell", name="evt.deployment.failed", exact=True).wait_for()
        assert await channel.get_by_role("cell", name="project catalogue").count() == 1

        # A test message: the receiver gets it, signed; the page shows it delivered and it is in the log.
        await page.get_by_role("button", name="Send test to ops-hook").click()
        await page.wait_for_url(re.compile(r"\?tested=[0-9a-f]+#deliveries$"))
        [got] = await receiver.wait_accepted(1, timeout=20)
        assert receiver.problems == [] and got.path == HOOK_PATH and got.json["test"] is True
        assert "delivered" in (await page.locator("#test-result").text_content() or "")
        row = page.get_by_role("row").filter(has_text="(test)")
        assert await row.count() == 1 and "delivered" in (await row.text_content() or "")
        await screenshot(page, "dashboard-notifications")

        # Where it sends changes (a new URL); the signing secret, left empty, is kept: the receiver verifies it.
        await page.get_by_text("Change where ops-hook sends").click()
        assert (
            await page.get_by_label("Signing secret of ops-hook").get_attribute("placeholder") == "set: empty keeps it"
        )
        await page.get_by_label("URL of ops-hook").fill(receiver.url(NEW_PATH))
        await page.get_by_role("button", name="Save where ops-hook sends").click()
        await page.wait_for_url(f"{dashboard.url}notifications")
        await page.get_by_role("button", name="Send test to ops-hook").click()
        await page.wait_for_url(re.compile(r"\?tested="))
        [_, again] = await receiver.wait_accepted(2, timeout=20)
        assert receiver.problems == [] and again.path == NEW_PATH

        # The delivery log narrowed by channel and status, as the REST API filters it.
        await page.get_by_label("Channel", exact=True).select_option(label="ops-hook")
        await page.get_by_label("Status", exact=True).select_option("delivered")
        await page.get_by_role("button", name="Show", exact=True).click()
        await page.wait_for_url(re.compile(r"status=delivered"))
        assert await page.get_by_role("row").filter(has_text="(test)").count() == 2
        await page.get_by_label("Status", exact=True).select_option("failed")
        await page.get_by_role("button", name="Show", exact=True).click()
        await page.get_by_role("cell", name="Nothing sent yet.").wait_for()

        # Disable and enable again; stop the subscription.
        await page.get_by_role("button", name="Disable ops-hook").click()
        await page.get_by_role("button", name="Enable ops-hook").click()
        await page.get_by_role("button", name="Disable ops-hook").wait_for()
        assert await page.get_by_role("button", name=re.compile("^Stop ")).count() == 0  # for admins
        await pages_hold_none_of(dashboard, session_of(await ctx.cookies()), {page.url.split("?")[0]}, secrets)
        await ctx.close()

        # A viewer reads channels and the log but has no form; the REST API refuses each forged one.
        ctx = await browser.context()
        page = await sign_in(ctx, dashboard.url, dashboard.viewer)
        await page.goto(f"{dashboard.url}notifications")
        await page.get_by_role("heading", name=re.compile("^ops-hook")).wait_for()
        assert await page.locator("form[method=post]").count() == 1  # sign out only
        channel_id = (await page.locator("article.channel h3").first.get_attribute("id") or "").removeprefix("c-")
        await forged_as(
            ctx,
            page.url,
            [
                (f"notification-channels/{channel_id}/test", {}),
                (f"notification-channels/{channel_id}/delete", {}),
                (f"notification-channels/{channel_id}/enabled", {"enabled": "false"}),
                (f"notification-channels/{channel_id}/subscriptions", {"event_types": "evt.alert.>"}),
                ("notification-channels", {"kind": "webhook", "name": "sneaky", "webhook.url": hook_url}),
            ],
        )
        assert len(receiver.requests) == 2
        await ctx.close()

        # An admin stops the subscription and deletes the channel.
        ctx = await browser.context()
        page = await sign_in(ctx, dashboard.url, dashboard.admin)
        page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
        await page.goto(f"{dashboard.url}notifications")
        await page.get_by_role("button", name=re.compile("^Stop evt.deployment.failed")).click()
        await page.get_by_text("No subscriptions").wait_for()
        await page.get_by_role("button", name="Delete ops-hook").click()
        await page.get_by_text("No channels yet.").wait_for()
        await ctx.close()
    finally:
        await receiver.stop()
    assert browser.errors == []


async def test_team_members_invitations_tokens_and_audit(dashboard, browser):
    ctx = await browser.context(viewport={"width": 1280, "height": 900})
    page = await sign_in(ctx, dashboard.url, dashboard.admin)
    await page.get_by_role("link", name="Team", exact=True).click()
    await page.get_by_role("heading", name="Members").wait_for()
    members = page.locator("section", has=page.get_by_role("heading", name="Members")).get_by_role("row")
    assert await members.filter(has_text="view@example.com").count() == 1

    # An invitation: its code shown once, then only the pending invitation (never the code).
    await page.get_by_label("E-mail to invite").fill("joiner@example.com")
    await page.get_by_label("Role", exact=True).select_option("viewer")
    await page.get_by_role("button", name="Invite", exact=True).click()
    code = await page.get_by_label("Invitation code").input_value()
    assert code and "joiner@example.com invited as viewer" in await page.locator("#new-invitation").text_content()
    await page.goto(f"{dashboard.url}team")
    assert await page.get_by_label("Invitation code").count() == 0
    await page.get_by_role("button", name="Revoke the invitation of joiner@example.com").click()
    await page.get_by_role("cell", name="No pending invitations.").wait_for()

    # A new member (by an invitation accepted over REST) gets another role, then is removed.
    async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(dashboard.admin)) as admin:
        invitation = (await admin.post("/v1/invitations", json={"email": "ada@example.com", "role": "viewer"})).json()
        r = await admin.post("/v1/invitations/accept", json={"code": invitation["code"], "name": "Ada"})
        assert r.status_code == 201, r.text
    await page.reload()
    await page.get_by_label("Role of ada@example.com", exact=True).select_option("developer")
    await page.get_by_role("button", name="Change the role of ada@example.com").click()
    await page.wait_for_url(f"{dashboard.url}team")
    assert await page.get_by_label("Role of ada@example.com", exact=True).input_value() == "developer"
    page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
    await page.get_by_role("button", name="Remove ada@example.com").click()
    await page.wait_for_url(f"{dashboard.url}team")
    assert await members.filter(has_text="ada@example.com").count() == 0

    # A token: shown once, it works, then it is revoked from the page.
    await page.get_by_label("Token name").fill("ci-deploys")
    await page.get_by_role("button", name="Create token").click()
    token = await page.get_by_label("New token").input_value()
    assert token.startswith("berth_")
    async with httpx.AsyncClient(base_url=dashboard.api.url) as http:
        assert (await http.get("/v1/me", headers=bearer(token))).status_code == 200
        await page.goto(f"{dashboard.url}team")
        assert await page.get_by_label("New token").count() == 0
        await page.get_by_role("button", name="Revoke token ci-deploys").click()
        await page.wait_for_url(f"{dashboard.url}team")
        assert await page.get_by_role("cell", name="ci-deploys").count() == 0
        assert (await http.get("/v1/me", headers=bearer(token))).status_code == 401

    # The audit log names what was done, by whom.
    audit = page.locator("section", has=page.get_by_role("heading", name="Audit log"))
    for action in ("POST /v1/invitations", "PATCH /v1/members/{user_id}", "DELETE /v1/tokens/{token_id}"):
        assert await audit.get_by_role("cell", name=action, exact=True).count() >= 1, action
    await screenshot(page, "dashboard-team")
    await page.goto(f"{dashboard.url}team?before=1")  # the audit log paged back past its first entry
    await page.get_by_role("cell", name="Nothing recorded yet.").wait_for()

    # At phone width the pages wrap (no sideways scrolling).
    phone = await browser.context(viewport={"width": 390, "height": 844}, is_mobile=True)
    await phone.add_cookies([c for c in await ctx.cookies() if c["name"] == "berth_session"])
    small = await phone.new_page()
    for path in PAGES[1:]:
        await small.goto(dashboard.url + path)
        assert await small.evaluate("document.documentElement.scrollWidth") <= 390, path
    await screenshot(small, "dashboard-team-phone")
    await phone.close()
    await pages_hold_none_of(
        dashboard, session_of(await ctx.cookies()), {f"{dashboard.url}team"}, (code, token, invitation["code"])
    )
    await ctx.close()

    # A developer and a viewer see their role only; the REST API refuses their forged admin forms.
    for who in (dashboard.developer, dashboard.viewer):
        ctx = await browser.context()
        page = await sign_in(ctx, dashboard.url, who)
        await page.goto(f"{dashboard.url}team")
        await page.get_by_text("are for the team's admins").wait_for()
        # sign out, and the forms of their own teams (any member may create, switch, leave)
        assert await page.locator("form[method=post]:not([action^='/ui/teams'])").count() == 1
        assert await page.get_by_role("button", name="Create team and switch to it").count() == 1
        await forged_as(
            ctx,
            page.url,
            [
                ("invitations", {"email": "mallory@example.com", "role": "owner"}),
                ("tokens", {"name": "stolen"}),
                (f"members/{'0' * 32}/role", {"role": "owner"}),
            ],
        )
        await screenshot(page, "dashboard-team-member")
        await ctx.close()
    assert browser.errors == []
