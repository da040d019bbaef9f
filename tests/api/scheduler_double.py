"""A small stand-in for the scheduler on the real bus: it takes the deployment and application-removal commands
off the work queue, answers with the scheduler's events and log lines when a test tells it to, and can serve
replicas queries.

The real scheduler is tested on its own; this double lets the api's tests drive every event order they need.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nats.js.api import AckPolicy, ConsumerConfig

from berth_common.bus import Bus
from berth_common.bus.streams import CMD_STREAM
from berth_common.catalogue import (
    ApplicationRemovalFailed,
    ApplicationRemovalProgressed,
    ApplicationRemoved,
    BuildSucceeded,
    DeploymentCancelled,
    DeploymentFailed,
    DeploymentProgressed,
    DeploymentSucceeded,
    LogLine,
    ReplicasReply,
    ReplicaStatus,
)
from berth_common.envelope import Envelope, new_id
from berth_common.tasks import cancel_and_wait

SUBJECTS = ("cmd.deployment.start", "cmd.deployment.cancel", "cmd.application.remove")


def durable(subject: str) -> str:
    return "double--" + subject.replace(".", "_")


@dataclass
class Received:
    subject: str
    raw: bytes
    envelope: Envelope
    headers: dict[str, str]

    @property
    def data(self) -> dict[str, Any]:
        return self.envelope.data


@dataclass
class SchedulerDouble:
    url: str
    bus: Bus = field(init=False)
    commands: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    replicas: dict[str, ReplicasReply] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _subs: list[Any] = field(default_factory=list)
    _log_seq: dict[str, int] = field(default_factory=dict)

    async def start(self, *, serve_replicas: bool = False) -> SchedulerDouble:
        self.bus = Bus("scheduler", self.url, fetch_wait_s=0.25)
        await self.bus.connect()
        for subject in SUBJECTS:
            name = durable(subject)
            await self.bus.js.add_consumer(
                CMD_STREAM,
                ConsumerConfig(name=name, durable_name=name, filter_subject=subject, ack_policy=AckPolicy.EXPLICIT),
            )
            sub = await self.bus.js.pull_subscribe_bind(durable=name, stream=CMD_STREAM)
            self._subs.append(sub)
            self._tasks.append(asyncio.create_task(self._pull(sub)))
        if serve_replicas:

            async def answer(data: dict[str, Any]) -> ReplicasReply:
                app = data["application_id"]
                return self.replicas.get(app, ReplicasReply(application_id=app))

            await self.bus.serve("replicas", answer)
        return self

    async def _pull(self, sub: Any) -> None:
        while True:
            try:
                msgs = await sub.fetch(10, timeout=0.5)
            except Exception:
                continue
            for msg in msgs:
                env = Envelope.from_bytes(msg.data)
                self.commands.append(Received(msg.subject, msg.data, env, dict(msg.headers or {})))
                await msg.ack()
                self.arrived.set()

    async def stop(self) -> None:
        for t in self._tasks:
            await cancel_and_wait(t)  # a fetch's wait_for can swallow one cancellation on 3.11
        self._tasks.clear()
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs.clear()
        if self.bus.connected:
            await self.bus.nc.close()  # not a drain: nothing in flight matters to a test double

    # --- what arrived ------------------------------------------------------------------------------

    def of(self, subject: str) -> list[Received]:
        return [c for c in self.commands if c.subject == subject]

    async def wait_for(self, subject: str, count: int = 1, timeout: float = 10.0) -> list[Received]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.of(subject)) < count:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"{len(self.of(subject))} of {count} {subject} arrived")
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), remaining)
        return self.of(subject)

    async def settled(self, subject: str, timeout: float = 10.0) -> list[Received]:
        """What arrived of ``subject`` once the stream has nothing more for the double (none pending, none
        unacknowledged, every delivered one recorded): a count read after this is the stream's count."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            info = await self.bus.js.consumer_info(CMD_STREAM, durable(subject))
            if (
                info.num_pending == 0
                and info.num_ack_pending == 0
                and info.delivered.consumer_seq == len(self.of(subject))
            ):
                return self.of(subject)
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{subject}: the double's consumer did not settle: {info}")
            await asyncio.sleep(0.05)

    # --- answering ---------------------------------------------------------------------------------

    async def progressed(
        self, dep: str, app: str, state: str, step: str, detail: str = "", *, id: str | None = None
    ) -> str:
        env = await self.bus.publish(
            DeploymentProgressed(deployment_id=dep, application_id=app, state=state, step=step, detail=detail), id=id
        )
        return env.id

    async def succeeded(self, dep: str, app: str, team: str, image: str, *, id: str | None = None) -> str:
        event = DeploymentSucceeded(deployment_id=dep, application_id=app, team_id=team, image=image, duration_s=1.5)
        return (await self.bus.publish(event, id=id)).id

    async def failed(self, dep: str, app: str, team: str, reason: str) -> str:
        event = DeploymentFailed(
            deployment_id=dep, application_id=app, team_id=team, reason=reason, failed_in="verifying"
        )
        return (await self.bus.publish(event)).id

    async def cancelled(self, dep: str, app: str, team: str, reason: str = "cancelled by user") -> str:
        event = DeploymentCancelled(deployment_id=dep, application_id=app, team_id=team, reason=reason)
        return (await self.bus.publish(event)).id

    async def built(self, dep: str, app: str, image: str, commit: str, dockerfile: str | None = None) -> str:
        event = BuildSucceeded(
            build_id=new_id(),
            deployment_id=dep,
            application_id=app,
            image=image,
            commit=commit,
            generated_dockerfile=dockerfile,
        )
        return (await self.bus.publish(event)).id

    async def removed(self, app: str, team: str, *, id: str | None = None) -> str:
        event = ApplicationRemoved(
            application_id=app, team_id=team, routes_removed=1, containers_removed=2, images_removed=1, duration_s=0.4
        )
        return (await self.bus.publish(event, id=id)).id

    async def removal_progressed(self, app: str, team: str, phase: str, version: int) -> str:
        event = ApplicationRemovalProgressed(application_id=app, team_id=team, phase=phase, version=version)  # type: ignore[arg-type]
        return (await self.bus.publish(event)).id

    async def removal_failed(self, app: str, team: str, reason: str, *, id: str | None = None) -> str:
        event = ApplicationRemovalFailed(application_id=app, team_id=team, reason=reason)
        return (await self.bus.publish(event, id=id)).id

    async def answer_removal(self, command: Received, reason: str | None = None) -> str:
        """Answer a ``cmd.application.remove``: removed, or removal_failed with ``reason``."""
        app, team = command.data["application_id"], command.data["team_id"]
        return await (self.removed(app, team) if reason is None else self.removal_failed(app, team, reason))

    async def log(self, dep: str, line: str, stream: str = "deploy") -> None:
        seq = self._log_seq.get(dep, 0)
        self._log_seq[dep] = seq + 1
        await self.bus.publish(
            LogLine(deployment_id=dep, stream=stream, seq=seq, line=line),  # type: ignore[arg-type]
            id=f"log-{dep}-{seq}",
            nats_subject=f"log.{dep}",
        )

    async def run_to_success(self, start: Received, image: str | None = None) -> str:
        """Play a whole successful rollout for a start command; returns the image it reports."""
        d = start.data
        dep, app, team = d["deployment_id"], d["application_id"], d["team_id"]
        source = d["spec"]["source"]
        image = image or (source["image"] if source["kind"] == "image" else f"berth/{d['spec']['name']}:{dep[:8]}")
        for state, step in (
            ("starting", "starting replicas"),
            ("verifying", "replicas started"),
            ("routing", "replicas ready"),
            ("draining", "new version live"),
            ("stopping_old", "drained"),
            ("succeeded", "succeeded"),
        ):
            await self.progressed(dep, app, state, step)
        await self.succeeded(dep, app, team, image)
        return image

    def set_replicas(self, app: str, live: str, states: list[tuple[str, str]]) -> None:
        self.replicas[app] = ReplicasReply(
            application_id=app,
            live_deployment_id=live,
            replicas=[
                ReplicaStatus(
                    deployment_id=live,
                    service="web",
                    replica=i + 1,
                    container=f"berth-x-web-{live[:8]}-{i + 1}",
                    state=state,
                    health=health,
                )  # type: ignore[arg-type]
                for i, (state, health) in enumerate(states)
            ],
        )


def now() -> datetime:
    return datetime.now(UTC)


def dumps(data: Any) -> str:
    return json.dumps(data, sort_keys=True)
