"""The team page's own teams and the templates page's import, as plain HTTP against the module's api: a
person creates a team and works in it, switches back and forth (the session's token replaced by one the REST
API mints; the token they signed in with kept, the dashboard's own revoked), leaves one and deletes an
empty one; what a role may not do is absent and refused alike. A Coolify template or a Dokploy blueprint
pasted in the templates page comes back as a Berth template, or as the REST API's problem naming the file."""

from __future__ import annotations

import re

import httpx

from tests.api.conftest import bearer
from tests.api.template_support import FIXTURES, dokploy_files
from tests.dashboard.test_history import _csrf, _signed_in


def _team_ids(html: str) -> dict[str, str]:
    """Each team of the "Your teams" table that can be switched to: its name to its id."""
    found = re.findall(
        r'name="team_id" value="([^"]+)">\s*<button type="submit" aria-label="Switch to team ([^"]+)"', html
    )
    return {name: team_id for team_id, name in found}


def _heading(html: str) -> str:
    found = re.search(r"<h1>Team ([^<]+)</h1>", html)
    assert found, html
    return found.group(1)


async def _post(http: httpx.AsyncClient, path: str, **form: str) -> httpx.Response:
    page = await http.get("/ui/team")
    return await http.post(path, data={"csrf": _csrf(page.text), **form})


async def test_a_person_creates_switches_leaves_and_deletes_teams(dashboard):
    user = await dashboard.identities.member("switcher@example.com", "developer")
    pasted, _ = await dashboard.identities.token(user)
    async with _signed_in(dashboard, pasted) as http:
        page = await http.get("/ui/team")
        assert _heading(page.text) == "default" and "Create team and switch to it" in page.text
        assert "Switch to team" not in page.text  # one team: nothing to switch to

        r = await http.post("/ui/teams/switch", data={"team_id": "x"})
        assert r.status_code == 403  # no CSRF value
        r = await _post(http, "/ui/teams", name="Bad Name!")
        assert r.status_code == 200 and 'role="alert"' in r.text and "<code>name</code>" in r.text

        r = await _post(http, "/ui/teams", name="blue")
        assert r.status_code == 303 and r.headers["location"] == "/ui/team"
        page = await http.get("/ui/team")
        assert _heading(page.text) == "blue" and "admin</span> in this team" in page.text
        default_id = _team_ids(page.text)["default"]
        async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(pasted)) as cli:
            assert (await cli.get("/v1/me")).json()["team"]["name"] == "default"  # the pasted token is kept

        # In default the person is a developer: deleting blue is absent, and refused when forged.
        assert (await _post(http, "/ui/teams/switch", team_id=default_id)).status_code == 303
        page = await http.get("/ui/team")
        blue_id = _team_ids(page.text)["blue"]
        assert _heading(page.text) == "default" and "Delete team blue" not in page.text
        assert (await _post(http, f"/ui/teams/{blue_id}/delete")).status_code == 403
        r = await _post(http, "/ui/teams/switch", team_id="0" * 32)
        assert r.status_code == 404  # not a member: the REST API's answer, on the page

        # Back in blue: one session token of the dashboard's there (the one minted before was revoked), and
        # none left live in default, where the person is a developer (revoked by its owner).
        assert (await _post(http, "/ui/teams/switch", team_id=blue_id)).status_code == 303
        async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(dashboard.admin)) as admin:
            left = [t for t in (await admin.get("/v1/tokens")).json() if t["user_id"] == user]
        assert [t["name"] for t in left if t["revoked_at"] is None] == ["test"]  # the pasted one only
        assert [t["name"] for t in left if t["revoked_at"] is not None] == ["dashboard session"]
        page = await http.get("/ui/team")
        assert page.text.count("<tr><td>dashboard session (this session)</td>") == 1
        assert page.text.count("<tr><td>dashboard session") == 1
        assert "Delete team default" not in page.text  # a developer there

        # green (admin) deletes blue, once empty; a team holding a project is refused, naming what it holds.
        assert (await _post(http, "/ui/teams", name="green")).status_code == 303
        page = await http.get("/ui/team")
        assert f'action="/ui/teams/{blue_id}/delete"' in page.text
        assert (await _post(http, f"/ui/teams/{blue_id}/delete")).status_code == 303
        page = await http.get("/ui/team")
        assert "blue" not in _team_ids(page.text)
        assert (await _post(http, "/ui/projects", name="kept")).status_code == 303
        assert (await _post(http, "/ui/teams", name="red")).status_code == 303
        green_id = _team_ids((await http.get("/ui/team")).text)["green"]
        r = await _post(http, f"/ui/teams/{green_id}/delete")
        assert r.status_code == 200 and "still holds 1 environments, 1 projects" in r.text

        # Leaving default revokes the tokens for it, the pasted one too; the last admin may not leave.
        assert (await _post(http, f"/ui/teams/{default_id}/leave")).status_code == 303
        assert "default" not in _team_ids((await http.get("/ui/team")).text)
        async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(pasted)) as cli:
            assert (await cli.get("/v1/me")).status_code == 401
        r = await _post(http, f"/ui/teams/{green_id}/leave")
        assert r.status_code == 200 and "You are the last admin of team green" in r.text

        # The team the session acts in (red) may be left or deleted from the page too: refused to its last
        # admin (the token minted for green is revoked again); deleted, the session acts in green.
        page = await http.get("/ui/team")
        assert _heading(page.text) == "red"
        red_id = re.search(r'action="/ui/teams/([0-9a-f]+)/delete"', page.text.split("current</span>")[1]).group(1)
        r = await _post(http, f"/ui/teams/{red_id}/leave")
        assert r.status_code == 200 and "You are the last admin of team red" in r.text
        assert (await _post(http, f"/ui/teams/{red_id}/delete")).status_code == 303
        page = await http.get("/ui/team")
        assert _heading(page.text) == "green" and "red" not in _team_ids(page.text)
        assert page.text.count("<tr><td>dashboard session") == 1  # the one minted for the refused leave is gone


async def test_leaving_ones_only_team_signs_the_session_out(dashboard):
    user = await dashboard.identities.member("solo@example.com", "developer")
    pasted, _ = await dashboard.identities.token(user)
    async with _signed_in(dashboard, pasted) as http:
        page = await http.get("/ui/team")
        assert "Switch to team" not in page.text and "You are then signed out" in page.text
        default_id = re.search(r'action="/ui/teams/([0-9a-f]+)/leave"', page.text).group(1)
        r = await _post(http, f"/ui/teams/{default_id}/leave")
        assert r.status_code == 303 and r.headers["location"] == "/ui/signin"
        assert "berth_session" not in http.cookies
        assert (await http.get("/ui/team")).status_code == 303
    async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(pasted)) as cli:
        assert (await cli.get("/v1/me")).status_code == 401


async def test_a_pasted_template_is_imported_or_its_problem_named(dashboard):
    coolify = (FIXTURES / "coolify" / "analytics-kit.yaml").read_text()
    async with _signed_in(dashboard, dashboard.viewer) as http:
        page = await http.get("/ui/templates")
        assert "Import a template" not in page.text
        r = await http.post(
            "/ui/templates/import", data={"csrf": _csrf(page.text), "format": "coolify", "compose": coolify}
        )
        assert r.status_code == 403 and "Imported:" not in r.text
    async with _signed_in(dashboard, dashboard.developer) as http:
        page = await http.get("/ui/templates")
        assert 'for="coolify-compose"' in page.text and 'for="dokploy-toml"' in page.text
        form = {"csrf": _csrf(page.text), "format": "coolify", "filename": "analytics-kit.yaml", "compose": coolify}
        r = await http.post("/ui/templates/import", data=form)
        assert r.status_code == 200, r.text
        assert "Imported: Analytics Kit <code>analytics-kit</code>" in r.text
        assert "<code>SERVICE_PASSWORD_POSTGRES</code></td><td>password</td>" in r.text
        assert 'id="imported-document"' in r.text and "ghcr.io/example/analytics-kit:2.3" in r.text

        blueprint = dokploy_files(FIXTURES / "dokploy" / "analytics-blueprint")
        form = {
            "csrf": _csrf(page.text),
            "format": "dokploy",
            "toml": blueprint["template.toml"],
            "compose": blueprint["docker-compose.yml"],
            "meta": blueprint.get("meta.json", ""),
            "name": "My analytics",
        }
        r = await http.post("/ui/templates/import", data=form)
        assert r.status_code == 200, r.text
        assert "Imported: My analytics" in r.text and "<code>db_password</code>" in r.text

        bad = {**form, "toml": '[[config.domains]]\nserviceName = "nope"\nport = 1'}
        r = await http.post("/ui/templates/import", data=bad)
        assert r.status_code == 200 and 'role="alert"' in r.text and "Imported:" not in r.text
        assert "<code>files.template.toml.config.domains.0.serviceName</code>" in r.text
        assert "serviceName = &#34;nope&#34;" in r.text  # the pasted text is kept to be corrected


async def test_an_imported_template_is_deployed_from_the_page_as_edited(dashboard):
    async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(dashboard.admin)) as admin:
        projects = (await admin.get("/v1/projects")).json()
        project = projects[0] if projects else (await admin.post("/v1/projects", json={"name": "acme"})).json()
    env = project["environments"][0]["id"]
    coolify = (FIXTURES / "coolify" / "analytics-kit.yaml").read_text()
    async with _signed_in(dashboard, dashboard.developer) as http:
        page = await http.get("/ui/templates")
        form = {"csrf": _csrf(page.text), "format": "coolify", "filename": "analytics-kit.yaml", "compose": coolify}
        r = await http.post("/ui/templates/import", data=form)
        assert r.status_code == 200, r.text
        assert 'action="/ui/templates/deploy"' in r.text and f'<option value="{env}"' in r.text
        document = re.search(r'name="document"[^>]*>([^<]*)</textarea>', r.text)
        assert document, r.text
        text = document.group(1).replace("&#34;", '"').replace("&#39;", "'").replace("&amp;", "&")
        deploy = {"csrf": _csrf(page.text), "environment_id": env, "name": "kit", "document": text}
        bad = await http.post("/ui/templates/deploy", data={**deploy, "document": text + "surprise: 1\n"})
        assert bad.status_code == 200 and 'role="alert"' in bad.text and "<code>document.surprise</code>" in bad.text
        assert "surprise: 1" in bad.text and 'value="kit"' in bad.text  # kept to be corrected
        edited = text.replace("LOG_LEVEL=info", "LOG_LEVEL=debug")
        assert edited != text
        r = await http.post("/ui/templates/deploy", data={**deploy, "document": edited})
        assert r.status_code == 303, r.text
        app_id = r.headers["location"].rsplit("/", 1)[-1]
    async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(dashboard.admin)) as admin:
        app = (await admin.get(f"/v1/applications/{app_id}")).json()
    assert app["name"] == "kit" and "LOG_LEVEL=debug" in app["compose"]["inline"]
    async with _signed_in(dashboard, dashboard.viewer) as http:
        page = await http.get("/ui/templates")
        r = await http.post(
            "/ui/templates/deploy", data={"csrf": _csrf(page.text), "environment_id": env, "document": text}
        )
        assert r.status_code == 403
