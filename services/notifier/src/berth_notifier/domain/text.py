"""Text helpers shared by the formatters (pure): fitting into limits after escaping, one-line headers."""

from __future__ import annotations

import re
from collections.abc import Callable

from berth_notifier.domain.notice import Notice, fact_label

ELLIPSIS = "…"
CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def units(text: str) -> int:
    """Length in UTF-16 code units: what Slack, Discord and Telegram count (an emoji is 2)."""
    return len(text.encode("utf-16-le")) // 2


def fit(raw: str, limit: int, escape: Callable[[str], str] = lambda s: s) -> str:
    """``escape(raw)``, shortened with an ellipsis so it is at most ``limit`` units, never cutting an escape."""
    out = escape(raw)
    if units(out) <= limit:
        return out
    lo, hi = 0, len(raw)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if units(escape(raw[:mid])) + 1 <= limit:
            lo = mid
        else:
            hi = mid - 1
    return escape(raw[:lo]) + ELLIPSIS


def one_line(text: str, limit: int) -> str:
    """No CR/LF or control characters (a mail header cannot be injected), collapsed spaces, bounded."""
    return fit(" ".join(CONTROL.sub(" ", text).split()), limit)


def rows(n: Notice, max_rows: int = 10) -> list[tuple[str, str]]:
    """(label, value) pairs: where first (team, project, application), then the event's facts."""
    out = [(label.capitalize(), value) for label, value in n.places()]
    for key, value in n.facts.items():
        if key in ("team_id", "project_id", "application_id"):
            continue
        shown = ("yes" if value else "no") if isinstance(value, bool) else str(value)
        out.append((fact_label(key), shown))
    return out[:max_rows]
