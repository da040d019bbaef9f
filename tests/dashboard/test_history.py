"""The dashboard's pages as plain HTTP (no browser) against the module's api: the application page pages its
deployments back so any earlier one can be rolled back to, and a database's backups page pages its
restores back so every one is a link away; a failed deployment's timeline marks the step it stopped at
with the reason as its headline; a rotation of the api's secret key leaves every signed-in session
readable (re-sealed with the new key)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
import sqlalchemy as sa

from berth_api.adapters.data_tables import restores
from berth_api.adapters.secretbox import SecretBox
from berth_api.adapters.tables import deployments
from berth_api.adapters.ui_tables import session_aad, ui_sessions
from berth_api.usecases.rotation import rotate
from berth_common.envelope import new_id
from tests.api.conftest import bearer

START = "cmd.deployment.start"


@asynccontextmanager
async def _signed_in(dashboard, token: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=dashboard.api.url, follow_redirects=False, timeout=10) as http:
        r = await http.get("/ui/signin")
        r = await http.post("/ui/signin", data={"csrf": r.cookies["berth_csrf"], "token": token})
        assert r.status_code == 303 and "berth_session" in http.cookies, r.text
        yield http


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


async def _app(dashboard, name: str) -> dict:
    async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(dashboard.admin)) as admin:
        projects = (await admin.get("/v1/projects")).json()
        project = projects[0] if projects else (await admin.post("/v1/projects", json={"name": "acme"})).json()
        body = {
            "name": name,
            "source": {"kind": "image", "image": "nginx:1.27"},
            "services": [{"kind": "web", "name": "web", "port": 80}],
        }
        r = await admin.post(f"/v1/environments/{project['environments'][0]['id']}/applications", json=body)
        assert r.status_code == 201, r.text
        return r.json()


async def _deploy(dashboard, app_id: str) -> tuple[dict, object]:
    count = len(dashboard.scheduler.of(START)) + 1
    async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(dashboard.admin)) as admin:
        r = await admin.post(f"/v1/applications/{app_id}/deployments")
        assert r.status_code in (201, 202), r.text
    start = (await dashboard.scheduler.wait_for(START, count=count))[-1]
    assert start.data["deployment_id"] == r.json()["id"]
    return r.json(), start


async def _until_state(dashboard, deployment_id: str, state: str) -> dict:
    async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(dashboard.viewer)) as viewer:
        for _ in range(100):
            shown = (await viewer.get(f"/v1/deployments/{deployment_id}")).json()
            if shown["state"] == state:
                return shown
            await asyncio.sleep(0.1)
    raise AssertionError(f"deployment {deployment_id} is {shown['state']}, not {state}")


def _numbers(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<td><a href="/ui/deployments/[0-9a-f]{32}">#(\d+)</a></td>', html)]


async def test_any_earlier_deployment_is_a_page_away_and_can_be_rolled_back_to(dashboard):
    app = await _app(dashboard, "history")
    first, start = await _deploy(dashboard, app["id"])
    await dashboard.scheduler.run_to_success(start, image="nginx:1.27")
    await _until_state(dashboard, first["id"], "succeeded")
    async with dashboard.identities.sessionmaker() as s, s.begin():
        row = (await s.execute(sa.select(deployments).where(deployments.c.id == first["id"]))).mappings().one()
        await s.execute(
            deployments.insert(),
            [{**row, "id": new_id(), "number": n, "image": f"shop:{n}", "image_digest": None} for n in range(2, 57)],
        )  # 55 more succeeded deployments, #2 .. #56, each its own image

    async with _signed_in(dashboard, dashboard.developer) as http:
        html = (await http.get(f"/ui/applications/{app['id']}")).text
        assert _numbers(html) == list(range(56, 6, -1))  # the newest 50
        assert f'href="/ui/applications/{app["id"]}?before=7#deployments" rel="next"' in html
        assert ">Roll back to #2<" not in html and "Newest deployments" not in html

        html = (await http.get(f"/ui/applications/{app['id']}?before=7")).text
        assert _numbers(html) == [6, 5, 4, 3, 2, 1]
        assert "?before=" not in html and "Newest deployments" in html  # the oldest page: no older link
        assert ">Roll back to #2<" in html
        target = re.search(
            r'name="deployment_id" value="([0-9a-f]{32})">(?:<input[^>]*>)?\s*<button[^>]*>Roll back to #2<', html
        )
        assert target, html

        assert '<input type="hidden" name="before" value="7">' in html
        # a rollback the REST API refuses shows its problem on the page it was asked from, not the newest
        r = await http.post(
            f"/ui/applications/{app['id']}/rollback",
            data={"csrf": _csrf(html), "deployment_id": "0" * 32, "before": "7"},
        )
        assert r.status_code == 404 and 'role="alert"' in r.text and _numbers(r.text) == [6, 5, 4, 3, 2, 1]

        count = len(dashboard.scheduler.of(START)) + 1
        r = await http.post(
            f"/ui/applications/{app['id']}/rollback",
            data={"csrf": _csrf(html), "deployment_id": target.group(1), "before": "7"},
        )
        assert r.status_code == 303, r.text
        rollback = (await dashboard.scheduler.wait_for(START, count=count))[-1]
        assert r.headers["location"] == f"/ui/deployments/{rollback.data['deployment_id']}"
        assert rollback.data["spec"]["source"] == {"kind": "image", "image": "shop:2"}

        # a paging value that is not a number is ignored: the newest page
        html = (await http.get(f"/ui/applications/{app['id']}?before=x")).text
        assert _numbers(html)[:2] == [57, 56]


async def test_a_failed_deployment_marks_the_step_it_stopped_at(dashboard):
    app = await _app(dashboard, "broken")
    d, start = await _deploy(dashboard, app["id"])
    await dashboard.scheduler.progressed(d["id"], app["id"], "building", "build requested")
    reason = "build failed: RUN npm ci exited with 1"
    await dashboard.scheduler.failed(d["id"], app["id"], start.data["team_id"], reason)  # failed_in: verifying

    async with _signed_in(dashboard, dashboard.viewer) as http:

        async def page() -> str:
            for _ in range(100):
                html = (await http.get(f"/ui/deployments/{d['id']}")).text
                if 'id="state">failed<' in html:
                    return html
                await asyncio.sleep(0.1)
            raise AssertionError(html)

        html = await page()
        steps = re.findall(r"<li class=\"([^\"]+)\"[^>]*>(.*?)</li>", html)
        assert steps == [
            ("done", "queued"),
            ("done", "building"),
            ("done", "starting"),
            ("bad stopped", 'verifying <span class="mark">(failed here)</span>'),
            ("todo", "routing"),
            ("todo bad", "failed"),
        ]
        assert '<li class="bad stopped" aria-current="step">' in html
        assert f'<p class="headline"><strong>Failed:</strong> {reason}</p>' in html
        assert "<p>Failed at <strong>verifying</strong>.</p>" in html
        got = (await http.get(f"/ui/deployments/{d['id']}/timeline")).text  # the live part says the same
        assert f'<p class="headline"><strong>Failed:</strong> {reason}</p>' in got

    async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(dashboard.viewer)) as viewer:
        shown = (await viewer.get(f"/v1/deployments/{d['id']}")).json()
    assert (shown["state"], shown["ended_in"], shown["reason"]) == ("failed", "verifying", reason)


async def test_sessions_stay_signed_in_across_a_key_rotation(dashboard):
    async with _signed_in(dashboard, dashboard.developer) as http:
        assert (await http.get("/ui/")).status_code == 200
        async with dashboard.identities.sessionmaker() as s:
            before = {r.id: r.sealed_token for r in (await s.execute(sa.select(ui_sessions))).all()}
        key_path = dashboard.api.settings.secrets_key_path
        old = key_path.read_bytes().strip()

        done = await rotate(dashboard.identities.sessionmaker, key_path)
        new = key_path.read_bytes().strip()
        assert new != old and done.resealed.counts["ui_sessions"] == len(before) >= 1

        async with dashboard.identities.sessionmaker() as s:
            after = {r.id: r.sealed_token for r in (await s.execute(sa.select(ui_sessions))).all()}
        assert after.keys() == before.keys()
        only_new = SecretBox([new])  # what an api started after the rotation holds: the new key alone
        for row_id, sealed in after.items():
            assert sealed != before[row_id]
            assert only_new.open(sealed, session_aad(row_id)) in (
                dashboard.developer,
                dashboard.admin,
                dashboard.viewer,
            )

        r = await http.get("/ui/")  # the running api: still signed in, no sign-in page
        assert r.status_code == 200 and "/ui/signin" not in r.headers.get("location", ""), r.text
        assert 'action="/ui/signout"' in r.text


def test_the_step_a_deployment_stopped_at_maps_the_old_version_steps_to_routing():
    from berth_api.dashboard.pages import steps_of

    got = steps_of({"state": "cancelled", "ended_in": "stopping_old"})
    assert got["stopped"] == "routing"
    assert [(s["name"], s["done"], s["stopped"]) for s in got["steps"]] == [
        ("queued", True, False),
        ("building", True, False),
        ("starting", True, False),
        ("verifying", True, False),
        ("routing", False, True),
        ("cancelled", False, False),
    ]
    legacy = steps_of({"state": "failed", "ended_in": None})  # recorded before deployments kept it
    assert legacy["stopped"] is None and legacy["steps"][-1] == {
        "name": "failed",
        "done": False,
        "current": True,
        "stopped": False,
    }


def _restore_links(html: str) -> list[str]:
    return re.findall(r'<td><a href="/ui/restores/([0-9a-f]{32})">Restore of ', html)


async def test_every_restore_of_a_database_is_reached_by_following_its_pages(dashboard):
    async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(dashboard.admin)) as admin:
        team = (await admin.get("/v1/me")).json()["team"]["id"]
        dbs = []
        for name in ("archive", "archive-other"):
            r = await admin.post("/v1/databases", json={"name": name, "engine": "postgresql"})
            assert r.status_code in (201, 202), r.text
            dbs.append(r.json()["id"])
    db, other = dbs
    first = datetime(2026, 3, 1, tzinfo=UTC)
    made = [new_id() for _ in range(45)]  # oldest first; two by two made in the same second (ordered by id)
    values = [
        {
            "id": rid,
            "team_id": team,
            "database_id": db,
            "backup_id": new_id(),
            "target_database_id": db,
            "target": "existing",
            "state": "succeeded",
            "origin_id": new_id(),
            "key": "db/archive.dump.zst",
            "sha256": "b" * 64,
            "compression": "zstd",
            "created_at": first + timedelta(seconds=i // 2),
        }
        for i, rid in enumerate(made)
    ]
    theirs = {**values[0], "id": new_id(), "database_id": other, "target_database_id": other}
    async with dashboard.identities.sessionmaker() as s, s.begin():
        await s.execute(restores.insert(), [*values, theirs])
    newest_first = sorted(values, key=lambda v: (v["created_at"], v["id"]), reverse=True)

    async with _signed_in(dashboard, dashboard.viewer) as http:
        url, pages = f"/ui/databases/{db}/backups", []
        while url:
            r = await http.get(url)
            assert r.status_code == 200, r.text
            pages.append(_restore_links(r.text))
            older = re.search(
                r'<a href="(/ui/databases/[0-9a-f]{32}/backups\?restores_before=[0-9a-f]{32})#restores" rel="next">',
                r.text,
            )
            assert ("Newest restores" in r.text) == (len(pages) > 1)
            url = older.group(1) if older else ""
        assert [len(p) for p in pages] == [20, 20, 5]
        assert [rid for p in pages for rid in p] == [v["id"] for v in newest_first]  # each once, none of other's
        assert (await http.get(f"/ui/restores/{made[0]}")).status_code == 200  # the oldest, its own page

        r = await http.get(f"/ui/databases/{db}/backups?restores_before=x")  # not an id: the newest page
        assert _restore_links(r.text) == pages[0]
        r = await http.get(f"/ui/databases/{db}/backups?restores_before={theirs['id']}")  # another database's
        assert r.status_code == 422 and "/query/before" in r.text
