"""The orchestrator's stop ends every rollout task for sure. On Python 3.11 ``asyncio.wait_for`` whose awaited
event is set at the moment its task is cancelled returns instead of raising: a removal woken by proxy-sync's
confirmation as the scheduler stopped went on to drain and remove the application's containers while the
service was stopping (seen in a full run: the removal the next scheduler was to resume had already ended)."""

from __future__ import annotations

import asyncio
import contextlib

from berth_scheduler.usecases.rollout.orchestrator import Orchestrator


def bare() -> Orchestrator:
    """An orchestrator with only what waiting and halting use (no context: nothing else is called)."""
    orch = Orchestrator.__new__(Orchestrator)
    orch._wakes, orch._tasks = {}, {}
    return orch


async def test_a_wait_woken_as_its_task_is_cancelled_is_cancelled() -> None:
    orch = bare()
    waiting = asyncio.create_task(orch._wait("app", 30))
    await asyncio.sleep(0.01)  # waiting on the application's wake
    orch._wakes["app"].set()
    waiting.cancel()  # in the same turn of the loop as the wake
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    assert waiting.cancelled()


async def test_halt_ends_a_task_that_lost_its_first_cancellation() -> None:
    orch = bare()
    went_on = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:  # as a lost cancellation looks to the task: it goes on
            went_on.set()
        await asyncio.sleep(30)

    task = asyncio.create_task(stubborn())
    orch._tasks["app"] = task
    await asyncio.sleep(0.01)
    await asyncio.wait_for(orch._halt(), 5)
    assert went_on.is_set() and task.cancelled()
