"""One-off runs: ``cmd.run.start`` runs a command once in a fresh container of a deployment's image.

The command is recorded (``runs``, status ``queued``) in the transaction that records its message id
(``consume_once``): a redelivered command records nothing. The leading scheduler's runner then drives every
run not finished, each in a task of its own, from what is recorded and what the engine shows
(``domain/runs.next_step``): the container ``berth-run-<run id>`` is made on the server the service's
replicas run on (a service on a Swarm: its manager, the container on the Swarm's overlay network with the
application's tasks) and that server recorded, so a restart goes back to it; started only if it never was,
marked ``running`` with ``evt.run.started``, and waited for until it exits or its timeout passes (then it is
stopped: ``timed_out``). Its exit code and last lines are recorded with ``evt.run.finished`` by a
conditional update, so the outcome is recorded and announced once; the events have fixed ids per run. The
reason and last lines are redacted of the deployment's secret values before they are recorded or sent.

A scheduler that stops leaves its runs as they are; the next leader finds each one (queued: made or
started now; running: waited for; exited meanwhile: recorded; gone after it started: failed, saying so).
Finished run containers are kept for their logs, the newest ``keep`` of each application.

A cron job's run (``usecases/cron_jobs.py``) is one of these with its job recorded: while it runs, a stop
asked for it (its replacement by the job's next run) stops it, and its outcome says so; one that fails or
times out otherwise is announced by ``evt.job.failed`` too, with a fixed id, in the same transaction.

``cmd.run.cancel`` records the same stop for any run (``CANCELLED_REASON``): a queued run ends
``cancelled`` at once and is never started (the runner checks the stop before it starts a container), a
running one is stopped by the runner and ends ``cancelled``; a finished run is left as it is. A cancel that
arrives before its run's start records the run cancelled, so the start finds it known and runs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from berth_common.catalogue import CANCELLED_REASON, CancelRun, JobFailed, RunFinished, RunStarted, StartRun
from berth_common.db import Transactions, Unit
from berth_common.docker import LOCAL, DockerUnavailable
from berth_common.logging import get_logger
from berth_common.redaction import redact_all
from berth_common.tasks import cancel_and_wait
from berth_scheduler.adapters import removals, store
from berth_scheduler.adapters import run_store as repo
from berth_scheduler.adapters.container_exit import wait_exit, written_lines
from berth_scheduler.adapters.docker import DockerExecutor, DockerOperationError
from berth_scheduler.adapters.fleet import Fleet, ServerRefusedError
from berth_scheduler.adapters.sealing import Sealer
from berth_scheduler.domain import app_files, compose, cron_jobs
from berth_scheduler.domain import runs as domain
from berth_scheduler.domain.containers import ContainerSpec
from berth_scheduler.domain.machine import State
from berth_scheduler.domain.removal import Phase
from berth_scheduler.usecases import swarm_images
from berth_scheduler.usecases.read_only_files import with_read_only_files
from berth_scheduler.usecases.rollout.apply import secrets_of
from berth_scheduler.usecases.swarm_placement import swarm_of

log = get_logger(__name__)
RETRY_S = 5.0  # a server that does not answer is tried again this much later
CANCELLED = cron_jobs.stopped(domain.lost(CANCELLED_REASON), CANCELLED_REASON)  # a run cancelled unstarted


@dataclass
class Runs:
    transactions: Transactions
    sealer: Sealer
    fleet: Fleet
    leading: Callable[[], bool]
    keep: int = 10
    interval_s: float = 1.0
    poll_s: float = 0.5
    clock: Callable[[], float] = time.time
    _active: dict[str, asyncio.Task[None]] = field(default_factory=dict, init=False)
    _retry_at: dict[str, float] = field(default_factory=dict, init=False)
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    # --- the command ---------------------------------------------------------------------------------

    async def start(self, msg: StartRun, unit: Unit, extra: dict[str, Any] | None = None) -> None:
        """Record the run (queued, with ``extra`` columns: a cron job's); one that cannot run (its
        deployment or service unknown here) ends failed at once, saying why."""
        name = domain.container_name(msg.run_id)
        values = {
            "id": msg.run_id,
            "team_id": msg.team_id,
            "application_id": msg.application_id,
            "deployment_id": msg.deployment_id,
            "service": msg.service,
            "command": list(msg.command),
            "timeout_s": msg.timeout_s,
            "status": "queued",
            "container": name,
            "last_lines": [],
            "created_at": self.clock(),
            **(extra or {}),
        }
        if not await repo.insert_run(unit.session, values):
            return
        refusal = await self._refusal(unit, msg)
        if refusal is not None:
            await self._finish(unit, msg.run_id, domain.lost(refusal))
        log.info("run queued", run_id=msg.run_id, application_id=msg.application_id, service=msg.service)

    async def _refusal(self, unit: Unit, msg: StartRun) -> str | None:
        dep = await store.load(unit.session, msg.deployment_id)
        if dep is None or dep.application_id != msg.application_id or dep.team_id != msg.team_id:
            return f"deployment {msg.deployment_id} of the application is not known to the scheduler"
        if dep.state != State.SUCCEEDED.value:
            return f"deployment {msg.deployment_id} did not succeed (it is {dep.state}): it has no image to run"
        if domain.pick_service(self.sealer.open(dep.spec), msg.service) is None:
            return f"the deployment has no service {msg.service!r}"
        return None

    async def cancel(self, msg: CancelRun, unit: Unit) -> None:
        """Ask the run's stop (a run of another application, unknown or finished: nothing); a queued run
        ends ``cancelled`` here, before the runner starts it."""
        row = await repo.get(unit.session, msg.run_id)
        if row is None:  # the cancel came before the start: the run is recorded cancelled, never to start
            await repo.insert_run(unit.session, self._placeholder(msg))
            await self._finish(unit, msg.run_id, CANCELLED)
            log.info("run cancelled before it arrived", run_id=msg.run_id)
            return
        if row.team_id != msg.team_id or row.application_id != msg.application_id:
            return
        await repo.ask_stop(unit.session, [msg.run_id], CANCELLED_REASON)
        if row.status == "queued":
            await self._finish(unit, msg.run_id, CANCELLED)
        log.info("run cancel asked", run_id=msg.run_id, status=row.status)

    def _placeholder(self, msg: CancelRun) -> dict[str, Any]:
        """The row of a run cancelled before its ``cmd.run.start`` arrived (which then records nothing)."""
        return {
            "id": msg.run_id,
            "team_id": msg.team_id,
            "application_id": msg.application_id,
            "deployment_id": "",
            "service": "",
            "command": [],
            "timeout_s": 0,
            "status": "queued",
            "container": domain.container_name(msg.run_id),
            "last_lines": [],
            "created_at": self.clock(),
        }

    def kick(self, *_: Any) -> None:
        """Look for runs to drive now (a new one was recorded)."""
        self._wake.set()

    # --- the runner ----------------------------------------------------------------------------------

    def start_runner(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="runs")

    async def stop(self) -> None:
        """Stop driving (the runs stay as they are recorded: the next leader goes on with them)."""
        tasks = [t for t in (self._task, *self._active.values()) if t is not None]
        await asyncio.gather(*(cancel_and_wait(t) for t in tasks))  # a cancel Python 3.11 lost is made again
        self._task = None
        self._active.clear()

    async def _loop(self) -> None:
        while True:
            if self.leading():
                try:
                    await self._spawn()
                except Exception as exc:  # the database away: the next pass
                    log.warning("runs not looked at this time", error=f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            self._wake.clear()

    async def _spawn(self) -> None:
        async with self.transactions.sessionmaker() as session:
            ids = await repo.unfinished(session)
        now = self.clock()
        for run_id in ids:
            if run_id in self._active or self._retry_at.get(run_id, 0.0) > now:
                continue
            self._active[run_id] = asyncio.create_task(self._drive(run_id), name=f"run-{run_id}")

    async def _drive(self, run_id: str) -> None:
        try:
            await self._carry_out(run_id)
            self._retry_at.pop(run_id, None)
        except (DockerUnavailable, DockerOperationError) as exc:
            if isinstance(exc, DockerOperationError) and exc.status in (400, 404, 409, 500):
                await self._end_lost(run_id, f"the run could not be carried out: {exc}")
            else:
                log.warning("run waits for its server", run_id=run_id, error=str(exc)[:300])
                self._retry_at[run_id] = self.clock() + RETRY_S
        except ServerRefusedError as exc:
            await self._end_lost(run_id, f"the run's server may not be used: {exc}")
        except Exception as exc:  # the database away: the next pass goes on from what is recorded
            log.warning("run not driven this time", run_id=run_id, error=f"{type(exc).__name__}: {exc}")
            self._retry_at[run_id] = self.clock() + RETRY_S
        finally:
            self._active.pop(run_id, None)

    async def _carry_out(self, run_id: str) -> None:
        async with self.transactions.sessionmaker() as session:
            row = await repo.get(session, run_id)
            if row is None or row.status not in repo.UNFINISHED:
                return
            dep = await store.load(session, row.deployment_id)
        if dep is None:  # checked when the command arrived: the scheduler keeps its deployments
            await self._end_lost(run_id, f"deployment {row.deployment_id} is not known to the scheduler")
            return
        spec = self.sealer.open(dep.spec)
        service = domain.pick_service(spec, row.service)
        if service is None:  # checked when the command arrived: a deployment does not change its services
            await self._end_lost(run_id, f"the deployment has no service {row.service!r}")
            return
        async with self.transactions.sessionmaker() as session:
            place = await swarm_of(session, row.team_id, list(service.servers))  # its tasks run on a Swarm
            server = row.server_id or (place.manager_server_id if place else await self._server_of(session, row))
        image = store.rollout_of(dep).run_image
        cs = domain.run_spec(
            run_id, row.application_id, row.team_id, row.deployment_id, spec, service, image, row.command, server
        )
        if place is not None:  # on the manager, on the overlay network the application's tasks are on
            cs = domain.on_network(cs, place.network)
        docker = await self.fleet.docker(server)
        step = domain.next_step(row.status, await docker.inspect(cs.name))
        if step is domain.Step.LOST:
            await self._end(row, server, domain.lost_container(await self._removing(row.application_id)))
            return
        if step is domain.Step.CREATE:
            missing = await swarm_images.on_manager(docker, image, spec.source) if place is not None else None
            if missing is not None:
                await self._end(row, server, domain.lost(missing))
                return
            if row.server_id is None:
                await self._write(lambda unit: repo.set_server(unit.session, run_id, server))
            cs = await with_read_only_files(docker, row.application_id, row.team_id, spec, service, cs)
            await self._create(docker, cs)
            files = app_files.archive(spec, service, read_only=False)
            if files is not None:  # the files its service mounts, as its replicas have them
                await docker.put_archive(cs.name, "/", files)
            step = domain.Step.START
        if step is domain.Step.START:
            if await self._stop_reason(run_id) == CANCELLED_REASON:  # cancelled before it ever started
                await self._end(row, server, CANCELLED)
                return
            try:
                await docker.start(cs.name)
            except DockerOperationError as exc:
                if exc.status not in (400, 500):  # the engine refused the container itself, not away
                    raise
                info = await docker.inspect(cs.name)  # it never ran: the engine's error is what there is to tell
                await self._end(row, server, domain.not_started(info, str(exc)))
                return
        started_at = row.started_at
        if row.status == "queued":
            started_at = self.clock()
            await self._write(lambda unit: self._mark_running(unit, row, server, started_at))
            log.info("run started", run_id=run_id, container=cs.name, server_id=server)
        stop_asked = functools.partial(self._stop_reason, row.id)
        timed_out = await wait_exit(docker, cs.name, started_at + row.timeout_s, self.clock, self.poll_s, stop_asked)
        info = await docker.inspect(cs.name)
        if info is None:
            await self._end(row, server, domain.lost_container(await self._removing(row.application_id)))
            return
        try:
            lines = await written_lines(docker, cs.name, info, domain.LINES_READ)
        except DockerOperationError:
            if not await self._removing(row.application_id):
                raise
            # the removal takes the container as its lines are read: the removal is what ended the run
            await self._end(row, server, domain.lost_container(True))
            return
        text = redact_all(lines, secrets_of(self.sealer, dep))
        result = domain.outcome(info, text, timed_out_after=row.timeout_s if timed_out else None)
        if result.status == "failed" and await self._removing(row.application_id):
            result = domain.removed_with_application(result)  # stopped by the removal, not by itself
        stop_reason = await self._stop_reason(row.id)
        await self._end(row, server, cron_jobs.stopped(result, stop_reason) if stop_reason else result)

    async def _create(self, docker: DockerExecutor, cs: ContainerSpec) -> None:
        await docker.create_or_find(cs)
        for network, aliases in cs.connects:
            await docker.connect_network(network, compose.connect_body(cs.name, aliases))

    async def _stop_reason(self, run_id: str) -> str | None:
        async with self.transactions.sessionmaker() as session:
            return await repo.stop_reason(session, run_id)

    async def _removing(self, application_id: str) -> bool:
        async with self.transactions.sessionmaker() as session:
            removal = await removals.load(session, application_id)
        return removal is not None and removal.phase != Phase.FAILED

    async def _server_of(self, session: Any, row: Any) -> str:
        """The server the service's replicas run on (the first recorded); ``local`` when none is recorded."""
        found = [c.server_id for c in await store.containers_of(session, row.deployment_id) if c.service == row.service]
        return found[0] if found else LOCAL

    async def _mark_running(self, unit: Unit, row: Any, server: str, at: float) -> None:
        if await repo.mark_running(unit.session, row.id, server, at):
            event = RunStarted(
                run_id=row.id,
                team_id=row.team_id,
                application_id=row.application_id,
                server_id=server,
                container=row.container,
                started_at=datetime.fromtimestamp(at, UTC),
            )
            await unit.emit(event, id=f"run-{row.id}-started")

    async def _write(self, body: Callable[[Unit], Any]) -> Any:
        async def run(unit: Unit) -> Any:
            return await body(unit)

        return await self.transactions.run(run)

    # --- the end -------------------------------------------------------------------------------------

    async def _end_lost(self, run_id: str, reason: str) -> None:
        await self._write(lambda unit: self._finish(unit, run_id, domain.lost(reason)))
        log.warning("run failed", run_id=run_id, reason=reason)

    async def _end(self, row: Any, server: str, result: domain.Outcome) -> None:
        finished = await self._write(lambda unit: self._finish(unit, row.id, result, server))
        if finished is not None:
            log.info("run finished", run_id=row.id, status=result.status, exit_code=result.exit_code)
            await self.prune(row.application_id)

    async def _finish(self, unit: Unit, run_id: str, result: domain.Outcome, server: str | None = None) -> Any:
        """Record the outcome and announce it, once: None when the run had finished already. Its reason and
        last lines are redacted of the secret values of the run's deployment first."""
        result = domain.redacted(result, await self._secrets(unit, run_id))
        now = self.clock()
        values: dict[str, Any] = {
            "status": result.status,
            "exit_code": result.exit_code,
            "reason": result.reason,
            "last_lines": list(result.last_lines),
            "finished_at": now,
        }
        if server is not None:
            values["server_id"] = server
        row = await repo.finish(unit.session, run_id, values)
        if row is None:
            return None
        event = RunFinished(
            run_id=run_id,
            team_id=row.team_id,
            application_id=row.application_id,
            status=result.status,  # type: ignore[arg-type]
            exit_code=result.exit_code,
            reason=result.reason[:2000],
            last_lines=list(result.last_lines),
            duration_s=max(0.0, now - row.started_at) if row.started_at is not None else 0.0,
            server_id=row.server_id or LOCAL,
            container=row.container,
            finished_at=datetime.fromtimestamp(now, UTC),
        )
        await unit.emit(event, id=f"run-{run_id}-finished")
        if cron_jobs.announces_failure(row.job_id, result.status, row.stop_reason):
            failed = JobFailed(
                job_id=row.job_id,
                job_name=row.job_name or row.job_id,
                run_id=run_id,
                team_id=row.team_id,
                application_id=row.application_id,
                service=row.service,
                status=result.status,  # type: ignore[arg-type]
                exit_code=result.exit_code,
                reason=result.reason[:2000],
                last_lines=list(result.last_lines),
            )
            await unit.emit(failed, id=f"job-run-{run_id}-failed")
        return row

    async def _secrets(self, unit: Unit, run_id: str) -> list[str]:
        """The secret values of the run's deployment (none when the run or its deployment is unknown here)."""
        row = await repo.get(unit.session, run_id)
        dep = await store.load(unit.session, row.deployment_id) if row is not None and row.deployment_id else None
        return secrets_of(self.sealer, dep) if dep is not None else []

    async def prune(self, application_id: str) -> None:
        """Remove the finished run containers of the application beyond the newest ``keep``."""
        async with self.transactions.sessionmaker() as session:
            kept = await repo.kept_finished(session, application_id)
        for run_id, container, server in domain.to_prune(kept, self.keep):
            try:
                docker = await self.fleet.docker(server or LOCAL)
                await docker.remove(container)
            except (DockerUnavailable, DockerOperationError, ServerRefusedError) as exc:
                log.warning("run container not removed", run_id=run_id, error=str(exc)[:300])
                continue
            async with self.transactions.sessionmaker() as session, session.begin():
                await repo.mark_pruned(session, run_id)
