"""Builds as the builder's commands ask for them: each claimed once, run, cancelled, recorded.

Carries out ``cmd.build.start`` (answered ``evt.build.succeeded``, ``evt.build.failed`` or
``evt.build.cancelled``, the build's output on ``log.<deployment_id>``) and ``cmd.build.cancel``; the
steps of one build are ``usecases/build.py``'s (on the build server ``usecases/servers.py`` connects to, then
pushed by ``usecases/push.py`` when the team has a push registry). At-least-once delivery, a build id claimed once: the ``builds`` row says whether a build is finished (its
result is emitted again, nothing is rebuilt), running here (wait for it), running elsewhere with a fresh
heartbeat (wait, then take over if it goes stale) or free (claim it). The build runs outside any
transaction; its result is recorded and emitted through ``berth_common.db.idempotent`` (once per
message id, through the outbox).

A cancel stops the build's task: the git process group is killed, the Docker build request is closed
(the engine stops the build, BuildKit or legacy), what the build tagged or labelled is removed, and the
build ends ``cancelled`` with ``evt.build.cancelled``. The request is recorded first, so a build running
in another builder process stops within ``BERTH_CANCEL_POLL_S`` and one not started yet never starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass, field
from typing import Any

from berth_builder.adapters.repo import BuildRepo, BuildRow, record_result
from berth_builder.domain.progress import Redactor
from berth_builder.domain.source import InvalidInput, redact_url
from berth_builder.settings import BuilderSettings
from berth_builder.usecases.build import Cancelled, Failed, Outcome, Pipeline, Succeeded
from berth_builder.usecases.build_inputs import secrets_of, validate
from berth_builder.usecases.servers import BuildServerUnusable
from berth_common.bus import Bus, Delivery, TransientError, derived_id
from berth_common.catalogue import BuildCancelled, BuildFailed, BuildSucceeded, CancelBuild, LogLine, StartBuild
from berth_common.db import Unit, idempotent
from berth_common.docker import DockerUnavailable
from berth_common.logging import get_logger

log = get_logger(__name__)
_SUBJECT_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _printable(text: str, limit: int) -> str:
    return _CONTROL.sub("?", text)[:limit]


class BuildLog:
    """Publishes a build's output as ``LogLine`` on ``log.<deployment_id>`` (best effort, redacted)."""

    def __init__(self, bus: Bus, cmd: StartBuild, attempt: int, redact: Redactor) -> None:
        self.bus = bus
        self.cmd = cmd
        self.attempt = attempt
        self.redact = redact
        self.seq = (attempt - 1) * 1_000_000  # a retried build's lines sort after the earlier attempt's
        self.subject = f"log.{cmd.deployment_id}" if _SUBJECT_TOKEN.fullmatch(cmd.deployment_id) else None

    async def __call__(self, line: str) -> None:
        if self.subject is None:
            return
        if self.cmd.service is not None:  # one of a compose application's builds: whose line it is
            line = f"[{self.cmd.service}] {line}"
        msg = LogLine(
            deployment_id=self.cmd.deployment_id, stream="build", seq=self.seq, line=self.redact(line)[:16000]
        )
        self.seq += 1
        try:
            await self.bus.publish(msg, id=f"{self.cmd.build_id}.{self.attempt}.{msg.seq}", nats_subject=self.subject)
        except Exception as exc:  # log lines are best effort: the build goes on
            log.warning("log line not published", build_id=self.cmd.build_id, error=type(exc).__name__)


@dataclass(eq=False)
class Builds:
    settings: BuilderSettings
    bus: Bus
    repo: BuildRepo
    pipeline: Pipeline
    sessionmaker: Any
    slots: asyncio.Semaphore = field(init=False)
    active: dict[str, asyncio.Event] = field(init=False, default_factory=dict)
    # build id -> the work that a cancel stops
    running: dict[str, asyncio.Task[Outcome]] = field(init=False, default_factory=dict)
    cancel_reasons: dict[str, str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.slots = asyncio.Semaphore(self.settings.max_concurrent_builds)

    async def start(self, cmd: StartBuild, delivery: Delivery) -> None:
        started = time.monotonic()
        values = {
            "build_id": cmd.build_id,
            "deployment_id": cmd.deployment_id,
            "application_id": cmd.application_id,
            "repository": _printable(redact_url(cmd.source.repository), 2048),
            "ref": _printable(cmd.source.ref, 255),
            "image_tag": cmd.image_tag,
            "server_id": cmd.source.build_server,
        }
        while True:
            if cmd.build_id in self.active:  # the same build is running in this process
                await self.active[cmd.build_id].wait()
            state, row = await self.repo.claim(values)
            if state == "finished":
                log.info("build already finished, emitting its result again", build_id=cmd.build_id, status=row.status)
                await self._emit(cmd, delivery, row, replay=True)
                return
            if state == "cancelled":
                reason = await self.repo.cancel_reason(cmd.build_id) or "cancelled"
                await self._record(cmd, delivery, Cancelled(reason), round(time.monotonic() - started, 3))
                log.info("build cancelled before it started", build_id=cmd.build_id)
                return
            if state == "claimed":
                break
            await delivery.in_progress()
            await asyncio.sleep(min(self.settings.heartbeat_s, 2.0))
        done = asyncio.Event()
        self.active[cmd.build_id] = done
        try:
            outcome = await self._build(cmd, delivery, row.attempts)
        except (DockerUnavailable, OSError, ConnectionError) as exc:
            await self.repo.release(cmd.build_id)
            await self.pipeline.servers.lost(cmd.source.build_server)
            if delivery.attempt < self.settings.max_deliver:
                raise TransientError(f"build {cmd.build_id}: {exc}") from exc
            outcome = Failed("internal", f"the builder could not reach the Docker engine or its disk: {exc}")
        except BaseException:
            with contextlib.suppress(Exception):
                await self.repo.release(cmd.build_id)
            raise
        finally:
            done.set()
            self.active.pop(cmd.build_id, None)
        duration = round(time.monotonic() - started, 3)
        result = await self._record(cmd, delivery, outcome, duration)
        if isinstance(outcome, Succeeded) and await self.repo.cancel_reason(cmd.build_id) is not None:
            docker = await self.pipeline.servers.docker(cmd.source.build_server)
            await docker.untag(cmd.image_tag)  # cancelled just as it finished: nobody wants it
        log.info("build finished", build_id=cmd.build_id, status=result.status, seconds=duration, reused=result.reused)

    async def _build(self, cmd: StartBuild, delivery: Delivery, attempt: int) -> Outcome:
        say = BuildLog(self.bus, cmd, attempt, Redactor(secrets_of(cmd)))
        try:
            inputs = validate(cmd, self.settings)
        except InvalidInput as exc:
            await say(f"rejected: {exc}")
            return Failed("source", f"invalid {exc.field}: {exc.why}")
        beat = asyncio.create_task(self._heartbeat(cmd.build_id, delivery))

        async def work() -> Outcome:
            if self.slots.locked():
                await say("waiting for a build slot (BERTH_MAX_CONCURRENT_BUILDS)")
            async with self.slots:
                return await self.pipeline.run(cmd, say, inputs)

        task = asyncio.create_task(work(), name=f"build:{cmd.build_id}")
        self.running[cmd.build_id] = task
        watch = asyncio.create_task(self._watch_cancel(cmd.build_id, task))
        try:
            outcome = await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the service itself is stopping: the build is released, not cancelled
            outcome = await self._stopped(cmd, say)
        finally:
            self.running.pop(cmd.build_id, None)
            for t in (beat, watch):
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
        if isinstance(outcome, Cancelled):
            return outcome
        if isinstance(outcome, Failed):
            for line in outcome.reason.splitlines()[:1]:
                await say(f"build failed: {line}")
        else:
            await say(f"built {cmd.image_tag} = {outcome.image_id}" + (" (reused)" if outcome.reused else ""))
        return outcome

    async def _stopped(self, cmd: StartBuild, say: BuildLog) -> Cancelled:
        """The build was cancelled (git and the Docker build went with its task): remove what it made."""
        reason = self.cancel_reasons.pop(cmd.build_id, "cancelled")
        removed: list[str] = []
        try:
            docker = await self.pipeline.servers.docker(cmd.source.build_server)
            removed = await docker.remove_build(cmd.build_id, cmd.image_tag)
        except Exception as exc:  # recorded as cancelled all the same; the image is pruned later
            log.warning("could not remove what a cancelled build left", build_id=cmd.build_id, error=str(exc))
        await say(f"build cancelled: {reason}" + (f" (removed {', '.join(removed)})" if removed else ""))
        return Cancelled(reason, tuple(removed))

    async def _watch_cancel(self, build_id: str, task: asyncio.Task[Outcome]) -> None:
        """Stop the build when another builder process recorded a cancel request for it."""
        while not task.done():
            await asyncio.sleep(self.settings.cancel_poll_s)
            with contextlib.suppress(Exception):
                reason = await self.repo.cancel_reason(build_id)
                if reason is not None and not task.done():
                    self.cancel_reasons[build_id] = reason
                    task.cancel()
                    return

    async def cancel(self, cmd: CancelBuild, delivery: Delivery) -> None:
        """Record the request (a start command still to come never builds; another process running the build
        sees it within ``cancel_poll_s``) and stop the build if it runs here. A build already finished for
        the cancelled deployment keeps its result; the image it tagged for that deployment is untagged."""
        reason = cmd.reason or "cancelled"
        row = await self.repo.request_cancel(cmd.build_id, cmd.deployment_id, reason)
        task = self.running.get(cmd.build_id)
        if task is not None and not task.done():
            self.cancel_reasons[cmd.build_id] = reason
            task.cancel()
            log.info("build cancel requested", build_id=cmd.build_id, reason=reason)
        elif row is not None and row.status == "succeeded":
            try:
                docker = await self.pipeline.servers.docker(row.server_id)
            except BuildServerUnusable as exc:  # nothing can be untagged there now; the cancel is recorded
                log.warning(
                    "the build server of a cancelled build is not usable", build_id=cmd.build_id, error=str(exc)
                )
                return
            if await docker.image_id(row.image_tag) == row.image_id:
                await docker.untag(row.image_tag)
            log.info("build had finished: its tag for the cancelled deployment removed", build_id=cmd.build_id)

    async def _heartbeat(self, build_id: str, delivery: Delivery) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_s)
            with contextlib.suppress(Exception):
                await self.repo.heartbeat(build_id)
            with contextlib.suppress(Exception):
                await delivery.in_progress()

    async def _record(self, cmd: StartBuild, delivery: Delivery, outcome: Outcome, duration: float) -> BuildRow:
        redact = Redactor(secrets_of(cmd))
        if isinstance(outcome, Cancelled):
            values: dict[str, Any] = {"status": "cancelled", "stage": "cancelled", "reason": redact(outcome.reason)}
        elif isinstance(outcome, Succeeded):
            values = {
                "status": "succeeded",
                "image_id": outcome.image_id,
                "commit": outcome.commit,
                "cache_key": outcome.cache_key,
                "reused": outcome.reused,
                "generated_dockerfile": outcome.generated_dockerfile,
                "pushed_ref": outcome.pushed_ref,
            }
        else:
            values = {"status": "failed", "stage": outcome.stage, "reason": redact(outcome.reason)[:4000]}
            if outcome.commit:
                values["commit"] = outcome.commit
        values["duration_s"] = duration

        async def body(_: StartBuild, unit: Unit) -> None:
            await record_result(unit.session, cmd.build_id, values)
            await unit.emit(_event(cmd, values), id=f"build-{cmd.build_id}-{values['status']}")

        await idempotent(self.bus, self.sessionmaker, body)(cmd, delivery)
        row = await self.repo.get(cmd.build_id)
        assert row is not None
        return row

    async def _emit(self, cmd: StartBuild, delivery: Delivery, row: BuildRow, *, replay: bool) -> None:
        values = {
            "status": row.status,
            "image_id": row.image_id or "",
            "commit": row.commit or "",
            "reused": row.reused,
            "generated_dockerfile": row.generated_dockerfile,
            "stage": row.stage or "internal",
            "reason": row.reason or "",
            "duration_s": row.duration_s or 0.0,
            "pushed_ref": row.pushed_ref,
        }
        causes = ("build", cmd.build_id, row.status, *(("replay", delivery.envelope.id) if replay else ()))

        async def body(_: StartBuild, unit: Unit) -> None:
            await unit.emit(_event(cmd, values, row.image_tag), id=derived_id(*causes))

        await idempotent(self.bus, self.sessionmaker, body)(cmd, delivery)


def _event(
    cmd: StartBuild, v: dict[str, Any], image: str | None = None
) -> BuildSucceeded | BuildFailed | BuildCancelled:
    common: dict[str, Any] = {
        "build_id": cmd.build_id,
        "deployment_id": cmd.deployment_id,
        "application_id": cmd.application_id,
        "service": cmd.service,
    }
    if v["status"] == "cancelled":
        return BuildCancelled(
            **common, reason=(v.get("reason") or "cancelled")[:500], duration_s=float(v.get("duration_s") or 0.0)
        )
    if v["status"] == "succeeded":
        return BuildSucceeded(
            **common,
            image=image or cmd.image_tag,
            image_id=v.get("image_id") or "",
            commit=v.get("commit") or "",
            reused=bool(v.get("reused")),
            generated_dockerfile=v.get("generated_dockerfile"),
            duration_s=float(v.get("duration_s") or 0.0),
            pushed_ref=v.get("pushed_ref") or None,
        )
    return BuildFailed(
        **common,
        reason=v.get("reason") or "the build failed",
        stage=v.get("stage") or "internal",
        commit=v.get("commit") or "",
        duration_s=float(v.get("duration_s") or 0.0),
    )
