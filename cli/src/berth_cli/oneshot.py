"""One-shot children of the supervisor: a module of this environment run to its end in its own interpreter,
its errors in its own log. They keep what they load (the catalogue, SQLAlchemy, alembic) out of the
long-lived supervisor."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from berth_cli import nats_auth
from berth_cli.backoff import RestartPolicy


async def run_module(
    module: str, args: list[str], logfile: Path, *, env: Mapping[str, str] | None = None, capture: bool = False
) -> tuple[int, bytes]:
    """Run ``python -m module args``; its exit code and (``capture``) what it printed."""
    with logfile.open("ab") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            *args,
            stdout=asyncio.subprocess.PIPE if capture else err,
            stderr=err,
            env=None if env is None else dict(env),
        )
    try:
        out, _ = await proc.communicate()
    except asyncio.CancelledError:  # the supervisor stops (or its start-up failed) first: the child goes too
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    return int(proc.returncode or 0), out or b""


async def provision_roles(
    env: Mapping[str, str], logfile: Path, stop: asyncio.Event, policy: RestartPolicy, log: Any
) -> dict[str, str] | None:
    """Each service's database URL once ``berth_cli.provisioning`` made the roles and schemas; tried again
    with backoff until it works, or None when ``stop`` is set first."""
    failures = 0
    while not stop.is_set():
        rc, out = await run_module("berth_cli.provisioning", [], logfile, env=env, capture=True)
        if rc == 0:
            urls: dict[str, str] = json.loads(out)
            log.info("database roles provisioned", services=sorted(urls))
            return urls
        failures += 1
        delay = policy.delay(failures)
        log.error("provisioning failed", exit=rc, retry_in_s=delay, log=str(logfile))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
    return None


async def write_nats_config(root: Path, logfile: Path, log: Any) -> Path | None:
    """nats-server's configuration (users, permissions) written by ``berth_cli.nats_auth``; its path, or
    None (logged) when that failed."""
    rc, _ = await run_module("berth_cli.nats_auth", [str(root)], logfile)
    if rc != 0:
        log.error("writing the NATS configuration failed", exit=rc, log=str(logfile))
        return None
    return nats_auth.config_path(root)
