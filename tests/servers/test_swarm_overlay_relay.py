"""The overlay probe's relay on the local engine (seconds, no Swarm): the probe container is made on first use
on the network it is given, each check is one ``nc`` exec whose answer the readiness check reads as from any
connection (2xx passes, an error status says its body, a closed port is "connection refused"), and a probe
that was removed is made again by the next check. The Swarm itself: ``test_swarm_overlay_probe.py``."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator

import pytest

from berth_scheduler.adapters.swarm_overlay import OverlayProbe
from berth_scheduler.adapters.swarm_probe import NodeProbe
from berth_scheduler.domain import swarm_overlay
from berth_scheduler.domain import swarm_rollout as dom
from tests.support.images import busybox_image

SOCKET = "/var/run/docker.sock"
SCRIPT = 'mkdir -p /www && printf %s "$BODY" > /www/index.html && exec httpd -f -p 8080 -h /www'


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True, timeout=60).stdout.strip()


@pytest.fixture
def app(unique: str) -> Iterator[tuple[str, str]]:
    """(network, the address of a busybox httpd on it): a bridge network stands for the overlay here."""
    image = busybox_image()
    network = f"berth-relay-{unique}"
    _docker("network", "create", network)
    web = f"berth-relay-web-{unique}"
    try:
        _docker("run", "-d", "--name", web, "--network", network, "-e", "BODY=relayed", image, "sh", "-c", SCRIPT)
        address = _docker("inspect", "-f", '{{(index .NetworkSettings.Networks "' + network + '").IPAddress}}', web)
        yield network, address
    finally:
        subprocess.run(["docker", "rm", "-f", web, swarm_overlay.probe_name(network)], capture_output=True)
        subprocess.run(["docker", "network", "rm", network], capture_output=True)


async def test_a_check_through_the_overlay_probe_is_a_get_like_any_other(app: tuple[str, str]) -> None:
    network, address = app
    asked: list[str] = []

    async def socket() -> str:
        return SOCKET

    async def image() -> None:
        asked.append(network)

    probe = NodeProbe(None, lambda: {}, timeout_s=3, overlay=OverlayProbe(socket, network, image, timeout_s=3))  # type: ignore[arg-type]
    task = dom.Task("t1", "a-node-berth-does-not-reach", address, "c1")
    assert probe.reaches_over_overlay(task) and not probe.reaches(task)
    for _ in range(50):  # httpd starting
        if await probe.ready(task, 8080, "/"):
            break
        await asyncio.sleep(0.1)
    assert await probe.ready(task, 8080, "/")
    assert asked == [network]  # the probe was made once, its image asked for first
    name = swarm_overlay.probe_name(network)
    assert _docker("inspect", "-f", "{{.State.Running}} {{.Config.Labels}}", name).startswith("true ")

    assert not await probe.ready(task, 8080, "/missing")
    assert "404" in probe.said["t1"], probe.said
    seen = await probe.seen(task, 8081, "/")
    assert (seen.ok, seen.kind, seen.text) == (False, "refused", "GET /: connection refused")

    _docker("rm", "-f", name)  # lost: the next check makes it again
    assert await probe.ready(task, 8080, "/")
    assert asked == [network, network]
    assert "t1" not in probe.said

    # without an overlay probe, a task on a node Berth does not reach is not checked here
    assert not NodeProbe(None, lambda: {}).reaches_over_overlay(task)  # type: ignore[arg-type]
