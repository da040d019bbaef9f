"""A template deployed through the REST API on the real processes of `berth up`: its secrets generated,
carried by name through the compose translation and rendered into the containers' environment only (a
password inside a connection URL included), and its web service served through Traefik on its host. The
template is a document as the import answers it (``POST /v1/templates/deploy``), made of local images."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from tests.e2e.conftest import Platform
from tests.e2e.test_deploy_flow import wait_deployment
from tests.support.images import busybox_image

pytestmark = pytest.mark.slow

WEB = (
    'mkdir -p /www && printf %s \\"$$DATABASE_URL\\" > /www/url.txt && printf %s \\"$$API_KEY\\" > /www/key.txt '
    "&& echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"
)


def document(image: str) -> str:
    return f"""name: Secret stack
slug: secret-stack
description: A web service reading its database through a URL that holds a generated password.
tags: [test]
variables:
  host: {{kind: domain, service: web, port: 8080}}
  db_password: {{kind: password, length: 24}}
  api_key: {{kind: hex, bytes: 16}}
compose: |
  services:
    web:
      image: {image}
      command: ["sh", "-c", "{WEB}"]
      environment:
        DATABASE_URL: postgres://app:${{var.db_password}}@db:5432/app
        API_KEY: ${{var.api_key}}
        PUBLIC_URL: https://${{var.host}}
      ports: ["8080"]
    db:
      image: {image}
      command: ["sh", "-c", "exec sleep 3600"]
      environment:
        POSTGRES_PASSWORD: ${{var.db_password}}
"""


@pytest.fixture(scope="module")
def platform(shared_platform: Platform) -> Platform:
    return shared_platform  # its project and applications are this file's own (tests/conftest.py)


def env_of(app_id: str, service: str) -> dict[str, str]:
    ids = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=berth.app={app_id}", "--filter", f"label=berth.service={service}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.split()
    assert len(ids) == 1, ids
    inspect = subprocess.run(["docker", "inspect", ids[0]], capture_output=True, text=True, timeout=30, check=True)
    return dict(item.split("=", 1) for item in json.loads(inspect.stdout)[0]["Config"]["Env"])


async def test_a_templates_generated_secrets_reach_its_containers_and_nothing_else(platform):
    token = platform.paths.admin_token.read_text().strip()
    api = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{platform.ports['api']}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    proxy = httpx.AsyncClient(base_url=f"http://127.0.0.1:{platform.ports['proxy']}", timeout=10)
    app_id = None
    try:
        r = await api.post("/v1/projects", json={"name": "tpl"})
        assert r.status_code == 201, r.text
        env_id = r.json()["environments"][0]["id"]
        body = {"environment_id": env_id, "name": "stack", "document": document(busybox_image())}
        r = await api.post("/v1/templates/deploy", json=body)
        assert r.status_code == 201, r.text
        app = r.json()
        app_id = app["id"]
        host = app["services"][0]["hosts"][0]
        r = await api.post(f"/v1/applications/{app_id}/deployments", json={"options": {"drain_grace_s": 0.5}})
        assert r.status_code == 202, r.text
        done = await wait_deployment(api, r.json()["id"])
        assert done["status"] == "succeeded", done.get("reason")

        password = env_of(app_id, "db")["POSTGRES_PASSWORD"]
        assert len(password) == 24
        web = env_of(app_id, "web")
        assert web["DATABASE_URL"] == f"postgres://app:{password}@db:5432/app"
        assert len(web["API_KEY"]) == 32 and web["PUBLIC_URL"] == f"https://{host}"
        served = await proxy.get("/url.txt", headers={"Host": host})
        assert served.status_code == 200 and served.text == web["DATABASE_URL"]

        shown = [
            (await api.get(f"/v1/applications/{app_id}")).text,
            (await api.get(f"/v1/deployments/{done['id']}")).text,
            (await api.get(f"/v1/applications/{app_id}/variables")).text,
        ]
        logs = "".join(p.read_text(errors="replace") for p in platform.paths.logs.glob("*.log"))
        for secret in (password, web["API_KEY"]):
            assert all(secret not in text for text in shown) and secret not in logs
    finally:
        if app_id:
            await api.delete(f"/v1/applications/{app_id}")
        await api.aclose()
        await proxy.aclose()


TWO_PORTS = (
    "mkdir -p /api /console && echo api > /api/index.html && echo console > /console/index.html "
    "&& httpd -p 9001 -h /console && exec httpd -f -p 8080 -h /api"
)


def two_ports(image: str) -> str:
    """MinIO's shape: one service, its API and its console on two ports, each a domain variable."""
    return f"""name: Two ports
slug: two-ports
description: One service serving its API and its console on two ports, each on a generated host.
tags: [test]
variables:
  api: {{kind: domain, service: store, port: 8080}}
  console: {{kind: domain, service: store, port: 9001}}
compose: |
  services:
    store:
      image: {image}
      command: ["sh", "-c", "{TWO_PORTS}"]
      environment:
        CONSOLE_URL: https://${{var.console}}
      expose: ["8080", "9001"]
"""


async def test_a_template_routes_two_ports_of_one_service_on_two_generated_hosts(platform):
    """The second domain variable of one service, at another port, is that port's own generated host: both
    hosts served through Traefik by the one container (no forwarder), the template's value naming it."""
    token = platform.paths.admin_token.read_text().strip()
    api = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{platform.ports['api']}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    proxy = httpx.AsyncClient(base_url=f"http://127.0.0.1:{platform.ports['proxy']}", timeout=10)
    app_id = None
    try:
        r = await api.post("/v1/projects", json={"name": "tpl-ports"})
        assert r.status_code == 201, r.text
        env_id = r.json()["environments"][0]["id"]
        body = {"environment_id": env_id, "name": "ports", "document": two_ports(busybox_image())}
        r = await api.post("/v1/templates/deploy", json=body)
        assert r.status_code == 201, r.text
        app = r.json()
        app_id = app["id"]
        (store,) = app["services"]
        own, console = store["hosts"]
        assert own.startswith("store-ports-") and console.startswith("store-9001-ports-"), store["hosts"]
        r = await api.post(f"/v1/applications/{app_id}/deployments", json={"options": {"drain_grace_s": 0.5}})
        assert r.status_code == 202, r.text
        done = await wait_deployment(api, r.json()["id"])
        assert done["status"] == "succeeded", done.get("reason")
        assert env_of(app_id, "store")["CONSOLE_URL"] == f"https://{console}"
        for host, text in ((own, "api"), (console, "console")):
            served = await proxy.get("/", headers={"Host": host})
            assert (served.status_code, served.text.strip()) == (200, text), host
    finally:
        if app_id:
            await api.delete(f"/v1/applications/{app_id}")
        await api.aclose()
        await proxy.aclose()
