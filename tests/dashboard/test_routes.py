"""A compose application's routes on its dashboard page, as plain HTTP (no browser) against the module's
api: listed with their path prefixes; a route set from the form (service, port, host, path) reaches the
application's hosts through the REST API, and one of the same service and host is changed in place; a bad
path is the REST API's 422 shown on the page, the field marked and what was typed kept; a route removed;
a viewer gets no form and the server refuses the post."""

from __future__ import annotations

import re

import httpx

from tests.api.conftest import bearer
from tests.dashboard.test_history import _csrf, _signed_in

STACK = (
    "services:\n"
    "  front:\n    image: nginx:1.27\n    expose: ['80']\n"
    "  api:\n    image: registry.example.com/acme/api:1.4\n    expose: ['8080']\n"
)


async def _compose_app(dashboard, name: str) -> dict:
    async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(dashboard.admin)) as admin:
        projects = (await admin.get("/v1/projects")).json()
        project = projects[0] if projects else (await admin.post("/v1/projects", json={"name": "acme"})).json()
        body = {"name": name, "compose": {"inline": STACK}, "hosts": [{"service": "front", "port": 80}]}
        r = await admin.post(f"/v1/environments/{project['environments'][0]['id']}/applications", json=body)
        assert r.status_code == 201, r.text
        return r.json()


async def _hosts(dashboard, app_id: str) -> list[dict]:
    async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(dashboard.admin)) as admin:
        return (await admin.get(f"/v1/applications/{app_id}")).json()["compose"]["hosts"]


def _rows(html: str) -> list[list[str]]:
    """The routes table's cells, as text."""
    section = html.split('<h2 id="routes">', 1)[1].split("</table>", 1)[0]
    body = section.split("<tbody>", 1)[1]
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    return [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td>(.*?)</td>", r, re.S)][:4] for r in rows]


async def test_a_route_with_a_path_is_set_changed_refused_and_removed(dashboard):
    app = await _compose_app(dashboard, "routed")
    url = f"/ui/applications/{app['id']}"
    async with _signed_in(dashboard, dashboard.developer) as http:
        page = (await http.get(url)).text
        assert _rows(page) == [["front", "80", "generated", "/"]]
        assert '<label for="route-path">Path prefix (empty: /)</label>' in page
        csrf = _csrf(page)

        route = {"service": "api", "port": "8080", "host": "shop.example.com", "path": "/api"}
        r = await http.post(url + "/routes", data={"csrf": csrf, **route})
        assert (r.status_code, r.headers["location"]) == (303, url + "#routes"), r.text
        assert await _hosts(dashboard, app["id"]) == [
            {"service": "front", "port": 80},
            {"service": "api", "port": 8080, "host": "shop.example.com", "path": "/api"},
        ]
        page = (await http.get(url)).text
        assert _rows(page) == [["front", "80", "generated", "/"], ["api", "8080", "shop.example.com", "/api"]]
        assert "shop.example.com/api" in page  # the services table shows the service's hosts with its path

        r = await http.post(url + "/routes", data={"csrf": csrf, **route, "path": "/v2"})  # the same service and host
        assert r.status_code == 303, r.text
        assert (await _hosts(dashboard, app["id"]))[1] == {
            "service": "api",
            "port": 8080,
            "host": "shop.example.com",
            "path": "/v2",
        }

        r = await http.post(url + "/routes", data={"csrf": csrf, **route, "path": "v3/../x"})
        assert r.status_code == 200, r.text
        shown = r.text
        assert 'role="alert"' in shown and "<code>hosts.1.path</code>" in shown
        field = re.search(r'<input id="route-path"[^>]*>', shown)
        assert field is not None
        assert 'value="v3/../x"' in field.group(0) and 'aria-invalid="true"' in field.group(0)
        message = re.search(r'<p id="route-path-error" class="field-error">([^<]*)</p>', shown)
        assert message is not None and "starts with &#39;/&#39;" in message.group(1), shown
        assert 'value="shop.example.com"' in re.search(r'<input id="route-host"[^>]*>', shown).group(0)
        assert "aria-invalid" not in re.search(r'<input id="route-host"[^>]*>', shown).group(0)
        assert (await _hosts(dashboard, app["id"]))[1]["path"] == "/v2"  # unchanged

        gone = {"service": "api", "port": "8080", "host": "shop.example.com", "path": "/v2"}
        r = await http.post(url + "/routes/remove", data={"csrf": csrf, **gone})
        assert r.status_code == 303, r.text
        assert await _hosts(dashboard, app["id"]) == [{"service": "front", "port": 80}]

    async with _signed_in(dashboard, dashboard.viewer) as http:
        page = (await http.get(url)).text
        assert _rows(page) == [["front", "80", "generated", "/"]] and 'id="route-path"' not in page
        r = await http.post(url + "/routes", data={"csrf": _csrf(page), **route})
        assert r.status_code == 403, r.text
    assert await _hosts(dashboard, app["id"]) == [{"service": "front", "port": 80}]


async def test_an_application_of_services_has_no_routes_form(dashboard):
    async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(dashboard.admin)) as admin:
        env = (await admin.get("/v1/projects")).json()
        project = env[0] if env else (await admin.post("/v1/projects", json={"name": "acme"})).json()
        body = {
            "name": "plain",
            "source": {"kind": "image", "image": "nginx:1.27"},
            "services": [{"kind": "web", "name": "web", "port": 80}],
        }
        app = (await admin.post(f"/v1/environments/{project['environments'][0]['id']}/applications", json=body)).json()
    async with _signed_in(dashboard, dashboard.developer) as http:
        page = (await http.get(f"/ui/applications/{app['id']}")).text
        assert 'id="routes"' not in page and 'id="var-name"' in page
