"""``ssh-keyscan`` as a child process: argv only, a clean environment, killed at its deadline."""

from __future__ import annotations

import asyncio
import contextlib

from berth_builder.domain.git_credentials import SAFE_PATH


async def keyscan(argv: tuple[str, ...], timeout_s: float) -> str:
    """What ``argv`` printed on stdout (empty when it did not finish within ``timeout_s``)."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={"PATH": SAFE_PATH, "LC_ALL": "C"},
    )
    try:
        async with asyncio.timeout(timeout_s):
            out, _ = await proc.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return ""
    return out.decode(errors="replace")[:65536]
