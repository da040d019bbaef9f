"""Rollout tasks owned by the scheduler: one per application with unfinished deployments.

Each task drives its application's deployments one at a time from the persisted state (admitting the
oldest queued one when the application is free); bus handlers only record inputs and wake it. Long
steps (readiness, drain) therefore never block the consumers, and a restart resumes every unfinished
deployment from where its state says it was. A cancel interrupts the step in progress. Once a deployment
succeeded and nothing else wants the application, its old images are pruned (``pruning.py``), given up at
once for the application's next deployment, scale or removal and taken up again after it; the pruning due
is recorded with the success (``adapters/prunes_due.py``), so one a restart cut short is resumed too.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from berth_common.db.unit import Unit
from berth_common.docker import DockerUnavailable as DockerUnavailableError
from berth_common.logging import get_logger
from berth_common.tasks import cancel_and_wait
from berth_scheduler.adapters import prunes_due, removals, scales, store
from berth_scheduler.adapters.sealing import UnsealError
from berth_scheduler.domain import machine, queueing
from berth_scheduler.domain.machine import REVERSIBLE, RefusedError, Rollout, State
from berth_scheduler.usecases.rollout import pruning, steps
from berth_scheduler.usecases.rollout.admission import admit_next, lock_application
from berth_scheduler.usecases.rollout.context import RolloutContext
from berth_scheduler.usecases.rollout.leader import Leadership
from berth_scheduler.usecases.rollout.pull import pull_then_start
from berth_scheduler.usecases.rollout.removal import RemovalDriver
from berth_scheduler.usecases.rollout.revive import revive
from berth_scheduler.usecases.rollout.routing import RouteStepper
from berth_scheduler.usecases.rollout.scale import ScaleDriver
from berth_scheduler.usecases.rollout.undo import Undo
from berth_scheduler.usecases.rollout.verify import verify_replicas

log = get_logger(__name__)
Step = Callable[[RolloutContext, Rollout, Any, steps.Waiter], Awaitable[None]]
MAX_BACKOFF_S = 30.0


class Orchestrator:
    def __init__(self, rt: RolloutContext, starting: Step = pull_then_start) -> None:
        self.rt = rt
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wakes: dict[str, asyncio.Event] = {}
        self._interrupts: dict[str, asyncio.Event] = {}
        self._stopping = False
        self._steps: dict[State, Step] = {
            State.BUILDING: steps.await_build,
            State.STARTING: starting,  # bootstrap: a Swarm-aware start (rollout/swarm_step.py)
            State.VERIFYING: verify_replicas,
            State.ROUTING: RouteStepper(),
            State.DRAINING: steps.drain,
            State.STOPPING_OLD: steps.stop_old,
        }
        self._undo = Undo()
        self._removal = RemovalDriver()
        self._scale = ScaleDriver()
        self._leadership: Leadership | None = None
        self.sweep_s = 2.0
        self.revive_s = 5.0  # how often the live replicas an engine restart stopped are looked for
        self._revived_at = 0.0
        self.revivers: list[Callable[[], Awaitable[None]]] = []  # the same pass for more (the databases)

    # --- control -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Run rollouts once this instance holds the leadership (at once when it is the only one)."""
        self._leadership = Leadership(
            self.rt.engine, elected=self.resume, deposed=self._halt, tick=self.sweep, interval_s=self.sweep_s
        )
        self._leadership.start()

    async def resume(self) -> None:
        """Resume every application with an unfinished deployment."""
        apps = await self.sweep()
        log.info("rollouts resumed", applications=len(apps))

    async def sweep(self) -> list[str]:
        """Start a task for every application with unfinished deployments, removal, scale or image pruning
        that has none."""
        async with self.rt.sessionmaker() as s:
            apps = sorted(
                {
                    *await store.unfinished_applications(s),
                    *await removals.active_applications(s),
                    *await scales.active_applications(s),
                    *await prunes_due.applications(s),
                }
            )
        for app in apps:
            task = self._tasks.get(app)
            if task is None or task.done() or _reviving(task):
                self.kick(app)
        if time.monotonic() - self._revived_at >= self.revive_s:
            self._revived_at = time.monotonic()
            await self._revive_idle(set(apps))
        return apps

    async def _revive_idle(self, busy: set[str]) -> None:
        """In the slot of each application nothing else holds: start again its live replicas an engine
        restart left exited (``revive.py``); a deployment arriving meanwhile starts at the next sweep."""
        if self._stopping or not self.leading:
            return
        for reviver in self.revivers:
            try:
                await reviver()
            except Exception as exc:  # the database went away: the next pass tries again
                log.warning("revival pass failed", error=str(exc))
        async with self.rt.sessionmaker() as s:
            running = await store.applications_with_containers(s)
        for app in running:
            task = self._tasks.get(app)
            if app in busy or (task is not None and not task.done()):
                continue
            self._tasks[app] = asyncio.create_task(self._revive(app), name=f"revive:{app}")

    async def _revive(self, application_id: str) -> None:
        try:
            await revive(self.rt, application_id)
        except asyncio.CancelledError:  # a deployment of the application came: the next pass looks again
            log.info("live replicas check given up for a deployment", application_id=application_id)
        except Exception as exc:  # the database went away: the next pass tries again
            log.warning("live replicas not checked", application_id=application_id, error=str(exc))

    @property
    def leading(self) -> bool:
        return self._leadership is not None and self._leadership.leading

    def kick(self, application_id: str) -> None:
        if self._stopping:
            return
        self._wakes.setdefault(application_id, asyncio.Event()).set()
        if not self.leading:
            return  # inputs are recorded; the leader's sweep picks the deployment up
        task = self._tasks.get(application_id)
        if task is not None and _reviving(task):  # a revival gives way (a server that hangs holds it up)
            task.cancel()
            task = None
        if task is None or task.done():
            self._tasks[application_id] = asyncio.create_task(
                self._run_app(application_id), name=f"rollout:{application_id}"
            )

    def wake_all(self) -> None:
        for ev in self._wakes.values():
            ev.set()

    def interrupt(self, deployment_id: str) -> None:
        ev = self._interrupts.get(deployment_id)
        if ev is not None:
            ev.set()

    async def _halt(self) -> None:
        """Stop every rollout task for sure: one whose cancellation Python 3.11 lost (``berth_common.tasks``)
        would otherwise go on with its step (a removal's drain, a start) while the service stops."""
        await asyncio.gather(*(cancel_and_wait(t) for t in list(self._tasks.values())))

    async def stop(self) -> None:
        self._stopping = True
        await self._halt()
        if self._leadership is not None:
            await self._leadership.stop()
        await self.rt.units.flush()  # the events of the last steps go out before the bus drains

    async def idle(self) -> None:
        """Wait until no rollout task runs (tests)."""
        while any(not t.done() for t in self._tasks.values()):
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    # --- the per-application task ------------------------------------------------------------------

    async def _next(self, application_id: str) -> tuple[str, Any] | None:
        """The deployment that holds the application now, admitting the oldest queued one if it is free.

        A plain read first: a deployment that holds the application (often admitted by its start command's
        handler) keeps it until this task finishes it, so only an admission needs the lock."""
        async with self.rt.sessionmaker() as s:
            entries = await store.queue_of(s, application_id)
            current = queueing.running(entries)
            if current is not None:
                return current.deployment_id, await store.load(s, current.deployment_id)
        if queueing.next_to_admit(entries) is None:
            return None

        async def body(unit: Unit) -> str | None:
            await lock_application(unit, application_id)
            return await admit_next(unit, self.rt.sealer, application_id, self.rt.clock())

        admitted: str | None = await self.rt.units.run(body)
        return None if admitted is None else (admitted, None)

    async def _run_app(self, application_id: str) -> None:
        # the task was created inside a handler: its log context is not this task's
        structlog.contextvars.unbind_contextvars("message_id", "message_type", "trace_id", "span_id")
        structlog.contextvars.bind_contextvars(application_id=application_id)
        wake = self._wakes.setdefault(application_id, asyncio.Event())
        try:
            while not self._stopping:
                wake.clear()
                try:
                    found = await self._next(application_id)
                except Exception as exc:
                    log.warning("admission failed, retrying", application_id=application_id, error=str(exc))
                    await asyncio.sleep(1.0)
                    continue
                if found is None:
                    try:  # the application is free: its scales first (a removal fails those not begun)
                        if await self._scale(self.rt, application_id, lambda t: self._wait(application_id, t)):
                            continue
                    except Exception as exc:
                        log.warning("scale interrupted, resuming", application_id=application_id, error=str(exc))
                        await asyncio.sleep(1.0)
                        continue
                    try:  # then its removal, if one was asked for
                        if await self._removal(self.rt, application_id, lambda t: self._wait(application_id, t)):
                            continue
                    except Exception as exc:
                        log.warning("removal interrupted, resuming", application_id=application_id, error=str(exc))
                        await asyncio.sleep(1.0)
                        continue
                    if not await self._prune(application_id, wake) or wake.is_set():  # then its images
                        continue
                    return
                deployment_id, row = found
                try:
                    await self._drive(application_id, deployment_id, row)
                except Exception as exc:  # the database went away mid-step: try again from the state
                    log.warning("rollout interrupted, resuming", deployment_id=deployment_id, error=str(exc))
                    await asyncio.sleep(1.0)
        finally:
            if self._tasks.get(application_id) is asyncio.current_task():
                del self._tasks[application_id]

    async def _prune(self, application_id: str, wake: asyncio.Event) -> bool:
        """The image pruning due after the application's last success (``pruning.py``, recorded with it),
        given up as soon as anything else wants the application (``wake``: due still, tried again when it is
        free; a restart finds it due too). True: nothing was given up."""
        try:
            due = await steps.read(self.rt, prunes_due.get, application_id)
        except Exception as exc:  # the database went away: still due, the next sweep tries again
            log.warning("image pruning not read", application_id=application_id, error=str(exc))
            return True
        if due is None:
            return True
        task = asyncio.create_task(pruning.prune(self.rt, application_id, due.image))
        try:
            while not task.done():
                woken = asyncio.create_task(wake.wait())
                try:
                    await asyncio.wait({task, woken}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    woken.cancel()
                if task.done():
                    break
                # a wake for every application (an event another deployment waits for) is not this one's:
                # cleared before the read, so a kick that lands meanwhile wakes the next round
                wake.clear()
                if await self._wanted(application_id):
                    break
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if task.cancelled():
            log.info("image pruning gives way", application_id=application_id)
            return False
        try:
            await steps.write(self.rt, prunes_due.done, application_id, due.deployment_id)
        except Exception as exc:  # still due: pruned again later, which removes nothing more
            log.warning("image pruning not recorded done", application_id=application_id, error=str(exc))
        return True

    async def _wanted(self, application_id: str) -> bool:
        """Whether a deployment, scale or removal of the application waits (or could not be read: then it
        is taken to wait, and the pruning gives way as it always may)."""
        try:
            async with self.rt.sessionmaker() as s:
                entries = await store.queue_of(s, application_id)
                if queueing.running(entries) is not None or queueing.next_to_admit(entries) is not None:
                    return True
                if await removals.is_active(s, application_id):
                    return True
                return application_id in await scales.active_applications(s)
        except Exception:
            return True

    async def _wait(self, application_id: str, timeout: float) -> None:
        wake = self._wakes.setdefault(application_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):  # not wait_for: woken as it is cancelled, it lost the cancel
                await wake.wait()
        wake.clear()

    async def _interruptible(self, deployment_id: str, work: Awaitable[None]) -> None:
        stop = self._interrupts.setdefault(deployment_id, asyncio.Event())
        task = asyncio.ensure_future(work)
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                log.info("step interrupted", deployment_id=deployment_id)
                stop.clear()
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]

    async def _drive(self, application_id: str, deployment_id: str, row: Any = None) -> None:
        """Run the deployment's steps until it ends (``row``: its row as just read, for the first step)."""
        backoff = 0.5

        async def wait(timeout: float) -> None:
            await self._wait(application_id, timeout)

        try:
            while True:
                current, row = row, None  # every later step reads the row again
                if current is None:
                    async with self.rt.sessionmaker() as s:
                        current = await store.load(s, deployment_id)
                if current is None:
                    return
                r = store.rollout_of(current)
                if r.terminal:
                    return
                try:
                    if r.compensating:
                        await self._undo(self.rt, r, current, wait)
                    else:
                        step = self._steps[r.state](self.rt, r, current, wait)
                        await self._interruptible(deployment_id, step)
                    backoff = 0.5
                except RefusedError as exc:
                    log.info("state moved on", deployment_id=deployment_id, detail=str(exc))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    backoff = await self._on_error(r, exc, backoff)
        finally:
            self._interrupts.pop(deployment_id, None)
            self.rt.sent_steps = {k for k in self.rt.sent_steps if k[0] != deployment_id}

    async def _on_error(self, r: Rollout, exc: Exception, backoff: float) -> float:
        """A step failed: transient trouble is retried with backoff; anything else fails the deployment."""
        transient = isinstance(exc, DockerUnavailableError | ConnectionError | OSError)
        overdue = r.deadline_at is not None and self.rt.clock() > r.deadline_at
        if r.compensating or r.state not in REVERSIBLE or (transient and not overdue):
            log.warning(
                "rollout step failed, retrying",
                deployment_id=r.deployment_id,
                state=r.state.value,
                error=f"{type(exc).__name__}: {exc}",
                retry_in=backoff,
            )
            await asyncio.sleep(backoff)
            return min(backoff * 2, MAX_BACKOFF_S)
        reason = str(exc) if isinstance(exc, UnsealError) else f"{r.state.value}: {exc}"
        log.warning("rollout step failed", deployment_id=r.deployment_id, state=r.state.value, error=str(exc))
        try:
            await steps.transit(self.rt, r.deployment_id, machine.Fail(reason[:3500]))
        except RefusedError:
            pass
        return 0.5


def _reviving(task: asyncio.Task[None]) -> bool:
    """Whether the application's task is a revival (``_revive``), which a deployment or removal preempts."""
    return not task.done() and task.get_name().startswith("revive:")
