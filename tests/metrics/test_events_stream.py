"""The Docker events stream drops and comes back: no lifecycle event is lost, none is seen twice.

The engine is reached through a real unix-socket relay that the test can cut and refuse, so the drop is
a real one (the connection closes under the reader) against the real engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess

import pytest

from berth_common.docker import DockerEngines, local_engine
from berth_metrics.adapters.docker import DockerSource, follow_events
from tests.metrics.relay import Relay
from tests.metrics.service import containers, eventually, run_busybox
from tests.support.images import DOCKER

pytestmark = [pytest.mark.slow, pytest.mark.docker]


async def test_events_survive_a_dropped_stream(tmp_path):
    relay = Relay(tmp_path / "docker.sock")
    await relay.start()
    source = DockerSource(DockerEngines(local_engine(f"unix://{relay.path}", "v1.41")), 10)
    stop = asyncio.Event()
    seen: list[tuple[str, str]] = []

    async def watch() -> None:
        async for doc in follow_events(source, stop, max_backoff_s=0.5):
            seen.append((doc["Actor"]["Attributes"].get("name", ""), doc["Action"]))

    task = asyncio.create_task(watch())
    try:
        async with containers() as made:
            await eventually(lambda: relay.accepted >= 1, 10)
            first = run_busybox(command=["sh", "-c", "exit 2"])
            made.append(first)
            name_a = subprocess.run(
                [DOCKER, "inspect", "-f", "{{.Name}}", first], capture_output=True, text=True, check=True
            ).stdout.strip("/\n")
            await eventually(lambda: (name_a, "die") in seen, 30)

            relay.refuse = True
            relay.cut()
            accepted = relay.accepted
            await asyncio.sleep(1.0)  # the watcher is retrying against a relay that refuses it
            second = run_busybox(command=["sh", "-c", "exit 3"])
            made.append(second)
            name_b = subprocess.run(
                [DOCKER, "inspect", "-f", "{{.Name}}", second], capture_output=True, text=True, check=True
            ).stdout.strip("/\n")
            await eventually(
                lambda: (
                    subprocess.run(
                        [DOCKER, "inspect", "-f", "{{.State.Status}}", second], capture_output=True, text=True
                    ).stdout.strip()
                    == "exited"
                ),
                30,
            )
            assert (name_b, "die") not in seen and relay.accepted == accepted

            relay.refuse = False
            await eventually(lambda: (name_b, "die") in seen, 30)  # replayed from where the stream dropped
            assert relay.accepted > accepted
            assert seen.count((name_a, "die")) == 1 and seen.count((name_b, "die")) == 1
            assert seen.count((name_b, "start")) == 1
    finally:
        stop.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await source.close()
        await relay.stop()
