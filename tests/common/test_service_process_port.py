"""The tests' service processes (``benchmarks/support/api_server.ServiceProcess``) choose a free port, and under
parallel workers another process may bind it before the service does: the service exits ("address already in
use") and is started again on another port, so a fixture does not fail for a race of the machine."""

from __future__ import annotations

import socket
from pathlib import Path

from benchmarks.support.api_server import ServiceProcess
from berth_common.db.provision import provision


async def test_a_service_whose_port_was_taken_starts_again_on_another(
    nats_server, migrated_database: str, tmp_path: Path
) -> None:
    urls = await provision(migrated_database, "test-secret")
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    service = ServiceProcess(
        "metrics",
        nats_server.url,
        urls["metrics"],
        tmp_path / "metrics",
        port=taken,
        extra_env={"BERTH_MIGRATE_IN_SUBPROCESS": "false"},
    )
    try:
        service.start(timeout=60)
        assert service.port != taken and service.alive()
        assert f"('127.0.0.1', {taken}): address already in use" in service.log_tail(100_000)
    finally:
        service.stop()
        squatter.close()


async def test_a_service_that_exits_for_another_reason_is_not_started_again(nats_server, tmp_path: Path) -> None:
    service = ServiceProcess(
        "metrics",
        nats_server.url,
        "postgresql://nobody@127.0.0.1:1/none",
        tmp_path / "metrics",
        extra_env={"BERTH_FETCH_WAIT_S": "0"},  # refused by the settings: the process exits at once
    )
    port = service.port
    try:
        service.start(timeout=60)
    except RuntimeError as exc:
        assert "berth-metrics exited with" in str(exc) and "fetch_wait_s" in str(exc)
        assert service.port == port
    else:
        raise AssertionError("a service with a refused setting answered")
    finally:
        service.stop()
