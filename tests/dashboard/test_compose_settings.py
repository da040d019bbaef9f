"""A compose application's profiles and placement on the dashboard, as plain HTTP (no browser) against the
module's api: the new compose application's page reads the services of the pasted file into placement rows
(the team's servers to tick) and creates the application with its profiles and placement, which the REST
API then shows; the application page lists them and changes them (the stored file and its sealed files sent
again with the new profiles; the placement as ticked). The REST API's refusals (a profile name, a profile
twice, a service the file does not deploy, a server being drained) are drawn next to the field they name,
marked ``aria-invalid``, with what was typed kept. A viewer gets no form and a forged post is refused. The
form's fields and the problem's mapping are checked on their own too."""

from __future__ import annotations

import html as html_text
import re
from typing import Any

import httpx
import pytest

from berth_api.dashboard import compose_fields as cf
from berth_api.dashboard.client import items
from tests.api.conftest import bearer
from tests.api.test_placement_api import _server
from tests.dashboard.test_history import _csrf, _signed_in

STACK = (
    "services:\n"
    "  front:\n    image: nginx:1.27\n    expose: ['80']\n"
    "  my_api:\n    image: registry.example.com/acme/api:1.4\n"
    "  debug:\n    image: busybox:1.36\n    profiles: [debug]\n"
    "  tools:\n    image: alpine:3.20\n    profiles: [tools, ops]\n"
)
FILE_SECRET = "file-content-s3cr3t-0451"


async def _admin_get(dashboard, path: str) -> Any:
    async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(dashboard.admin)) as admin:
        r = await admin.get(path)
        assert r.status_code == 200, r.text
        return r.json()


async def _environment(dashboard) -> str:
    async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(dashboard.admin)) as admin:
        projects = (await admin.get("/v1/projects")).json()
        project = projects[0] if projects else (await admin.post("/v1/projects", json={"name": "acme"})).json()
        return str(project["environments"][0]["id"])


async def _app_names(dashboard) -> list[str]:
    return [a["name"] for a in items(await _admin_get(dashboard, "/v1/applications"))]


@pytest.fixture(scope="module")
async def servers(dashboard) -> dict[str, str]:
    """Two ready servers and one being drained, in the admin's team: name -> id."""
    team = (await _admin_get(dashboard, "/v1/me"))["team"]["name"]
    made = {}
    for name, state in (("edge-a", "ready"), ("edge-b", "ready"), ("edge-d", "draining")):
        made[name] = await _server(dashboard.identities, name, team=team, state=state)
    return made


def _field(html: str, field_id: str) -> str:
    found = re.search(rf'<(?:input|textarea)[^>]*id="{re.escape(field_id)}"[^>]*>', html)
    assert found is not None, f"no field {field_id}"
    return found.group(0)


def _error(html: str, error_id: str) -> str:
    found = re.search(rf'<p id="{re.escape(error_id)}" class="field-error">([^<]*)</p>', html)
    assert found is not None, f"no error {error_id}"
    return html_text.unescape(found.group(1))


def _legends(html: str) -> list[str]:
    legends = re.findall(r"<legend>(.*?)</legend>", html, re.S)
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", g)).strip() for g in legends]


async def test_a_compose_application_is_created_with_profiles_and_a_placement(dashboard, servers):
    env = await _environment(dashboard)
    url = f"/ui/environments/{env}/compose"
    async with _signed_in(dashboard, dashboard.developer) as http:
        overview = (await http.get("/ui/")).text
        assert f'href="{url}"' in overview
        page = (await http.get(url)).text
        assert '<label for="c-compose">Compose file (YAML)</label>' in page and 'id="no-rows"' in page
        csrf = _csrf(page)

        # read the services: a row for each, every team server (and local) to tick
        r = await http.post(url, data={"csrf": csrf, "name": "stack", "compose": STACK, "step": "read"})
        assert r.status_code == 200, r.text
        assert _legends(r.text)[1:] == [
            "Servers of front",
            "Servers of my_api",
            "Servers of debug (profiles debug)",
            "Servers of tools (profiles tools, ops)",
        ]
        assert 'name="place.1.on.local"' in r.text and f'name="place.1.on.{servers["edge-b"]}"' in r.text
        assert 'value="stack"' in _field(r.text, "c-name") and "my_api:" in r.text  # what was typed, kept

        # refused: a profile that is no name, the debug service (its profile not active) placed, a drained server
        form = {
            "csrf": csrf,
            "name": "stack",
            "compose": STACK,
            "profile.0": "",
            "profile.1": "-x",
            **{f"place.{i}.service": s for i, s in enumerate(("front", "my_api", "debug", "tools"))},
            f"place.0.on.{servers['edge-d']}": "on",
            "place.2.on.local": "on",
        }
        r = await http.post(url, data=form)
        assert r.status_code == 200 and 'role="alert"' in r.text, r.text
        assert 'aria-invalid="true"' in _field(r.text, "profile-1")  # the input it was typed in (the blank one skipped)
        assert _error(r.text, "profile-1-error").startswith("compose.profiles.0: String should match pattern")
        assert 'value="-x"' in _field(r.text, "profile-1")
        assert "aria-invalid" not in _field(r.text, "profile-0")
        assert "stack" not in await _app_names(dashboard)

        form["profile.1"] = "debug"
        r = await http.post(url, data=form)
        assert r.status_code == 200 and 'role="alert"' in r.text, r.text
        assert (
            _error(r.text, "place-0-error")
            == "placement.0.servers.0: the server edge-d is being drained: no new replicas are placed on it"
        )
        assert 'checked aria-invalid="true"' in _field(r.text, f"place-0-{servers['edge-d']}")
        assert 'id="place-2-error"' not in r.text  # debug is deployed once its profile is active

        del form[f"place.0.on.{servers['edge-d']}"]
        form |= {f"place.0.on.{servers['edge-a']}": "on", f"place.0.on.{servers['edge-b']}": "on"}
        form |= {"place.3.on.local": "on"}  # tools: its profiles are not active
        r = await http.post(url, data=form)
        assert _error(r.text, "place-3-error") == "placement.2.service: the compose file deploys no service 'tools'"

        del form["place.3.on.local"]
        r = await http.post(url, data=form)
        assert r.status_code == 303, r.text
        app_id = r.headers["location"].rsplit("/", 1)[1]

    app = await _admin_get(dashboard, f"/v1/applications/{app_id}")
    assert app["compose"]["profiles"] == ["debug"]
    assert app["compose"]["placement"] == [
        {"service": "front", "servers": [servers["edge-a"], servers["edge-b"]]},
        {"service": "debug", "servers": ["local"]},
    ]
    assert [(s["name"], s.get("servers")) for s in app["services"]] == [
        ("front", [servers["edge-a"], servers["edge-b"]]),
        ("my-api", None),
        ("debug", ["local"]),
    ]


async def test_the_application_page_changes_profiles_and_placement(dashboard, servers):
    env = await _environment(dashboard)
    body = {
        "name": "shown",
        "compose": {"inline": STACK, "files": [{"path": "conf/app.ini", "content": FILE_SECRET}]},
        "placement": [{"service": "my_api", "servers": ["edge-a"]}],
    }
    async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(dashboard.admin)) as admin:
        r = await admin.post(f"/v1/environments/{env}/applications", json=body)
        assert r.status_code == 201, r.text
        made = r.json()
    url = f"/ui/applications/{made['id']}"
    sha = made["compose"]["files"][0]["sha256"]
    async with _signed_in(dashboard, dashboard.developer) as http:
        page = (await http.get(url)).text
        assert FILE_SECRET not in page
        assert "No profile activated." in page
        assert "services/debug: not deployed: it has profiles [debug]" in page
        assert _placed_rows(page) == [["my_api", "edge-a"]]
        assert _legends(page) == ["Profiles to activate", "Servers of front", "Servers of my_api"]
        assert "checked" in _field(page, f"place-1-{servers['edge-a']}")
        csrf = _csrf(page)

        r = await http.post(url + "/profiles", data={"csrf": csrf, "profile.0": "ops", "profile.1": "ops"})
        assert r.status_code == 200 and 'role="alert"' in r.text, r.text
        assert _error(r.text, "profiles-error") == "compose: Value error, profiles: each profile once"
        assert 'value="ops"' in _field(r.text, "profile-1")

        r = await http.post(url + "/profiles", data={"csrf": csrf, "profile.0": "ops", "profile.1": "debug"})
        assert (r.status_code, r.headers["location"]) == (303, url + "#profiles"), r.text
        got = await _admin_get(dashboard, f"/v1/applications/{made['id']}")
        assert got["compose"]["profiles"] == ["ops", "debug"]
        assert [s["name"] for s in got["services"]] == ["front", "my-api", "debug", "tools"]
        assert [(f["path"], f["sha256"]) for f in got["compose"]["files"]] == [("conf/app.ini", sha)]  # kept
        assert got["compose"]["inline"] == STACK

        page = (await http.get(url)).text
        assert "Activated: <code>ops</code>, <code>debug</code>." in page
        assert _legends(page)[1:] == [
            "Servers of front",
            "Servers of my_api",
            "Servers of debug (profiles debug)",
            "Servers of tools (profiles tools, ops)",
        ]
        fields = {
            "csrf": csrf,
            **{f"place.{i}.service": s for i, s in enumerate(("front", "my_api", "debug", "tools"))},
        }
        fields |= {f"place.1.on.{servers['edge-d']}": "on"}
        r = await http.post(url + "/placement", data=fields)
        assert r.status_code == 200, r.text
        assert _error(r.text, "place-1-error").startswith("placement.0.servers.0: the server edge-d is being drained")
        assert "checked" in _field(r.text, f"place-1-{servers['edge-d']}")  # as ticked, not as stored
        assert "checked" not in _field(r.text, f"place-1-{servers['edge-a']}")

        del fields[f"place.1.on.{servers['edge-d']}"]
        fields |= {f"place.3.on.{servers['edge-b']}": "on", "place.3.on.local": "on", "place.1.on.local": "on"}
        r = await http.post(url + "/placement", data=fields)
        assert (r.status_code, r.headers["location"]) == (303, url + "#placement"), r.text
        got = await _admin_get(dashboard, f"/v1/applications/{made['id']}")
        assert got["compose"]["placement"] == [
            {"service": "my_api", "servers": ["local"]},
            {"service": "tools", "servers": [servers["edge-b"], "local"]},
        ]
        page = (await http.get(url)).text
        assert _placed_rows(page) == [["my_api", "local"], ["tools", "edge-b, local"]]

        r = await http.post(url + "/profiles", data={"csrf": csrf})  # none: the profiled services are not deployed
        assert r.status_code == 200, r.text  # tools is placed: refused at its row
        assert _error(r.text, "place-3-error") == "placement.1.service: the compose file deploys no service 'tools'"
        assert [s["name"] for s in (await _admin_get(dashboard, f"/v1/applications/{made['id']}"))["services"]] == [
            "front",
            "my-api",
            "debug",
            "tools",
        ]

    async with _signed_in(dashboard, dashboard.viewer) as http:
        page = (await http.get(url)).text
        assert _placed_rows(page) == [["my_api", "local"], ["tools", "edge-b, local"]]
        assert 'id="profile-0"' not in page and "place.0.service" not in page
        for path in ("/profiles", "/placement"):
            r = await http.post(url + path, data={"csrf": _csrf(page), "place.0.service": "front"})
            assert r.status_code == 403 and "This needs the developer role" in r.text, r.text
        r = await http.get(f"/ui/environments/{env}/compose")
        assert r.status_code == 200 and "needs the developer role" in r.text and 'name="compose"' not in r.text
    assert (await _admin_get(dashboard, f"/v1/applications/{made['id']}"))["compose"]["placement"][0] == {
        "service": "my_api",
        "servers": ["local"],
    }


def _placed_rows(html: str) -> list[list[str]]:
    section = html.split('<h2 id="placement">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", section.split("<tbody>", 1)[1], re.S)
    return [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)] for r in rows]


def test_the_forms_fields_become_the_bodies_and_the_problems_their_fields():
    typed = cf.given(
        {
            "csrf": "x",
            "profile.1": " ops ",
            "profile.0": "",
            "profile.2": "debug",
            "place.1.service": "api",
            "place.1.on.local": "on",
            "place.1.on.abc": "on",
            "place.0.service": "web",
            "place.2.service": "",  # no service: not a row
            "place.2.on.local": "on",
            "place.0.on.zzz": "off",  # only a ticked box counts
        }
    )
    assert typed.profiles == ["", "ops", "debug"]
    assert typed.profiles_body() == (["ops", "debug"], [1, 2])
    assert [(r.service, r.servers) for r in typed.rows] == [("web", []), ("api", ["local", "abc"])]
    assert typed.placement_body() == ([{"service": "api", "servers": ["local", "abc"]}], ["api"])
    errors = cf.errors_of(
        {
            "compose.profiles.1": "bad",
            "placement.0.servers.1": "no server",
            "compose.services.web.ports": "taken",
            "name": "taken",
        },
        [1, 2],
        ["api"],
    )
    assert errors == cf.Errors(
        profiles={2: "compose.profiles.1: bad"},
        rows={"api": "placement.0.servers.1: no server"},
        compose="compose.services.web.ports: taken",
    )
    assert cf.errors_of({"compose": "Value error, profiles: each profile once"}, [], []).all_profiles
    assert cf.profile_inputs(["a"]) == ["a", "", ""] and len(cf.profile_inputs(["p"] * 40)) == 40


def test_rows_come_from_the_pasted_file_and_from_the_application():
    rows, why = cf.rows_of_file(STACK)
    assert (why, [(r.service, r.profiles) for r in rows]) == (
        "",
        [("front", []), ("my_api", []), ("debug", ["debug"]), ("tools", ["tools", "ops"])],
    )
    assert cf.rows_of_file("services: [")[0] == []
    assert cf.rows_of_file("services: [")[1].startswith("compose.inline: ")
    assert cf.rows_of_file("name: x\n") == ([], "the file has no services")
    app = {
        "services": [{"name": "front"}, {"name": "my-api"}, {"name": "debug"}],
        "compose": {
            "inline": STACK,
            "placement": [{"service": "debug", "servers": ["s1"]}, {"service": "gone", "servers": ["s2"]}],
        },
    }
    rows = cf.rows_of_app(app)  # named as the file names them; the entry of no service deployed last
    assert [(r.service, r.servers, r.profiles) for r in rows] == [
        ("front", [], []),
        ("my_api", [], []),
        ("debug", ["s1"], ["debug"]),
        ("gone", ["s2"], []),
    ]
    kept = cf.kept(rows, [cf.Row("front", ["s3"]), cf.Row("debug", [])])  # as ticked: debug on none
    assert [(r.service, r.servers) for r in kept] == [
        ("front", ["s3"]),
        ("my_api", []),
        ("debug", []),
        ("gone", ["s2"]),
    ]
    stored = {"inline": STACK, "profiles": ["x"], "files": [{"path": "a.ini", "mode": 420, "size": 3, "sha256": "f"}]}
    assert cf.compose_body(stored, ["debug"]) == {"inline": STACK, "profiles": ["debug"], "files": [{"path": "a.ini"}]}
    assert cf.compose_body({"path": "deploy/compose.yml"}, []) == {"path": "deploy/compose.yml", "profiles": []}
