"""Every service's ``/metrics`` answers the platform's scrape token only (``BERTH_METRICS_TOKEN``): no header,
another scheme, a wrong token or a team's token get 401 with a Bearer challenge; with no token configured
no one reads it. A real service (the scheduler, started by the shared runtime) on loopback, and the token
appears in none of its output."""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request

from berth_common.db.provision import provision
from berth_common.httpd import HealthServer
from berth_common.runtime import serve
from berth_common.scrape import platform_exposition, team_token
from berth_scheduler.bootstrap import spec
from berth_scheduler.settings import SchedulerSettings

TOKEN = "scrape-token-for-the-services-0123456789"


def get(port: int, authorization: str | None = None) -> tuple[int, dict[str, str], str]:
    headers = {"Authorization": authorization} if authorization is not None else {}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def refusals(port: int) -> list[int]:
    asked = [None, TOKEN, f"Basic {TOKEN}", f"Bearer {TOKEN}x", f"Bearer {team_token(TOKEN, 'team-a')}", "Bearer "]
    return [get(port, a)[0] for a in asked]


async def test_the_health_server_answers_the_platform_token_only_and_no_one_without_one():
    async def ready() -> dict[str, bool]:
        return {"ok": True}

    guarded = HealthServer("127.0.0.1", 0, ready, platform_exposition(TOKEN, lambda: b"berth_up 1\n"))
    closed = HealthServer("127.0.0.1", 0, ready)  # no exposition: never open
    unset = HealthServer("127.0.0.1", 0, ready, platform_exposition("", lambda: b"berth_up 1\n"))
    ports = [await s.start() for s in (guarded, closed, unset)]
    try:
        status, headers, body = await asyncio.to_thread(get, ports[0], f"Bearer {TOKEN}")
        assert (status, body) == (200, "berth_up 1\n")
        status, headers, _ = await asyncio.to_thread(get, ports[0])
        assert status == 401 and headers["WWW-Authenticate"] == 'Bearer realm="berth-metrics"'
        assert await asyncio.to_thread(refusals, ports[0]) == [401] * 6
        for port in ports[1:]:
            assert (await asyncio.to_thread(get, port, f"Bearer {TOKEN}"))[0] == 401
            assert (await asyncio.to_thread(get, port, "Bearer "))[0] == 401
    finally:
        for s in (guarded, closed, unset):
            await s.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_service_serves_its_metrics_to_the_token_on_loopback_and_never_logs_it(nats_server, database, capfd):
    urls = await provision(database, "test-secret")
    port = free_port()
    settings = SchedulerSettings(
        nats_url=nats_server.url, database_url=urls["scheduler"], http_port=port, metrics_token=TOKEN
    )
    assert settings.http_host == "127.0.0.1"  # loopback unless BERTH_HTTP_HOST says otherwise
    stop = asyncio.Event()
    task = asyncio.create_task(serve(spec(settings), stop))
    try:
        for _ in range(300):
            try:
                status, _, body = await asyncio.to_thread(get, port, f"Bearer {TOKEN}")
                break
            except OSError:
                await asyncio.sleep(0.1)
        assert status == 200 and "process_resident_memory_bytes" in body
        assert await asyncio.to_thread(refusals, port) == [401] * 6
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    out, err = capfd.readouterr()
    assert "service ready" in out + err  # its log was captured
    assert TOKEN not in out + err and TOKEN not in repr(settings) and TOKEN not in settings.model_dump_json()
