"""A compose application's pinned subnet against its server's own routes, end to end: the real scheduler and
proxy-sync (``test_placement_e2e.placed``), two namespace test servers (each its own dockerd). Inside the first
server's namespace (never this machine's) a route to ``10.123.0.0/24`` is added, as a server's LAN would be:
an application pinning that subnet there fails before anything is made, its reason naming the subnet and the
route; one pinning a free subnet deploys, and deploys again (its own network's route does not count)."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.servers import test_placement_e2e as e2e
from tests.support.images import busybox_image
from tests.support.testservers import TestServer, running_servers

pytestmark = pytest.mark.slow
placed = e2e.placed  # the scheduler and proxy-sync, with both servers announced
LAN = "10.123.0.0/24"
FREE = "10.124.0.0/24"


@pytest.fixture(scope="module")
def servers() -> Iterator[list[TestServer]]:
    busybox_image()
    with running_servers(2) as two:
        subprocess.run(["ip", "netns", "exec", two[0].name, "ip", "route", "add", LAN, "dev", "lo"], check=True)
        yield two


def _app(server_id: str, subnet: str) -> dict[str, Any]:
    return {
        "name": "pinned",
        "source": {"kind": "image", "image": busybox_image()},
        "private_network": True,
        "network_options": {"subnet": subnet},
        "services": [{"kind": "worker", "name": "w", "command": ["sleep", "600"], "servers": [server_id]}],
        "stop_timeout_s": 1,
    }


def _network(server: TestServer, app_id: str) -> dict[str, Any] | None:
    found = subprocess.run(
        ["docker", "-H", server.docker_host, "network", "inspect", f"berth-app-{app_id}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return json.loads(found.stdout)[0] if found.returncode == 0 else None


async def test_a_subnet_the_server_routes_is_refused_a_free_one_deploys(placed, servers) -> None:
    platform, ids = placed
    server = servers[0]
    refused_app, app = uuid.uuid4().hex[:12], uuid.uuid4().hex[:12]
    dep = await platform.deploy(refused_app, _app(ids[0], LAN))
    done = await platform.wait(dep, timeout=180)
    assert done["type"] == "evt.deployment.failed", (done, platform.steps(dep))
    assert done["data"]["reason"] == (
        f"starting: the compose file pins the subnet {LAN} for the application's network, which overlaps the "
        f"route {LAN} dev lo of server {ids[0]}: the server would send that range into the application's "
        "network and lose its own; pin a subnet the server does not use"
    )
    assert _network(server, refused_app) is None  # nothing was made
    assert server.docker("ps", "-aq", "--filter", f"label=berth.app={refused_app}").split() == []

    for _ in range(2):  # the second deployment finds its own network's route there: not an overlap
        dep = await platform.deploy(app, _app(ids[0], FREE))
        done = await platform.wait(dep, timeout=180)
        assert done["type"] == "evt.deployment.succeeded", (done, platform.steps(dep))
        network = _network(server, app)
        assert network is not None and network["IPAM"]["Config"][0]["Subnet"] == FREE
    assert server.docker("ps", "-aq", "--filter", "label=berth.host-routes-helper").split() == []
    server.docker("rm", "-f", *server.docker("ps", "-aq", "--filter", f"label=berth.app={app}").split())
    server.docker("network", "rm", f"berth-app-{app}")
