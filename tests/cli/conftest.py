"""The client commands run as the real ``berth`` program (a subprocess, as a user runs it) against the api
the api tests use (in-process, on the real nats-server and Postgres), with its own config directory."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import (  # noqa: F401  (fixtures)
    api,
    api_settings,
    api_template,
    client,
    identities,
    members,
    scheduler,
)
from tests.support.procs import Postgres, create_database, provisioned

BERTH = str(Path(sys.executable).parent / "berth")


@pytest.fixture
async def api_urls(postgres: Postgres, api_template: str) -> dict[str, str]:  # noqa: F811
    """The api's database: a copy of the api tests' migrated template (``api_template``), apart from this
    directory's ``database`` (a fresh, empty one, which tests fill with schemas of their own)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    return await provisioned(await create_database(postgres.admin_url, name, template=api_template), "test-secret")


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


@dataclass
class Berth:
    """``await berth("apps", "list")``: run the command with this test's home and config directory."""

    home: Path
    env: dict[str, str]

    @property
    def config_file(self) -> Path:
        return self.home / "config" / "berth" / "config.json"

    async def __call__(self, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        proc = await asyncio.create_subprocess_exec(
            BERTH,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**self.env, **(env or {})},
        )
        out, err = await asyncio.wait_for(proc.communicate(input.encode() if input is not None else b""), 120)
        assert proc.returncode is not None
        return Result(proc.returncode, out.decode(), err.decode())

    def start(self, *args: str) -> asyncio.Task[Result]:
        """Run it in the background (a command that waits for the test to play the scheduler's part)."""
        return asyncio.create_task(self(*args))


@pytest.fixture
def berth(tmp_path: Path) -> Berth:
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "LANG": "C.UTF-8",
        "COLUMNS": "200",
    }
    return Berth(home, env)


@pytest.fixture
async def logged_in(berth: Berth, api) -> Berth:  # noqa: F811
    r = await berth("login", api.url, "--token-stdin", input=api.admin_token() + "\n")
    assert r.code == 0, r
    return berth


@contextmanager
def local_server(handler: type[BaseHTTPRequestHandler], **state: Any) -> Iterator[ThreadingHTTPServer]:
    """A local HTTP server answering as ``handler`` says (playing the api's contract), ``state`` set on it as
    attributes, in a thread; shut down at the end."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    for name, value in state.items():
        setattr(server, name, value)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def local_env(server: ThreadingHTTPServer, token: str) -> dict[str, str]:
    """The environment that points ``berth`` at ``server`` with ``token``."""
    return {"BERTH_API_URL": f"http://127.0.0.1:{server.server_address[1]}", "BERTH_TOKEN": token}
