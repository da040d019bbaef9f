"""The switch from verifying to routing: one commit records the last ready replica, the plan and the first
route step, and its command is sent exactly once (the routing step does not send it again)."""

from __future__ import annotations

import asyncio
import json

import pytest

from berth_common.bus import subscriptions_confirmed
from berth_scheduler.domain import names
from tests.scheduler.platform import web_app

pytestmark = [pytest.mark.slow, pytest.mark.docker]


async def test_first_route_step_is_sent_once_with_the_switch(platform, busybox, app_id, unique):
    sent: list[dict] = []

    async def on_cmd(msg) -> None:
        sent.append({"id": json.loads(msg.data)["id"], **json.loads(msg.data)["data"]})

    # a wide window for "ready at once": on a loaded machine a replica may pass a second after its start
    platform.scheduler.settings.quick_ready_s = 8.0
    await platform.nc.subscribe("cmd.route.>", cb=on_cmd)
    await subscriptions_confirmed(platform.nc)
    host = f"web-shop-{unique}.localhost"
    d1 = await platform.deploy(app_id, web_app(busybox, "v1", host, replicas=2))
    assert (await platform.wait(d1, timeout=60))["type"] == "evt.deployment.succeeded"
    d2 = await platform.deploy(app_id, web_app(busybox, "v2", host, replicas=1), drain_grace_s=0)
    assert (await platform.wait(d2, timeout=60))["type"] == "evt.deployment.succeeded"
    await asyncio.sleep(0.5)
    rid = names.route_id(app_id, "web")
    mine = [c for c in sent if c["route_id"] == rid]
    # first deploy: one step (new replicas only); second: old + new, then new only
    assert [c["generation"] for c in mine] == [1, 2, 3]
    assert [c["id"] for c in mine] == [f"route-{rid}-g{g}" for g in (1, 2, 3)]  # never sent "-again"
    assert len(mine[0]["upstreams"]) == 2 and len(mine[1]["upstreams"]) == 3 and len(mine[2]["upstreams"]) == 1
    steps = [s for _, s in platform.steps(d1)]
    assert steps[steps.index("replicas started") :] == [
        "replicas started",
        "replica ready",
        "replica ready",
        "replicas ready",
        "new version live",
        "drained",
        "succeeded",
    ]
    status, body = await asyncio.to_thread(platform.traefik.get, host)
    assert (status, body) == (200, b"v2\n")
    # ready at once: started, ready and the switch in one commit (event ids carry the commit's version)
    assert len(commits(platform, d1, "replicas started", "replica ready", "replicas ready")) == 1


def commits(platform, dep: str, *steps: str) -> set[str]:
    """The versions (commits) the progress events of ``steps`` were staged in."""
    return {
        e["id"].split("-")[2]
        for e in platform.of(dep, "evt.deployment.progressed")
        if e["data"]["step"] in steps and e["id"].startswith(f"dep-{dep}-v")
    }


async def test_a_slow_replica_has_replicas_started_recorded_before_it_is_ready(platform, busybox, app_id, unique):
    host = f"web-shop-{unique}.localhost"
    # ready at least 3 s after it starts (its clock counts whole seconds): on a loaded machine the started
    # event's own commit may come a second or more after the start, and still long before the replica passes
    d1 = await platform.deploy(app_id, web_app(busybox, "v1", host, warmup_s=4))
    started = await platform.wait(d1, ("evt.deployment.progressed",), step="replicas started")
    assert not [e for e in platform.of(d1, "evt.deployment.progressed") if e["data"]["step"] == "replica ready"]
    assert (await platform.wait(d1, timeout=60))["type"] == "evt.deployment.succeeded"
    ready = next(e for e in platform.of(d1, "evt.deployment.progressed") if e["data"]["step"] == "replicas ready")
    assert ready["_at"] - started["_at"] > 0.5  # its own commit, long before the replica passed
    assert len(commits(platform, d1, "replicas started", "replicas ready")) == 2
