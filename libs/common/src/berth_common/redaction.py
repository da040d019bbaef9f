"""The one redaction rule for text that leaves a service: every secret value in it replaced by a marker.

The api redacts what it serves (logs, runs, deployment reasons) and the scheduler what it emits (deployment
events and log lines, a run's last lines and reason, a cron job's failure; a database's, a backup's, a
restore's and a drill's reason and log lines; a swarm's join error): all with this rule, so a value hidden
in one place is hidden the same way in every other. Two marks: ``REDACTED`` in what an application's own
text becomes (its log lines, a run's output), ``MASK`` where Berth's own text or a listing holds a secret
(a database's or a backup's reason, a masked variable), the ten stars pydantic's ``SecretStr`` prints.
"""

from __future__ import annotations

from collections.abc import Iterable

REDACTED = "[redacted]"
MASK = "**********"


def redact(text: str, secrets: Iterable[str], mark: str = REDACTED) -> str:
    """``text`` with every secret value replaced by ``mark``, longest first, so that no secret leaks as part
    of another (empty values are ignored)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, mark)
    return text


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` redacted with ``MASK`` as the mark (a database's, a backup's or a swarm's reason)."""
    return redact(text, secrets, MASK)


def redact_all(texts: Iterable[str], secrets: Iterable[str]) -> list[str]:
    """Each of ``texts`` redacted (a run's last lines, the lines of a log)."""
    values = [s for s in secrets if s]
    return [redact(text, values) for text in texts]
