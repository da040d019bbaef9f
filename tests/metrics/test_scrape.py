"""``/metrics`` of the metrics service answers a scrape token's bearer only, and labels series with a
team's ids only for that team's token: the rule (``berth_common.scrape``), the exposition per scope, and
the HTTP server's 401 with its challenge. In process, no Docker."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

import pytest

from berth_common.httpd import HealthServer
from berth_common.scrape import ScrapeScope, scope_of, team_token
from berth_metrics.adapters.prom import exposition
from berth_metrics.domain.readings import ContainerReading, ServerReading, Snapshot

TOKEN = "platform-token-0123456789"
NOW = datetime(2026, 12, 5, tzinfo=UTC)


def reading(cid: str, app: str, team: str) -> ContainerReading:
    labels = {"app": app, "service": "web", "deployment": f"dep-{app}", "team": team}
    return ContainerReading(cid, f"berth-{app}-web-1", "img", labels, NOW, 12.5, 100, 200, 1, 2, 3, 4, 0, None)


def snapshot() -> Snapshot:
    snap = Snapshot()
    snap.containers = {
        "a" * 64: reading("a" * 64, "shop", "team-a"),
        "b" * 64: reading("b" * 64, "blog", "team-b"),
    }
    snap.server = ServerReading("vm-1", NOW, 5.0, 10, 20, 0.1, 0.2, 0.3)
    return snap


def test_the_platform_token_and_each_team_token_grant_their_scope_and_nothing_else_does():
    assert scope_of(f"Bearer {TOKEN}", TOKEN) == ScrapeScope()
    assert scope_of(f"bearer  {team_token(TOKEN, 'team-a')} ", TOKEN) == ScrapeScope(team="team-a")
    for refused in ("", TOKEN, f"Basic {TOKEN}", "Bearer ", f"Bearer {TOKEN}x", f"Bearer {team_token('other', 'team-a')}",
                    f"Bearer {team_token(TOKEN, 'team-a')[:-1]}0", "Bearer bmt_team-a.", "Bearer bmt_.abc"):  # fmt: skip
        assert scope_of(refused, TOKEN) is None, refused
    assert scope_of("Bearer ", "") is None and scope_of("Bearer x", "") is None  # no platform token: no one
    with pytest.raises(ValueError):
        team_token(TOKEN, "a.b")


def container_lines(text: str) -> list[str]:
    return sorted(line for line in text.splitlines() if line.startswith("berth_container_cpu_percent{"))


def test_the_platform_sees_every_container_without_team_metadata_and_a_team_only_its_own():
    answer = exposition(snapshot, "vm-1", TOKEN)
    assert answer("") is None and answer(f"Bearer {TOKEN}0") is None
    platform = answer(f"Bearer {TOKEN}")
    assert platform is not None
    text = platform.decode()
    assert container_lines(text) == [
        f'berth_container_cpu_percent{{container_id="{"a" * 12}",server="vm-1"}} 12.5',
        f'berth_container_cpu_percent{{container_id="{"b" * 12}",server="vm-1"}} 12.5',
    ]
    assert not re.search(r"team-|shop|blog|dep-", text)
    assert 'berth_server_memory_total_bytes{server="vm-1"} 20.0' in text
    team = answer(f"Bearer {team_token(TOKEN, 'team-a')}")
    assert team is not None
    text = team.decode()
    assert container_lines(text) == [
        f'berth_container_cpu_percent{{app="shop",container_id="{"a" * 12}",deployment="dep-shop",'
        'name="berth-shop-web-1",server="vm-1",service="web",team="team-a"} 12.5'
    ]
    assert "team-b" not in text and "blog" not in text and "berth_server_" not in text


async def test_the_http_server_answers_401_with_a_bearer_challenge_without_a_token():
    server = HealthServer("127.0.0.1", 0, lambda: asyncio.sleep(0, {"ok": True}), exposition(snapshot, "vm-1", TOKEN))
    port = await server.start()

    async def get(path: str, *headers: str) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: x\r\n{''.join(h + chr(13) + chr(10) for h in headers)}\r\n".encode()
        )
        await writer.drain()
        data = await reader.read()
        writer.close()
        return data

    try:
        refused = await get("/metrics")
        assert refused.startswith(b"HTTP/1.1 401 Unauthorized\r\n")
        assert b'WWW-Authenticate: Bearer realm="berth-metrics"\r\n' in refused and b"berth_container" not in refused
        ok = await get("/metrics", "X-Other: 1", f"authorization: Bearer {TOKEN}")
        assert ok.startswith(b"HTTP/1.1 200 OK\r\n") and b"berth_container_cpu_percent{" in ok
        assert (await get("/livez")).startswith(b"HTTP/1.1 200 OK\r\n")  # liveness stays open
    finally:
        await server.stop()
