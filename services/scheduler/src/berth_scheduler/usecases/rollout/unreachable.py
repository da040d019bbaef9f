"""Servers a deployment leaves that do not answer (a drained server that is down): what the rollout skips there.

A server the new version no longer places anything on has only cleanup left to do: its route removed, its
old containers stopped. When it does not answer (its SSH or its engine), that cleanup is skipped with a note
in the deployment's log (its routes and container records stay, so nothing is forgotten), and the move to
the other servers goes on; a server the server watcher reported unreachable (and not back yet) is not
asked at all (``domain/server_state.py``), so the deployment does not wait for its SSH timeout, and its
records stay until it is back (the revival pass removes what they name then, ``domain/revival.py``, unless
the next deployment did) or removed. The data of its named volumes cannot be copied from it: ``volume_move.py``
refuses the move naming each volume, unless the deployment was asked to start them empty
(``RolloutOptions.abandon_volume_data``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from berth_common.logging import get_logger
from berth_scheduler.domain.routing import LOCAL
from berth_scheduler.usecases.rollout.context import RolloutContext
from berth_scheduler.usecases.rollout.image_pull import log_lines

log = get_logger(__name__)


async def answers(rt: RolloutContext, server: str) -> bool:
    """Whether the server's engine answers now, through its SSH connection (within the SSH timeout; at once
    False for a server known to be unreachable)."""
    if server == LOCAL:
        return True
    timeout = rt.settings.ssh_timeout_s
    try:
        async with asyncio.timeout(timeout * 2):
            await rt.fleet.docker(server)
            await rt.fleet.engines.version(server, timeout)
    except Exception as exc:  # any failure to reach it: the server does not answer
        log.warning("server does not answer", server_id=server, error=f"{type(exc).__name__}: {exc}")
        return False
    return True


async def silent(rt: RolloutContext, servers: Iterable[str]) -> list[str]:
    """The servers of ``servers`` that do not answer, in their order (asked at once)."""
    wanted = list(dict.fromkeys(s for s in servers if s != LOCAL))
    answered = await asyncio.gather(*(answers(rt, s) for s in wanted))
    return [s for s, ok in zip(wanted, answered, strict=True) if not ok]


async def note_skipped(rt: RolloutContext, deployment_id: str, servers: Iterable[str]) -> None:
    """The deployment log's note of the servers whose old containers could not be stopped (none: nothing)."""
    lines = [
        f"[stopping_old] server {server} does not answer: its old containers were not stopped (its cleanup is "
        "skipped; their records stay, and they are removed once the server answers)"
        for server in dict.fromkeys(servers)
    ]
    await log_lines(rt, deployment_id, lines)
