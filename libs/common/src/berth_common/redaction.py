"""The one redaction rule for text that leaves a service: a deployment's secret values replaced by a marker.

The api redacts what it serves (logs, runs, deployment reasons) and the scheduler what it emits (deployment
events and log lines, a run's last lines and reason, a cron job's failure): both with this rule, so a value
hidden in one place is hidden the same way in every other.
"""

from __future__ import annotations

from collections.abc import Iterable

REDACTED = "[redacted]"


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value replaced by ``REDACTED``, longest first, so that no secret leaks as
    part of another (empty values are ignored)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def redact_all(texts: Iterable[str], secrets: Iterable[str]) -> list[str]:
    """Each of ``texts`` redacted (a run's last lines, the lines of a log)."""
    values = [s for s in secrets if s]
    return [redact(text, values) for text in texts]
