"""A scale and a deployment of one application never overlap, whichever comes first: a scale whose planning
finds a deployment holding the application (admitted by a start command's handler after the rollout task
found the application free, before the scale was recorded) writes nothing and lets the deployment go first
(``usecases/rollout/scale.py``). Seen under load before this check: a scale from 2 to 4 replicas carried out
while a deployment was starting."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from berth_scheduler.domain.machine import State
from berth_scheduler.domain.queueing import QueueEntry
from berth_scheduler.domain.scaling import Phase, Scale
from berth_scheduler.usecases.rollout import scale as mod
from berth_scheduler.usecases.rollout.scale import ScaleDriver

APP = "app-1"


class Db:
    """The records the planning reads, and what it writes."""

    def __init__(self, queue: list[QueueEntry]) -> None:
        self.queue = queue
        self.locked: list[str] = []
        self.saved: list[Scale] = []
        self.scale = Scale(
            id="r1",
            seq=1,
            application_id=APP,
            team_id="t1",
            trigger="manual",
            reason="asked",
            targets={"web": 4},
            drain_grace_s=1.0,
        )

    async def lock(self, unit: Any, application_id: str) -> None:
        self.locked.append(application_id)

    async def queue_of(self, session: Any, application_id: str) -> list[QueueEntry]:
        assert self.locked == [application_id]  # read under the admission lock
        return self.queue

    async def current(self, session: Any, application_id: str) -> Scale | None:
        return None if self.saved and self.saved[-1].finished else self.scale

    async def nothing(self, session: Any, application_id: str) -> Any:
        return None

    async def save(self, session: Any, scale: Scale) -> None:
        self.saved.append(scale)


@pytest.fixture
def db(monkeypatch: pytest.MonkeyPatch) -> Db:
    d = Db([])
    monkeypatch.setattr(mod, "lock_application", d.lock)
    monkeypatch.setattr(mod.store, "queue_of", d.queue_of)
    monkeypatch.setattr(mod.store, "last_succeeded", d.nothing)
    monkeypatch.setattr(mod.removals, "is_active", d.nothing)
    monkeypatch.setattr(mod.scales, "current", d.current)
    monkeypatch.setattr(mod.scales, "save", d.save)

    async def emit_all(unit: Any, events: Any) -> None:
        return None

    monkeypatch.setattr(mod, "emit_all", emit_all)
    return d


def context() -> Any:
    unit = SimpleNamespace(session="session")

    async def run(body: Any) -> Any:
        return await body(unit)

    class Session:
        async def __aenter__(self) -> str:
            return "session"

        async def __aexit__(self, *exc: object) -> None:
            return None

    return SimpleNamespace(clock=lambda: 10.0, units=SimpleNamespace(run=run), sessionmaker=Session, sent_steps=set())


async def wait(timeout: float) -> None:
    raise AssertionError("a pending scale waits for nothing")


async def test_a_scale_planned_while_a_deployment_holds_the_application_writes_nothing_and_waits(db: Db):
    db.queue = [QueueEntry("d2", State.SUCCEEDED, 2), QueueEntry("d3", State.STARTING, 3)]
    assert await ScaleDriver()(context(), APP, wait) is True  # the rollout task goes on: to the deployment
    assert db.saved == [] and db.locked == [APP]


async def test_a_scale_planned_while_the_application_is_free_is_carried_out(db: Db):
    db.queue = [QueueEntry("d2", State.SUCCEEDED, 2), QueueEntry("d4", State.QUEUED, 4)]  # queued: not admitted
    assert await ScaleDriver()(context(), APP, wait) is True
    (done,) = db.saved  # planned: here it ends at once, as the application has no live deployment
    assert done.phase == Phase.FAILED and done.failure == "the application has no live deployment to scale"
