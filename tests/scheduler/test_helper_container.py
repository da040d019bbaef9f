"""A helper container made for a copy or a backup is removed whatever happens to its caller, and the caller
returns only once it is gone, even when cancelled twice (a time limit and a sibling's failure at once): what
runs next, an undo removing the volume the helper mounted, never finds it half removed."""

from __future__ import annotations

import asyncio

import pytest

from berth_scheduler.adapters.docker import DockerExecutor
from berth_scheduler.adapters.helper_container import created

pytestmark = [pytest.mark.docker]


async def test_a_helper_is_gone_when_its_twice_cancelled_caller_returns(
    docker: DockerExecutor, busybox: str, unique: str
) -> None:
    name = f"berth-test-helper-{unique}"
    body = {"Image": busybox, "Cmd": ["sleep", "60"], "Labels": {"berth.test": "1"}}
    inside = asyncio.Event()

    async def caller() -> None:
        async with created(docker, name, body):
            await docker.start(name)
            inside.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(caller())
    try:
        await asyncio.wait_for(inside.wait(), 30)
        assert (await docker.inspect(name)) is not None
        task.cancel()
        await asyncio.sleep(0)  # the caller is now in its clean-up, waiting for the removal
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await docker.inspect(name) is None
    finally:
        await docker.remove(name)
