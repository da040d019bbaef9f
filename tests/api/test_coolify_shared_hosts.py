"""Coolify templates that name one host twice, as Coolify routes them: fileflows (two domain variables of one
service at one port: one route, both variables its host), twenty (one URL declared by its web service and
its worker: the host goes to the service the name names, the worker reads the value) and mindsdb (a path
declared at a port that does not speak HTTP: the path of the service's routed port, as Coolify routes it).
Each one imports, plans, translates and claims its hosts as ``POST /v1/templates/deploy`` does."""

from __future__ import annotations

import asyncio
from typing import Any

from berth_api.adapters.compose_parser import normalise
from berth_api.domain import host_claims
from berth_api.domain.compose import HostMap, precheck, translate
from berth_api.domain.templates.coolify import import_coolify
from berth_api.usecases.templates import plan_deploy
from tests.api.conftest import make_project

FILEFLOWS = """# port: 5000
services:
  fileflows:
    image: revenz/fileflows
    environment:
      - SERVICE_URL_FILEFLOWS_5000
      - _APP_URL=$SERVICE_URL_FILE_FLOWS
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost:5000/api/system/version"]
"""

TWENTY = """# port: 3000
services:
  twenty:
    image: twentycrm/twenty:v1.15
    environment:
      - SERVICE_URL_TWENTY_3000
      - SERVER_URL=${SERVICE_URL_TWENTY}
    healthcheck:
      test: ["CMD", "curl", "-f", "http://127.0.0.1:3000/healthz"]
  worker:
    image: twentycrm/twenty:v1.15
    command: ["yarn", "worker:prod"]
    environment:
      - SERVICE_URL_TWENTY_3000
      - SERVER_URL=${SERVICE_URL_TWENTY}
    depends_on:
      twenty:
        condition: service_healthy
"""

MINDSDB = """# port: 47334
services:
  mindsdb:
    image: mindsdb/mindsdb:latest
    environment:
      - SERVICE_URL_MINDSDB_47334
      - SERVICE_URL_API_47335=/api
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost:47334/api/util/ping"]
"""

ENTE = """# port: 8080
services:
  museum:
    image: ghcr.io/ente-io/server:latest
    environment:
      - SERVICE_URL_MUSEUM_8080
      - ENTE_APPS_PUBLIC_ALBUMS=${SERVICE_URL_WEB_3002}
      - ENTE_APPS_ACCOUNTS=${SERVICE_URL_WEB_3001}
      - ENTE_PHOTOS_ORIGIN=${SERVICE_URL_WEB}
  web:
    image: ghcr.io/ente-io/web:latest
    environment:
      - SERVICE_URL_WEB_3000
"""


def _deployed(name: str, text: str) -> tuple[dict[str, Any], list[str], list[dict[str, Any]], dict[str, str]]:
    """(plan request, import notes, translated services, environment values) of a Coolify template."""
    imported = import_coolify(name, text)
    request = plan_deploy(imported.template, app="app", environment="production", base_domain="apps.test").request
    values = {e["name"]: e["value"] for e in request["env"]}
    found = asyncio.run(normalise(request["compose"]["inline"], values))
    hosts = [HostMap(h["service"], h["port"], h.get("host"), h.get("path")) for h in request["hosts"]]
    services = translate(found.model, precheck(request["compose"]["inline"]), hosts=hosts)["services"]
    host_claims.claims(services, "app", "production", "apps.test")  # raises a 422 for a host claimed twice
    return request, imported.notes, services, values


def _environment(service: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in service["environment"]}


def test_fileflows_two_domain_variables_of_one_port_are_one_route() -> None:
    """``SERVICE_URL_FILEFLOWS_5000`` and ``$SERVICE_URL_FILE_FLOWS`` (a name of no service) both route the
    service's port 5000: one host entry, and both URLs name that host (Coolify's second host is routed
    nowhere)."""
    request, _, services, values = _deployed("fileflows.yaml", FILEFLOWS)
    host = "fileflows-app-production.apps.test"
    assert request["hosts"] == [{"service": "fileflows", "port": 5000}]
    assert values == {
        "SERVICE_URL_FILEFLOWS_5000": f"https://{host}:5000",
        "SERVICE_URL_FILE_FLOWS": f"https://{host}",
    }
    (svc,) = services
    assert (svc["kind"], svc["port"], svc["domains"], svc.get("port_hosts")) == ("web", 5000, [], None)
    assert _environment(svc)["_APP_URL"] == f"https://{host}"


def test_twentys_url_declared_by_two_services_routes_the_service_it_names() -> None:
    """``SERVICE_URL_TWENTY_3000`` is declared by ``twenty`` and by its ``worker`` (which serves nothing):
    the host goes to ``twenty``; the worker reads the same URL and is not routed."""
    request, notes, services, _ = _deployed("twenty.yaml", TWENTY)
    host = "https://twenty-app-production.apps.test"
    assert request["hosts"] == [{"service": "twenty", "port": 3000}]
    assert (
        "SERVICE_URL_TWENTY: declared by worker too; Coolify gives it the same host, Berth routes / of that host "
        "to twenty only (worker reads the value)"
    ) in notes
    kinds = {s["name"]: (s["kind"], _environment(s)["SERVER_URL"]) for s in services}
    assert kinds == {"twenty": ("web", host), "worker": ("worker", host)}


def test_mindsdbs_api_path_is_served_by_its_http_port() -> None:
    """``SERVICE_URL_API_47335=/api``: 47335 is MindsDB's MySQL protocol; Coolify routes the service by its
    first declaration only and gives the API the service's host plus ``/api``, served by 47334 (where the
    health check asks). Berth routes no second port, so no readiness check speaks HTTP to the MySQL port."""
    request, notes, services, values = _deployed("mindsdb.yaml", MINDSDB)
    host = "mindsdb-app-production.apps.test"
    assert request["hosts"] == [{"service": "mindsdb", "port": 47334}]
    assert values == {  # Coolify's URLs name the port (as Coolify writes them)
        "SERVICE_URL_MINDSDB_47334": f"https://{host}:47334",
        "SERVICE_URL_API_47335": f"https://{host}:47335/api",
    }
    assert (
        "SERVICE_FQDN_API: /api of mindsdb is routed to its port 47334, as Coolify routes it (port 47335 is not routed)"
        in notes
    )
    (svc,) = services
    assert (svc["port"], svc["health_path"], svc.get("port_hosts")) == (47334, "/api/util/ping", None)


async def test_fileflows_and_twenty_create_their_applications(client, members):
    """Both deploy through the API: the imported document creates the application, one host per route."""
    project = await make_project(client, members.developer)
    env = project["environments"][0]["id"]
    created = {}
    for name, text in (("fileflows", FILEFLOWS), ("twenty", TWENTY)):
        body = {"format": "coolify", "files": {f"{name}.yaml": text}}
        imported = await client.post("/v1/templates/import", headers=members.developer, json=body)
        assert imported.status_code == 200, imported.text
        document = imported.json()["template"]["document"]
        r = await client.post(
            "/v1/templates/deploy", headers=members.developer, json={"environment_id": env, "document": document}
        )
        assert r.status_code == 201, r.text
        app = r.json()
        created[name] = (app["compose"]["hosts"], {s["name"]: (s["kind"], s.get("hosts", [])) for s in app["services"]})
    assert created == {
        "fileflows": (
            [{"service": "fileflows", "port": 5000}],
            {"fileflows": ("web", ["fileflows-fileflows-production.localhost"])},
        ),
        "twenty": (
            [{"service": "twenty", "port": 3000}],
            {"twenty": ("web", ["twenty-twenty-production.localhost"]), "worker": ("worker", [])},
        ),
    }


def test_one_name_declared_at_two_ports_routes_each_service_at_its_own() -> None:
    """Huly's ``account`` declares ``SERVICE_URL_HULY_3000`` and its ``front`` ``SERVICE_URL_HULY_8080``: one
    host and path goes to one service (the one named ``huly``, else the first declaring it), at the port that
    service declares."""
    text = """services:
  account:
    image: hardcoreeng/account:v0.6.246
    environment: [SERVICE_URL_HULY_3000]
  front:
    image: hardcoreeng/front:v0.6.246
    environment: [SERVICE_URL_HULY_8080]
"""
    imported = import_coolify("huly.yaml", text)
    routes = [(r.service, r.port) for v in imported.template.variables for r in v.routes]
    assert routes == [("account", 3000)]
    named = text.replace("front:", "huly:")  # the service the name names, at the port it declares
    routes = [(r.service, r.port) for v in import_coolify("huly.yaml", named).template.variables for r in v.routes]
    assert routes == [("huly", 8080)]
    two = text.replace("SERVICE_URL_HULY_3000", "SERVICE_URL_OTHER_3000")
    routes = [(r.service, r.port) for v in import_coolify("huly.yaml", two).template.variables for r in v.routes]
    assert routes == [("front", 8080), ("account", 3000)]


def test_entes_referenced_ports_are_hosts_of_their_own_routed_to_their_port() -> None:
    """ente's museum reads ``${SERVICE_URL_WEB_3002}`` (its albums app) and ``_3001`` (accounts), which no
    service declares (web declares ``SERVICE_URL_WEB_3000``). Coolify's magic-variable loop gives such a name
    a host of its own, ``web-3002-<uuid>``, with no ``:port``, and routes it nowhere; Berth makes it that
    port's host of web, routed to the port the name gives. A declared name keeps Coolify's ``:<port>``."""
    request, notes, services, values = _deployed("ente-photos.yaml", ENTE)
    assert request["hosts"] == [
        {"service": "museum", "port": 8080},
        {"service": "web", "port": 3000},
        {"service": "web", "port": 3001},
        {"service": "web", "port": 3002},
    ]
    assert values == {
        "SERVICE_URL_MUSEUM_8080": "https://museum-app-production.apps.test:8080",
        "SERVICE_URL_WEB": "https://web-app-production.apps.test",
        "SERVICE_URL_WEB_3000": "https://web-app-production.apps.test:3000",
        "SERVICE_URL_WEB_3001": "https://web-3001-app-production.apps.test",
        "SERVICE_URL_WEB_3002": "https://web-3002-app-production.apps.test",
    }
    museum, web = services
    assert {e["name"]: e["value"] for e in museum["environment"] if e["name"].startswith("ENTE_")} == {
        "ENTE_APPS_ACCOUNTS": "https://web-3001-app-production.apps.test",
        "ENTE_APPS_PUBLIC_ALBUMS": "https://web-3002-app-production.apps.test",
        "ENTE_PHOTOS_ORIGIN": "https://web-app-production.apps.test",
    }
    assert (web["port"], web["port_hosts"]) == (
        3000,
        [{"port": 3001, "hosts": [], "generated": True}, {"port": 3002, "hosts": [], "generated": True}],
    )
    assert (
        "SERVICE_URL_WEB_3002: referenced, declared by no service; Coolify gives it a host of its own and routes "
        "it nowhere, Berth routes it to web's port 3002"
    ) in notes
