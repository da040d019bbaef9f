"""Running the metrics service in-process for tests, and the small tools those tests share."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import nats
from nats.aio.client import Client as NATS

from berth_cli.components import free_port
from berth_common.bus import Bus, subscriptions_confirmed
from berth_common.db.provision import provision
from berth_common.runtime import Context, serve
from berth_metrics.bootstrap import spec
from berth_metrics.settings import MetricsSettings
from tests.support.images import DOCKER, TEST_LABEL, busybox_image, remove_container


@dataclass
class Running:
    ctx: Context
    bus: Bus  # a client bus ("api") to query the service
    port: int
    events: list[dict[str, Any]] = field(default_factory=list)  # every evt.container/alert/server.* envelope

    def of_type(self, type_: str, **data: Any) -> list[dict[str, Any]]:
        return [
            e["data"] for e in self.events if e["type"] == type_ and all(e["data"].get(k) == v for k, v in data.items())
        ]


@asynccontextmanager
async def metrics_service(nats_url: str, database: str, **overrides: Any) -> AsyncIterator[Running]:
    urls = await provision(database, "test-secret", ("metrics",))
    port = free_port()
    settings = MetricsSettings(
        nats_url=nats_url,
        database_url=urls["metrics"],
        http_port=port,
        metrics_interval_s=1.0,
        metrics_retention_interval_s=3600,
        metrics_rules_refresh_s=1.0,
        metrics_server_name="test-vm",
        **overrides,
    )
    service = spec(settings)
    wired: asyncio.Future[Context] = asyncio.get_running_loop().create_future()
    inner = service.wire

    async def wire(ctx: Context) -> None:
        await inner(ctx)
        wired.set_result(ctx)

    service.wire = wire
    stop = asyncio.Event()
    task = asyncio.create_task(serve(service, stop))
    nc: NATS = await nats.connect(nats_url)
    bus = Bus("api", nats_url)
    try:
        ctx = await asyncio.wait_for(asyncio.shield(wired), 60)
        await bus.connect(declare=False)
        running = Running(ctx, bus, port)

        seen: set[str] = set()

        async def on_event(msg: Any) -> None:
            # once per message id: a publish sent again (its acknowledgement late on a loaded machine) reaches
            # this plain subscription twice, as any at-least-once consumer may see it
            envelope = json.loads(msg.data)
            if envelope.get("id") not in seen:
                seen.add(envelope.get("id"))
                running.events.append(envelope)

        await nc.subscribe("evt.container.>", cb=on_event)
        await nc.subscribe("evt.alert.>", cb=on_event)
        await nc.subscribe("evt.server.>", cb=on_event)
        await subscriptions_confirmed(nc)
        yield running
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
        await bus.close()
        await nc.close()


def run_busybox(*args: str, labels: dict[str, str] | None = None, command: list[str]) -> str:
    """Start a busybox container (labelled as a test's); returns its id."""
    argv = [DOCKER, "run", "-d", "--name", f"berth-mt-{uuid.uuid4().hex[:10]}", "--label", TEST_LABEL]
    for key, value in (labels or {}).items():
        argv += ["--label", f"{key}={value}"]
    argv += [*args, busybox_image(), *command]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    return proc.stdout.strip()


@asynccontextmanager
async def containers() -> AsyncIterator[list[str]]:
    """A list the test appends container ids to; every one is removed at the end."""
    made: list[str] = []
    try:
        yield made
    finally:
        for cid in made:
            remove_container(cid)


async def eventually(check: Any, timeout: float, interval: float = 0.25) -> Any:
    """Poll ``check()`` (sync or async) until it returns something truthy; return it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout}s")
        await asyncio.sleep(interval)
