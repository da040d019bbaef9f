"""A consistent copy of a Redis server's data for a backup: ``BGSAVE``, then its RDB file once the save
ended; and where that file is, for a restore. Through ``redis-cli`` in the database's container (argv only,
the password in the environment)."""

from __future__ import annotations

import asyncio

from berth_scheduler.adapters.docker import DockerExecutor
from berth_scheduler.adapters.exec_stream import run_small
from berth_scheduler.domain import dumps
from berth_scheduler.domain.backups import BackupError


async def _redis(docker: DockerExecutor, container: str, password: str, *args: str) -> str:
    code, out, err = await run_small(docker, container, dumps.redis_cli(password, *args))
    if code != 0 or out.startswith("ERR") or out.startswith("NOAUTH"):
        raise BackupError(f"redis-cli {args[0]} failed: {(err or out).strip()[:500]}")
    return out


async def redis_rdb(docker: DockerExecutor, container: str, password: str) -> str:
    """Where the Redis server keeps its RDB file (``CONFIG GET dir`` and ``dbfilename``)."""
    config = [await _redis(docker, container, password, "CONFIG", "GET", k) for k in ("dir", "dbfilename")]
    return dumps.redis_rdb_path(*config)


async def redis_bgsave(docker: DockerExecutor, container: str, password: str) -> str:
    """BGSAVE, then wait until it ended and LASTSAVE moved: the RDB file is then a consistent copy; its path."""
    path = await redis_rdb(docker, container, password)
    before = (await _redis(docker, container, password, "LASTSAVE")).strip()
    await _redis(docker, container, password, "BGSAVE")
    while True:
        await asyncio.sleep(0.2)
        state = dumps.redis_bgsave_state(await _redis(docker, container, password, "INFO", "persistence"))
        if state == "err":
            raise BackupError("Redis BGSAVE failed (rdb_last_bgsave_status:err; a full disk?)")
        if state == "ok" and (await _redis(docker, container, password, "LASTSAVE")).strip() != before:
            return path
