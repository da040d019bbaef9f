"""What a cron job's firing does about the job's runs not finished yet (pure).

The concurrency policy is Kubernetes' CronJob policy: ``forbid`` skips the firing while a previous run is
not finished (the firing is recorded as a ``skipped`` run, saying which run it waited for), ``replace``
stops every previous run not finished (each ends ``failed``, saying it was replaced, and is not announced
as the job failing) and runs the new one, ``allow`` runs the new one beside them.

A run stopped for its replacement keeps its exit code and last lines; what ends it is the stop, so its
outcome says so whatever the process answered to SIGTERM.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from berth_common.catalogue import CANCELLED_REASON, REPLACED_REASON, SKIPPED_REASON
from berth_scheduler.domain.runs import Outcome


@dataclass(frozen=True)
class Decision:
    """``run``: whether the firing's run goes ahead; ``stop``: the previous runs to stop first;
    ``skipped``: the reason of a firing that does not run."""

    run: bool
    stop: tuple[str, ...] = ()
    skipped: str = ""


def decide(concurrency: str, busy: Sequence[str], run_id: str) -> Decision:
    """The decision for the firing ``run_id`` of a job whose runs ``busy`` (oldest first) are not finished."""
    others = [b for b in busy if b != run_id]
    if not others or concurrency == "allow":
        return Decision(run=True)
    if concurrency == "replace":
        return Decision(run=True, stop=tuple(others))
    return Decision(run=False, skipped=SKIPPED_REASON.format(run_id=others[-1]))


def replaced_reason(next_run_id: str) -> str:
    return REPLACED_REASON.format(run_id=next_run_id)


def stopped(result: Outcome, reason: str) -> Outcome:
    """The outcome of a run stopped for its replacement (failed) or cancelled (``cmd.run.cancel``:
    cancelled), saying so, its exit code and lines kept."""
    return replace(result, status="cancelled" if reason == CANCELLED_REASON else "failed", reason=reason)


def announces_failure(job_id: str | None, status: str, stop_reason: str | None) -> bool:
    """Whether a finished run is announced by ``evt.job.failed``: a job's run that failed or timed out,
    not one stopped for its replacement."""
    return job_id is not None and status in ("failed", "timed_out") and not stop_reason
