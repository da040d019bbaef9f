"""Stopping background tasks for sure.

On Python 3.11 a cancellation can be lost: ``asyncio.wait_for`` whose inner awaitable finishes at the moment
the task is cancelled returns the result instead of raising ``CancelledError`` (fixed in 3.12). A loop that
then goes on sleeping never ends, and ``task.cancel(); await task`` hangs a service's shutdown. ``cancel_and_wait``
cancels again until the task is done.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any] | None, *, retry_s: float = 0.5) -> None:
    """Cancel ``task`` and wait until it is done, cancelling again every ``retry_s`` while it runs on.

    Its outcome (result, cancellation or exception) is not raised here: the caller is stopping it.
    """
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=retry_s)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()
