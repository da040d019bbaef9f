"""Container lifecycle from the Docker events stream: crashes, restarts (and loops), health changes.

Pure state machine, fed one event document at a time (``GET /events`` lines, ``Type: container``):

- a crash is a ``die`` with a non-zero ``exitCode`` that nobody asked for (no ``kill`` of that container in
  the grace period before: ``docker stop`` and deploys send one), or any ``die`` after an ``oom`` event;
- a restart is a ``start`` after a ``die`` that nobody asked for (the restart policy at work); ``N`` of them
  within the loop window of one container is a restart loop;
- health: ``health_status: unhealthy`` when it was not unhealthy before, and ``health_status: healthy`` only
  when it recovers from unhealthy (a container that starts healthy is not news).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from berth_metrics.domain.stats import berth_labels

EVENT_ACTIONS = ("kill", "oom", "die", "start", "health_status", "destroy")
SignalKind = Literal["crashed", "restarted", "unhealthy", "healthy"]


@dataclass(frozen=True)
class Signal:
    """Something worth telling: becomes an ``evt.container.*`` message."""

    kind: SignalKind
    key: str  # unique per docker event: id + timeNano + kind (the message id derives from it)
    container_id: str
    container_name: str
    image: str
    labels: dict[str, str]  # app / service / deployment / team when present
    at: datetime
    reason: str
    exit_code: int | None = None
    oom_killed: bool = False
    restarts_in_window: int = 0
    looping: bool = False
    previous_health: str | None = None


@dataclass
class _Container:
    killed_at: datetime | None = None
    oom: bool = False
    died_unasked: bool = False
    last_exit: int | None = None
    health: str | None = None


@dataclass(frozen=True)
class Restart:
    at: datetime
    container_id: str
    name: str
    labels: dict[str, str]


def event_time(doc: dict[str, Any]) -> datetime:
    nanos = doc.get("timeNano")
    if isinstance(nanos, int):
        return datetime.fromtimestamp(nanos / 1e9, UTC)
    return datetime.fromtimestamp(float(doc.get("time", 0)), UTC)


@dataclass
class LifecycleTracker:
    loop_count: int = 3
    loop_window_s: float = 300.0
    kill_grace_s: float = 120.0
    history_s: float = 86400.0  # restarts kept for rules with windows up to this long
    max_history: int = 20000
    _containers: dict[str, _Container] = field(default_factory=dict)
    _restarts: deque[Restart] = field(default_factory=deque)

    def feed(self, doc: dict[str, Any]) -> list[Signal]:
        """Apply one event; return what it means (usually nothing)."""
        if doc.get("Type", "container") != "container":
            return []
        action = str(doc.get("Action") or doc.get("status") or "")
        actor = doc.get("Actor") or {}
        cid = str(actor.get("ID") or doc.get("id") or "")
        if not cid:
            return []
        attrs: dict[str, str] = {str(k): str(v) for k, v in (actor.get("Attributes") or {}).items()}
        at = event_time(doc)
        verb, _, detail = action.partition(":")
        state = self._containers.setdefault(cid, _Container())

        def signal(kind: SignalKind, reason: str, **extra: Any) -> Signal:
            return Signal(
                kind=kind,
                key=f"{cid[:32]}-{doc.get('timeNano', doc.get('time', 0))}-{kind}",
                container_id=cid,
                container_name=attrs.get("name", ""),
                image=attrs.get("image", ""),
                labels=berth_labels(attrs),
                at=at,
                reason=reason,
                **extra,
            )

        if verb == "kill":
            state.killed_at = at
            return []
        if verb == "oom":
            state.oom = True
            return []
        if verb == "die":
            return self._die(state, attrs, at, signal)
        if verb == "start":
            if not state.died_unasked:
                return []
            state.died_unasked = False
            self._restarts.append(Restart(at, cid, attrs.get("name", ""), berth_labels(attrs)))
            self.prune(at)
            count = self.restarts_of(cid, at - timedelta(seconds=self.loop_window_s))
            looping = count >= self.loop_count
            why = f"exited with code {state.last_exit}" if state.last_exit is not None else "exited"
            reason = f"restarted by its restart policy after it {why}; {count} restarts in {self.loop_window_s:g}s"
            reason += " (restart loop)" if looping else ""
            return [signal("restarted", reason, restarts_in_window=count, looping=looping)]
        if verb == "health_status":
            status = detail.strip()
            previous, state.health = state.health, status
            if status == "unhealthy" and previous != "unhealthy":
                return [signal("unhealthy", "its health check failed", previous_health=previous)]
            if status == "healthy" and previous == "unhealthy":
                return [signal("healthy", "its health check passes again", previous_health=previous)]
            return []
        if verb == "destroy":
            self._containers.pop(cid, None)
        return []

    def _die(self, state: _Container, attrs: dict[str, str], at: datetime, signal: Any) -> list[Signal]:
        try:
            exit_code: int | None = int(attrs.get("exitCode", ""))
        except ValueError:
            exit_code = None
        asked = state.killed_at is not None and at - state.killed_at <= timedelta(seconds=self.kill_grace_s)
        oom = state.oom
        state.killed_at, state.oom, state.last_exit = None, False, exit_code
        state.died_unasked = not asked or oom
        state.health = None  # a new start begins with a new health history
        if oom:
            reason = "killed by the kernel OOM killer (out of memory)"
            return [signal("crashed", reason, exit_code=exit_code, oom_killed=True)]
        if exit_code not in (0, None) and not asked:
            return [signal("crashed", f"exited with code {exit_code}", exit_code=exit_code)]
        return []

    def prune(self, now: datetime) -> None:
        horizon = now - timedelta(seconds=self.history_s)
        while self._restarts and (self._restarts[0].at < horizon or len(self._restarts) > self.max_history):
            self._restarts.popleft()

    def restarts_of(self, container: str, since: datetime) -> int:
        """Restarts of one container (full id, or name) since a time."""
        return sum(1 for r in self._restarts if r.at >= since and container in (r.container_id, r.name))

    def restarts_where(self, since: datetime, **labels: str) -> list[Restart]:
        """Restarts since a time of the containers carrying all the given berth labels (app=..., team=...)."""
        return [r for r in self._restarts if r.at >= since and all(r.labels.get(k) == v for k, v in labels.items())]

    def restarts_since(self, since: datetime) -> list[Restart]:
        return [r for r in self._restarts if r.at >= since]
