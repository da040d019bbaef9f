"""What ``evt.schedule.missed`` says (pure): a scheduled command (a backup) that did not run on time."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

SCHEDULE_TITLES: dict[str, tuple[str, Literal["info", "success", "warning", "error"]]] = {
    "evt.schedule.missed": ("Schedule missed", "warning")
}


def _when(value: Any) -> str:
    try:
        return f"{datetime.fromisoformat(str(value)):%Y-%m-%d %H:%M %Z}".strip()
    except ValueError:
        return "?"


def _late(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "late"
    s = round(seconds)
    return f"{s} s late" if s < 120 else f"{s // 60} min late" if s < 7200 else f"{s // 3600} h late"


def schedule_sentence(event_type: str, data: dict[str, Any]) -> str | None:
    """The sentence of a missed schedule (None: another event): which schedule, what it runs (the family of
    its command: ``cmd.backup.start`` is a backup), of what, when it was due and how late it runs now."""
    if event_type != "evt.schedule.missed":
        return None
    parts = str(data.get("command_type", "")).split(".")
    what = parts[1] if len(parts) > 2 else "command"
    of = f" of {data['target_id']}" if data.get("target_id") else ""
    return (
        f"The scheduled {what}{of} (schedule {data.get('schedule_id', '?')}) due at {_when(data.get('due_at'))} "
        f"did not run on time; it runs once now, {_late(data.get('late_s'))}"
    )
