"""The servers, databases and backups pages in a real browser (Debian's chromium through Playwright) against one
in-process api per module; the scheduler's answers (server validation, database states, backups) are
published on the bus by the test, so no SSH server or database container runs: an admin adds a server with a
generated key (the public key to install shown) and one with a pasted key (never shown again), sees the
validation's checks arrive while the page is open, validates again, accepts a changed host key, is shown the
409's reason when removing a server that runs an application, drains it; a database is created from the
engines list, shows its connection without the password, is linked to an application and its credentials
rotated; a destination's secret key is write-only; a backup runs now and becomes the last verified one, a
schedule is set, a backup restored into a new database and the restore reached from the database's list of
them; a viewer sees none of the forms and the REST API refuses the POSTs forged in the viewer's session."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from berth_common import ssh_keys
from berth_common.catalogue import BackupObject, BackupSucceeded, ServerValidated, StartBackup
from tests.api.conftest import bearer
from tests.api.test_databases_api import DatabaseDouble
from tests.dashboard.test_dashboard import sign_in
from tests.support.browser import chromium, screenshot

pytestmark = [pytest.mark.slow]

S3_SECRET = "s3-s3cr3t-never-on-a-page"
CHECKS = ("reachable", "authentication", "host_key", "docker", "docker_socket", "docker_version", "disk")


@pytest.fixture(scope="module")
async def doubles(dashboard, module_nats_server):
    """The scheduler's database, backup and schedule sides: their commands taken off the work queue."""
    started = [
        await DatabaseDouble(module_nats_server.url, f"cmd.{kind}.>", f"double--ui-{kind}").start()
        for kind in ("database", "backup", "schedule")
    ]
    yield dict(zip(("database", "backup", "schedule"), started, strict=True))
    for double in started:
        await double.stop()


async def team_of(dashboard) -> str:
    async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(dashboard.admin)) as http:
        return (await http.get("/v1/me")).json()["team"]["id"]


async def validated(dashboard, server_id: str, attempt: int, state: str, **found) -> None:
    """Answer a validation as the scheduler would (every check passed unless ``failed`` names one)."""
    failed = found.pop("failed", None)
    checks = [{"name": c, "ok": c != failed, "detail": "not the one pinned" if c == failed else "fine"} for c in CHECKS]
    event = ServerValidated(
        server_id=server_id,
        team_id=await team_of(dashboard),
        attempt=attempt,
        state=state,
        reason="" if failed is None else "the host key is not the one pinned",
        checks=checks,
        docker_version="27.3.1",
        architecture="x86_64",
        free_bytes=40 * 2**30,
        **found,
    )
    await dashboard.scheduler.bus.publish(event)


async def an_application(dashboard, name: str, servers: list[str] | None = None) -> dict:
    async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(dashboard.admin)) as admin:
        projects = (await admin.get("/v1/projects")).json()
        project = projects[0] if projects else (await admin.post("/v1/projects", json={"name": "infra"})).json()
        service = {"kind": "web", "name": "web", "port": 80, **({"servers": servers} if servers else {})}
        body = {"name": name, "source": {"kind": "image", "image": "nginx:1.27"}, "services": [service]}
        r = await admin.post(f"/v1/environments/{project['environments'][0]['id']}/applications", json=body)
        assert r.status_code == 201, r.text
        return r.json()


async def pages_without(dashboard, cookie: str, urls: set[str], *secrets: str) -> None:
    """Every page answers 200 and none holds a secret."""
    async with httpx.AsyncClient(cookies={"berth_session": cookie}) as http:
        for url in urls:
            r = await http.get(url)
            assert r.status_code == 200, (url, r.text[:300])
            for secret in secrets:
                assert secret not in r.text, url


async def test_an_admin_adds_validates_and_drains_servers(dashboard):
    host_key, new_host_key = ssh_keys.generate_key_pair()[1], ssh_keys.generate_key_pair()[1]
    pasted = ssh_keys.generate_key_pair()[0]
    async with chromium() as browser:
        ctx = await browser.context(viewport={"width": 1280, "height": 900})
        page = await sign_in(ctx, dashboard.url, dashboard.admin)
        await page.get_by_role("navigation").get_by_role("link", name="Servers", exact=True).click()
        await page.get_by_role("heading", name="Servers", exact=True).wait_for()
        assert await page.get_by_role("link", name="local").count() == 1  # the built-in server

        # Added with a key Berth generates: the public key to install is shown, validation arrives live.
        await page.get_by_label("Server name").fill("web-1")
        await page.get_by_label("Host", exact=True).fill("203.0.113.7")
        await page.get_by_role("button", name="Add server").click()
        await page.wait_for_url(re.compile(r"/ui/servers/[0-9a-f]{32}$"))
        web1 = page.url.rsplit("/", 1)[1]
        assert (await page.get_by_label("Public key", exact=True).input_value()).startswith("ssh-ed25519 ")
        assert await page.locator("#server-state").text_content() == "validating"
        await validated(dashboard, web1, 1, "ready", host_key=host_key)
        await page.locator("#server-state", has_text="ready").wait_for(timeout=15000)  # polled, no reload
        assert await page.locator("#host-key").text_content() == ssh_keys.fingerprint(host_key)
        assert await page.get_by_role("row", name=re.compile("^docker_socket passed")).count() == 1
        await screenshot(page, "dashboard-server")

        # Validated again, the server shows another host key: the page offers to accept it.
        await page.get_by_role("button", name="Validate again").click()
        await page.locator("#server-state", has_text="validating").wait_for()
        await validated(dashboard, web1, 2, "unreachable", failed="host_key", offered_host_key=new_host_key)
        await page.locator("#offered-key").wait_for(timeout=15000)
        assert await page.locator("#offered-key").text_content() == ssh_keys.fingerprint(new_host_key)
        assert "not the one pinned" in await page.locator("#validation").text_content()
        await page.get_by_role("button", name="Accept the new host key").click()
        await page.locator("#server-state", has_text="validating").wait_for()
        await validated(dashboard, web1, 3, "ready")
        await page.locator("#server-state", has_text="ready").wait_for(timeout=15000)
        assert await page.locator("#host-key").text_content() == ssh_keys.fingerprint(new_host_key)
        assert await page.locator("#offered-key").count() == 0

        # Added with a pasted key: a mistake is named, the key is never shown again.
        await page.goto(dashboard.url + "servers")
        await page.get_by_label("Server name").fill("db-1")
        await page.get_by_label("Host", exact=True).fill("203.0.113.8")
        await page.get_by_label("Use my private key").check()
        await page.get_by_label("Private key (never shown again)").fill("not a key")
        await page.get_by_role("button", name="Add server").click()
        await page.get_by_role("alert").wait_for()
        assert "private_key" in await page.get_by_role("alert").text_content()
        assert await page.get_by_label("Server name").input_value() == "db-1"  # what was typed stays
        await page.get_by_label("Use my private key").check()
        await page.get_by_label("Private key (never shown again)").fill(pasted)
        await page.get_by_role("button", name="Add server").click()
        await page.wait_for_url(re.compile(r"/ui/servers/[0-9a-f]{32}$"))
        db1 = page.url.rsplit("/", 1)[1]
        assert (
            await page.get_by_label("Public key", exact=True).input_value()
            == ssh_keys.public_key_of(pasted + "\n").strip()
        )

        # An application runs on web-1: removing it is refused with the reason; draining moves it.
        shop = await an_application(dashboard, "shop", servers=[web1])
        await page.goto(f"{dashboard.url}servers/{web1}")
        await page.get_by_role("link", name="shop").wait_for()
        await page.get_by_role("button", name="Remove server").click()
        await page.get_by_role("alert").wait_for()
        assert "still runs applications: shop (web)" in await page.get_by_role("alert").text_content()
        await page.get_by_role("button", name="Drain", exact=True).click()
        await page.get_by_role("status").wait_for()
        assert "deployments started" in await page.get_by_role("status").text_content()
        assert await page.locator("#server-state").text_content() == "draining"
        (start,) = await dashboard.scheduler.wait_for("cmd.deployment.start")
        assert start.data["application_id"] == shop["id"]
        await screenshot(page, "dashboard-server-drained")

        # db-1 runs nothing: it is removed.
        await page.goto(f"{dashboard.url}servers/{db1}")
        await page.get_by_role("button", name="Remove server").click()
        await page.wait_for_url(re.compile("/ui/servers$"))
        assert await page.get_by_role("link", name="db-1").count() == 0
        await screenshot(page, "dashboard-servers")

        cookie = next(c for c in await ctx.cookies() if c["name"] == "berth_session")["value"]
        urls = {dashboard.url + "servers", f"{dashboard.url}servers/{web1}", f"{dashboard.url}servers/local"}
        await pages_without(dashboard, cookie, urls, "PRIVATE KEY", pasted.split("\n")[2])
        await ctx.close()
    assert browser.errors == []


async def until(dashboard, path: str, state: str) -> dict:
    async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(dashboard.admin)) as http:
        for _ in range(200):
            got = (await http.get(path)).json()
            if got.get("state") == state:
                return got
            await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never {state}: {got}")


async def test_databases_and_backups_from_the_dashboard(dashboard, doubles):
    app = await an_application(dashboard, "orders-app")
    async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(dashboard.viewer)) as http:
        engines = (await http.get("/v1/databases/engines")).json()
    default = next(e["default_version"] for e in engines if e["name"] == "postgresql")
    async with chromium() as browser:
        ctx = await browser.context(viewport={"width": 1280, "height": 900})
        page = await sign_in(ctx, dashboard.url, dashboard.admin)

        # A database from the engines list; the page shows how to reach it, never its password.
        await page.get_by_role("navigation").get_by_role("link", name="Databases", exact=True).click()
        await page.get_by_label("Database name").fill("orders")
        assert await page.get_by_label("Engine and version").input_value() == f"postgresql:{default}"  # preselected
        await page.get_by_role("button", name="Create database").click()
        await page.wait_for_url(re.compile(r"/ui/databases/[0-9a-f]{32}$"))
        db_id = page.url.rsplit("/", 1)[1]
        run = next(
            e
            for _, _, e in await doubles["database"].wait_for("cmd.database.run")
            if e.data["spec"]["database_id"] == db_id
        )
        await doubles["database"].changed(run, "running")
        await until(dashboard, f"/v1/databases/{db_id}", "running")
        await page.reload()
        assert await page.locator("#db-state").text_content() == "running"
        async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(dashboard.admin)) as http:
            url = (await http.get(f"/v1/databases/{db_id}/connection")).json()["url"]
        password = url.split(":")[2].split("@")[0]
        assert "orders" in await page.locator("dl").text_content()

        # Linked to an application.
        await page.get_by_label("Application", exact=True).select_option(label="orders-app")
        await page.get_by_role("button", name="Link", exact=True).click()
        await page.get_by_role("status").wait_for()
        assert "orders-app" in await page.get_by_role("status").text_content()
        async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(dashboard.admin)) as http:
            links = (await http.get(f"/v1/applications/{app['id']}/links")).json()
        assert [(link["database_id"], link["variable"]) for link in links] == [(db_id, "DATABASE_URL")]
        await screenshot(page, "dashboard-database")

        # A destination: a bad bucket named, the secret key write-only.
        await page.get_by_role("navigation").get_by_role("link", name="Backups", exact=True).click()
        for bucket in ("Bad_Bucket", "berth-backups"):
            await page.get_by_label("Destination name").fill("offsite")
            await page.get_by_label("S3 endpoint").fill("http://127.0.0.1:9")
            await page.get_by_label("Bucket").fill(bucket)
            await page.get_by_label("Access key").fill("AKIAEXAMPLE")
            await page.get_by_label("Secret key (never shown again)").fill(S3_SECRET)
            await page.get_by_role("button", name="Add destination").click()
            await page.wait_for_load_state()
        assert await page.get_by_role("cell", name="offsite").count() == 1
        assert await page.get_by_role("alert").count() == 0

        # Back up now: it becomes the last verified backup.
        await page.get_by_role("link", name="orders", exact=True).click()
        await page.get_by_role("heading", name="Backups of orders").wait_for()
        await page.get_by_role("button", name="Run backup now").click()
        await page.get_by_role("cell", name="requested").wait_for()
        ((_, _, env),) = await doubles["backup"].wait_for("cmd.backup.start")
        cmd = StartBackup.model_validate(env.data)
        obj = BackupObject(destination=cmd.destinations[0].name, key="db/orders.dump.zst", size=9, sha256="a" * 64)
        await doubles["backup"].bus.publish(
            BackupSucceeded(
                backup_id=cmd.backup_id,
                team_id=cmd.team_id,
                database_id=db_id,
                engine="postgresql",
                database="orders",
                compression="zstd",
                objects=[obj],
                duration_s=0.2,
            )
        )
        await until(dashboard, f"/v1/backups/{cmd.backup_id}", "succeeded")
        await page.reload()
        assert cmd.backup_id in await page.locator("#last-verified").text_content()

        # A schedule: a bad cron named, then saved.
        for cron in ("61 * * * *", "15 3 * * *"):
            await page.get_by_label("Cron (minute hour day month weekday)").fill(cron)
            await page.get_by_label("Time zone").fill("Europe/Berlin")
            await page.get_by_role("button", name="Save schedule").click()
            await page.wait_for_load_state()
            if cron.startswith("61"):
                assert "cron" in await page.get_by_role("alert").text_content()
        assert "15 3 * * *" in await page.locator("#schedule").text_content()
        await doubles["schedule"].wait_for("cmd.schedule.set")
        await screenshot(page, "dashboard-backups-of-database")

        # Restore into a new database.
        await page.get_by_label(f"New database name for {cmd.backup_id}").fill("orders-copy")
        await page.get_by_role("button", name="Restore into a new database").click()
        await page.wait_for_url(re.compile(r"/ui/restores/[0-9a-f]{32}$"))
        assert await page.locator("#restore-state").text_content() == "waiting"
        restore_url = page.url

        # The database's backups page lists the restore and links to it.
        await page.get_by_role("main").get_by_role("link", name="Backups", exact=True).click()
        restores = page.get_by_role("region", name="Restores")
        row = restores.get_by_role("row", name=re.compile("orders-copy waiting"))
        await row.get_by_role("link", name=re.compile(r"^Restore of \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")).click()
        await page.wait_for_url(restore_url)
        assert await page.locator("#restore-state").text_content() == "waiting"

        # The backups overview names the last verified backup.
        await page.get_by_role("navigation").get_by_role("link", name="Backups", exact=True).click()
        assert cmd.backup_id[:12] in await page.get_by_role("row", name=re.compile("^orders running")).text_content()
        await screenshot(page, "dashboard-backups")

        # Rotating the credentials is asked for; linked applications follow once it is done.
        await page.goto(f"{dashboard.url}databases/{db_id}")
        await page.get_by_role("button", name="Rotate credentials").click()
        await page.locator("#rotation", has_text="rotation pending").wait_for()
        await doubles["database"].wait_for("cmd.database.rotate")

        cookie = next(c for c in await ctx.cookies() if c["name"] == "berth_session")["value"]
        urls = {
            dashboard.url + "databases",
            dashboard.url + "backups",
            f"{dashboard.url}databases/{db_id}",
            f"{dashboard.url}databases/{db_id}/backups",
            restore_url,
        }
        await pages_without(dashboard, cookie, urls, password, S3_SECRET)
        await ctx.close()
    assert browser.errors == []


async def test_a_viewer_sees_no_forms_and_forged_posts_are_refused(dashboard, doubles):
    async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(dashboard.admin)) as admin:
        server = (await admin.post("/v1/servers", json={"name": "viewed", "host": "203.0.113.9"})).json()
        db = (await admin.post("/v1/databases", json={"name": "viewed", "engine": "postgresql"})).json()
    pages = {
        "servers": "Servers",
        f"servers/{server['id']}": "viewed",
        "databases": "Databases",
        f"databases/{db['id']}": re.compile("^viewed"),
        "backups": "Backups",
        f"databases/{db['id']}/backups": "Backups of viewed",
    }
    forged = [
        ("servers", {"name": "forged", "host": "203.0.113.10", "key": "generate"}),
        (f"servers/{server['id']}/validate", {}),
        (f"servers/{server['id']}/delete", {}),
        ("databases", {"name": "forged", "engine": "postgresql"}),
        (f"databases/{db['id']}/rotate", {}),
        (f"databases/{db['id']}/backups", {"dest-" + "0" * 32: "on"}),
        ("backups/destinations", {"kind": "directory", "name": "forged", "path": "/var/backups"}),
    ]
    async with chromium() as browser:
        ctx = await browser.context()
        page = await sign_in(ctx, dashboard.url, dashboard.viewer)
        for path, heading in pages.items():
            await page.goto(dashboard.url + path)
            await page.get_by_role("heading", name=heading, exact=isinstance(heading, str)).first.wait_for()
            assert await page.locator("form").count() == 1, path  # sign out only
        await screenshot(page, "dashboard-backups-viewer")

        # The REST API refuses what the pages do not offer, even with the session's own CSRF value.
        csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
        for path, form in forged:
            r = await ctx.request.post(dashboard.url + path, form={"csrf": csrf, **form})
            assert r.status == 403, (path, await r.text())
        await ctx.close()

        # A developer may create databases but not add servers or rotate credentials.
        ctx = await browser.context()
        page = await sign_in(ctx, dashboard.url, dashboard.developer)
        await page.goto(dashboard.url + "servers")
        assert await page.get_by_role("button", name="Add server").count() == 0
        csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
        for path, form in (forged[0], forged[4]):
            r = await ctx.request.post(dashboard.url + path, form={"csrf": csrf, **form})
            assert r.status == 403, (path, await r.text())
        await ctx.close()
    assert browser.errors == []
    async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(dashboard.admin)) as admin:
        names = [s["name"] for s in (await admin.get("/v1/servers")).json()]
        assert "forged" not in names
        assert "forged" not in [d["name"] for d in (await admin.get("/v1/databases")).json()]
