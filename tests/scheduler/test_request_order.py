"""Deployments of one application end in their request order (the api's ``number``) whatever order their start
commands reach the scheduler in: one whose command arrives after a newer deployment's (redelivered after its
consumer crashed) is cancelled at once instead of running after it, so the live version (the last succeeded)
is always the newest one asked for, and the one its routes serve. Real bus, Postgres, Traefik and containers."""

from __future__ import annotations

import pytest

from tests.scheduler.platform import containers_of, wait_served, web_app

pytestmark = [pytest.mark.slow, pytest.mark.docker]

SUPERSEDED = "superseded: deployment #{} of this application was requested after it and arrived first"


async def test_a_start_command_arriving_after_a_newer_ones_never_replaces_it(platform, busybox, app_id, unique):
    host = f"web-shop-{unique}.localhost"
    d1 = await platform.deploy(app_id, web_app(busybox, "v1", host), number=1)
    assert (await platform.wait(d1))["type"] == "evt.deployment.succeeded"

    # #3's command is late: #4's reached the scheduler first and runs
    d4 = await platform.deploy(app_id, web_app(busybox, "v4", host, warmup_s=2), number=4)
    await platform.wait(d4, ("evt.deployment.progressed",), state="verifying")
    d3 = await platform.deploy(app_id, web_app(busybox, "v3", host), number=3)
    late = await platform.wait(d3)
    assert late["type"] == "evt.deployment.cancelled", late
    assert (late["data"]["reason"], late["data"]["cancelled_in"]) == (SUPERSEDED.format(4), "queued")
    assert (await platform.wait(d4))["type"] == "evt.deployment.succeeded"

    # one arriving after the newer one ended does not run either: it would end as the live version
    d2 = await platform.deploy(app_id, web_app(busybox, "v2", host), number=2)
    assert (await platform.wait(d2))["data"]["reason"] == SUPERSEDED.format(4)
    await wait_served(platform, host, "v4")
    assert {dep for _, dep in containers_of(app_id)} == {d4}
    assert [e for e in platform.of(d3) + platform.of(d2) if e["data"].get("state") == "starting"] == []

    # the next one in order runs as usual, and so does one sent without its number
    d5 = await platform.deploy(app_id, web_app(busybox, "v5", host), number=5)
    assert (await platform.wait(d5))["type"] == "evt.deployment.succeeded"
    await wait_served(platform, host, "v5")
    d6 = await platform.deploy(app_id, web_app(busybox, "v6", host))
    assert (await platform.wait(d6))["type"] == "evt.deployment.succeeded"
    await wait_served(platform, host, "v6")
    assert {dep for _, dep in containers_of(app_id)} == {d6}
