"""Which replicas of a live version to start again: the ones an engine restart left exited.

Docker restarts a container by its restart policy while the engine runs, but an engine that crashed
(SIGKILL, power loss) stops, on its next start, the containers it finds from before and does not start
them again (Docker 20.10 without ``live-restore``: they stay ``exited``, code 137). A live version's
replica that is exited although its policy asks for it to run is therefore started again by the
scheduler, as the engine would have done had it not crashed: ``always`` and ``unless-stopped`` always,
``on-failure`` after a failure (a non-zero exit code), ``no`` never. Berth removes every replica it stops
for good (an old version, a scale-down) and forgets it, and no application with a deployment in flight is
touched, so a replica found here is one the platform still means to run. One that exited less than
``SETTLE_S`` ago is left alone for now: a deployment requested just after it stopped (which makes a kept
service's stopped container again) finds it as it was.

A one-click database (``unless-stopped``) is looked at by the same pass when it is meant to run, that is
when its last answer was ``running`` (``usecases/database_revival.py``): one stopped on purpose was marked
stopped before its stop and stays stopped. Its revival is announced (``starting``, then ``running`` or
``failed``) with events told apart by ``revival_tag``: the container's exit time, so that a pass repeated
for the same exit (after a restart of the scheduler) announces nothing twice.

A database whose process died while its engine ran was started again by the engine itself (its restart
policy): the pass sees it by ``RestartCount`` and announces it the same way once it is ready again.

The same pass removes what a rollout left behind: the container records of a finished deployment that is not
the live one (``leftovers``). A deployment that succeeded forgets the old version's records as it removes its
containers, and the undo of one that failed forgets its own; only a server that did not answer then (its
engine restarting, its SSH cut) keeps them, and its containers with them (stopped by the crash, or still
running after a cut). Left to the application's next deployment they may stay for good (none comes, or it
fails before its end: a full disk), so the pass stops and removes them once their server answers, and forgets
their records. Only recorded names are looked at, never a label: a container the live deployment kept from an
older one (``rollout/adoption.py``) carries the older one's label but is recorded as the live one's. A
record whose container is not there (a start that failed recorded it before making it) is forgotten too.

A Swarm service's tasks are not looked at: Swarm keeps each service at its replica count itself, starting a
new task for one that exited, whatever the reason (its restart policy ``any``), including after its node's
engine restarted.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

WANTS_RUNNING = frozenset({"always", "unless-stopped"})
SETTLE_S = 5.0


def exited_at(state: dict[str, Any]) -> datetime | None:
    """``State.FinishedAt`` (nanoseconds, ``Z``) as a datetime; None when the engine gave none."""
    raw = str(state.get("FinishedAt") or "")
    if not raw or raw.startswith("0001-"):
        return None
    head, _, frac = raw.rstrip("Z").partition(".")
    try:
        return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00")
    except ValueError:
        return None


def should_start(info: dict[str, Any] | None, now: datetime) -> bool:
    """Whether the container (``GET /containers/{name}/json``) is to be started again at ``now`` (UTC)."""
    if not info:
        return False
    state = info.get("State") or {}
    if state.get("Status") != "exited" or state.get("Running"):
        return False
    ended = exited_at(state)
    if ended is not None and (now - ended).total_seconds() < SETTLE_S:
        return False
    policy = ((info.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or "no"
    if policy in WANTS_RUNNING:
        return True
    return policy == "on-failure" and int(state.get("ExitCode") or 0) != 0


def leftovers(records: Iterable[Any], live_id: str | None, finished: Collection[str]) -> list[Any]:
    """The container records (``deployment_id`` each) a rollout left behind: those of a deployment in
    ``finished`` (ended) that is not the live one (``live_id``; None: none succeeded yet). A deployment not
    finished is never among them: its records are its own, its containers maybe being made."""
    return [r for r in records if r.deployment_id != live_id and r.deployment_id in finished]


def restarted_by_engine(info: dict[str, Any] | None, seen: str | None) -> bool:
    """Whether the running container was started again by its engine's restart policy (its process died:
    ``RestartCount`` counts those restarts, and a start by Berth sets it back to 0) since the start ``seen``
    last (``State.StartedAt``)."""
    if not info:
        return False
    state = info.get("State") or {}
    return bool(state.get("Running")) and int(info.get("RestartCount") or 0) > 0 and state.get("StartedAt") != seen


def revival_tag(info: dict[str, Any]) -> str:
    """What tells one revival's events from another's (the same for one exit, whoever looks at it): ``-r``
    and the digits of the exit time of an exited container, ``-s`` and those of the start of one its engine
    started again."""
    state = info.get("State") or {}
    prefix, raw = ("-s", state.get("StartedAt")) if state.get("Running") else ("-r", state.get("FinishedAt"))
    return prefix + "".join(ch for ch in str(raw or "") if ch.isdigit())[:24]
