"""What the backup and restore events say (pure): a backup verified good, a backup that failed, a
scheduled backup that did not run, and a restore's outcome, in words."""

from __future__ import annotations

from typing import Any, Literal

BACKUP_TITLES: dict[str, tuple[str, Literal["info", "success", "warning", "error"]]] = {
    "evt.backup.succeeded": ("Backup succeeded", "success"),
    "evt.backup.failed": ("Backup failed", "error"),
    "evt.backup.missed": ("Backup missed", "warning"),
    "evt.restore.succeeded": ("Restore succeeded", "success"),
    "evt.restore.failed": ("Restore failed", "error"),
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
    return None
