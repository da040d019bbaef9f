"""Two routed ports of one web service through the real scheduler, proxy-sync, Traefik and Docker: the
service's API host reaches its port 8080 and its console host its port 9001 (two httpd in one container, as
MinIO serves its API and console), each route file exactly as Traefik reads it, both routes following a
scale and gone with the application; a replica whose second port never answers is not ready, and the
deployment fails naming the port."""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest
import yaml

from berth_proxy_sync.domain.tls import PATH_PRIORITY
from tests.scheduler.conftest import remove_labelled
from tests.scheduler.platform import wait_served
from tests.scheduler.test_scale import scale, upstreams, wait_scaled

pytestmark = [pytest.mark.docker]

SERVE = (
    "mkdir -p /api /console && echo api > /api/index.html && echo console > /console/index.html && {second}"
    "exec httpd -f -p 8080 -h /api"
)


def _spec(image: str, api: str, console: str, *, second: bool = True) -> dict:
    command = SERVE.format(second="httpd -p 9001 -h /console && " if second else "")
    return {
        "name": "files",
        "source": {"kind": "image", "image": image},
        "services": [
            {
                "kind": "web",
                "name": "store",
                "port": 8080,
                "hosts": [api, console],
                "port_hosts": [{"port": 9001, "hosts": [console]}],
                "command": ["sh", "-c", command],
            }
        ],
        "stop_timeout_s": 2,
    }


def _published(app_id: str) -> dict[str, str]:
    ids = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=berth.app={app_id}"], capture_output=True, text=True, check=True
    ).stdout.split()
    (found,) = json.loads(subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True).stdout)
    return {port: binds[0]["HostPort"] for port, binds in found["HostConfig"]["PortBindings"].items()}


async def test_two_hosts_reach_two_ports_of_one_service(platform, busybox, app_id, unique):
    api, console = f"api-{unique}.localhost", f"console-{unique}.localhost"
    try:
        dep = await platform.deploy(app_id, _spec(busybox, api, console), drain_grace_s=0.2)
        assert (await platform.wait(dep, timeout=60))["type"] == "evt.deployment.succeeded", platform.steps(dep)
        await wait_served(platform, api, "api")
        await wait_served(platform, console, "console")
        ports = _published(app_id)
        own = f"app-{app_id.replace('-', '')}-store"
        for route_id, host, port in ((own, api, ports["8080/tcp"]), (f"{own}_9001", console, ports["9001/tcp"])):
            name = f"route-{route_id}"
            assert yaml.safe_load(platform.route_file(route_id) or b"") == {
                "http": {
                    "routers": {
                        name: {
                            "rule": f"Host(`{host}`)",
                            "service": name,
                            "entryPoints": ["web"],
                        }
                    },
                    "services": {
                        name: {
                            "loadBalancer": {
                                "servers": [{"url": f"http://127.0.0.1:{port}"}],
                                "passHostHeader": True,
                            }
                        }
                    },
                }
            }
        for count in (2, 1):  # scaling changes each port's route alike
            done = await wait_scaled(platform, app_id, await scale(platform, app_id, {"store": count}))
            assert done["outcome"] == "scaled", done
            assert [len(upstreams(platform, r)) for r in (own, f"{own}_9001")] == [count, count]
        await wait_served(platform, console, "console")
        await platform.remove(app_id, drain_grace_s=0.2)  # removing the application takes both routes away
        assert (await platform.wait_app(app_id, timeout=30))["type"] == "evt.application.removed"
        assert (platform.route_file(own), platform.route_file(f"{own}_9001")) == (None, None)
    finally:
        remove_labelled(f"berth.app={app_id}")


async def test_a_second_port_that_never_answers_fails_the_deployment(platform, busybox, app_id, unique):
    spec = _spec(busybox, f"api-{unique}.localhost", f"console-{unique}.localhost", second=False)
    try:
        dep = await platform.deploy(app_id, spec, drain_grace_s=0.2, readiness_timeout_s=3)
        done = await platform.wait(dep, timeout=60)
        assert done["type"] == "evt.deployment.failed", done
        assert "port 9001 gave no HTTP answer to GET /" in done["data"]["reason"], done
    finally:
        remove_labelled(f"berth.app={app_id}")


async def test_a_second_port_is_served_under_its_own_path(platform, busybox, app_id, unique):
    """Coolify's mindsdb: the service's own port on the whole API host, its second port only under ``/ui``
    of the console host (unstripped: the container serves ``/ui/``); the console host's other paths reach
    nothing. The second port's route file is exactly the path route Traefik reads."""
    api, console = f"api-{unique}.localhost", f"console-{unique}.localhost"
    spec = _spec(busybox, api, console)
    spec["services"][0]["command"][2] = spec["services"][0]["command"][2].replace(
        "echo console > /console/index.html",
        "echo root > /console/index.html && mkdir -p /console/ui && echo console > /console/ui/index.html",
    )
    spec["services"][0]["port_hosts"][0]["path"] = "/ui"
    try:
        dep = await platform.deploy(app_id, spec, drain_grace_s=0.2)
        assert (await platform.wait(dep, timeout=60))["type"] == "evt.deployment.succeeded", platform.steps(dep)
        await wait_served(platform, api, "api")
        status, body = await asyncio.to_thread(platform.traefik.get, console, "/ui/")
        assert (status, body.decode().strip()) == (200, "console")
        # the container serves its /, but the console host routes only /ui to it (nor to the API's port)
        assert (await asyncio.to_thread(platform.traefik.get, console, "/"))[0] == 404
        own = f"app-{app_id.replace('-', '')}-store"
        name = f"route-{own}_9001"
        assert yaml.safe_load(platform.route_file(f"{own}_9001") or b"") == {
            "http": {
                "routers": {
                    name: {
                        "rule": f"(Host(`{console}`)) && PathPrefix(`/ui`)",
                        "service": name,
                        "entryPoints": ["web"],
                        "priority": PATH_PRIORITY + len("/ui"),
                    }
                },
                "services": {
                    name: {
                        "loadBalancer": {
                            "servers": [{"url": f"http://127.0.0.1:{_published(app_id)['9001/tcp']}"}],
                            "passHostHeader": True,
                        }
                    }
                },
            }
        }
        assert "priority" not in yaml.safe_load(platform.route_file(own) or b"")["http"]["routers"][f"route-{own}"]
    finally:
        remove_labelled(f"berth.app={app_id}")


async def test_one_host_reaches_two_ports_of_a_service_by_path(platform, busybox, app_id, unique):
    """As Coolify and Dokploy route one host by path: the service's own port at ``/`` of the host and its
    second port at ``/ui`` of the same host (``shared_hosts``), through the real Traefik."""
    host = f"app-{unique}.localhost"
    spec = _spec(busybox, host, host)
    svc = spec["services"][0]
    svc["hosts"] = [host]
    svc["command"][2] = svc["command"][2].replace(
        "echo console > /console/index.html",
        "echo root > /console/index.html && mkdir -p /console/ui && echo console > /console/ui/index.html",
    )
    svc["port_hosts"] = [{"port": 9001, "hosts": [host], "path": "/ui"}]
    svc["shared_hosts"] = [host]
    try:
        dep = await platform.deploy(app_id, spec, drain_grace_s=0.2)
        assert (await platform.wait(dep, timeout=60))["type"] == "evt.deployment.succeeded", platform.steps(dep)
        await wait_served(platform, host, "api")
        status, body = await asyncio.to_thread(platform.traefik.get, host, "/ui/")
        assert (status, body.decode().strip()) == (200, "console")
        status, body = await asyncio.to_thread(platform.traefik.get, host, "/")
        assert (status, body.decode().strip()) == (200, "api")
        own = f"app-{app_id.replace('-', '')}-store"
        routers = [
            yaml.safe_load(platform.route_file(r) or b"")["http"]["routers"][f"route-{r}"] for r in (own, f"{own}_9001")
        ]
        assert [(r["rule"], r.get("priority")) for r in routers] == [
            (f"Host(`{host}`)", None),
            (f"(Host(`{host}`)) && PathPrefix(`/ui`)", PATH_PRIORITY + len("/ui")),
        ]
    finally:
        remove_labelled(f"berth.app={app_id}")
