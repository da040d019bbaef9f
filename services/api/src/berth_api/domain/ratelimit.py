"""Failed authentications, rate-limited per source address and per token prefix (sliding windows).

In memory, per process: each api process counts its own failures (a client spreading guesses over N
processes gets N times the allowance; with one api process, the default, the limits are exact). A key is
blocked while it has ``limit`` failures within the last ``window_s`` seconds; a blocked attempt that fails
is answered 429 and is not counted (so a block ends ``window_s`` after the failure that started it), and one
that presents a valid token or code is taken as usual (the limits stop guessing, never a valid caller). Successful authentications are never counted. Memory is bounded: at most ``max_keys`` keys per kind,
the least recently failed forgotten first.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class SlidingWindow:
    """Failures per key within the last ``window_s`` seconds; ``limit`` <= 0 disables it."""

    def __init__(self, limit: int, window_s: float, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._hits)

    def _live(self, key: str, now: float) -> deque[float] | None:
        hits = self._hits.get(key)
        if hits is None:
            return None
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        if not hits:
            del self._hits[key]
            return None
        return hits

    def retry_after(self, key: str, now: float) -> float | None:
        """Seconds until ``key`` may try again, or None when it is not blocked."""
        if self.limit <= 0:
            return None
        hits = self._live(key, now)
        if hits is None or len(hits) < self.limit:
            return None
        return hits[-self.limit] + self.window_s - now

    def hit(self, key: str, now: float) -> None:
        if self.limit <= 0:
            return
        hits = self._live(key, now)
        if hits is None:
            hits = self._hits[key] = deque(maxlen=self.limit)
            while len(self._hits) > self.max_keys:
                self._hits.popitem(last=False)
        else:
            self._hits.move_to_end(key)
        hits.append(now)


class FailureLimiter:
    """The two windows of authentication failures: per source address and per token prefix."""

    def __init__(
        self,
        per_address: int,
        per_prefix: int,
        window_s: float,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.addresses = SlidingWindow(per_address, window_s, max_keys)
        self.prefixes = SlidingWindow(per_prefix, window_s, max_keys)
        self.clock = clock

    def retry_after(self, address: str, prefix: str | None) -> int | None:
        """Whole seconds to wait (>= 1) if the address or the prefix is blocked, else None."""
        now = self.clock()
        waits = [self.addresses.retry_after(address, now)]
        if prefix is not None:
            waits.append(self.prefixes.retry_after(prefix, now))
        blocked = [w for w in waits if w is not None]
        return max(1, math.ceil(max(blocked))) if blocked else None

    def failed(self, address: str, prefix: str | None) -> None:
        now = self.clock()
        self.addresses.hit(address, now)
        if prefix is not None:
            self.prefixes.hit(prefix, now)
