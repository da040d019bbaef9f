"""``berth deploy`` resumes a dropped event stream with ``Last-Event-ID`` (no line lost or shown twice), and
a stream that keeps failing ends the command with 1: against a local server that answers as the api's
deployment log stream does (``ready``, ``log`` events with ids, keep-alive comments, ``end``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from tests.cli.conftest import local_env, local_server

APP = "a" * 32
DEP = "d" * 32
TOKEN = "brt_local-test-token"
DEPLOYMENT = {"id": DEP, "application_id": APP, "number": 7, "kind": "deploy", "status": "queued"}


def _log(seq: int, line: str, stream: str = "deploy") -> bytes:
    data = {"seq": seq, "stream": stream, "line": line, "time": "2026-12-05T10:00:00+00:00"}
    return f"id: {seq + 100}\nevent: log\ndata: {json.dumps(data)}\n\n".encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, status: int, body: object) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(body).encode())

    def do_POST(self) -> None:
        assert self.path == f"/v1/applications/{APP}/deployments"
        self._json(202, DEPLOYMENT)

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == f"/v1/applications/{APP}":
            return self._json(200, {"id": APP, "name": "shop"})
        assert path == f"/v1/deployments/{DEP}/logs", path
        server = self.server
        server.asked.append(self.headers.get("Last-Event-ID"))  # type: ignore[attr-defined]
        if server.broken:  # type: ignore[attr-defined]
            self.send_response(503)
            self.send_header("Content-Type", "application/problem+json")
            self.end_headers()
            self.wfile.write(b'{"title": "Service unavailable", "status": 503, "detail": "the bus is down"}')
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(
            b': berth deployment log\nretry: 2000\n\nevent: ready\ndata: {"state": "building", "step": "build"}\n\n'
        )
        if len(server.asked) == 1:  # type: ignore[attr-defined]
            self.wfile.write(
                _log(0, "Step 1/2", "build") + b": keep-alive\n\n" + _log(1, "[starting] starting replicas")
            )
            return  # dropped before the end
        self.wfile.write(_log(2, "[failed] web never became ready"))
        end = {"deployment_id": DEP, "state": "failed", "status": "failed", "reason": "web never became ready"}
        self.wfile.write(f"event: end\ndata: {json.dumps(end)}\n\n".encode())


@pytest.fixture
def local_api() -> Iterator[ThreadingHTTPServer]:
    with local_server(Handler, asked=[], broken=False) as server:
        yield server


def _env(server: ThreadingHTTPServer) -> dict[str, str]:
    return local_env(server, TOKEN)


async def test_a_dropped_stream_resumes_after_the_last_line(berth, local_api):
    r = await berth("deploy", APP, env=_env(local_api))
    assert r.code == 1
    assert r.out == (
        f"Deployment #7 of shop started ({DEP})\n"
        "Step 1/2\n"
        "[starting] starting replicas\n"
        "[failed] web never became ready\n"
        "Deployment #7 of shop failed: web never became ready\n"
    )
    assert local_api.asked == [None, "101"]


async def test_a_stream_that_keeps_failing_ends_with_its_problem(berth, local_api):
    local_api.broken = True
    r = await berth("deploy", APP, env=_env(local_api))
    assert r.code == 1
    assert r.err == "berth: Service unavailable: the bus is down\n"
    assert len(local_api.asked) == 6  # the first ask and five more
