"""The built-in "database down" alert on another server: the metrics service reads a namespace test server
(announced in ``evt.server.changed``, read over SSH) and raises the alert for a database container there
that never started (``created``: its stalled state is read from that server's engine too) and for one that
fails its health check; a database container stopped there raises nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from berth_common.catalogue import BUILTIN_DATABASE_DOWN
from tests.metrics.service import eventually, metrics_service
from tests.support.images import busybox_image
from tests.support.testservers import TestServer, running_servers, server_changed

pytestmark = [pytest.mark.slow, pytest.mark.docker]
TEAM = "team-remote"


@pytest.fixture(scope="module")
def server() -> Iterator[TestServer]:
    with running_servers(1) as [s]:
        s.load_image(busybox_image())
        yield s


def stand_in(server: TestServer, database_id: str, *args: str, start: bool = True) -> None:
    """A stand-in for a database's container on ``server`` (its name and labels), created or run."""
    labels = ["--label", f"berth.app={database_id}", "--label", f"berth.team={TEAM}"]
    labels += ["--label", "berth.kind=database", "--label", "berth.managed=true"]
    verb = ["run", "-d"] if start else ["create"]
    server.docker(*verb, "--name", f"berth-db-{database_id}", *labels, *args, busybox_image(), "sleep", "3600")


async def test_database_down_is_raised_for_a_database_on_another_server(
    server: TestServer, nats_server: Any, database: str
) -> None:
    never, unhealthy, stopped = (uuid.uuid4().hex for _ in range(3))
    stand_in(server, never, start=False)
    stand_in(server, unhealthy, "--health-cmd", "false", "--health-interval", "1s", "--health-retries", "1")
    stand_in(server, stopped)
    server.docker("stop", "-t", "1", f"berth-db-{stopped}")
    server_id = uuid.uuid4().hex
    async with metrics_service(nats_server.url, database, metrics_database_down_after_s=2.0) as running:
        await running.bus.publish(server_changed(server, server_id, team_id=TEAM, name="ns-db"))

        def raised() -> dict[str, dict]:
            return {e["target_id"]: e for e in running.of_type("evt.alert.raised", rule_id=BUILTIN_DATABASE_DOWN)}

        found = await eventually(lambda: {never, unhealthy} <= set(raised()), 90)
        assert found
        for database_id in (never, unhealthy):
            alert = raised()[database_id]
            assert alert["team_id"] == TEAM and alert["metric"] == "down" and alert["value"] >= 2.0
            assert alert["labels"] == {"app": database_id, "container": f"berth-db-{database_id}", "kind": "database"}
        assert stopped not in raised()  # stopped on purpose

        server.docker("rm", "-f", f"berth-db-{never}")
        resolved = await eventually(
            lambda: [
                e
                for e in running.of_type("evt.alert.resolved", rule_id=BUILTIN_DATABASE_DOWN)
                if e["target_id"] == never
            ],
            60,
        )
        assert resolved[0]["value"] is None  # gone
