"""Projects, applications, variables, scale, status and open through ``berth``, compared by exact output
(tables and --json) with what the api holds; problems shown as their title and field."""

from __future__ import annotations

import asyncio
import json

from tests.api.conftest import bearer


def _when(ts: str) -> str:
    return ts[:19].replace("T", " ")


async def _make_app(berth, *extra: str) -> dict:
    r = await berth(
        "apps", "create", "shop", "--project", "acme", "--image", "nginx:1.27", "--port", "80", *extra, "--json"
    )
    assert r.code == 0, r
    return json.loads(r.out)


async def test_projects_and_apps_listings(logged_in, client, api):
    berth, admin = logged_in, bearer(api.admin_token())
    r = await berth("projects", "create", "acme", "--description", "the shop")
    project = (await client.get("/v1/projects", headers=admin)).json()[0]
    assert (r.code, r.out) == (0, f"Created project acme ({project['id']})\n")
    r = await berth("projects", "list")
    assert r.out == (
        "NAME  ENVIRONMENTS  ID                                CREATED\n"
        f"acme  production    {project['id']}  {_when(project['created_at'])}\n"
    )
    assert json.loads((await berth("projects", "list", "--json")).out) == [project]

    app = await _make_app(berth, "--env", "LOG_LEVEL=debug", "--domain", "shop.example.com")
    assert app["services"][0]["domains"] == ["shop.example.com"] and app["env"][0]["value"] == "debug"
    r = await berth("apps", "list")
    assert r.out == (
        "NAME  PROJECT  ENVIRONMENT  SOURCE      STATE   ID\n"
        f"shop  acme     production   nginx:1.27  active  {app['id']}\n"
    )
    listed = (await client.get("/v1/applications", headers=admin)).json()
    assert json.loads((await berth("apps", "list", "--json")).out) == listed
    assert json.loads((await berth("apps", "list", "--project", "acme", "--json")).out) == listed

    hosts = app["services"][0]["hosts"]
    r = await berth("apps", "show", "acme/shop")
    assert r.out == (
        "name:     shop\n"
        f"id:       {app['id']}\n"
        "project:  acme/production\n"
        "source:   nginx:1.27\n"
        "state:    active\n"
        "live:     -\n"
        "env:      LOG_LEVEL=debug\n"
        f"urls:     http://{hosts[0]}/ http://shop.example.com/\n"
        "\n"
        "SERVICE  KIND  REPLICAS  PORT  HOSTS\n"
        f"web      web   1         80    {hosts[0]} shop.example.com\n"
    )
    detail = (await client.get(f"/v1/applications/{app['id']}", headers=admin)).json()
    shown = json.loads((await berth("apps", "show", app["id"], "--json")).out)
    assert shown == detail
    r = await berth("open", "shop", "--print")
    assert (r.code, r.out) == (0, f"http://{hosts[0]}/\n")


async def test_problems_show_title_and_field(logged_in):
    berth = logged_in
    assert (await berth("projects", "create", "acme")).code == 0
    r = await berth("apps", "create", "Shop!", "--project", "acme", "--image", "nginx:1.27")
    assert r.code == 1 and r.out == ""
    assert r.err == (
        "berth: Invalid request: The request has invalid fields: /body/name.\n"
        "  name: Value error, use 1-32 lowercase letters, digits or '-' (not at either end)\n"
    )

    await _make_app(berth)
    r = await berth("apps", "create", "shop", "--project", "acme", "--image", "nginx:1.27")
    assert r.code == 1 and r.err.startswith("berth: Conflict: ")
    r = await berth("apps", "show", "nope")
    assert (r.code, r.err) == (1, "berth: Not found: no application 'nope'\n")
    r = await berth("apps", "create", "x", "--project", "acme")
    assert r.code == 2 and "give one of --image, --git or --compose" in r.err


async def test_ambiguous_names_are_refused(logged_in):
    berth = logged_in
    for project in ("acme", "blog"):
        assert (await berth("projects", "create", project)).code == 0
        r = await berth("apps", "create", "web", "--project", project, "--image", "nginx:1.27", "--worker")
        assert r.code == 0, r
    r = await berth("apps", "show", "web")
    assert (r.code, r.err) == (
        1,
        "berth: Ambiguous name: several applications are named web: acme/production/web, "
        "blog/production/web; give one of these or the id\n",
    )
    r = await berth("apps", "show", "blog/production/web", "--json")
    assert r.code == 0 and json.loads(r.out)["name"] == "web"
    r = await berth("open", "acme/web", "--print")
    assert (r.code, r.out, r.err) == (1, "", "berth: No URL: web has no routed host\n")


async def test_env_set_unset_import_export_never_echo_secrets(logged_in, client, api, tmp_path):
    berth, admin = logged_in, bearer(api.admin_token())
    assert (await berth("projects", "create", "acme")).code == 0
    app = await _make_app(berth, "--env", "LOG_LEVEL=debug")
    r = await berth("env", "set", "shop", "API_KEY=s3cr3t-value", "--secret")
    assert (r.code, r.out) == (0, "Set API_KEY (secret) on shop; it applies at the next deployment\n")
    r = await berth("env", "set", "shop", "DB_PASSWORD", "--secret", input="pr0mpted-value\n")
    assert r.code == 0 and "pr0mpted-value" not in r.out + r.err
    r = await berth("env", "set", "shop", "PIPED=-", "--secret", input="p1ped-value\n")
    assert (r.code, r.out) == (0, "Set PIPED (secret) on shop; it applies at the next deployment\n")
    revealed = await client.get(
        f"/v1/applications/{app['id']}/variables/export", params={"reveal_secrets": "true"}, headers=admin
    )
    assert "PIPED=p1ped-value" in revealed.text
    r = await berth("env", "unset", "shop", "PIPED")
    assert r.out == "Unset PIPED on shop; it applies at the next deployment\n"
    r = await berth("env", "set", "shop", "MODE=prod", "LOG_LEVEL=info")
    assert r.out == "Set MODE, LOG_LEVEL on shop; it applies at the next deployment\n"
    r = await berth("env", "list", "shop")
    assert r.out == (
        "NAME         VALUE  SECRET\n"
        "API_KEY      ***    yes\n"
        "DB_PASSWORD  ***    yes\n"
        "MODE         prod   no\n"
        "LOG_LEVEL    info   no\n"
    )
    env = (await client.get(f"/v1/applications/{app['id']}", headers=admin)).json()["env"]
    assert json.loads((await berth("env", "list", "shop", "--json")).out) == env
    # The secrets kept their values through the later changes (sent back as null).
    exported = await client.get(
        f"/v1/applications/{app['id']}/variables/export", params={"reveal_secrets": "true"}, headers=admin
    )
    assert "API_KEY=s3cr3t-value" in exported.text and "DB_PASSWORD=pr0mpted-value" in exported.text

    r = await berth("env", "unset", "shop", "MODE", "NOPE")
    assert (r.out, r.err) == ("Unset MODE on shop; it applies at the next deployment\n", "Not set: NOPE\n")

    dotenv = tmp_path / "prod.env"
    dotenv.write_text("# prod\nFEATURE=on\nexport REGION='eu west'\n")
    r = await berth("env", "import", "shop", str(dotenv))
    assert (r.code, r.out) == (0, f"Imported {dotenv} into shop; it applies at the next deployment\n")
    r = await berth("env", "export", "shop")
    expected = await client.get(f"/v1/applications/{app['id']}/variables/export", headers=admin)
    assert r.code == 0 and r.out == expected.text
    assert "FEATURE=on" in r.out and "s3cr3t-value" not in r.out and "pr0mpted-value" not in r.out
    r = await berth("env", "export", "shop", "--reveal-secrets")
    assert "API_KEY=s3cr3t-value" in r.out


async def test_status_scale_and_deployments(logged_in, client, api, scheduler):
    berth, admin = logged_in, bearer(api.admin_token())
    assert (await berth("projects", "create", "acme")).code == 0
    app = await _make_app(berth)
    r = await berth("status", "shop")
    assert (r.code, r.out) == (0, "shop: not deployed\n")
    r = await berth("scale", "shop", "web=3")
    assert r.code == 1 and r.err.startswith("berth: Conflict: ")

    r = await berth("deploy", "shop", "--detach", "--json")
    dep = json.loads(r.out)
    start = (await scheduler.wait_for("cmd.deployment.start"))[0]
    await scheduler.run_to_success(start)
    for _ in range(100):
        got = (await client.get(f"/v1/deployments/{dep['id']}", headers=admin)).json()
        if got["status"] == "succeeded":
            break
        await asyncio.sleep(0.05)
    scheduler.set_replicas(app["id"], dep["id"], [("running", "ready"), ("running", "unready")])
    r = await berth("status", "acme/shop")
    c = f"berth-x-web-{dep['id'][:8]}"
    assert r.out == (
        "shop: live #1 (nginx:1.27)\n"
        "latest deployment: #1 succeeded (succeeded)\n"
        "\n"
        "SERVICE  REPLICA  STATE    HEALTH   RESTARTS  CONTAINER\n"
        f"web      1        running  ready    0         {c}-1\n"
        f"web      2        running  unready  0         {c}-2\n"
    )
    assert r.out == (await berth("apps", "status", "shop")).out
    status = json.loads((await berth("status", "shop", "--json")).out)
    assert status["live"]["deployment_id"] == dep["id"] and len(status["runtime"]["replicas"]) == 2

    r = await berth("apps", "deployments", "shop")
    got = (await client.get(f"/v1/deployments/{dep['id']}", headers=admin)).json()
    assert r.out == (
        "NUMBER  KIND    STATUS     STEP       IMAGE       CREATED              ID\n"
        f"#1      deploy  succeeded  succeeded  nginx:1.27  {_when(got['created_at'])}  {dep['id']}\n"
    )
    r = await berth("scale", "shop", "web=3", "--reason", "sale")
    assert (r.code, r.out) == (0, "Scaling shop: web=3\n")
    r = await berth("scale", "shop", "web=lots")
    assert r.code == 2 and "COUNT is a number" in r.err
