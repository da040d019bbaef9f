"""``berth templates`` against the real api: the catalogue listed and searched (exact text and --json as the
api answers), a template shown, a Coolify template imported into a Berth document, and catalogue templates
deployed into a project's environment as compose applications (generated hosts, the domain given); the
api's problems (a variable the template does not have) shown as their title and field."""

from __future__ import annotations

import json

from berth_cli.client.output import table
from tests.api.conftest import bearer


async def test_the_catalogue_is_listed_searched_and_shown(logged_in, client, api):
    berth, admin = logged_in, bearer(api.admin_token())
    catalogue = (await client.get("/v1/templates", headers=admin)).json()
    assert len(catalogue) >= 30
    r = await berth("templates", "list")
    rows = [[t["slug"], t["name"], ",".join(t["tags"]), t["description"]] for t in catalogue]
    assert (r.code, r.out) == (0, table(["SLUG", "NAME", "TAGS", "DESCRIPTION"], rows) + "\n")
    assert r.out.splitlines()[0].split() == ["SLUG", "NAME", "TAGS", "DESCRIPTION"]
    assert len(r.out.splitlines()) == len(catalogue) + 1

    found = (await client.get("/v1/templates", params={"q": "analytics"}, headers=admin)).json()
    assert "plausible" in [t["slug"] for t in found] and len(found) < len(catalogue)
    assert json.loads((await berth("templates", "search", "analytics", "--json")).out) == found
    r = await berth("templates", "search", "analytics")
    assert [line.split()[0] for line in r.out.splitlines()[1:]] == [t["slug"] for t in found]
    tagged = (await client.get("/v1/templates", params={"tag": "database"}, headers=admin)).json()
    assert json.loads((await berth("templates", "list", "--tag", "database", "--json")).out) == tagged

    env = {"_BERTH_COMPLETE": "complete_bash", "COMP_WORDS": "berth templates deploy p", "COMP_CWORD": "3"}
    offered = (await berth(env=env)).out.split()
    assert offered == sorted(t["slug"] for t in catalogue if t["slug"].startswith("p")) and "plausible" in offered

    t = (await client.get("/v1/templates/plausible", headers=admin)).json()
    r = await berth("templates", "show", "plausible")
    assert r.code == 0
    head, _, rest = r.out.partition("\n\n")
    assert head.splitlines()[:2] == [f"name:     {t['name']}", "slug:     plausible"]
    variables, _, compose = rest.partition("\nCompose file:\n")
    assert [line.split()[0] for line in variables.splitlines()] == ["VARIABLE", *t["variables"]]
    assert compose == t["compose"]
    assert (await berth("templates", "show", "plausible", "--document")).out == t["document"]
    r = await berth("templates", "show", "nope")
    assert (r.code, r.err) == (1, "berth: Not found: No template 'nope' in the catalogue.\n")


async def test_a_template_is_deployed_into_a_project(logged_in, client, api, tmp_path):
    berth, admin = logged_in, bearer(api.admin_token())
    assert (await berth("projects", "create", "acme")).code == 0
    r = await berth(
        "templates", "deploy", "plausible", "-p", "acme", "--name", "stats", "--domain", "stats.example.com"
    )
    assert r.code == 0, r
    (app,) = (await client.get("/v1/applications", headers=admin)).json()
    web = [s for s in app["services"] if s["kind"] == "web"]
    hosts = " ".join(h for s in web for h in s["hosts"])
    urls = " ".join(f"http://{h}{s.get('path_prefix') or '/'}" for s in web for h in s["hosts"])
    services = ", ".join(f"{s['name']} ({s['kind']})" for s in app["services"])
    assert r.out == (
        f"Created application stats ({app['id']}): {services}\nURLs: {urls}\nDeploy it with: berth deploy {app['id']}\n"
    )
    assert "stats.example.com" in hosts and app["compose"]["inline"]
    assert any(v["secret"] for v in app["env"])  # generated secrets, never shown
    r = await berth("apps", "show", "stats")
    table_head = r.out.split("\n\n")[1].splitlines()[0].split()
    assert r.code == 0 and table_head == ["SERVICE", "KIND", "REPLICAS", "PORT", "PATH", "HOSTS", "IMAGE"]
    assert "stats.example.com" in r.out

    r = await berth("templates", "deploy", "plausible", "-p", "acme", "--name", "x", "--var", "nope=1")
    assert (r.code, r.out) == (1, "")
    assert r.err.endswith("\n  variables.nope: not a variable of this template\n"), r.err

    coolify = tmp_path / "hello.yaml"
    coolify.write_text(
        "# documentation: https://example.com\n# slogan: Hello\nservices:\n  web:\n    image: nginx:1.27\n"
    )
    r = await berth("templates", "import", str(coolify), "--format", "coolify")
    assert r.code == 0, r
    document = tmp_path / "hello.yml"
    document.write_text(r.out)
    r = await berth("templates", "deploy", "-f", str(document), "-p", "acme", "--name", "hello", "--json")
    assert r.code == 0, r
    assert json.loads(r.out)["name"] == "hello"
    assert [s["name"] for s in json.loads(r.out)["services"]] == ["web"]
