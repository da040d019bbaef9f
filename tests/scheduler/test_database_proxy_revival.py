# ruff: noqa: F811 (the rig, its proxy image and its database are test_database_allowlist's fixtures)
"""A running database's TCP proxy that exited is started again alone by the revival pass
(``usecases/database_revival.py``): the database's container is not touched, nothing is announced, and the
database answers through its proxy again; a proxy found gone is made again. A real scheduler and Docker with
the local Redis image; the client connects from a network namespace the allow-list admits."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from typing import Any

import pytest

from berth_common.catalogue import RunDatabase
from berth_scheduler.domain import database_proxy as proxy
from berth_scheduler.domain.revival import SETTLE_S
from tests.scheduler.test_database_allowlist import ProxiedMade, _inspect, made, proxy_image, redis_from, rig  # noqa: F401
from tests.scheduler.test_databases import Rig, rid, spec_of
from tests.support import images

REVIVE_S = 5.0  # the orchestrator's revival pass interval
PONG = repr(b"+OK\r\n+PONG\r\n")


def _ask(namespace: str, host: str, port: int, password: str) -> str:
    """What the client gets; "refused" while the proxy is not listening yet (started, Traefik not up)."""
    try:
        return redis_from(namespace, host, port, password)
    except AssertionError as exc:
        if "ConnectionRefusedError" not in str(exc):
            raise
        return "refused"


async def _answered(namespace: str, host: str, port: int, password: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while (got := await asyncio.to_thread(_ask, namespace, host, port, password)) != PONG:
        assert time.monotonic() < deadline, got
        await asyncio.sleep(0.2)
    return got


async def _proxy_running(name: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not ((found := _inspect(name)) or {}).get("State", {}).get("Running"):
        assert time.monotonic() < deadline, (found or {}).get("State")
        await asyncio.sleep(0.5)
    assert found is not None
    return found


@pytest.mark.docker
@pytest.mark.slow
async def test_a_killed_proxy_is_started_again_alone(rig: Rig, made: ProxiedMade) -> None:
    from berth_cli.components import free_port
    from tests.support.testservers import running_servers

    images.redis_image()
    password, port = "pw-" + uuid.uuid4().hex, free_port()
    name = proxy.name(made.database_id)
    with running_servers(1, with_sshd=False, with_docker=False) as (admitted,):
        spec = spec_of(made, "redis", "7", password, public={"port": port, "allow": [f"{admitted.address}/32"]})
        run = await rig.send(RunDatabase(request_id=rid(), spec=spec))
        assert (await rig.wait(run, timeout=300))["state"] == "running"
        host = admitted.gateway
        await _answered(admitted.name, host, port, password, 10)
        database = _inspect(made.container)
        first = _inspect(name)
        assert database is not None and first is not None

        # killed outside Berth: Docker does not start it again (a kill counts as stopped on purpose)
        subprocess.run([images.DOCKER, "kill", name], check=True, capture_output=True, timeout=60)
        killed = _inspect(name)
        assert killed is not None and killed["State"]["Status"] == "exited"
        t0 = time.monotonic()
        again = await _proxy_running(name, SETTLE_S + 2 * REVIVE_S + 30)
        await _answered(admitted.name, host, port, password, 10)
        print(f"\nproxy answering again {time.monotonic() - t0:.1f}s after it was killed")
        assert again["Id"] == first["Id"] and again["State"]["StartedAt"] != first["State"]["StartedAt"]
        after = _inspect(made.container)
        assert after is not None
        assert (after["Id"], after["State"]["StartedAt"]) == (database["Id"], database["State"]["StartedAt"])
        assert rig.states(run) == ["starting", "running"]  # nothing announced: the database ran all along

        # removed outside Berth: made again, the database still untouched
        subprocess.run([images.DOCKER, "rm", "-f", name], check=True, capture_output=True, timeout=60)
        made_again = await _proxy_running(name, 2 * REVIVE_S + 30)
        assert made_again["Id"] != first["Id"]
        await _answered(admitted.name, host, port, password, 10)
        after = _inspect(made.container)
        assert after is not None
        assert (after["Id"], after["State"]["StartedAt"]) == (database["Id"], database["State"]["StartedAt"])
        assert rig.states(run) == ["starting", "running"]
