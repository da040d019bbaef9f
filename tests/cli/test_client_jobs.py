"""``berth jobs`` against a local server that answers as the jobs contract says: the listing and a job as
exact text, a job found by name or id, create / delete / run now sending what they should."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.cli.conftest import local_env, local_server

APP = "a" * 32
JOB_ID = "j" * 32
RUN = "b" * 32
TOKEN = "brt_local-test-token"
BASE = f"/v1/applications/{APP}/jobs"
JOB = {
    "job_id": JOB_ID,
    "name": "nightly",
    "cron": "30 2 * * *",
    "timezone": "Europe/Berlin",
    "command": ["sh", "-c", "cleanup --all"],
    "service": None,
    "timeout_s": 3600,
    "concurrency": "forbid",
    "enabled": True,
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(data)

    def _sent(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.server.sent.append((self.command, self.path, body))  # type: ignore[attr-defined]
        return body

    def do_GET(self) -> None:
        if self.path == f"/v1/applications/{APP}":
            return self._json(200, {"id": APP, "name": "shop"})
        if self.path == BASE:
            return self._json(200, [JOB])
        if self.path == f"{BASE}/{JOB_ID}/runs":
            return self._json(200, [{"run_id": RUN, "status": "succeeded"}])
        self._json(404, {"title": "Not found", "status": 404})

    def do_POST(self) -> None:
        body = self._sent()
        if self.path == BASE:
            return self._json(201, {**JOB, **body})
        self._json(202, {"run_id": RUN, "status": "queued", "kind": "cron", "job_id": JOB_ID})

    def do_DELETE(self) -> None:
        self._sent()
        self.send_response(204)
        self.end_headers()


@pytest.fixture
def local_api() -> Iterator[ThreadingHTTPServer]:
    with local_server(Handler, sent=[]) as server:
        yield server


async def test_jobs_listed_shown_created_run_and_deleted(berth, local_api):
    env = local_env(local_api, TOKEN)
    r = await berth("jobs", "list", APP, env=env)
    assert (r.code, r.err) == (0, "")
    assert r.out == (
        "NAME     CRON        TIMEZONE       CONCURRENCY  ENABLED  COMMAND\n"
        "nightly  30 2 * * *  Europe/Berlin  forbid       yes      sh -c 'cleanup --all'\n"
    )
    r = await berth("jobs", "show", APP, "nightly", env=env)
    assert r.out == (
        f"Job nightly of shop ({JOB_ID})\n"
        "schedule:     30 2 * * * (Europe/Berlin)\n"
        "command:      sh -c 'cleanup --all'\n"
        "concurrency:  forbid\n"
        "enabled:      yes\n"
        f"  {RUN}  succeeded\n"
    )
    r = await berth("jobs", "run", APP, JOB_ID, env=env)
    assert (r.code, r.out) == (0, f"Run {RUN} of job nightly queued (berth runs show {APP} {RUN})\n")
    r = await berth(
        "jobs", "create", APP, "report", "0 9 * * 1", "--concurrency", "replace", "--", "python", "report.py", env=env
    )
    assert (r.code, r.out) == (0, f"Job report of shop created ({JOB_ID})\n")
    r = await berth("jobs", "delete", APP, "nightly", env=env)
    assert (r.code, r.out) == (0, "Job nightly of shop deleted\n")
    r = await berth("jobs", "run", APP, "nope", env=env)
    assert (r.code, r.out) == (1, "")
    assert r.err == "berth: Not found: The application has no job 'nope'.\n"
    assert local_api.sent == [
        ("POST", f"{BASE}/{JOB_ID}/runs", None),
        (
            "POST",
            BASE,
            {"name": "report", "cron": "0 9 * * 1", "command": ["python", "report.py"], "concurrency": "replace"},
        ),
        ("DELETE", f"{BASE}/{JOB_ID}", None),
    ]
