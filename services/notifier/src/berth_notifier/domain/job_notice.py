"""What ``evt.job.failed`` says (pure): a cron job's run that failed, timed out, or could not run."""

from __future__ import annotations

from typing import Any, Literal

JOB_TITLES: dict[str, tuple[str, Literal["info", "success", "warning", "error"]]] = {
    "evt.job.failed": ("Cron job failed", "error")
}


def job_sentence(event_type: str, data: dict[str, Any], of_app: str = "") -> str | None:
    """The sentence of a failed cron job run (None: another event): which job, of which application, and
    how it ended (its exit code, its timeout, or why it could not run)."""
    if event_type != "evt.job.failed":
        return None
    job = data.get("job_name") or data.get("job_id") or "?"
    code = data.get("exit_code")
    if data.get("status") == "timed_out":
        how = "timed out and was killed"
    elif isinstance(code, int) and not isinstance(code, bool):
        how = f"exited with code {code}"
    else:
        how = "could not run"
    return f"The cron job {job}{of_app} {how}"
