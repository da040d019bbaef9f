"""Request/reply between services: answers, and a clear error when the service is down or too slow."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import nats
import pytest

from berth_common.bus import QueryFailedError, ServiceUnavailableError, subscriptions_confirmed
from berth_common.catalogue import HealthQuery, HealthReply
from tests.support.bus_helpers import connected_bus


async def test_query_is_answered(nats_server):
    builder = await connected_bus("builder", nats_server.url)
    api = await connected_bus("api", nats_server.url)

    async def health(data: dict[str, Any]) -> HealthReply:
        return HealthReply(service="builder", ready=True, components={"bus": True, "db": True})

    await builder.serve("health", health)
    reply = await api.request("builder", "health", HealthQuery(), HealthReply)
    assert reply == HealthReply(service="builder", ready=True, components={"bus": True, "db": True})
    await builder.close()
    await api.close()


async def test_no_responder_is_a_clear_error_at_once(nats_server):
    api = await connected_bus("api", nats_server.url, rpc_timeout_s=5)
    start = time.monotonic()
    with pytest.raises(ServiceUnavailableError, match=r"'builder' is not running \(no responder on rpc.builder.health"):
        await api.request("builder", "health", HealthQuery(), HealthReply)
    assert time.monotonic() - start < 1.0  # not after the 5 s timeout
    await api.close()


async def test_stopped_service_no_longer_answers(nats_server):
    builder = await connected_bus("builder", nats_server.url)
    api = await connected_bus("api", nats_server.url)

    async def health(data: dict[str, Any]) -> HealthReply:
        return HealthReply(service="builder", ready=True, components={})

    await builder.serve("health", health)
    await api.request("builder", "health", HealthQuery(), HealthReply)
    await builder.close()
    with pytest.raises(ServiceUnavailableError, match="not running"):
        await api.request("builder", "health", HealthQuery(), HealthReply)
    await api.close()


async def test_slow_service_times_out_with_a_clear_error(nats_server):
    builder = await connected_bus("builder", nats_server.url)
    api = await connected_bus("api", nats_server.url)

    async def slow(data: dict[str, Any]) -> HealthReply:
        await asyncio.sleep(2)
        return HealthReply(service="builder", ready=True, components={})

    await builder.serve("health", slow)
    start = time.monotonic()
    with pytest.raises(ServiceUnavailableError, match=r"'builder' did not answer rpc.builder.health within 0.3s"):
        await api.request("builder", "health", HealthQuery(), HealthReply, timeout=0.3)
    assert time.monotonic() - start < 1.0
    await builder.close(timeout=5)
    await api.close()


async def test_failing_query_handler_is_reported_as_such(nats_server):
    builder = await connected_bus("builder", nats_server.url)
    api = await connected_bus("api", nats_server.url)

    async def broken(data: dict[str, Any]) -> HealthReply:
        raise LookupError("no such build")

    await builder.serve("health", broken)
    with pytest.raises(QueryFailedError, match=r"rpc\.builder\.health failed: no such build"):
        await api.request("builder", "health", HealthQuery(), HealthReply)
    await builder.close()
    await api.close()


async def test_replicas_share_the_queries(nats_server):
    """Two instances of a service answer in one queue group: each query is answered once."""
    replicas = [await connected_bus("builder", nats_server.url) for _ in range(2)]
    api = await connected_bus("api", nats_server.url)
    answered: list[int] = []
    for i, bus in enumerate(replicas):

        async def health(data: dict[str, Any], i: int = i) -> HealthReply:
            answered.append(i)
            return HealthReply(service=f"builder-{i}", ready=True, components={})

        await bus.serve("health", health)
    for _ in range(20):
        await api.request("builder", "health", HealthQuery(), HealthReply)
    assert len(answered) == 20 and set(answered) == {0, 1}
    for bus in [*replicas, api]:
        await bus.close()


async def test_a_confirmed_subscription_is_known_to_the_server(nats_server):
    """nats-py's flush() can see its PONG before the SUB left the client; subscriptions_confirmed cannot."""
    responder = await nats.connect(nats_server.url)
    asker = await nats.connect(nats_server.url)

    async def echo(msg: Any) -> None:
        await msg.respond(msg.data)

    try:
        for i in range(300):
            await responder.subscribe(f"rpc.probe.n{i}", queue="probe", cb=echo)
            await subscriptions_confirmed(responder)
            assert (await asker.request(f"rpc.probe.n{i}", b"x", timeout=2)).data == b"x", i
    finally:
        await responder.close()
        await asker.close()
