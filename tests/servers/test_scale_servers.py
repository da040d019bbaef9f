"""Scaling a service that runs on two servers end to end: the real scheduler and proxy-sync, two namespace
test servers (each its own dockerd, sshd and Traefik made by proxy-sync). The web service is scaled 2 -> 4
-> 2 under load through both servers' Traefiks: zero errors (the app answers 404 on ``/`` while it warms
up, so a replica routed before its readiness check would show), the new replicas spread over both
servers by the placement rule, and each server's route holds exactly the replicas on that server."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

import pytest

from berth_common.catalogue import ReplicasQuery, ReplicasReply
from berth_scheduler.domain import names
from tests.scheduler.platform import web_app
from tests.scheduler.test_scale import scale, wait_scaled
from tests.servers import test_placement_e2e as e2e
from tests.servers.test_placement_e2e import HOST, ServerLoad, _served
from tests.support.images import busybox_image
from tests.support.testservers import TestServer

pytestmark = pytest.mark.slow
servers = e2e.servers  # the two namespace servers (module-scoped here too) and the platform on them
placed = e2e.placed
UPSTREAM = re.compile(r"http://[a-z0-9-]+:8080")


def _spec(content: str, ids: list[str]) -> dict:
    spec = web_app(busybox_image(), content, HOST, replicas=2, warmup_s=2)
    spec["services"][0]["servers"] = ids
    return spec


def _replicas_on(server: TestServer, app_id: str) -> list[str]:
    out = server.docker("ps", "--filter", f"label=berth.app={app_id}", "--format", "{{.Names}}")
    return sorted(out.split())


def _routed(root: Path, server_id: str, route_id: str) -> list[str]:
    path = root / server_id / "dynamic" / f"{route_id}.yml"
    return sorted(set(UPSTREAM.findall(path.read_text()))) if path.exists() else []


async def _layout(platform, servers, ids, app_id, root: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Per server: (its replicas' upstreams, the upstreams its route file holds)."""
    route = names.route_id(app_id, "web")
    out = {}
    for server, sid in zip(servers, ids, strict=True):
        mine = [f"http://{name}:8080" for name in await asyncio.to_thread(_replicas_on, server, app_id)]
        out[sid] = (mine, _routed(root, sid, route))
    return out


async def test_scale_2_to_4_to_2_across_two_servers_under_load(placed, servers, tmp_root, unique):
    platform, ids = placed
    root = tmp_root / f"servers-{unique}"
    app_id = uuid.uuid4().hex
    first = await platform.deploy(app_id, _spec("v1", ids))
    done = await platform.wait(first, timeout=240)
    assert done["type"] == "evt.deployment.succeeded", (done, platform.steps(first))
    for server in servers:
        await _served(server.address, "v1")
    before = await _layout(platform, servers, ids, app_id, root)
    assert [len(mine) for mine, _ in before.values()] == [1, 1]
    assert all(mine == routed for mine, routed in before.values()), before

    loads = [ServerLoad(s.address).start() for s in servers]
    try:
        await asyncio.sleep(1.0)
        up = await scale(platform, app_id, {"web": 4}, reason="two more")
        event = await wait_scaled(platform, app_id, up, timeout=120)
        assert (event["from_replicas"], event["to_replicas"], event["outcome"]) == (2, 4, "scaled"), event
        grown = await _layout(platform, servers, ids, app_id, root)
        # replicas 3 and 4 joined servers a and b in turn; each server routes exactly its own replicas
        for n, (sid, (mine, routed)) in enumerate(grown.items()):
            assert mine == sorted(
                f"http://{names.container_name('shop', 'web', first, r)}:8080" for r in (n + 1, n + 3)
            ), grown
            assert routed == mine, (sid, grown)
        reply = await platform.api.request(
            "scheduler", "replicas", ReplicasQuery(application_id=app_id), ReplicasReply, timeout=20
        )
        assert sorted((r.deployment_id, r.replica, r.state, r.health) for r in reply.replicas) == [
            (first, n, "running", "ready") for n in (1, 2, 3, 4)
        ]
        await asyncio.sleep(1.5)  # the new replicas serve under load

        down = await scale(platform, app_id, {"web": 2})
        event = await wait_scaled(platform, app_id, down, timeout=120)
        assert (event["from_replicas"], event["to_replicas"], event["outcome"]) == (4, 2, "scaled"), event
        await asyncio.sleep(1.0)
    finally:
        results = [load.stop() for load in loads]
    after = await _layout(platform, servers, ids, app_id, root)
    assert after == before, (after, before)  # the highest numbered went, one from each server
    for load, got in zip(loads, results, strict=True):
        assert len(got) > 50, f"{load.address}: only {len(got)} requests"
        assert load.errors == [], f"{load.address}: {load.errors[:5]}"
        assert {body.split()[0] for status, body in got if status == 200 and body} == {"v1"}
    assert [
        d for d in platform.events if d["type"] == "evt.deployment.progressed" and d["data"]["deployment_id"] != first
    ] == []
