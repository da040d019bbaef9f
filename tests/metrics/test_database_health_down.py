"""The built-in "database down" alert for a hung engine and for a database that never starts.

Pure: a container that is not running counts as down only when it stalled (never started, Docker could
not start it again, or dead), never when it was stopped. End to end, the scheduler makes a Redis database
(its Docker health check with short test timing) and the metrics service watches it:

- hung (Redis, and PostgreSQL's postmaster, the process that accepts connections; its children run on):
  the engine's own process is stopped with SIGSTOP from the host (the container, its init and the
  health check's exec keep running; only the engine no longer answers, as a deadlocked engine would), the
  health check times out, the container turns ``unhealthy`` and the alert is raised; SIGCONT resolves it.
  ``docker pause`` would freeze the whole container, health check included, which is not a hang;
  ``docker kill --signal STOP`` would stop the container's init (pid 1), not the engine.
- never starts: its public port is held by another process on the server, so Docker cannot start the
  container (it stays ``created`` with Docker's error); the command fails and the alert is raised; removing
  the database resolves it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest

from berth_common import dbengines
from berth_common.catalogue import BUILTIN_DATABASE_DOWN, RunDatabase, StartDatabase, StopDatabase
from berth_metrics.domain import database_down as dom
from berth_metrics.domain.readings import Snapshot, StalledContainer
from berth_metrics.domain.stats import parse_inspect
from berth_scheduler.settings import SchedulerSettings
from tests.metrics.service import Running, eventually, metrics_service
from tests.scheduler.test_databases import Made, Rig, rid, scheduler_rig, spec_of
from tests.support import images

DB = "a" * 32


def inspect_doc(status: str, *, running: bool = False, error: str = "") -> dict:
    return {
        "Id": "c1",
        "Name": f"/berth-db-{DB}",
        "Config": {"Image": "redis:7", "Labels": {"berth.app": DB, "berth.team": "team-1", "berth.kind": "database"}},
        "State": {"Status": status, "Running": running, "Error": error, "StartedAt": "0001-01-01T00:00:00Z"},
        "RestartCount": 0,
    }


def test_a_container_stalled_only_when_it_never_started_could_not_start_again_or_is_dead() -> None:
    assert parse_inspect(inspect_doc("created")).stalled
    taken = "driver failed programming external connectivity: address already in use"
    assert parse_inspect(inspect_doc("exited", error=taken)).stalled
    assert parse_inspect(inspect_doc("exited", error=taken)).error == taken
    assert parse_inspect(inspect_doc("dead")).stalled
    assert not parse_inspect(inspect_doc("exited")).stalled  # stopped by a person or by Berth
    assert not parse_inspect(inspect_doc("running", running=True)).stalled


def test_a_stalled_database_reads_down_and_other_stalled_containers_are_not_databases() -> None:
    labels = {"app": DB, "team": "team-1"}
    stalled = StalledContainer("c1", f"berth-db-{DB}", labels, "created")
    proxy = StalledContainer("c2", f"berth-db-{DB}-proxy", labels, "created")
    found, counts = dom.readings(Snapshot(stalled={"c1": stalled, "c2": proxy}), {})
    assert found == [
        dom.DatabaseReading(DB, "team-1", "c1", True, {"app": DB, "container": f"berth-db-{DB}", "kind": "database"})
    ]
    assert counts == {}
    assert dom.DATABASE_LABEL == "berth.kind=database"


# --- end to end ------------------------------------------------------------------------------------------


def scheduler_settings(nats_url: str, database_url: str) -> SchedulerSettings:
    return SchedulerSettings(
        nats_url=nats_url,
        database_url=database_url,
        secret_key="test-secret",
        http_port=0,
        database_health_interval_s=1,
        database_health_timeout_s=1,
        database_health_retries=2,
        # a first start initialises the data directory (PostgreSQL's initdb takes seconds on a busy machine,
        # and its temporary server listens on no TCP port); the first passing check ends the grace
        database_health_start_period_s=60,
    )


def health_of(container: str) -> str:
    out = images.docker("inspect", container, "--format", "{{json .State.Health}}")
    return str((json.loads(out) or {}).get("Status", ""))


def engine_pid(container: str, command: str) -> int:
    """The host pid of the engine's process in ``container`` (not the container's init)."""
    rows = images.docker("top", container, "-eo", "pid,comm").splitlines()[1:]
    pids = [int(r.split()[0]) for r in rows if r.split()[1:] == [command]]
    assert len(pids) == 1, rows
    return pids[0]


def postmaster_pid(container: str) -> int:
    """The host pid of PostgreSQL's postmaster in ``container``: the ``postgres`` process whose parent is not
    one (its checkpointer, writers and launchers are its children, by the same name)."""
    rows = [r.split() for r in images.docker("top", container, "-eo", "pid,ppid,comm").splitlines()[1:]]
    ours = {int(r[0]) for r in rows if r[2:] == ["postgres"]}
    pids = [int(r[0]) for r in rows if r[2:] == ["postgres"] and int(r[1]) not in ours]
    assert len(pids) == 1 and len(ours) > 1, rows
    return pids[0]


@contextlib.contextmanager
def stopped(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


@contextlib.contextmanager
def held_port() -> Iterator[int]:
    """A port on every address of the server, taken by this process."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 0))
        s.listen()
        yield int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def scheduler_and_metrics(nats_url: str, database: str) -> AsyncIterator[tuple[Rig, Running]]:
    """The scheduler (short health check timing) and the metrics service ("database down" after 3 s)."""
    from berth_common.db.provision import provision

    images.redis_image()
    urls = await provision(database, "test-secret", ("scheduler",))
    async with (
        scheduler_rig(nats_url, scheduler_settings(nats_url, urls["scheduler"])) as rig,
        metrics_service(nats_url, database, metrics_database_down_after_s=3.0) as running,
    ):
        yield rig, running


def database_down(running: Running, kind: str, database_id: str) -> list[dict]:
    """The built-in alert's ``kind`` events (raised, resolved) for one database."""
    return [e for e in running.of_type(kind, rule_id=BUILTIN_DATABASE_DOWN) if e["target_id"] == database_id]


@pytest.fixture
def made() -> Iterator[Made]:
    m = Made()
    yield m
    m.cleanup()


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("engine", ["redis", "postgresql"])
async def test_a_hung_engine_fails_its_health_check_and_raises_database_down(nats_server, database, made, engine):
    async with scheduler_and_metrics(nats_server.url, database) as (rig, running):
        if engine == "postgresql":
            images.postgres_image()
            spec = spec_of(made, "postgresql", "15", "pw-" + rid())
        else:
            spec = spec_of(made, "redis", "7", "pw-" + rid())
        answer = await rig.wait(await rig.send(RunDatabase(request_id=rid(), spec=spec)))
        assert answer["state"] == "running", answer
        await eventually(lambda: health_of(made.container) == "healthy", 30)

        def alerts(kind: str) -> list[dict]:
            return database_down(running, kind, made.database_id)

        assert alerts("evt.alert.raised") == []  # the first start was not counted as down
        hung = postmaster_pid(made.container) if engine == "postgresql" else engine_pid(made.container, "redis-server")
        with stopped(hung):
            hung_at = datetime.now(UTC)
            raised = (await eventually(lambda: alerts("evt.alert.raised"), 60))[0]
            assert health_of(made.container) == "unhealthy"
            assert raised["team_id"] == made.team_id and raised["metric"] == "down" and raised["value"] >= 3.0
            assert raised["labels"] == {"app": made.database_id, "container": made.container, "kind": "database"}
            assert "fails its health check" in raised["reason"]
            assert datetime.fromisoformat(raised["since"]) >= hung_at  # not down before the hang
        resolved = (await eventually(lambda: alerts("evt.alert.resolved"), 60))[0]
        assert resolved["alert_id"] == raised["alert_id"] and resolved["value"] == 0.0
        assert health_of(made.container) == "healthy"
        assert len(alerts("evt.alert.raised")) == 1


@pytest.mark.docker
@pytest.mark.slow
async def test_a_database_that_never_starts_raises_database_down(nats_server, database, made):
    async with scheduler_and_metrics(nats_server.url, database) as (rig, running):

        def alerts(kind: str) -> list[dict]:
            return database_down(running, kind, made.database_id)

        with held_port() as port:
            spec = spec_of(made, "redis", "7", "pw-" + rid(), public={"port": port, "allow": ["0.0.0.0/0"]})
            answer = await rig.wait(await rig.send(RunDatabase(request_id=rid(), spec=spec)))
            assert answer["state"] == "failed", answer
            state = json.loads(images.docker("inspect", made.container, "--format", "{{json .State}}"))
            assert state["Status"] == "created" and not state["Running"] and state["Error"]

            raised = (await eventually(lambda: alerts("evt.alert.raised"), 60))[0]
            assert raised["team_id"] == made.team_id and raised["value"] >= 3.0
            assert raised["labels"] == {"app": made.database_id, "container": made.container, "kind": "database"}

        # stopped on purpose: the container Docker could not start is removed (its volume kept), the alert ends
        stop = StopDatabase(request_id=rid(), database_id=made.database_id, team_id=made.team_id)
        assert (await rig.wait(await rig.send(stop)))["state"] == "stopped"
        resolved = (await eventually(lambda: alerts("evt.alert.resolved"), 60))[0]
        assert resolved["alert_id"] == raised["alert_id"] and resolved["value"] is None
        assert subprocess.run([images.DOCKER, "inspect", made.container], capture_output=True).returncode != 0
        volume = subprocess.run(
            [images.DOCKER, "volume", "inspect", dbengines.volume_name(made.database_id)], capture_output=True
        )
        assert volume.returncode == 0
        # the port free again, a start makes the container again on that volume and it runs
        start = StartDatabase(request_id=rid(), spec=spec)
        assert (await rig.wait(await rig.send(start)))["state"] == "running"
        assert len(alerts("evt.alert.raised")) == 1


@pytest.mark.docker
@pytest.mark.slow
async def test_postgresql_and_mariadb_answer_their_health_checks_without_a_password_in_them(nats_server, database):
    """The checks of the other local engines pass on real engines; MariaDB's logs no refused login."""
    from berth_common.db.provision import provision

    urls = await provision(database, "test-secret", ("scheduler",))
    pg, maria = Made(), Made()
    try:
        async with scheduler_rig(nats_server.url, scheduler_settings(nats_server.url, urls["scheduler"])) as rig:
            for made, engine, version, image in ((pg, "postgresql", "15", images.postgres_image()),
                                                 (maria, "mariadb", "10.11", images.mariadb_image())):  # fmt: skip
                assert image
                password = "pw-" + rid()
                spec = spec_of(made, engine, version, password)
                answer = await rig.wait(await rig.send(RunDatabase(request_id=rid(), spec=spec)))
                assert answer["state"] == "running", answer
                await eventually(lambda m=made: health_of(m.container) == "healthy", 60)
                test = json.loads(images.docker("inspect", made.container, "--format", "{{json .Config.Healthcheck}}"))
                assert test["Test"][0] == "CMD" and password not in json.dumps(test)
            log = subprocess.run([images.DOCKER, "logs", maria.container], capture_output=True, text=True, timeout=30)
            assert "Access denied" not in log.stdout + log.stderr
    finally:
        pg.cleanup()
        maria.cleanup()
