"""The scheduler with the real bus, Postgres, proxy-sync and Traefik, in-process, plus an api stand-in.

``Platform`` publishes ``cmd.deployment.start``/``cancel`` as the api would and collects every
``evt.deployment.*`` and deploy log line. ``Load`` sends steady traffic through Traefik from a thread
(GET, POST with a body, slow requests) and records every status, body and connection error.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats

from berth_common.bus import Bus, subscriptions_confirmed
from berth_common.catalogue import CancelDeployment, RemoveApplication, StartDeployment
from berth_common.runtime import serve
from berth_scheduler.bootstrap import spec as scheduler_spec
from berth_scheduler.settings import SchedulerSettings
from tests.proxy.support import ProxySync, Traefik
from tests.scheduler import apps

TERMINAL = ("evt.deployment.succeeded", "evt.deployment.failed", "evt.deployment.cancelled")


@dataclass
class Scheduler:
    settings: SchedulerSettings
    stop_event: asyncio.Event | None = None
    task: asyncio.Task[None] | None = None

    async def start(self) -> Scheduler:
        self.stop_event = asyncio.Event()
        self.task = asyncio.create_task(serve(scheduler_spec(self.settings), self.stop_event))
        return self

    async def stop(self) -> None:
        if self.stop_event and self.task:
            self.stop_event.set()
            await asyncio.wait_for(self.task, 60)
            self.task = None


@dataclass
class Platform:
    nats_url: str
    traefik: Traefik
    scheduler: Scheduler
    proxy: ProxySync
    api: Bus | None = None
    nc: Any = None
    events: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def start(self) -> Platform:
        self.nc = await nats.connect(self.nats_url)

        seen: set[str] = set()

        async def on_evt(msg: Any) -> None:
            """Each message once, as a consumer takes it: a publish whose acknowledgement was late is sent again
            with its id (JetStream keeps one; a plain subscription gets both)."""
            env = json.loads(msg.data)
            if env.get("id") in seen:
                return
            seen.add(env.get("id") or uuid.uuid4().hex)
            env["_at"] = time.monotonic()
            async with self._changed:
                (self.logs if msg.subject.startswith("log.") else self.events).append(env)
                self._changed.notify_all()

        await self.nc.subscribe("evt.deployment.>", cb=on_evt)
        await self.nc.subscribe("log.>", cb=on_evt)
        await self.nc.subscribe("evt.application.>", cb=on_evt)
        await subscriptions_confirmed(self.nc)
        await self.proxy.start()
        await self.scheduler.start()
        self.api = Bus("api", self.nats_url)
        for _ in range(100):
            try:
                await self.api.connect()
                break
            except Exception:
                await asyncio.sleep(0.1)
        return self

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.scheduler.stop()
        with contextlib.suppress(Exception):
            await self.proxy.stop()
        if self.api:
            await self.api.close()
        if self.nc:
            await self.nc.close()

    async def deploy(
        self,
        application_id: str,
        spec: dict[str, Any],
        *,
        deployment_id: str | None = None,
        number: int | None = None,
        **options: Any,
    ) -> str:
        """``cmd.deployment.start`` as the api sends it (``number``: the api's request order, None: not sent)."""
        assert self.api is not None
        dep = deployment_id or uuid.uuid4().hex
        cmd = StartDeployment(
            deployment_id=dep,
            application_id=application_id,
            team_id="team-1",
            spec=spec,
            options=options,
            number=number,
        )
        await self.api.publish(cmd)
        return dep

    async def cancel(self, deployment_id: str) -> None:
        assert self.api is not None
        await self.api.publish(CancelDeployment(deployment_id=deployment_id))

    async def remove(self, application_id: str, *, drain_grace_s: float | None = None, id: str | None = None) -> str:
        """``cmd.application.remove`` as the api sends it; its message id."""
        assert self.api is not None
        msg_id = id or uuid.uuid4().hex
        cmd = RemoveApplication(application_id=application_id, team_id="team-1", drain_grace_s=drain_grace_s)
        await self.api.publish(cmd, id=msg_id)
        return msg_id

    def of_app(self, application_id: str, *, progress: bool = False) -> list[dict[str, Any]]:
        """The outcomes (``removed``, ``removal_failed``) of removals of ``application_id`` in arrival order,
        or with ``progress`` its ``evt.application.removal_progressed`` events."""
        return [
            e
            for e in self.events
            if e["type"].startswith("evt.application.remov")
            and (e["type"] == "evt.application.removal_progressed") == progress
            and e["data"].get("application_id") == application_id
        ]

    async def wait_app(self, application_id: str, count: int = 1, timeout: float = 60.0) -> dict[str, Any]:
        """The ``count``-th ``evt.application.*`` event of ``application_id``."""
        try:
            async with self._changed:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: len(self.of_app(application_id)) >= count), timeout
                )
        except TimeoutError:
            raise AssertionError(f"no application event #{count} for {application_id} within {timeout}s") from None
        return self.of_app(application_id)[count - 1]

    def of(self, deployment_id: str, type_: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if e["data"].get("deployment_id") == deployment_id and (type_ is None or e["type"] == type_)
        ]

    async def wait(
        self, deployment_id: str, types: tuple[str, ...] = TERMINAL, timeout: float = 60.0, **match: Any
    ) -> dict[str, Any]:
        """The first event of ``deployment_id`` with a type in ``types`` (and data matching ``match``)."""

        def found() -> dict[str, Any] | None:
            for e in self.of(deployment_id):
                if e["type"] in types and all(e["data"].get(k) == v for k, v in match.items()):
                    return e
            return None

        try:
            async with self._changed:
                await asyncio.wait_for(self._changed.wait_for(found), timeout)
        except TimeoutError:
            seen = [
                (e["type"], e["data"].get("state"), e["data"].get("step"), e["data"].get("detail"))
                for e in self.of(deployment_id)
            ]
            raise AssertionError(f"no {types} {match} for {deployment_id} within {timeout}s; seen: {seen}") from None
        result = found()
        assert result is not None
        return result

    def steps(self, deployment_id: str) -> list[tuple[str, str]]:
        return [(e["data"]["state"], e["data"]["step"]) for e in self.of(deployment_id, "evt.deployment.progressed")]

    def route_file(self, route_id: str) -> bytes | None:
        path = Path(self.traefik.dynamic_dir) / f"{route_id}.yml"
        return path.read_bytes() if path.exists() else None


@dataclass
class Load:
    """Constant traffic through Traefik for one host: GET /, POST /cgi-bin/echo, GET /cgi-bin/slow."""

    port: int
    host: str
    results: list[tuple[str, int, str]] = field(default_factory=list)  # (kind, status or -1, body or error)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _one(self, kind: str) -> tuple[str, int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            if kind == "post":
                conn.request("POST", "/cgi-bin/echo", body=b"x" * 2048, headers={"Host": self.host})
            elif kind == "slow":
                conn.request("GET", "/cgi-bin/slow", headers={"Host": self.host})
            else:
                conn.request("GET", "/", headers={"Host": self.host})
            resp = conn.getresponse()
            return kind, resp.status, resp.read().decode(errors="replace").strip()
        except Exception as exc:
            return kind, -1, f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()

    def _loop(self, kinds: tuple[str, ...], pause: float) -> None:
        i = 0
        while not self._stop.is_set():
            self.results.append(self._one(kinds[i % len(kinds)]))
            i += 1
            time.sleep(pause)

    def start(self) -> Load:
        for kinds, pause in ((("get", "post"), 0.01), (("slow",), 0.05)):
            t = threading.Thread(target=self._loop, args=(kinds, pause), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> list[tuple[str, int, str]]:
        self._stop.set()
        for t in self._threads:
            t.join(15)
        return self.results

    @property
    def errors(self) -> list[tuple[str, int, str]]:
        return [r for r in self.results if not 200 <= r[1] < 300]

    def contents(self) -> list[str]:
        """The version each answer came from, in order (first word of the body)."""
        return [r[2].split()[0] for r in self.results if 200 <= r[1] < 300 and r[2]]


# --- applications and checks shared by the rollout tests ---------------------------------------


def web_app(image: str, content: str, host: str, *, replicas: int = 1, **web) -> dict:
    return {
        "name": "shop",
        "source": {"kind": "image", "image": image},
        "services": [
            {
                "kind": "web",
                "name": "web",
                "port": 8080,
                "replicas": replicas,
                "health_path": "/cgi-bin/health",
                "hosts": [host],
                "command": apps.web(content, **web),
            }
        ],
        "env": [{"name": "DB_PASSWORD", "value": "pw-never-shown", "secret": True}],
        "stop_timeout_s": 5,
    }


def containers_of(app_id: str) -> list[tuple[str, str]]:
    out = subprocess.run(
        [
            "docker",
            "ps",
            "-a",
            "--filter",
            f"label=berth.app={app_id}",
            "--format",
            '{{.Names}} {{.Label "berth.deployment"}}',
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    return sorted(tuple(line.split()) for line in out if line.strip())  # type: ignore[misc]


async def wait_served(platform, host: str, content: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        status, body = await asyncio.to_thread(platform.traefik.get, host)
        if status == 200 and body.decode().strip() == content:
            return
        assert time.monotonic() < deadline, (status, body)
        await asyncio.sleep(0.05)


# Not ready at once (its health command fails first), but soon: a deployment waits this long for it.
WORKER_READY_AFTER_S = 0.2


def worker_app(image: str, version: str, *, stop_timeout_s: int = 5, honour_term: bool = True) -> dict:
    return {
        "name": "jobs",
        "source": {"kind": "image", "image": image},
        "services": [
            {
                "kind": "worker",
                "name": "worker",
                "command": [
                    "env",
                    f"VERSION={version}",
                    *apps.worker(ready_after_s=WORKER_READY_AFTER_S, honour_term=honour_term),
                ],
                "health_command": apps.WORKER_HEALTH,
            }
        ],
        "stop_timeout_s": stop_timeout_s,
    }


class DockerEvents:
    """``docker events`` for one application's containers, collected from a background process."""

    def __init__(self, app_id: str) -> None:
        self.proc = subprocess.Popen(
            [
                "docker",
                "events",
                "--filter",
                f"label=berth.app={app_id}",
                "--filter",
                "type=container",
                "--format",
                "{{json .}}",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )

    def stop(self) -> list[dict]:
        import json

        time.sleep(0.5)
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=10)
        return [json.loads(line) for line in out.splitlines() if line.strip()]
