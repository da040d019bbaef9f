"""Cron jobs: a command an application runs on a schedule, each firing a one-off run of kind ``cron``.

The api keeps the job (its cron expression and IANA time zone, command, service, timeout, concurrency
policy, enabled) and hands its timing to the scheduler's schedules (``cmd.schedule.set`` publishing
``cmd.job.fire``; ``SCHEDULABLE`` sets ``firing_id`` to the due time's run id, so a due time is published
once, even across a scheduler restart). The api consumes ``cmd.job.fire``: it records the run (its id
follows from the firing id: ``job_run_id``, so a repeated firing records nothing twice) with the job's
settings as they are now and the live deployment, and sends ``cmd.job.run``. The scheduler applies the
concurrency policy against the job's runs not finished: ``forbid`` skips the firing (``evt.run.finished``
with ``skipped``), ``replace`` stops the previous run, ``allow`` lets both run; then the run goes on as a
one-off run (``evt.run.started``, ``evt.run.finished``). A run that fails or times out (not one stopped
for its replacement) is announced by ``evt.job.failed``.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

from pydantic import Field

from berth_common.catalogue.base import Command, Event, Id, register
from berth_common.catalogue.runs import RUN_MAX_REASON, RunLastLines, StartRun
from berth_common.values import Slug

Concurrency = Literal["forbid", "replace", "allow"]
CONCURRENCY: tuple[str, ...] = ("forbid", "replace", "allow")
JobName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$")]
JOB_DEFAULT_GRACE_S = 300
SKIPPED_REASON = "skipped: the job's previous run {run_id} was still running (concurrency forbid)"
REPLACED_REASON = "stopped: replaced by the job's next run {run_id} (concurrency replace)"
REPLACED_PREFIX = "stopped: replaced by the job's next run"


def job_run_id(firing_id: str) -> str:
    """The id of the run a firing makes (32 hex characters, as every run id fits): the same for the same
    firing, so a firing published or consumed twice is one run."""
    return hashlib.sha256(f"job-firing:{firing_id}".encode()).hexdigest()[:32]


def job_schedule_id(job_id: str) -> str:
    """The id of the job's schedule in the scheduler."""
    return f"job-{job_id}"[:38]


@register
class FireJob(Command):
    """A due time of the job ``job_id`` came (published by the scheduler's schedule for the api, which
    records the run and sends ``cmd.job.run``). ``firing_id``: the due time's run id, set by the schedule."""

    TYPE = "cmd.job.fire"
    PRODUCERS = ("api",)  # as the data of the job's schedule, which the scheduler publishes at each due time
    CONSUMERS = ("api",)
    job_id: Id
    team_id: Id
    application_id: Id
    firing_id: str = Field(default="", max_length=128)


@register
class RunJob(StartRun):
    """Run a cron job's firing (``run_id``) as a one-off run, after the job's ``concurrency`` policy
    against its runs not finished: ``forbid`` skips it, ``replace`` stops them, ``allow`` runs both."""

    TYPE = "cmd.job.run"
    PRODUCERS = ("api",)
    CONSUMERS = ("scheduler",)
    job_id: Id
    job_name: JobName
    concurrency: Concurrency = "forbid"


@register
class JobFailed(Event):
    """A run of the cron job ``job_name`` failed (``exit_code``, ``reason``) or timed out (announced by the
    scheduler), or its firing could not run at all (no live deployment: announced by the api)."""

    TYPE = "evt.job.failed"
    PRODUCERS = ("scheduler", "api")
    CONSUMERS = ("notifier",)
    job_id: Id
    job_name: str = Field(max_length=64)
    run_id: Id
    team_id: Id
    application_id: Id
    service: Slug | None = None
    status: Literal["failed", "timed_out"]
    exit_code: int | None = None
    reason: str = Field(default="", max_length=RUN_MAX_REASON)
    last_lines: RunLastLines = []
