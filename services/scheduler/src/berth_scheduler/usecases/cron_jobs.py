"""Cron jobs: ``cmd.job.run`` runs a job's firing as a one-off run after the job's concurrency policy.

The api records each firing of a job (its schedule publishes ``cmd.job.fire`` once per due time) and sends
``cmd.job.run``; this use case decides in the transaction that consumes it (``consume_once``), with the
job's runs not finished locked (``domain/cron_jobs.decide``): a firing ``forbid`` does not run is answered
``evt.run.finished`` ``skipped`` with a fixed id; ``replace`` records the stop of the previous runs (the
runner stops each container and ends the run ``failed``, saying it was replaced: kept across a restart, as
it is recorded); then the run is recorded as any one-off run (``usecases/runs.Runs.start``) with its job,
and the runner carries it out. The runner announces a job's run that failed or timed out with
``evt.job.failed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from berth_common.catalogue import RunFinished, RunJob
from berth_common.db import Unit
from berth_common.logging import get_logger
from berth_scheduler.adapters import run_store as repo
from berth_scheduler.domain import cron_jobs as domain
from berth_scheduler.usecases.runs import Runs

log = get_logger(__name__)


@dataclass
class CronJobs:
    runs: Runs

    async def run(self, msg: RunJob, unit: Unit) -> None:
        busy = await repo.unfinished_of_job(unit.session, msg.job_id)
        decision = domain.decide(msg.concurrency, busy, msg.run_id)
        if not decision.run:
            skipped = RunFinished(
                run_id=msg.run_id,
                team_id=msg.team_id,
                application_id=msg.application_id,
                status="skipped",
                reason=decision.skipped,
                finished_at=datetime.now(UTC),
            )
            await unit.emit(skipped, id=f"run-{msg.run_id}-finished")
            log.info("job firing skipped", job_id=msg.job_id, run_id=msg.run_id, reason=decision.skipped)
            return
        if decision.stop:
            await repo.ask_stop(unit.session, decision.stop, domain.replaced_reason(msg.run_id))
            log.info("job runs replaced", job_id=msg.job_id, stopped=list(decision.stop), run_id=msg.run_id)
        await self.runs.start(msg, unit, extra={"job_id": msg.job_id, "job_name": msg.job_name})

    def kick(self, *_: Any) -> None:
        self.runs.kick()
