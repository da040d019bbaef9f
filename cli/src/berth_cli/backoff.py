"""The restart policy for crashed children: exponential backoff, capped, forgiven after a stable run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RestartPolicy:
    initial_s: float = 0.5
    factor: float = 2.0
    cap_s: float = 30.0
    # a child that ran at least this long before exiting starts again from the initial delay
    stable_after_s: float = 60.0

    def failures_after_exit(self, failures: int, uptime_s: float) -> int:
        """The count of consecutive failures once a child has exited after ``uptime_s`` seconds."""
        return 1 if uptime_s >= self.stable_after_s else failures + 1

    def delay(self, failures: int) -> float:
        """How long to wait before restart number ``failures`` (1 = first restart)."""
        if failures <= 0:
            return 0.0
        # bounded exponent: no overflow however long a child keeps crashing
        exponent = min(failures - 1, 64)
        return float(min(self.initial_s * self.factor**exponent, self.cap_s))
