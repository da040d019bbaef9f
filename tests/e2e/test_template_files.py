"""A template's files deployed through the REST API on the real processes of `berth up`: the template's
file (its generated secret rendered into it) is mounted by its compose file as ``./files/www``; the
scheduler puts it into the container before it starts and busybox httpd serves it through Traefik. The file
changed by a PATCH is served after the next deployment; its content is in no API answer, log or container
environment, and it goes with the application's containers when the application is removed."""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import pytest

from tests.e2e.conftest import Platform
from tests.e2e.test_deploy_flow import wait_deployment
from tests.support.images import busybox_image

pytestmark = pytest.mark.slow


def document(image: str) -> str:
    return f"""name: Served file
slug: served-file
description: A web service serving a file of the template that holds a generated secret.
tags: [test]
variables:
  host: {{kind: domain, service: web, port: 8080}}
  token: {{kind: password, length: 24}}
files:
  - path: www/index.html
    content: "token=${{var.token}}"
  - path: conf/about.txt
    content: "about ${{app}}"
compose: |
  services:
    web:
      image: {image}
      command: ["sh", "-c", "cat /etc/berth/about.txt > /www/about.txt && exec httpd -f -p 8080 -h /www"]
      ports: ["8080"]
      volumes:
        - ./files/www:/www:ro
        - ./files/conf/about.txt:/etc/berth/about.txt:ro
"""


@pytest.fixture(scope="module")
def platform(shared_platform: Platform) -> Platform:
    return shared_platform  # its project and applications are this file's own (tests/conftest.py)


def containers(app_id: str) -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=berth.app={app_id}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return out.stdout.split()


async def deploy(api: httpx.AsyncClient, app_id: str) -> dict:
    r = await api.post(f"/v1/applications/{app_id}/deployments", json={"options": {"drain_grace_s": 0.5}})
    assert r.status_code == 202, r.text
    done = await wait_deployment(api, r.json()["id"])
    assert done["status"] == "succeeded", done.get("reason")
    return done


async def test_a_templates_file_is_served_from_its_container_and_shown_nowhere(platform):
    token = platform.paths.admin_token.read_text().strip()
    api = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{platform.ports['api']}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    proxy = httpx.AsyncClient(base_url=f"http://127.0.0.1:{platform.ports['proxy']}", timeout=10)
    app_id = None
    try:
        r = await api.post("/v1/projects", json={"name": "files"})
        assert r.status_code == 201, r.text
        body = {
            "environment_id": r.json()["environments"][0]["id"],
            "name": "page",
            "document": document(busybox_image()),
        }
        r = await api.post("/v1/templates/deploy", json=body)
        assert r.status_code == 201, r.text
        app = r.json()
        app_id, host = app["id"], app["services"][0]["hosts"][0]
        done = await deploy(api, app_id)

        served = await proxy.get("/index.html", headers={"Host": host})
        assert served.status_code == 200 and served.text.startswith("token=")
        secret = served.text.removeprefix("token=")
        about = await proxy.get("/about.txt", headers={"Host": host})  # the single file, read at the start
        assert about.status_code == 200 and about.text == "about page"
        assert len(secret) == 24
        (cid,) = containers(app_id)
        inspect = subprocess.run(["docker", "inspect", cid], capture_output=True, text=True, timeout=30, check=True)
        assert secret not in inspect.stdout and '"Binds": null' in inspect.stdout
        # no host path: the read-only files are bound read-only from the application's files volume, which
        # is also mounted whole, read-only, at /.berth-files (so the engine counts the replica as its user)
        mounts = json.loads(inspect.stdout)[0]["Mounts"]
        binds = [m for m in mounts if m["Type"] == "bind"]
        (volume,) = [m for m in mounts if m["Type"] == "volume"]
        assert sorted(m["Destination"] for m in binds) == ["/etc/berth/about.txt", "/www/index.html"], mounts
        assert all(m["RW"] is False and f"/berth-{app_id}_files-" in m["Source"] for m in binds), mounts
        assert volume["Destination"] == "/.berth-files" and volume["RW"] is False, mounts
        assert volume["Name"].startswith(f"berth-{app_id}_files-"), mounts
        assert all(volume["Name"] in m["Source"] for m in binds), mounts

        r = await api.patch(
            f"/v1/applications/{app_id}",
            json={
                "compose": {
                    "inline": app["compose"]["inline"],
                    "files": [{"path": "www/index.html", "content": "v2"}, {"path": "conf/about.txt"}],
                }
            },
        )
        assert r.status_code == 200, r.text
        second = await deploy(api, app_id)
        served = await proxy.get("/index.html", headers={"Host": host})
        assert served.status_code == 200 and served.text == "v2"

        shown = [
            (await api.get(f"/v1/applications/{app_id}")).text,
            (await api.get(f"/v1/deployments/{done['id']}")).text,
            (await api.get(f"/v1/deployments/{second['id']}")).text,
            (await api.get(f"/v1/deployments/{done['id']}/logs")).text,
        ]
        logs = "".join(p.read_text(errors="replace") for p in platform.paths.logs.glob("*.log"))
        assert all(secret not in text for text in shown) and secret not in logs

        r = await api.delete(f"/v1/applications/{app_id}")
        assert r.status_code in (202, 204), r.text
        deadline = time.monotonic() + 60
        while containers(app_id) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert containers(app_id) == []  # the files went with them
        app_id = None
    finally:
        if app_id:
            await api.delete(f"/v1/applications/{app_id}")
        await api.aclose()
        await proxy.aclose()
