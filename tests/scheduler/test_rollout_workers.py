"""Worker rollouts: the old worker gets SIGTERM and is gone within its stop timeout, or SIGKILL after it."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.scheduler.platform import DockerEvents, containers_of, worker_app

pytestmark = [pytest.mark.slow, pytest.mark.docker]


async def test_worker_redeploy_old_worker_gets_sigterm_and_is_gone_within_the_grace(platform, busybox, app_id):
    d1 = await platform.deploy(app_id, worker_app(busybox, "v1"))
    assert (await platform.wait(d1))["type"] == "evt.deployment.succeeded"
    old = [name for name, dep in containers_of(app_id) if dep == d1]
    assert len(old) == 1
    events = DockerEvents(app_id)
    d2 = await platform.deploy(app_id, worker_app(busybox, "v2"))
    done = await platform.wait(d2)
    seen = await asyncio.to_thread(events.stop)
    assert done["type"] == "evt.deployment.succeeded", done
    assert [dep for _, dep in containers_of(app_id)] == [d2]  # one worker, the new version's
    mine = [e for e in seen if e["Actor"]["Attributes"].get("name") == old[0]]
    actions = [
        (e["Action"], e["Actor"]["Attributes"].get("signal"), e["Actor"]["Attributes"].get("exitCode")) for e in mine
    ]
    kill = next(i for i, a in enumerate(actions) if a[0] == "kill")
    assert actions[kill] == ("kill", "15", None), actions  # SIGTERM first
    die = next(i for i, a in enumerate(actions) if a[0] == "die")
    assert die > kill and actions[die][2] == "0", actions  # it exited by itself, no SIGKILL
    grace = (mine[die]["timeNano"] - mine[kill]["timeNano"]) / 1e9
    assert grace < 5, f"gone {grace:.2f}s after SIGTERM, the stop timeout is 5s"
    assert ("destroy", None, None) in actions


async def test_worker_that_ignores_sigterm_is_killed_at_the_stop_timeout(platform, busybox, app_id):
    d1 = await platform.deploy(app_id, worker_app(busybox, "v1", stop_timeout_s=2, honour_term=False))
    assert (await platform.wait(d1))["type"] == "evt.deployment.succeeded"
    events = DockerEvents(app_id)
    t0 = time.monotonic()
    d2 = await platform.deploy(app_id, worker_app(busybox, "v2"))
    assert (await platform.wait(d2))["type"] == "evt.deployment.succeeded"
    took = time.monotonic() - t0
    seen = await asyncio.to_thread(events.stop)
    signals = [e["Actor"]["Attributes"].get("signal") for e in seen if e["Action"] == "kill"]
    assert signals[:2] == ["15", "9"], signals  # SIGTERM, then SIGKILL after the 2 s stop timeout
    assert took < 15
    assert [dep for _, dep in containers_of(app_id)] == [d2]
