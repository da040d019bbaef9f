"""What the backup and restore events say (pure): a backup verified good, a backup that failed, a
scheduled backup that did not run, a restore's outcome and a restore drill's, in words."""

from __future__ import annotations

from typing import Any, Literal

BACKUP_TITLES: dict[str, tuple[str, Literal["info", "success", "warning", "error"]]] = {
    "evt.backup.succeeded": ("Backup succeeded", "success"),
    "evt.backup.failed": ("Backup failed", "error"),
    "evt.backup.missed": ("Backup missed", "warning"),
    "evt.restore.succeeded": ("Restore succeeded", "success"),
    "evt.restore.failed": ("Restore failed", "error"),
    "evt.backup.drill_succeeded": ("Restore drill succeeded", "success"),
    "evt.backup.drill_failed": ("Restore drill failed", "error"),
}


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    for unit in ("KB", "MB", "GB", "TB"):
        size_f = size / 1024
        if size_f < 1024 or unit == "TB":
            return f"{size_f:.1f} {unit}"
        size = int(size_f)
    return f"{size} B"  # pragma: no cover


def backup_sentence(event_type: str, data: dict[str, Any]) -> str | None:
    """The sentence of a backup or restore event (None: not one of them)."""
    database = data.get("database_id", "?")
    what = f"database {database}"
    if data.get("engine"):
        what += f" ({data['engine']}" + (f", {data['database']})" if data.get("database") else ", all databases)")
    if event_type == "evt.backup.succeeded":
        objects = [o for o in data.get("objects") or [] if isinstance(o, dict)]
        copies = ", ".join(f"{o.get('destination', '?')} ({_size(int(o.get('size', 0)))})" for o in objects)
        return f"Backup {data.get('backup_id', '?')} of {what} is verified: {copies or 'no copy'}"
    if event_type == "evt.backup.failed":
        return f"Backup {data.get('backup_id', '?')} of {what} failed: no good backup was made"
    if event_type == "evt.backup.missed":
        return f"The scheduled backup of {what} due at {data.get('due_at', '?')} did not run"
    if event_type in ("evt.restore.succeeded", "evt.restore.failed"):
        into = f"{data.get('container', '?')}" + (f" (database {data['database']})" if data.get("database") else "")
        done = "was restored into" if event_type == "evt.restore.succeeded" else "could not be restored into"
        return f"Backup {data.get('backup_id', '?')} of database {database} {done} {into}"
    if event_type in ("evt.backup.drill_succeeded", "evt.backup.drill_failed"):
        return _drill_sentence(event_type, data)
    return None


def _drill_sentence(event_type: str, data: dict[str, Any]) -> str:
    """What a restore drill found: the values read against the expected ones, and how long the restore took."""
    head = f"Restore drill {data.get('drill_id', '?')} of backup {data.get('backup_id', '?')}"
    head += f" of database {data.get('database_id', '?')}"
    values = [v for v in data.get("values") or [] if isinstance(v, dict)]
    found = ", ".join(f"{v.get('name', '?')} {v.get('found', '?')} (expected {v.get('expected', '?')})" for v in values)
    took = data.get("restore_s")
    restored = f"restored in {float(took):.1f} s" if isinstance(took, int | float) else "not restored"
    if event_type == "evt.backup.drill_succeeded":
        return f"{head} passed: {restored}" + (f", {found}" if found else "")
    return f"{head} failed: {restored}" + (f", {found}" if found else "")
