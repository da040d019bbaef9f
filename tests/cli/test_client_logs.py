"""``berth logs`` against a local server that answers as the runtime logs contract says
(``GET /v1/applications/{id}/logs``: JSON, or ``event: line`` Server-Sent Events with keep-alive
comments): the lines in order with their replica, ``--json`` as one object per line, the query as asked,
and a dropped follow resumed from the last line's time without showing a line twice."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.cli.conftest import local_env, local_server

APP = "a" * 32
TOKEN = "brt_local-test-token"
LINES = [
    {"service": "web", "replica": "berth-shop-web-1", "server_id": "local", "stream": "stdout",
     "time": "2026-12-05T10:00:00.100000Z", "line": "GET / 200"},
    {"service": "web", "replica": "berth-shop-web-2", "server_id": "local", "stream": "stderr",
     "time": "2026-12-05T10:00:00.200000Z", "line": "warning: slow"},
    {"service": "web", "replica": "berth-shop-web-1", "server_id": "local", "stream": "stdout",
     "time": "2026-12-05T10:00:00.200000Z", "line": "GET /a 200"},
]  # fmt: skip
LATER = {**LINES[0], "time": "2026-12-05T10:00:01Z", "line": "GET /b 200"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # the answer ends when the connection closes
    requests: list[dict[str, list[str]]]

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, status: int, body: object, kind: str = "application/json") -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._json(401, {"title": "Authentication required", "status": 401}, "application/problem+json")
        if url.path == f"/v1/applications/{APP}":
            return self._json(200, {"id": APP, "name": "shop"})
        if url.path != f"/v1/applications/{APP}/logs":
            return self._json(404, {"title": "Not found", "status": 404}, "application/problem+json")
        self.server.requests.append(query)  # type: ignore[attr-defined]
        if query.get("follow") != ["true"]:
            return self._json(200, {"application_id": APP, "lines": LINES, "unreachable": {"s1": "SSH refused"}})
        follows = sum(1 for q in self.server.requests if q.get("follow") == ["true"])  # type: ignore[attr-defined]
        if follows > 2:
            return self._json(404, {"title": "Not found", "status": 404, "detail": "gone"}, "application/problem+json")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        # First connection: every line, then a drop. Second: from the last time again (the lines of that
        # instant come again), one new line, then a drop.
        sent = LINES if follows == 1 else [*LINES[1:], LATER]
        self.wfile.write(b": berth runtime log\n\n")
        for line in sent:
            self.wfile.write(f"event: line\ndata: {json.dumps(line)}\n\n".encode())
            self.wfile.write(b": keepalive\n\n")
        self.wfile.flush()


@pytest.fixture
def local_api() -> Iterator[ThreadingHTTPServer]:
    with local_server(Handler, requests=[]) as server:
        yield server


def _env(server: ThreadingHTTPServer) -> dict[str, str]:
    return local_env(server, TOKEN)


async def test_logs_tail_with_replicas_and_json(berth, local_api):
    r = await berth(
        "logs", APP, "--tail", "50", "--service", "web", "--since", "2026-12-05T09:00:00Z", env=_env(local_api)
    )
    assert r.code == 0
    assert r.out == ("berth-shop-web-1 | GET / 200\nberth-shop-web-2 | warning: slow\nberth-shop-web-1 | GET /a 200\n")
    assert r.err == "berth: the lines of server s1 are missing: SSH refused\n"
    assert local_api.requests == [{"service": ["web"], "tail": ["50"], "since": ["2026-12-05T09:00:00Z"]}]
    r = await berth("logs", APP, "-t", env=_env(local_api))
    assert r.out.splitlines()[0] == "2026-12-05T10:00:00.100000Z berth-shop-web-1 | GET / 200"
    r = await berth("logs", APP, "--json", env=_env(local_api))
    assert [json.loads(x) for x in r.out.splitlines()] == LINES


async def test_follow_resumes_after_a_drop_without_repeating_a_line(berth, local_api):
    r = await berth("logs", APP, "-f", "--tail", "10", env=_env(local_api))
    assert r.out == (
        "berth-shop-web-1 | GET / 200\n"
        "berth-shop-web-2 | warning: slow\n"
        "berth-shop-web-1 | GET /a 200\n"
        "berth-shop-web-1 | GET /b 200\n"
    )
    # The third ask is answered with a problem: the command ends with it.
    assert (r.code, r.err) == (1, "berth: Not found: gone\n")
    assert local_api.requests == [
        {"tail": ["10"], "follow": ["true"]},
        {"since": ["2026-12-05T10:00:00.200000Z"], "follow": ["true"]},
        {"since": ["2026-12-05T10:00:01Z"], "follow": ["true"]},
    ]
