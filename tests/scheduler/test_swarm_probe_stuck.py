"""A Swarm task that answers the same final error status over and over fails its version at once, as a
replica's check does (``ReadinessConfig.stuck_s``): the probe's bookkeeping, with its checks and clock given."""

from __future__ import annotations

from typing import Any

from berth_scheduler.adapters.swarm_probe import NodeProbe
from berth_scheduler.domain import swarm_rollout as dom
from berth_scheduler.domain.readiness import Seen


class Given(NodeProbe):
    def __init__(self, answers: list[Seen]) -> None:
        self.now = 0.0
        super().__init__(pool=None, nodes=dict, clock=lambda: self.now)  # type: ignore[arg-type]
        self.answers = answers

    async def seen(self, task: Any, port: int, path: str) -> Seen:
        return self.answers.pop(0)


def _task(task_id: str) -> dom.Task:
    return dom.Task(task_id=task_id, node_id="n1", container_id="c1", address="10.0.0.2")


NOT_FOUND = Seen(False, "GET /x answered 404: nope", "status", 404)
STARTING = Seen(False, "GET /x answered 503: starting", "status", 503)


async def test_the_same_final_status_for_five_seconds_is_stuck() -> None:
    probe = Given([NOT_FOUND] * 4)
    for at in (0.0, 2.0, 4.0):
        probe.now = at
        assert await probe.ready(_task("t1"), 8080, "/x") is False
        assert probe.stuck(5.0) is None
    probe.now = 5.5
    await probe.ready(_task("t1"), 8080, "/x")
    assert probe.stuck(5.0) == 5.5
    assert probe.said == {"t1": "GET /x answered 404: nope"}


async def test_a_starting_answer_a_changed_answer_or_a_task_no_longer_checked_is_not() -> None:
    probe = Given([STARTING, STARTING, NOT_FOUND, Seen(False, "GET /x answered 500: boom", "status", 500)])
    for at in (0.0, 6.0):
        probe.now = at
        await probe.ready(_task("t1"), 8080, "/x")
    assert probe.stuck(5.0) is None  # a 503 is what a starting app (or its proxy) says
    probe.now = 7.0
    await probe.ready(_task("t1"), 8080, "/x")
    probe.now = 13.0
    await probe.ready(_task("t1"), 8080, "/x")
    assert probe.stuck(5.0) is None  # 404 then 500: not the same answer
    probe.now = 30.0
    assert probe.stuck(5.0) is None  # not checked lately: a task that went away
