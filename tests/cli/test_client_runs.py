"""``berth run`` and ``berth runs`` against a local server that answers as the runs contract says
(``POST /v1/applications/{id}/runs``, ``GET .../runs``, and ``GET .../runs/{run_id}/logs?follow=true``:
``event: line`` Server-Sent Events, then one ``event: end`` with the run): the command's stdout and stderr
kept apart and unchanged, the exit code the run's (124 timed out, 1 could not run), ``--detach`` printing
the id, a dropped stream resumed from the last line's time, and the listing as exact text."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.cli.conftest import local_env, local_server

APP = "a" * 32
RUN = "b" * 32
TOKEN = "brt_local-test-token"
BASE = f"/v1/applications/{APP}/runs"


def run_body(status: str, exit_code: int | None, reason: str = "", **extra: Any) -> dict[str, Any]:
    return {
        "run_id": RUN,
        "application_id": APP,
        "deployment_id": "d" * 32,
        "service": "web",
        "command": ["sh", "-c", "migrate --all"],
        "timeout_s": 60,
        "status": status,
        "exit_code": exit_code,
        "reason": reason,
        "last_lines": [],
        "server_id": "local",
        "duration_s": 2.25 if status != "queued" else None,
        "created_at": "2026-12-05T10:00:00+00:00",
        "started_at": None,
        "finished_at": None,
        **extra,
    }


def line(text: str, stream: str = "stdout", at: str = "2026-12-05T10:00:01Z") -> dict[str, Any]:
    return {
        "service": "",
        "replica": f"berth-run-{RUN}",
        "server_id": "local",
        "stream": stream,
        "time": at,
        "line": text,
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # the answer ends when the connection closes

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, status: int, body: object, kind: str = "application/json") -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {TOKEN}":
            return True
        self._json(401, {"title": "Authentication required", "status": 401}, "application/problem+json")
        return False

    def do_POST(self) -> None:
        if not self._authorized():
            return
        if self.path.endswith("/cancel"):
            self.server.posted.append(self.path)  # type: ignore[attr-defined]
            if self.path == f"{BASE}/{'c' * 32}/cancel":
                problem = {"title": "Conflict", "status": 409, "detail": "Run cccc has finished already (failed)."}
                return self._json(409, problem, "application/problem+json")
            return self._json(202, run_body("running", None))
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.posted.append(body)  # type: ignore[attr-defined]
        if body["command"] == ["nope"]:
            problem = {
                "title": "Invalid request",
                "status": 422,
                "detail": "The request has invalid fields: /body/service.",
                "errors": [{"loc": "/body/service", "detail": "there is no service 'api' to run it as"}],
            }
            return self._json(422, problem, "application/problem+json")
        self._json(202, run_body("queued", None))

    def do_GET(self) -> None:
        if not self._authorized():
            return
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == f"/v1/applications/{APP}":
            return self._json(200, {"id": APP, "name": "shop"})
        if url.path == BASE:
            done = run_body("timed_out", None, "timed out after 60 s (killed)")
            return self._json(200, [done, {**run_body("queued", None), "run_id": "c" * 32, "command": ["true"]}])
        if url.path != f"{BASE}/{RUN}/logs" or query.get("follow") != ["true"]:
            return self._json(404, {"title": "Not found", "status": 404}, "application/problem+json")
        self.server.asked.append(query)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(b": berth run log\n\n")
        script = self.server.script  # type: ignore[attr-defined]
        for event, data in script.pop(0):
            self.wfile.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
        self.wfile.flush()


@pytest.fixture
def local_api() -> Iterator[ThreadingHTTPServer]:
    with local_server(Handler, posted=[], asked=[], script=[]) as server:
        yield server


def _env(server: ThreadingHTTPServer) -> dict[str, str]:
    return local_env(server, TOKEN)


async def test_run_prints_the_commands_streams_and_exits_with_its_code(berth, local_api):
    failed = run_body("failed", 3, "exited with code 3")
    # The first stream drops after two lines; the second repeats the last instant's lines, then ends.
    local_api.script = [
        [("line", line("Applying 0001... OK")), ("line", line("warning: slow", "stderr"))],
        [
            ("line", line("warning: slow", "stderr")),
            ("line", line("boom", at="2026-12-05T10:00:02Z")),
            ("end", failed),
        ],
    ]
    r = await berth(
        "run", APP, "--service", "web", "--timeout", "60", "--", "sh", "-c", "migrate --all", env=_env(local_api)
    )
    assert r.code == 3
    assert r.out == "Applying 0001... OK\nboom\n"
    assert r.err == (f"Run {RUN} of shop (web) started\nwarning: slow\nRun {RUN} of shop failed: exited with code 3\n")
    assert local_api.posted == [{"command": ["sh", "-c", "migrate --all"], "service": "web", "timeout_s": 60}]
    assert local_api.asked == [
        {"follow": ["true"]},
        {"follow": ["true"], "since": ["2026-12-05T10:00:01Z"], "tail": ["5000"]},
    ]


@pytest.mark.parametrize(
    ("end", "code", "said"),
    [
        (run_body("succeeded", 0), 0, "succeeded"),
        (run_body("timed_out", None, "timed out after 60 s (killed)"), 124, "timed_out: timed out after 60 s (killed)"),
        (run_body("failed", None, "the image is gone"), 1, "failed: the image is gone"),
    ],
)
async def test_run_exit_codes(berth, local_api, end, code, said):
    local_api.script = [[("end", end)]]
    r = await berth("run", APP, "--", "true", env=_env(local_api))
    assert (r.code, r.out) == (code, "")
    assert r.err == f"Run {RUN} of shop (web) started\nRun {RUN} of shop {said}\n"
    assert local_api.posted == [{"command": ["true"]}]


async def test_run_detached_refused_and_listed(berth, local_api):
    r = await berth("run", APP, "--detach", "--", "python", "manage.py", "migrate", env=_env(local_api))
    assert (r.code, r.out, r.err) == (0, f"{RUN}\n", "")
    assert local_api.asked == []
    r = await berth("run", APP, "-d", "--json", "--", "true", env=_env(local_api))
    assert json.loads(r.out) == run_body("queued", None)
    r = await berth("run", APP, "--service", "api", "--", "nope", env=_env(local_api))
    assert (r.code, r.out) == (1, "")
    assert r.err == (
        "berth: Invalid request: The request has invalid fields: /body/service.\n"
        "  service: there is no service 'api' to run it as\n"
    )
    r = await berth("runs", "list", APP, env=_env(local_api))
    assert (r.code, r.err) == (0, "")
    assert r.out == (
        "RUN                               STATUS     EXIT  SERVICE  COMMAND                CREATED              DURATION\n"
        f"{RUN}  timed_out  -     web      sh -c 'migrate --all'  2026-12-05 10:00:00  2.2s\n"
        f"{'c' * 32}  queued     -     web      true                   2026-12-05 10:00:00  -\n"
    )
    r = await berth("runs", "list", APP, "--json", env=_env(local_api))
    assert [x["run_id"] for x in json.loads(r.out)] == [RUN, "c" * 32]


async def test_runs_cancel(berth, local_api):
    r = await berth("runs", "cancel", APP, RUN, env=_env(local_api))
    assert (r.code, r.err) == (0, "")
    assert r.out == f"Run {RUN} of shop cancelling (berth runs show {APP} {RUN})\n"
    assert local_api.posted == [f"{BASE}/{RUN}/cancel"]
    r = await berth("runs", "cancel", APP, RUN, "--json", env=_env(local_api))
    assert json.loads(r.out) == run_body("running", None)
    r = await berth("runs", "cancel", APP, "c" * 32, env=_env(local_api))
    assert (r.code, r.out) == (1, "")
    assert r.err == "berth: Conflict: Run cccc has finished already (failed).\n"
