"""Delivery policy (pure): which events are notified, subscription patterns, grouping, backoff, rate."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime

from berth_common.catalogue import consumed_by

# The events the notifier receives are those the catalogue names it a consumer of; subscriptions may
# select them by family (``evt.<family>.*``).
NOTIFIED = tuple(model.TYPE for model in consumed_by("notifier"))
FAMILIES = tuple(dict.fromkeys(event_type.split(".")[1] for event_type in NOTIFIED))
# Chatty types a wildcard subscription does not match (an exact subscription still does).
QUIET_LAST_TOKENS = frozenset({"progressed", "queued", "started", "line"})
TOKEN = re.compile(r"^[a-z0-9_]{1,64}$")


class PatternError(ValueError):
    """A subscription pattern the notifier cannot honour."""


def check_pattern(pattern: str) -> str:
    """Validate an event-type pattern: ``evt.deployment.failed``, ``evt.container.*``, ``evt.alert.>``."""
    tokens = pattern.split(".")
    if len(pattern) > 128 or len(tokens) < 2 or tokens[0] != "evt":
        raise PatternError("an event type starts with 'evt.', e.g. evt.deployment.failed")
    for i, tok in enumerate(tokens[1:], start=1):
        if tok == ">" and i == len(tokens) - 1:
            continue
        if tok != "*" and not TOKEN.fullmatch(tok):
            raise PatternError(f"invalid token {tok[:20]!r}: lowercase letters, digits, '_', '*' or a final '>'")
    family = tokens[1]
    if family not in (*FAMILIES, "*", ">"):
        raise PatternError(f"the notifier delivers {', '.join(FAMILIES)} events, not {family[:20]!r}")
    return pattern


def matches(pattern: str, event_type: str) -> bool:
    """NATS subject semantics; wildcards skip the chatty types listed in ``QUIET_LAST_TOKENS``."""
    if pattern == event_type:
        return True
    p, t = pattern.split("."), event_type.split(".")
    if t[-1] in QUIET_LAST_TOKENS:
        return False
    for i, tok in enumerate(p):
        if tok == ">":
            return len(t) > i
        if i >= len(t) or (tok != "*" and tok != t[i]):
            return False
    return len(p) == len(t)


# Scheduled commands whose own family reports a missed run: their ``evt.schedule.missed`` is not sent again.
MISSED_OF_THEIR_OWN = {"cmd.backup.start": "evt.backup.missed"}


def worth_notifying(event_type: str, data: dict[str, object]) -> bool:
    """A single restart is routine; the metrics service flags restart loops with ``looping``. A missed
    schedule of a backup is told once, by ``evt.backup.missed``."""
    if event_type == "evt.container.restarted":
        return bool(data.get("looping", True))
    if event_type == "evt.schedule.missed":
        return data.get("command_type") not in MISSED_OF_THEIR_OWN
    return True


def group_key(event_type: str, data: dict[str, object], event_id: str) -> tuple[str, bool]:
    """(key, groupable). Bursty container events of one application (or container) share a key."""
    if event_type.startswith("evt.container."):
        who = data.get("application_id") or data.get("container_id") or ""
        key = f"{event_type}:{who}"
        grouped = True
    else:
        key, grouped = f"{event_type}:{event_id}", False
    if len(key) > 200:
        key = key[:100] + ":" + hashlib.sha256(key.encode()).hexdigest()
    return key, grouped


def backoff(attempts: int, base_s: float, max_s: float, jitter: float = 0.0) -> float:
    """Delay before the next try after ``attempts`` failed ones: base, 2*base, 4*base... capped.

    ``jitter`` in [0, 1) stretches the delay by up to 10% (the caller passes a random number), so
    channels that failed together do not retry in lockstep.
    """
    delay = min(max_s, base_s * 2.0 ** max(attempts - 1, 0))
    return min(max_s, delay * (1 + 0.1 * jitter))


def retry_after(value: str | None, now: datetime, max_s: float) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date), capped; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - now).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, min(seconds, max_s))


@dataclass
class TokenBucket:
    """``burst`` messages at once, refilled at ``rate_per_s``. Time is passed in: the bucket is pure."""

    burst: int
    rate_per_s: float
    tokens: float = field(default=-1.0)
    last: float = 0.0

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = float(self.burst)

    def _refill(self, now: float) -> None:
        if self.last:
            self.tokens = min(float(self.burst), self.tokens + max(now - self.last, 0.0) * self.rate_per_s)
        self.last = now

    def wait_time(self, now: float) -> float:
        """Seconds until a token is available (0: one is), without taking it."""
        self._refill(now)
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate_per_s

    def take(self, now: float) -> float:
        """Take a token and return 0, or return the seconds to wait for one (nothing taken)."""
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate_per_s
