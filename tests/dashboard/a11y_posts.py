"""The developer's shown forms, posted from the page as a person would (fields filled, the form's own submit
button clicked, or the one named where a form has two, a confirmation accepted), on objects the
accessibility test made for the purpose: a variable and a route set on its compose application and the
route removed again, its compose profiles and its placement set, a webhook channel created, subscribed and
disabled, an alert rule created, a database linked and backed up; then what makes things or deploys: a
project, an application in it, a compose application (its file's services read into placement rows, then
made with a profile and a placement), a database, a restore into a new database, the seeded application
scaled, deployed (the scheduler's part played until the deployment is live) and rolled back, an
application made from a template, a Coolify template and a Dokploy blueprint imported and the document each
gives deployed; and last what changes the session: a switch to the developer's other team and leaving it
(the session then acts in the team the developer is an admin of), an application there deleted, a team
created and deleted again, and signing out. Each answer is checked: the POST is answered with the redirect
of a done change (an import with its result), the page it leads to shows no problem (and the team it acts
in, where that changes) nor, the first time a page of its shape is shown (each import's result: the same
page, other content), a serious or critical axe violation, the post logs no console error, and the REST API
has the change (an import: the page shows the template; signing out: the browser's session is gone). The
seeded objects are not deleted, but for the application made for it. ``a11y_posting`` posts them."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.api.conftest import bearer
from tests.api.template_support import FIXTURES
from tests.dashboard.a11y_posting import Effect, Post
from tests.dashboard.a11y_seed import OWN_APP, OWN_TEAM, SHARED_TEAM, Seeded

PROBE = "dev-probe"  # the name of what the developer makes
NEW_TEAM = "dev-probe-team"  # the team the developer creates, and deletes again
COOLIFY = FIXTURES / "coolify" / "analytics-kit.yaml"  # the template the developer imports and deploys
DOKPLOY = FIXTURES / "dokploy" / "analytics-blueprint"  # the blueprint the developer imports and deploys
COMPOSE = "services:\n  web:\n    image: nginx:1.27\n  debug:\n    image: busybox:1.36\n    profiles: [debug]\n"
TEMPLATE = "excalidraw"  # a catalogue template the developer deploys (one service, nothing to fill in)


async def rows(api: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    """A listing's rows (a list, or a page of ``items``)."""
    got = (await api.get(path)).json()
    return got["items"] if isinstance(got, dict) else got


def posts(seeded: Seeded, hook_url: str) -> list[Post]:
    """The forms that change nothing but what was made for them."""
    app, db = seeded.routed["id"], seeded.database

    async def env_has(api: httpx.AsyncClient) -> bool:
        got = (await api.get(f"/v1/applications/{app}")).json()
        return any(v["name"] == "A11Y_PROBE" and v["value"] == "on" for v in got["env"])

    async def route_is(api: httpx.AsyncClient, present: bool) -> bool:
        hosts = (await api.get(f"/v1/applications/{app}")).json()["compose"]["hosts"]
        return any(h.get("host") == "probe.example.com" for h in hosts) == present

    async def route_set(api: httpx.AsyncClient) -> bool:
        return await route_is(api, True)

    async def route_gone(api: httpx.AsyncClient) -> bool:
        return await route_is(api, False)

    async def profiles_set(api: httpx.AsyncClient) -> bool:
        return (await api.get(f"/v1/applications/{app}")).json()["compose"].get("profiles") == ["probe"]

    async def placed(api: httpx.AsyncClient) -> bool:
        placement = (await api.get(f"/v1/applications/{app}")).json()["compose"]["placement"]
        return placement == [{"service": "front", "servers": ["local"]}]

    async def channel(api: httpx.AsyncClient) -> dict[str, Any] | None:
        return next((c for c in await rows(api, "/v1/notification-channels") if c["name"] == PROBE), None)

    async def channel_made(api: httpx.AsyncClient) -> bool:
        return await channel(api) is not None

    async def subscribed(api: httpx.AsyncClient) -> bool:
        c = await channel(api)
        subs = await rows(api, "/v1/notification-subscriptions")
        return c is not None and any(s["channel_id"] == c["id"] and s["event_types"] == ["evt.alert.>"] for s in subs)

    async def disabled(api: httpx.AsyncClient) -> bool:
        c = await channel(api)
        return c is not None and c["enabled"] is False

    async def rule_made(api: httpx.AsyncClient) -> bool:
        rules = await rows(api, "/v1/alert-rules")
        return any(r["name"] == PROBE and r["target_id"] == app and r["threshold"] == 95 for r in rules)

    async def linked(api: httpx.AsyncClient) -> bool:
        links = await rows(api, f"/v1/applications/{app}/links")
        return any(link["database_id"] == db and link["variable"] == "LEDGER_URL" for link in links)

    async def backed_up(api: httpx.AsyncClient) -> bool:
        return len(await rows(api, f"/v1/databases/{db}/backups")) == 2  # the seeded one and this

    on_app, on_db = f"/ui/applications/{app}", f"/ui/databases/{db}"
    return [
        Post("set a variable", on_app, ("button", "Set variable"), env_has, {"name": "A11Y_PROBE", "value": "on"}),
        Post(
            "set a route",
            on_app,
            ("button", "Set route"),
            route_set,
            {"service": "front", "port": "80", "host": "probe.example.com"},
        ),
        Post("remove the route", on_app, ("button", "Remove the route of front on probe.example.com"), route_gone),
        Post("set profiles", on_app, ("button", "Set profiles"), profiles_set, {"profile.0": "probe"}),
        Post("set a placement", on_app, ("button", "Set placement"), placed, {"place.0.on.local": "on"}),
        Post(
            "create a channel",
            "/ui/notifications",
            ("button", "Create webhook channel"),
            channel_made,
            {"name": PROBE, "webhook.url": hook_url, "webhook.signing_secret": "whsec-dev-probe-0815"},
        ),
        Post(
            "subscribe it",
            "/ui/notifications",
            ("label", f"Events for {PROBE}"),
            subscribed,
            {"event_types": "evt.alert.>"},
        ),
        Post("disable it", "/ui/notifications", ("button", f"Disable {PROBE}"), disabled),
        Post(
            "create an alert rule",
            "/ui/alerts",
            ("button", "Create rule"),
            rule_made,
            {"name": PROBE, "target_kind": "app", "app_id": app, "metric": "cpu_pct", "threshold": "95"},
        ),
        Post("link the database", on_db, ("button", "Link"), linked, {"application_id": app, "variable": "LEDGER_URL"}),
        Post("back it up now", f"{on_db}/backups", ("button", "Run backup now"), backed_up),
    ]


async def named(api: httpx.AsyncClient, path: str, name: str) -> dict[str, Any] | None:
    return next((x for x in await rows(api, path) if x["name"] == name), None)


async def newest_deployment(api: httpx.AsyncClient, app: str) -> dict[str, Any]:
    return (await api.get(f"/v1/applications/{app}/deployments", params={"limit": 1})).json()[0]


async def live_after(api: httpx.AsyncClient, sched: Any, app: str, number: int, kind: str) -> bool:
    """Whether the newest deployment of ``app`` is the ``number``-th, of ``kind``: then played by the
    scheduler until it succeeded and is live (its replicas served)."""
    dep = await newest_deployment(api, app)
    if dep["number"] != number or dep["kind"] != kind:
        return False
    for _ in range(200):  # its command, once the outbox sent it
        start = next((c for c in sched.of("cmd.deployment.start") if c.data["deployment_id"] == dep["id"]), None)
        if start is not None:
            break
        await asyncio.sleep(0.05)
    else:
        return False
    await sched.run_to_success(start)
    sched.set_replicas(app, dep["id"], [("running", "ready")])
    for _ in range(200):
        if (await api.get(f"/v1/deployments/{dep['id']}")).json()["state"] == "succeeded":
            return True
        await asyncio.sleep(0.05)
    return False


def making(seeded: Seeded, sched: Any) -> list[Post]:
    """The forms that make things or deploy: a project and an application in it, a database, a restore into a
    new database, the seeded application scaled, deployed (#3, played to success by ``sched``) and rolled
    back to #1, an application made from a template, a Coolify template and a Dokploy blueprint imported and
    the document each gives deployed."""
    app, db, env = seeded.app["id"], seeded.database, seeded.app["environment_id"]

    async def project_made(api: httpx.AsyncClient) -> bool:
        return await named(api, "/v1/projects", PROBE) is not None

    async def app_made(api: httpx.AsyncClient) -> bool:
        made = await named(api, "/v1/applications", f"{PROBE}-app")
        return made is not None and made["environment_id"] == env

    async def compose_made(api: httpx.AsyncClient) -> bool:
        made = await named(api, "/v1/applications", f"{PROBE}-compose")
        if made is None or made["environment_id"] != env:
            return False
        compose = (await api.get(f"/v1/applications/{made['id']}")).json()["compose"]
        return compose["profiles"] == ["debug"] and compose["placement"] == [{"service": "debug", "servers": ["local"]}]

    async def database_made(api: httpx.AsyncClient) -> bool:
        made = await named(api, "/v1/databases", f"{PROBE}-db")
        return made is not None and made["engine"] == "postgresql"

    async def restored(api: httpx.AsyncClient) -> bool:
        newest = (await rows(api, f"/v1/databases/{db}/restores"))[0]
        into = (await api.get(f"/v1/databases/{newest['target_database_id']}")).json()
        return newest["target"] == "new" and newest["id"] != seeded.restore and into["name"] == "ledger-probe"

    async def scaled(api: httpx.AsyncClient) -> bool:
        services = (await api.get(f"/v1/applications/{app}")).json()["services"]
        return [s["replicas"] for s in services if s["name"] == "web"] == [2]

    async def deployed(api: httpx.AsyncClient) -> bool:
        return await live_after(api, sched, app, 3, "deploy")

    async def rolled_back(api: httpx.AsyncClient) -> bool:
        return await live_after(api, sched, app, 4, "rollback")

    def document_deployed(name: str, image: str) -> Effect:
        async def deployed(api: httpx.AsyncClient) -> bool:
            made = await named(api, "/v1/applications", name)
            if made is None or made["environment_id"] != env:
                return False
            return image in (await api.get(f"/v1/applications/{made['id']}")).text

        return deployed

    async def template_deployed(api: httpx.AsyncClient) -> bool:
        made = await named(api, "/v1/applications", f"{PROBE}-tpl")
        if made is None:
            return False
        hosts = (await api.get(f"/v1/applications/{made['id']}")).json()["compose"]["hosts"]
        return [h.get("host") for h in hosts] == ["probe-tpl.example.com"]

    on_app = f"/ui/applications/{app}"
    return [
        Post("create a project", "/ui/", ("button", "Create project"), project_made, {"name": PROBE}),
        Post(
            "create an application",
            "/ui/",
            ("action", f"/ui/environments/{env}/applications"),
            app_made,
            {"name": f"{PROBE}-app", "image": "nginx:1.27", "port": "8080"},
        ),
        Post(
            "read a compose file's services",
            f"/ui/environments/{env}/compose",
            ("button", "Read the services"),
            None,
            {"name": f"{PROBE}-compose", "compose": COMPOSE, "profile.0": "debug"},
            status=200,
            shows='fieldset legend:has-text("Servers of debug")',
        ),
        Post(
            "create a compose application",
            "",  # the page the services were read on, with what was typed
            ("button", "Create compose application"),
            compose_made,
            {"place.1.on.local": "on"},
        ),
        Post(
            "create a database", "/ui/databases", ("button", "Create database"), database_made, {"name": f"{PROBE}-db"}
        ),
        Post(
            "restore into a new database",
            f"/ui/databases/{db}/backups",
            ("label", f"New database name for {seeded.backup}"),
            restored,
            {"name": "ledger-probe"},
        ),
        Post("scale", on_app, ("label", "Replicas of web"), scaled, {"replicas": "2"}),
        Post("deploy", on_app, ("button", "Deploy"), deployed),
        Post("roll back", on_app, ("button", "Roll back to #1"), rolled_back),
        Post(
            "deploy a template",
            f"/ui/templates/{TEMPLATE}",
            ("button", "Deploy template"),
            template_deployed,
            {"name": f"{PROBE}-tpl", "domain": "probe-tpl.example.com"},
        ),
        Post(
            "import a Coolify template",
            "/ui/templates",
            ("button", "Import Coolify template"),
            None,
            {"filename": COOLIFY.name, "compose": COOLIFY.read_text()},
            status=200,
            shows='#imported:has-text("Imported: Analytics Kit")',
        ),
        Post(
            "deploy the imported template document",
            "",  # the import's answer: the converted document in the deploy form
            ("button", "Deploy template"),
            document_deployed(f"{PROBE}-doc", "ghcr.io/example/analytics-kit:2.3"),
            {"environment_id": env, "name": f"{PROBE}-doc"},
        ),
        Post(
            "import a Dokploy blueprint",
            "/ui/templates",
            ("button", "Import Dokploy blueprint"),
            None,
            {
                "toml": (DOKPLOY / "template.toml").read_text(),
                "compose": (DOKPLOY / "docker-compose.yml").read_text(),
                "meta": (DOKPLOY / "meta.json").read_text(),
            },
            status=200,
            # the result names the blueprint and lists its variables
            shows='section:has(#imported:has-text("Imported: Analytics Blueprint")) td code:text-is("db_password")',
            audit=True,
        ),
        Post(
            "deploy the imported Dokploy document",
            "",
            ("button", "Deploy template"),
            document_deployed(f"{PROBE}-dok", "ghcr.io/example/analytics:2.1"),
            {"environment_id": env, "name": f"{PROBE}-dok"},
        ),
    ]


def session(origin: str, developer: str, seeded: Seeded) -> list[Post]:
    """The forms that change the session, last: a switch to the developer's other team, then leaving it (the
    team the session acts in: it then acts in the team the developer is an admin of, ``OWN_TEAM``), where
    the developer deletes an application; a team created (the session acts in it) and deleted again (back
    in ``OWN_TEAM``); and signing out."""

    async def teams_of_developer() -> dict[str, str]:
        async with httpx.AsyncClient(base_url=origin, headers=bearer(developer)) as mine:
            return {t["name"]: t["role"] for t in (await mine.get("/v1/me/teams")).json()}

    async def member(api: httpx.AsyncClient) -> bool:
        return SHARED_TEAM in await teams_of_developer()

    async def left(api: httpx.AsyncClient) -> bool:
        return SHARED_TEAM not in await teams_of_developer()

    async def app_gone(api: httpx.AsyncClient) -> bool:
        async with httpx.AsyncClient(base_url=origin, headers=bearer(seeded.own_token)) as own:
            return (await own.get(f"/v1/applications/{seeded.own_app}")).status_code == 404

    async def team_made(api: httpx.AsyncClient) -> bool:
        return (await teams_of_developer()).get(NEW_TEAM) == "admin"

    async def team_gone(api: httpx.AsyncClient) -> bool:
        return NEW_TEAM not in await teams_of_developer()

    async def signed_out(page: Any) -> bool:
        """No session cookie left, and the dashboard sends the browser to the sign-in page."""
        if any(c["name"] == "berth_session" for c in await page.context.cookies()):
            return False
        r = await page.context.request.get(origin + "/ui/team", max_redirects=0)
        return r.status == 303 and r.headers.get("location") == "/ui/signin"

    return [
        Post("switch teams", "/ui/team", ("button", f"Switch to team {SHARED_TEAM}"), member, heading=SHARED_TEAM),
        Post("leave the team", "/ui/team", ("button", f"Leave team {SHARED_TEAM}"), left, heading=OWN_TEAM),
        Post("delete an application", f"/ui/applications/{seeded.own_app}", ("button", f"Delete {OWN_APP}"), app_gone),
        Post(
            "create a team",
            "/ui/team",
            ("button", "Create team and switch to it"),
            team_made,
            {"name": NEW_TEAM},
            heading=NEW_TEAM,
        ),
        Post("delete the team", "/ui/team", ("button", f"Delete team {NEW_TEAM}"), team_gone, heading=OWN_TEAM),
        Post("sign out", "", ("button", "Sign out"), None, heading="Sign in", seen=signed_out),
    ]
