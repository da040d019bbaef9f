"""``rpc.scheduler.replicas`` shows a container that a later deployment kept running (``adoption.py``) as that
deployment's own, as its record says, although the container keeps the labels it was made with: a compose
application's stateful service unchanged since v1 keeps v1's container through v2, and the replicas show it
as v2's, with the replica number of its record. (A placement-only change renumbers the kept replicas the same
way: ``tests/servers/test_drain_moves.py``.)"""

from __future__ import annotations

import subprocess

import pytest
import sqlalchemy as sa

from berth_common.catalogue import ReplicasQuery, ReplicasReply
from berth_common.db import make_engine
from tests.scheduler import apps
from tests.scheduler.conftest import remove_labelled

pytestmark = [pytest.mark.docker]


def _spec(busybox: str, content: str) -> dict:
    return {
        "name": "kept",
        "source": {"kind": "image", "image": busybox},
        "services": [
            {
                "kind": "web",
                "name": "web",
                "port": 8080,
                "health_path": "/cgi-bin/health",
                "command": apps.web(content),
            },
            {
                "kind": "worker",
                "name": "store",
                "command": apps.worker(),
                "volumes": [{"name": "data", "path": "/data"}],
            },
        ],
        "private_network": True,
        "stop_timeout_s": 2,
    }


def _label(app_id: str, service: str) -> str:
    filters = ["--filter", f"label=berth.app={app_id}", "--filter", f"label=berth.service={service}"]
    found = subprocess.run(
        ["docker", "ps", *filters, "--format", '{{.Label "berth.deployment"}}'],
        capture_output=True,
        text=True,
        check=True,
    )
    return found.stdout.strip()


async def test_a_kept_container_is_shown_as_the_deployment_that_owns_it(platform, busybox, app_id):
    try:
        v1 = await platform.deploy(app_id, _spec(busybox, "one"), drain_grace_s=0.2)
        assert (await platform.wait(v1, timeout=90))["type"] == "evt.deployment.succeeded", platform.steps(v1)
        v2 = await platform.deploy(app_id, _spec(busybox, "two"), drain_grace_s=0.2)
        assert (await platform.wait(v2, timeout=90))["type"] == "evt.deployment.succeeded", platform.steps(v2)
        assert _label(app_id, "store") == v1  # the container v1 made, kept by v2 with its labels

        # its record is v2's now; the record's replica number set apart from its label to see which is shown
        engine = make_engine(platform.scheduler.settings.database_url.get_secret_value(), "scheduler")
        try:
            async with engine.begin() as conn:
                q = "UPDATE containers SET replica = 7 WHERE application_id = :a AND service = 'store'"
                await conn.execute(sa.text(q), {"a": app_id})
                q = "SELECT deployment_id FROM containers WHERE application_id = :a AND service = 'store'"
                assert list((await conn.execute(sa.text(q), {"a": app_id})).scalars()) == [v2]
        finally:
            await engine.dispose()

        query = ReplicasQuery(application_id=app_id)
        reply = await platform.api.request("scheduler", "replicas", query, ReplicasReply)
        assert reply.live_deployment_id == v2
        assert sorted((r.deployment_id, r.service, r.replica, r.state, r.health) for r in reply.replicas) == [
            (v2, "store", 7, "running", "unknown"),
            (v2, "web", 1, "running", "ready"),
        ]
    finally:
        remove_labelled(f"berth.app={app_id}")
        volumes = subprocess.run(
            ["docker", "volume", "ls", "-q", "--filter", f"label=berth.app={app_id}"], capture_output=True, text=True
        ).stdout.split()
        if volumes:
            subprocess.run(["docker", "volume", "rm", "-f", *volumes], capture_output=True, check=False)
