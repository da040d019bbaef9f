"""Deployment logs from stream BERTH_LOG: as text, and as a live Server-Sent Events stream (first event at once,
lines as they are published, ``event: end`` when the deployment finished), secrets redacted, consumers cleaned up."""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from tests.api.conftest import bearer
from tests.api.scheduler_double import SchedulerDouble
from tests.api.test_applications import SECRETS
from tests.api.test_deployments import _deploy, _git_app, _until

SSE = {"Accept": "text/event-stream"}


class EventReader:
    """Parse a text/event-stream response as it arrives: (event or 'comment', id, data)."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()

    async def next(self, timeout: float = 5.0) -> tuple[str, str | None, str]:
        return await asyncio.wait_for(self._next(), timeout)

    async def _next(self) -> tuple[str, str | None, str]:
        event, id_, data, comment = "message", None, [], None
        async for line in self.lines:
            if line == "":
                if comment is not None and not data:
                    return "comment", None, comment
                if data:
                    return event, id_, "\n".join(data)
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "":
                comment = value
            elif field == "event":
                event = value
            elif field == "id":
                id_ = value
            elif field == "data":
                data.append(value)
        raise EOFError("the stream ended")

    async def next_event(self, timeout: float = 5.0) -> tuple[str, str | None, dict]:
        while True:
            kind, id_, data = await self.next(timeout)
            if kind != "comment":
                return kind, id_, json.loads(data)


async def _team(client, headers) -> str:
    return (await client.get("/v1/me", headers=headers)).json()["team"]["id"]


async def test_logs_as_text(client, members, scheduler):
    app = await _git_app(client, members)
    dep = await _deploy(client, members.developer, app["id"])
    url = f"/v1/deployments/{dep['id']}/logs"
    r = await client.get(url, headers=members.viewer)
    assert r.status_code == 200 and r.text == "" and r.headers["content-type"].startswith("text/plain")
    for line in ("cloning https://git.example.com/acme/blog.git", f"npm install (token {SECRETS[0]})", "built"):
        await scheduler.log(dep["id"], line, stream="build")
    await scheduler.log(dep["id"], "[starting] starting replicas")
    r = await client.get(url, headers=members.viewer)
    assert r.status_code == 200
    assert r.text == (
        "cloning https://git.example.com/acme/blog.git\nnpm install (token [redacted])\nbuilt\n[starting] starting replicas\n"
    )
    # Another deployment's lines stay out.
    other = await _deploy(client, members.developer, app["id"])
    await scheduler.log(other["id"], "another deployment")
    assert "another" not in (await client.get(url, headers=members.viewer)).text


async def test_event_stream_first_event_live_lines_and_end(client, members, scheduler, api):
    app = await _git_app(client, members)
    dep = await _deploy(client, members.developer, app["id"])
    d, a = dep["id"], app["id"]
    await scheduler.log(d, "backlog 1", stream="build")
    await scheduler.log(d, f"backlog 2 {SECRETS[0]}", stream="build")

    async with httpx.AsyncClient(base_url=api.url, timeout=30) as c:
        started = time.monotonic()
        async with c.stream("GET", f"/v1/deployments/{d}/logs", headers=members.viewer | SSE) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            assert r.headers["cache-control"].startswith("no-cache")
            events = EventReader(r)
            first = await events.next(timeout=1.0)
            first_s = time.monotonic() - started
            assert first_s < 1.0 and first[0] == "comment"
            kind, _, ready = await events.next_event(timeout=1.0)
            assert kind == "ready" and ready["state"] == "queued" and ready["deployment_id"] == d
            backlog = [await events.next_event() for _ in range(2)]
            assert [(k, e["line"], e["stream"], e["seq"]) for k, _, e in backlog] == [
                ("log", "backlog 1", "build", 0),
                ("log", "backlog 2 [redacted]", "build", 1),
            ]
            assert int(backlog[1][1]) > int(backlog[0][1])  # ids: stream positions

            latencies = []
            for i in range(5):
                sent = time.monotonic()
                await scheduler.log(d, f"live {i}")
                kind, _, e = await events.next_event(timeout=2.0)
                latencies.append(time.monotonic() - sent)
                assert (kind, e["line"]) == ("log", f"live {i}")
            assert max(latencies) < 1.0, latencies

            # The end: the last line arrives, then `event: end`, then the stream closes.
            await scheduler.log(d, "[succeeded] succeeded")
            await scheduler.progressed(d, a, "succeeded", "succeeded")
            await scheduler.succeeded(d, a, await _team(client, members.viewer), "berth/blog:" + d[:8])
            kind, _, e = await events.next_event()
            assert (kind, e["line"]) == ("log", "[succeeded] succeeded")
            kind, _, end = await events.next_event(timeout=5.0)
            assert kind == "end" and end["state"] == "succeeded" and end["status"] == "succeeded"
            try:
                extra = await events.next(timeout=2.0)
            except EOFError:
                extra = None
            assert extra is None
    print(f"\nSSE first event {first_s * 1000:.0f} ms; live line latency max {max(latencies) * 1000:.0f} ms")


async def test_follow_a_finished_deployment_and_resume_with_last_event_id(client, members, scheduler):
    app = await _git_app(client, members)
    dep = await _deploy(client, members.developer, app["id"])
    d = dep["id"]
    for i in range(3):
        await scheduler.log(d, f"line {i}")
    await scheduler.failed(d, app["id"], await _team(client, members.viewer), "readiness never passed")
    await _until(client, members.viewer, d, lambda b: b["state"] == "failed")

    async with client.stream("GET", f"/v1/deployments/{d}/logs?follow=1", headers=members.viewer) as r:
        events = EventReader(r)
        got = [await events.next_event() for _ in range(5)]
    assert [k for k, _, _ in got] == ["ready", "log", "log", "log", "end"]
    assert got[-1][2]["reason"] == "readiness never passed"
    second_id = got[2][1]
    async with client.stream(
        "GET", f"/v1/deployments/{d}/logs", headers=members.viewer | SSE | {"Last-Event-ID": second_id}
    ) as r:
        events = EventReader(r)
        got = [await events.next_event() for _ in range(3)]
    assert [(k, e.get("line")) for k, _, e in got] == [("ready", None), ("log", "line 2"), ("end", None)]


async def test_a_disconnected_client_leaves_no_consumer(client, members, scheduler, api):
    app = await _git_app(client, members)
    dep = await _deploy(client, members.developer, app["id"])
    js = scheduler.bus.js

    async def consumers() -> int:
        return (await js.stream_info("BERTH_LOG")).state.consumer_count

    assert await consumers() == 0
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as c:
        async with c.stream("GET", f"/v1/deployments/{dep['id']}/logs", headers=members.viewer | SSE) as r:
            events = EventReader(r)
            assert (await events.next_event())[0] == "ready"
            await scheduler.log(dep["id"], "hello")
            assert (await events.next_event())[2]["line"] == "hello"
            assert await consumers() == 1
    deadline = time.monotonic() + 5
    while await consumers() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert await consumers() == 0
    # The api still serves (and text logs still work) after the disconnect.
    assert (await client.get(f"/v1/deployments/{dep['id']}/logs", headers=bearer(api.admin_token()))).text == "hello\n"


async def test_the_bus_down_is_said_not_a_500(client, members, scheduler, nats_server):
    app = await _git_app(client, members)
    dep = await _deploy(client, members.developer, app["id"])
    await scheduler.stop()
    nats_server.stop()
    try:
        for _ in range(50):  # until the api noticed
            if (await client.get("/readyz")).status_code == 503:
                break
            await asyncio.sleep(0.1)
        started = time.monotonic()
        r = await client.get(f"/v1/deployments/{dep['id']}/logs", headers=members.viewer, timeout=20)
        assert time.monotonic() - started < 1.0
        assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json", r.text
        assert "log stream is unavailable" in r.json()["detail"]
        r = await client.get(f"/v1/applications/{app['id']}", headers=members.viewer, timeout=20)
        assert r.status_code == 200 and r.json()["runtime"]["available"] is False
        # Deployments are still recorded, at once: the command waits in the outbox until the bus is back.
        started = time.monotonic()
        r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer, timeout=30)
        assert r.status_code == 202, r.text
        assert time.monotonic() - started < 2.0
        second = r.json()["id"]
    finally:
        nats_server.start()
    double = SchedulerDouble(nats_server.url)
    for _ in range(100):  # the api reconnects and redeclares; then the double can bind
        try:
            await double.start()
            break
        except Exception:
            await asyncio.sleep(0.1)
    try:
        (cmd,) = await double.wait_for("cmd.deployment.start", timeout=20)
        assert cmd.data["deployment_id"] == second
    finally:
        await double.stop()
