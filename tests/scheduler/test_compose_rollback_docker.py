"""A rollback of a compose application's image services with the real scheduler and Docker: v1 and v2 name
other images for one service (``side``), and a start command with ``images_of`` v1 and v2's snapshot runs
``side`` on v1's image again; a service whose image is the application's is recorded too and keeps its
image; a stateful service (a named volume) unchanged since v1 keeps its v1 container through v2 and the
rollback (adopted, never recreated); the web service keeps serving through Traefik."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from berth_common.catalogue import StartDeployment
from tests.scheduler import apps
from tests.scheduler.conftest import remove_labelled
from tests.scheduler.platform import wait_served

pytestmark = [pytest.mark.docker]


def _spec(busybox: str, side: str, host: str, content: str) -> dict:
    return {
        "name": "rbk",
        "source": {"kind": "image", "image": busybox},
        "services": [
            {
                "kind": "web",
                "name": "web",
                "port": 8080,
                "health_path": "/cgi-bin/health",
                "hosts": [host],
                "command": apps.web(content),
            },
            {"kind": "worker", "name": "side", "image": {"image": side}, "command": apps.worker()},
            {"kind": "worker", "name": "same", "image": {"image": busybox}, "command": apps.worker()},
            {
                "kind": "worker",
                "name": "store",
                "image": {"image": busybox},
                "command": apps.worker(),
                "volumes": [{"name": "data", "path": "/data"}],
            },
        ],
        "private_network": True,
        "stop_timeout_s": 2,
    }


def images_of(app_id: str) -> dict[str, tuple[str, str]]:
    ids = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=berth.app={app_id}"], capture_output=True, text=True, check=True
    ).stdout.split()
    found = json.loads(subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True).stdout)
    return {
        c["Config"]["Labels"]["berth.service"]: (c["Config"]["Image"], c["Config"]["Labels"]["berth.deployment"])
        for c in found
    }


async def test_a_rollback_runs_the_image_a_service_named_then(platform, busybox, app_id, unique):
    host = f"rbk-{unique}.localhost"
    tags = [f"berth/rbk{unique}-side:v1", f"berth/rbk{unique}-side:v2"]
    for tag in tags:
        subprocess.run(["docker", "tag", busybox, tag], check=True, capture_output=True)
    try:
        v1 = await platform.deploy(app_id, _spec(busybox, tags[0], host, "one"), drain_grace_s=0.2)
        assert (await platform.wait(v1, timeout=90))["type"] == "evt.deployment.succeeded", platform.steps(v1)
        v2 = await platform.deploy(app_id, _spec(busybox, tags[1], host, "two"), drain_grace_s=0.2)
        assert (await platform.wait(v2, timeout=90))["type"] == "evt.deployment.succeeded", platform.steps(v2)
        assert images_of(app_id)["side"] == (tags[1], v2)
        assert images_of(app_id)["store"] == (busybox, v1)  # unchanged: v1's container, adopted

        back = uuid.uuid4().hex
        cmd = StartDeployment(
            deployment_id=back,
            application_id=app_id,
            team_id="team-1",
            spec=_spec(busybox, tags[1], host, "two"),
            options={"drain_grace_s": 0.2},
            images_of=v1,
        )
        await platform.api.publish(cmd)
        done = await platform.wait(back, timeout=90)
        assert done["type"] == "evt.deployment.succeeded", platform.steps(back)
        assert images_of(app_id) == {
            "web": (busybox, back),
            "side": (tags[0], back),
            "same": (busybox, back),
            "store": (busybox, v1),
        }
        await wait_served(platform, host, "two")
    finally:
        subprocess.run(["docker", "rmi", *tags], capture_output=True, check=False)
        remove_labelled(f"berth.app={app_id}")
        volumes = subprocess.run(
            ["docker", "volume", "ls", "-q", "--filter", f"label=berth.app={app_id}"], capture_output=True, text=True
        ).stdout.split()
        if volumes:
            subprocess.run(["docker", "volume", "rm", "-f", *volumes], capture_output=True, check=False)
