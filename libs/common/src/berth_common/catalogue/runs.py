"""One-off runs: a command in a fresh container of an application's live image (``cmd.run.start``).

The api records the run and sends ``cmd.run.start`` with the deployment whose image and variables it runs
and the service whose environment and server it takes. The scheduler records the run in the transaction
that consumes the command, makes the container ``berth-run-<run id>`` on that service's server, starts it
once, waits for it up to ``timeout_s`` (then kills it: ``timed_out``), and answers ``evt.run.started`` and
``evt.run.finished`` (the exit code, the reason, the last lines it wrote). Each event has a fixed id per
run, so a scheduler restart that repeats one publishes nothing twice. ``cmd.run.cancel`` ends a run not
finished ``cancelled``: a queued one never starts, a running one is stopped (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from berth_common.catalogue.base import Command, Event, Id, register
from berth_common.values import Slug

RUN_MAX_ARGS = 64
RUN_MAX_ARG_CHARS = 4096
RUN_MAX_TIMEOUT_S = 86400
RUN_DEFAULT_TIMEOUT_S = 3600
RUN_LAST_LINES = 20
RUN_MAX_LINE_CHARS = 2000
RUN_MAX_REASON = 2000
RUN_STATES = ("queued", "running", "succeeded", "failed", "timed_out", "skipped", "cancelled")
RunEnd = Literal["succeeded", "failed", "timed_out", "skipped", "cancelled"]
CANCELLED_REASON = "cancelled: asked by a user"


def argument_without_nul(value: str) -> str:
    """An argument may be anything a process takes, except a NUL (which ends a C string)."""
    if "\x00" in value:
        raise ValueError("an argument may not contain a NUL character")
    return value


RunArgument = Annotated[
    str,
    Field(max_length=RUN_MAX_ARG_CHARS, json_schema_extra={"pattern": "^[^\\u0000]*$"}),
    AfterValidator(argument_without_nul),
]
RunArgv = Annotated[list[RunArgument], Field(min_length=1, max_length=RUN_MAX_ARGS)]
"""A command as the argv of a process (never given to a shell): 1 to 64 arguments of at most 4096 characters."""

RunTimeoutS = Annotated[int, Field(ge=1, le=RUN_MAX_TIMEOUT_S)]
RunLastLines = Annotated[list[Annotated[str, Field(max_length=RUN_MAX_LINE_CHARS)]], Field(max_length=RUN_LAST_LINES)]


@register
class StartRun(Command):
    """Run ``command`` in a fresh container of ``deployment_id``'s image with ``service``'s environment, on
    the server that service runs on; kill it after ``timeout_s`` seconds. ``run_id`` names the container
    and makes a repeated command a no-op."""

    TYPE = "cmd.run.start"
    PRODUCERS = ("api",)
    CONSUMERS = ("scheduler",)
    run_id: Id
    team_id: Id
    application_id: Id
    deployment_id: Id
    service: Slug
    command: RunArgv
    timeout_s: RunTimeoutS = RUN_DEFAULT_TIMEOUT_S


@register
class CancelRun(Command):
    """End the run ``cancelled`` if it is not finished: a queued run never starts, a running one is stopped.
    A run finished already, or not of ``team_id``'s ``application_id``, is left as it is (a repeat is a no-op)."""

    TYPE = "cmd.run.cancel"
    PRODUCERS = ("api",)
    CONSUMERS = ("scheduler",)
    run_id: Id
    team_id: Id
    application_id: Id


@register
class RunStarted(Event):
    """The run's container started on ``server_id``."""

    TYPE = "evt.run.started"
    PRODUCERS = ("scheduler",)
    CONSUMERS = ("api",)
    run_id: Id
    team_id: Id
    application_id: Id
    server_id: Id = "local"
    container: str = Field(max_length=128)
    started_at: datetime


@register
class RunFinished(Event):
    """The run ended: ``succeeded`` (exit 0), ``failed`` (another exit code, or it could not run: ``reason``
    says which), ``timed_out`` (killed at its timeout) or ``skipped`` (a cron job's firing that its
    concurrency policy did not run) or ``cancelled`` (``cmd.run.cancel``). ``last_lines``: the last lines it wrote, oldest first; ``exit_code``
    None when no process ran."""

    TYPE = "evt.run.finished"
    PRODUCERS = ("scheduler",)
    CONSUMERS = ("api",)
    run_id: Id
    team_id: Id
    application_id: Id
    status: RunEnd
    exit_code: int | None = None
    reason: str = Field(default="", max_length=RUN_MAX_REASON)
    last_lines: RunLastLines = []
    duration_s: float = Field(default=0.0, ge=0)
    server_id: Id = "local"
    container: str = Field(default="", max_length=128)
    finished_at: datetime
