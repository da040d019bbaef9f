"""Background tasks stop for sure, even when their loop lost a cancellation (Python 3.11's ``wait_for``)."""

from __future__ import annotations

import asyncio
import time

import pytest

from berth_common.tasks import cancel_and_wait


async def stubborn(swallowed: list[int]) -> None:
    """A loop that loses the first cancellation, as one awaiting ``wait_for`` on 3.11 can, and sleeps on."""
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        swallowed.append(1)
    await asyncio.sleep(30)


async def test_a_single_cancel_does_not_stop_a_loop_that_lost_it():
    swallowed: list[int] = []
    task = asyncio.create_task(stubborn(swallowed))
    await asyncio.sleep(0)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=0.3)
    assert not done and swallowed == [1]  # what hung the scheduler's shutdown for a minute
    task.cancel()
    await asyncio.wait({task}, timeout=1)


async def test_cancel_and_wait_cancels_again_until_the_task_is_done():
    swallowed: list[int] = []
    task = asyncio.create_task(stubborn(swallowed))
    await asyncio.sleep(0)
    start = time.monotonic()
    await cancel_and_wait(task, retry_s=0.1)
    assert task.done() and task.cancelled() and swallowed == [1]
    assert time.monotonic() - start < 2


@pytest.mark.parametrize("outcome", ["result", "error", "none"])
async def test_a_finished_or_missing_task_is_fine(outcome):
    async def ends() -> int:
        if outcome == "error":
            raise RuntimeError("boom")
        return 1

    task = None if outcome == "none" else asyncio.create_task(ends())
    if task is not None:
        await asyncio.wait({task})
    await cancel_and_wait(task)  # neither its result nor its error is raised to the one stopping it
