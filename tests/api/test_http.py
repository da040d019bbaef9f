"""Errors are problem+json everywhere; health and metrics on the api port; body limit; graceful stop."""

from __future__ import annotations

import asyncio

import httpx

from berth_api.domain.problems import MEDIA_TYPE
from berth_api.entrypoints.http import create_app
from berth_api.settings import ApiSettings
from berth_cli.components import free_port
from berth_common.scrape import team_token
from tests.api.conftest import bearer

SCRAPE = "api-scrape-token-0123456789"


def assert_problem(r, status: int, slug: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == MEDIA_TYPE
    body = r.json()
    assert body["type"] == f"urn:berth:problem:{slug}"
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert "Traceback" not in r.text
    return body


async def test_unknown_route_and_method(client, api):
    assert_problem(await client.get("/v1/nothing-here"), 404, "not-found")
    assert_problem(await client.get("/"), 404, "not-found")
    r = await client.put("/v1/me", headers=bearer(api.admin_token()))
    assert_problem(r, 405, "method-not-allowed")
    assert r.headers["allow"] == "GET"


async def test_validation_errors_name_each_field(client, api):
    h = bearer(api.admin_token())
    r = await client.post("/v1/tokens", headers=h, json={"name": "", "expires_in_days": 0, "admin": True})
    body = assert_problem(r, 422, "validation-error")
    by_loc = {e["loc"]: e for e in body["errors"]}
    assert set(by_loc) == {"/body/name", "/body/expires_in_days", "/body/admin"}
    assert all(e["detail"] and e["type"] for e in body["errors"])
    assert by_loc["/body/admin"]["type"] == "extra_forbidden"
    assert all(set(e) == {"loc", "detail", "type"} for e in body["errors"])  # the input is never echoed

    r = await client.post("/v1/tokens", headers=h, json={"name": "x; rm -rf / #"})
    assert assert_problem(r, 422, "validation-error")["errors"][0]["loc"] == "/body/name"

    r = await client.post("/v1/tokens", headers=h | {"content-type": "application/json"}, content=b"{not json")
    assert assert_problem(r, 422, "validation-error")["errors"][0]["loc"].startswith("/body")

    r = await client.delete("/v1/tokens/..%2F..%2Fetc", headers=h)
    assert r.status_code in (404, 422) and r.headers["content-type"] == MEDIA_TYPE


async def test_body_limit(client, api):
    h = bearer(api.admin_token())
    big = b'{"name": "' + b"a" * (api.settings.max_body_bytes + 10) + b'"}'
    r = await client.post("/v1/tokens", headers=h | {"content-type": "application/json"}, content=big)
    assert_problem(r, 413, "payload-too-large")

    async def chunks():  # no Content-Length: the limit is enforced while reading
        yield b'{"name": "'
        for _ in range(40):
            yield b"a" * 65536
        yield b'"}'

    r = await client.post("/v1/tokens", headers=h | {"content-type": "application/json"}, content=chunks())
    assert_problem(r, 413, "payload-too-large")
    # Under the limit still works on the same server.
    assert (await client.post("/v1/tokens", headers=h, json={"name": "small"})).status_code == 201


async def test_health_and_metrics(client, api):
    r = await client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "components": {"bus": True, "db": True}}
    assert (await client.get("/livez")).json() == {"status": "ok"}
    await client.get("/v1/me", headers=bearer(api.admin_token()))
    # /metrics answers the platform's scrape token only (this api has none configured: no one)
    r = await client.get("/metrics", headers=bearer(api.admin_token()))
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="berth-metrics"'
    scraped = create_app(ApiSettings(http_port=0, metrics_token=SCRAPE))  # the same process's counters
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=scraped), base_url="http://t") as c:
        metrics = (await c.get("/metrics", headers=bearer(SCRAPE))).text
        for refused in ({}, bearer(api.admin_token()), bearer(team_token(SCRAPE, "team-a")), bearer(SCRAPE + "x")):
            assert (await c.get("/metrics", headers=refused)).status_code == 401
    assert 'berth_api_requests_total{method="GET",route="/v1/me",status="200"}' in metrics


async def test_readyz_without_a_service_context_is_503():
    app = create_app(ApiSettings(http_port=0))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/readyz")
    assert r.status_code == 503 and r.json()["status"] == "not ready"


async def test_unhandled_error_is_a_bare_500_problem(capfd):
    """A handler that fails: the client sees no trace of it, the server logs it."""
    app = create_app(ApiSettings(http_port=0))

    async def broken() -> None:
        raise RuntimeError("no service context inside")

    app.add_api_route("/v1/broken", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.get("/v1/broken")
    body = assert_problem(r, 500, "internal-error")
    assert set(body) == {"type", "title", "status", "detail"}
    assert "RuntimeError" not in r.text and "service context" not in r.text
    out, err = capfd.readouterr()
    assert "unhandled error" in out + err  # logged on the server side


async def test_a_database_that_cannot_be_reached_is_a_503_to_retry(capfd):
    """Authentication meets a database that refuses connections (nothing listens, as while it restarts):
    503 with Retry-After, a warning and no trace, instead of a 500 reported as a bug."""
    app = create_app(ApiSettings(http_port=0, database_url=f"postgresql+asyncpg://u:p@127.0.0.1:{free_port()}/db"))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.get("/v1/me", headers=bearer("berth_0123456789ab_" + "A" * 43))
    assert_problem(r, 503, "service-unavailable")
    assert r.headers["retry-after"] == "2" and "Connect call failed" not in r.text
    out, err = capfd.readouterr()
    assert "backing service unavailable" in out + err and "unhandled error" not in out + err


async def test_in_flight_request_finishes_on_stop(api):
    """Stop while a request body is still arriving: that request completes, then the server goes away."""
    h = bearer(api.admin_token()) | {"content-type": "application/json"}
    sent_first = asyncio.Event()

    async def slow_body():
        yield b'{"name": '
        sent_first.set()
        await asyncio.sleep(1.0)
        yield b'"late"}'

    async with httpx.AsyncClient(base_url=api.url, timeout=20) as c:
        request = asyncio.create_task(c.post("/v1/tokens", headers=h, content=slow_body()))
        await sent_first.wait()
        await asyncio.sleep(0.2)
        api.stop.set()
        r = await request
    assert r.status_code == 201, r.text
    await asyncio.wait_for(api.task, 30)
    async with httpx.AsyncClient(base_url=api.url, timeout=2) as c:
        try:
            await c.get("/livez")
        except httpx.ConnectError:
            pass
        else:
            raise AssertionError("still serving after stop")


async def test_an_idle_http_server_stops_at_once(tmp_path):
    """Nothing open: the server is gone a few milliseconds after the stop (uvicorn's own sees a stop at its next
    tick, up to a tenth of a second later, then pauses a tenth more for connections: a fifth of a second of each
    of the tests' thousand api stops)."""
    import socket
    import time

    from fastapi import FastAPI

    from berth_api.entrypoints.server import HttpServer

    took = []
    for _ in range(3):  # the quickest of three: a busy machine may hold up one
        http = HttpServer(ApiSettings(http_port=free_port(), data_dir=tmp_path))
        port = http.bind()
        stop = asyncio.Event()
        serving = asyncio.create_task(http.serve(FastAPI(), stop))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await reader.read()).startswith(b"HTTP/1.1 404")  # served (and the connection closed)
        writer.close()
        await asyncio.sleep(0.2)
        start = time.monotonic()
        stop.set()
        await asyncio.wait_for(serving, 10)
        took.append(time.monotonic() - start)
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0  # no longer listening
    assert min(took) < 0.05, took


async def test_readyz_follows_the_bus(client, api, nats_server):
    """nats-server goes away: /readyz turns 503 naming the bus; it comes back: 200 again."""
    nats_server.stop()
    try:
        for _ in range(100):
            r = await client.get("/readyz")
            if r.status_code == 503:
                break
            await asyncio.sleep(0.1)
        assert r.status_code == 503
        assert r.json() == {"status": "not ready", "components": {"bus": False, "db": True}}
        assert (await client.get("/livez")).status_code == 200  # alive, just not ready
    finally:
        nats_server.start()
    for _ in range(100):
        r = await client.get("/readyz")
        if r.status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert r.status_code == 200
