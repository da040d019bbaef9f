"""Retention of the audit log: how old a row may get, and how a purge proceeds (pure: no I/O, no clock).

Rows older than ``days`` are deleted in batches of at most ``BATCH_SIZE`` rows, one short transaction each,
so a large backlog never holds a long lock; a purge goes on while batches come back full, up to
``MAX_BATCHES`` per run (the rest waits for the next run). ``days == 0`` keeps every row.
"""

from __future__ import annotations

from datetime import datetime, timedelta

VARIABLE = "BERTH_AUDIT_RETENTION_DAYS"
DEFAULT_DAYS = 90
MAX_DAYS = 36500  # a hundred years: anything larger is a typo, not a policy
BATCH_SIZE = 5000
MAX_BATCHES = 2000  # at most 10 million rows per run


def parse_days(value: object) -> int:
    """The retention in whole days from a setting's raw value (an int, or the text of an environment
    variable); ValueError naming the variable otherwise."""
    days: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        days = value
    elif isinstance(value, str) and value.strip().isdigit():
        days = int(value.strip())
    if days is None or not 0 <= days <= MAX_DAYS:
        shown = repr(value)[:40]
        raise ValueError(f"{VARIABLE} must be a whole number of days from 0 (keep forever) to {MAX_DAYS}, not {shown}")
    return days


def cutoff(now: datetime, days: int) -> datetime | None:
    """Rows recorded before this instant are past the retention; None: keep everything."""
    if days <= 0:
        return None
    return now - timedelta(days=days)


def go_on(deleted: int, batch_size: int, batches_done: int, max_batches: int = MAX_BATCHES) -> bool:
    """After a batch: another one while the last came back full and this run has batches left."""
    return deleted >= batch_size and batches_done < max_batches
