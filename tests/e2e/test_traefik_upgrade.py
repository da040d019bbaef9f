"""A Traefik upgrade through `berth up` drops nothing: under a steady open-loop load through Traefik, `berth
down`, a new Traefik binary (the platform's own ``BERTH_TRAEFIK_BINARY``, modified: what an upgraded
binary is to the fingerprint), then `berth up`: the supervisor starts the new Traefik next to the running one, hands it
every connection once it serves, and the old one drains and exits; not one request fails."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from pathlib import Path

import httpx
import psutil
import pytest

from berth_cli import components
from tests.e2e.conftest import make_platform, platform_teams, remove_team_resources
from tests.e2e.test_data_plane import RATE, serving_app
from tests.support.images import busybox_image
from tests.support.open_loop import OpenLoop

pytestmark = pytest.mark.slow


def gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


async def test_an_upgraded_traefik_binary_replaces_the_running_one_without_a_failed_request(tmp_root: Path):
    image = busybox_image()
    gen = make_platform(tmp_root / "platform-traefik-upgrade")
    platform = next(gen)
    # its own Traefik binary: the upgrade changes no file another test's platform runs
    binary = tmp_root / "traefik-upgrade" / "traefik"
    binary.parent.mkdir(exist_ok=True)  # a rerun on this module's root finds it
    shutil.copy2(components.bin_path("traefik"), binary)
    platform.env["BERTH_TRAEFIK_BINARY"] = str(binary)
    teams: list[str] = []
    try:
        await asyncio.to_thread(platform.up)
        token = platform.paths.admin_token.read_text().strip()
        teams = platform_teams(platform)
        base = f"http://127.0.0.1:{platform.ports['api']}"
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as api:
            app = await serving_app(api, f"upgrade-{uuid.uuid4().hex[:6]}", image)  # a rerun makes another
        host = str(app["services"][0]["hosts"][0])
        old = platform.state()["children"]["traefik"]["pid"]

        load = OpenLoop(platform.ports["proxy"], host, RATE)
        runner = asyncio.create_task(load.run())
        t0 = time.monotonic()
        await asyncio.sleep(1.0)
        await asyncio.to_thread(platform.down)
        os.utime(binary)  # the upgrade: another binary at the same path (a new size or time: a new fingerprint)
        await asyncio.to_thread(platform.up)
        state = platform.state()["children"]["traefik"]
        assert state["pid"] != old and state["adopted"] is False and state["state"] == "running"
        deadline = time.monotonic() + 90  # the old one drains (its clients leave it), then stops
        while not gone(old):
            assert time.monotonic() < deadline, "the old Traefik did not stop"
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)
        load.stop.set()
        await runner
        loaded_s = time.monotonic() - t0

        assert load.errors == []
        # the load ran through the whole upgrade, 400 requests or more (a loaded machine starves the sender: 742
        # in 52 s seen under a full suite on two cores)
        assert load.sent >= RATE * 5 and load.seen == {"v1"}, (load.sent, loaded_s)
        await asyncio.to_thread(platform.down, "--all")
    finally:
        gen.close()
        remove_team_resources(teams)
