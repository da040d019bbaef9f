"""Helpers for the builder's tests: git repositories made in the test, a `git daemon` on loopback, the builder
service run in-process, and waiting for its events and log lines."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats

from berth_builder.bootstrap import spec
from berth_builder.settings import BuilderSettings
from berth_builder.usecases.builds import Builds
from berth_cli.components import free_port
from berth_common.bus import Bus, subscriptions_confirmed
from berth_common.catalogue import EnvVar, GitSource, StartBuild
from berth_common.db.provision import provision
from berth_common.runtime import serve
from berth_common.values import RECEIVED
from tests.support.procs import wait_port

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Berth Test",
    "GIT_AUTHOR_EMAIL": "test@berth.invalid",
    "GIT_COMMITTER_NAME": "Berth Test",
    "GIT_COMMITTER_EMAIL": "test@berth.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
    "PATH": "/usr/bin:/bin",
}


def git(*args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True, check=False, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"git {args[0]} failed: {proc.stderr}")
    return proc.stdout.strip()


def make_repo(path: Path, files: dict[str, str], branch: str = "main") -> str:
    """A repository at ``path`` with ``files`` committed on ``branch``; returns the commit sha."""
    path.mkdir(parents=True, exist_ok=True)
    git("init", "-q", "-b", branch, str(path))
    return commit(path, files)


def commit(path: Path, files: dict[str, str], message: str = "change") -> str:
    for name, text in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git("add", "-A", cwd=path)
    git("commit", "-q", "-m", message, cwd=path)
    return git("rev-parse", "HEAD", cwd=path)


def publish_bare(repo: Path, base: Path, name: str) -> Path:
    """A bare copy of ``repo`` under the daemon's base path (``git://127.0.0.1:<port>/<name>``)."""
    bare = base / name
    git("clone", "-q", "--bare", str(repo), str(bare))
    return bare


@dataclass
class GitDaemon:
    base: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> GitDaemon:
        self.base.mkdir(parents=True, exist_ok=True)
        argv = [
            "git",
            "daemon",
            "--export-all",
            "--reuseaddr",
            f"--base-path={self.base}",
            "--listen=127.0.0.1",
            f"--port={self.port}",
            str(self.base),
        ]
        self.proc = subprocess.Popen(
            argv, env=GIT_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        wait_port(self.port)
        return self

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)


@dataclass
class Running:
    """The builder service in-process, a publisher bus and a subscription to its events and log lines."""

    settings: BuilderSettings
    task: asyncio.Task[None]
    stop: asyncio.Event
    api: Bus
    nc: Any
    events: list[dict[str, Any]] = field(default_factory=list)
    logs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    holder: dict[str, Builds] = field(default_factory=dict)

    @property
    def handler(self) -> Builds:
        return self.holder["handler"]

    async def start_build(self, **kwargs: Any) -> StartBuild:
        cmd = build_command(**kwargs)
        await self.api.publish(cmd)
        return cmd

    async def result(self, build_id: str, timeout: float = 120, after: int = 0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in self.events if e["data"].get("build_id") == build_id]
            if len(found) > after:
                return found[after]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no build result for {build_id} within {timeout}s")

    def line_times(self, deployment_id: str) -> list[tuple[float, str]]:
        return [(m["received"], m["data"]["line"]) for m in self.logs.get(deployment_id, [])]

    def lines(self, deployment_id: str) -> list[str]:
        return [m["data"]["line"] for m in sorted(self.logs.get(deployment_id, []), key=lambda m: m["data"]["seq"])]


def build_command(
    *,
    build_id: str,
    repository: str,
    ref: str = "main",
    image_tag: str,
    deployment_id: str | None = None,
    subdirectory: str = "",
    dockerfile: str | None = "Dockerfile",
    build_args: list[tuple[str, str, bool]] | None = None,
    no_cache: bool = False,
) -> StartBuild:
    return StartBuild(
        build_id=build_id,
        deployment_id=deployment_id or f"dep-{build_id}",
        application_id="app-1",
        # Parsed as the builder receives it (the shared URL and ref rules left to the builder): the tests send
        # bad values on purpose, as a producer that skips the catalogue's checks could.
        source=GitSource.model_validate(
            {
                "repository": repository,
                "ref": ref,
                "subdirectory": subdirectory,
                "dockerfile": dockerfile,
                "build_args": [EnvVar(name=n, value=v, secret=s) for n, v, s in (build_args or [])],  # type: ignore[arg-type]
            },
            context=RECEIVED,
        ),
        image_tag=image_tag,
        no_cache=no_cache,
    )


async def start_builder(nats_url: str, admin_db_url: str, data_dir: Path, **overrides: Any) -> Running:
    urls = await provision(admin_db_url, "test-secret")
    settings = BuilderSettings(
        nats_url=nats_url,
        database_url=urls["builder"],
        http_port=0,
        data_dir=data_dir,
        secret_key="test-secret",
        **overrides,
    )
    service = spec(settings)
    original_wire = service.wire
    holder: dict[str, Builds] = {}

    async def wire(ctx: Any) -> None:
        await original_wire(ctx)
        holder["handler"] = ctx.extra["builder"]

    service.wire = wire
    stop = asyncio.Event()
    task = asyncio.create_task(serve(service, stop))
    nc = await nats.connect(nats_url)
    api = Bus("scheduler", nats_url)
    for _ in range(100):
        try:
            await api.connect()
            break
        except Exception:
            await asyncio.sleep(0.1)
    running = Running(settings=settings, task=task, stop=stop, api=api, nc=nc, holder=holder)

    async def on_event(msg: Any) -> None:
        running.events.append(json.loads(msg.data))

    async def on_log(msg: Any) -> None:
        body = json.loads(msg.data)
        body["received"] = time.monotonic()
        running.logs.setdefault(body["data"]["deployment_id"], []).append(body)

    await nc.subscribe("evt.build.>", cb=on_event)
    await nc.subscribe("log.>", cb=on_log)
    await subscriptions_confirmed(nc)
    for _ in range(400):  # until the consumers are bound
        if holder or task.done():
            break
        await asyncio.sleep(0.05)
    if task.done():
        task.result()
    return running


async def stop_builder(running: Running) -> None:
    running.stop.set()
    await asyncio.wait_for(running.task, 60)
    await running.api.close()
    await running.nc.close()


def http_get(port: int, path: str = "/", timeout: float = 15.0) -> tuple[int, str]:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
                return resp.status, resp.read().decode()
        except Exception as exc:
            last = exc
            time.sleep(0.1)
    raise AssertionError(f"no answer on 127.0.0.1:{port}{path}: {last}")


def remove_built_images(name: str) -> None:
    """Every ``berth/<name>`` image a test's builds left on the engine."""
    tags = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", f"berth/{name}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if tags:
        subprocess.run(["docker", "rmi", "-f", *tags], capture_output=True, check=False)
