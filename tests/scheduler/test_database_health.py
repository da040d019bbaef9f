"""The Docker health check of a database's container, per engine, as exact data.

Each check is exec form (``CMD`` and an argv, never ``CMD-SHELL``), asks the engine whether it answers and
carries no credential: the container's configuration, which ``docker inspect`` shows, gains no secret. The
timing comes from the scheduler's settings, and a change of it makes the container again (its digest).
"""

from __future__ import annotations

import pytest

from berth_common import dbengines
from berth_common.catalogue import DatabaseSpec
from berth_scheduler.domain import database_health as health
from berth_scheduler.domain import databases as dom
from berth_scheduler.settings import SchedulerSettings

S = 1_000_000_000
DEFAULT = {"Interval": 10 * S, "Timeout": 5 * S, "Retries": 3, "StartPeriod": 60 * S}
PASSWORD = "pw-that-must-not-show"


def spec(engine: str, version: str) -> DatabaseSpec:
    user, database = ("", "0") if engine == "redis" else ("orders", "orders_db")
    return DatabaseSpec(
        database_id="b" * 32,
        team_id="a" * 32,
        name="orders",
        engine=engine,
        version=version,
        image=dbengines.engine(engine).image(version),
        user=user,
        password=PASSWORD,
        database=database,
    )


@pytest.mark.parametrize(
    ("engine", "version", "test"),
    [
        (
            "postgresql",
            "15",
            ["CMD", "pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432", "-U", "orders", "-d", "orders_db"],
        ),
        ("mysql", "8.4", ["CMD", "mysqladmin", "ping", "--silent"]),
        ("mariadb", "10.11", ["CMD", "mariadb-admin", "ping", "--silent"]),
        ("redis", "7", ["CMD", "redis-cli", "-h", "127.0.0.1", "-p", "6379", "ping"]),
        (
            "mongodb",
            "7.0",
            ["CMD", "mongosh", "--quiet", "--norc", "--port", "27017", "--eval", "db.adminCommand('ping').ok"],
        ),
    ],
)
def test_each_engine_s_container_has_its_exec_form_health_check_with_no_credential(engine, version, test):
    made = dom.container(spec(engine, version), f"berth/{engine}:test")
    assert made.body["Healthcheck"] == {"Test": test, **DEFAULT}
    assert PASSWORD not in str(made.body["Healthcheck"])
    # the password stays where the official image's contract puts it, never in the check
    assert (PASSWORD in str(made.body.get("Env"))) or (PASSWORD in str(made.body.get("Cmd")))


def test_the_timing_comes_from_the_settings_and_a_change_makes_the_container_again():
    settings = SchedulerSettings(
        nats_url="nats://127.0.0.1:1",
        database_url="postgresql://x@127.0.0.1/x",
        secret_key="k",
        database_health_interval_s=2,
        database_health_timeout_s=1,
        database_health_retries=4,
        database_health_start_period_s=0,
    )
    timing = health.HealthTiming(
        settings.database_health_interval_s,
        settings.database_health_timeout_s,
        settings.database_health_retries,
        settings.database_health_start_period_s,
    )
    pg = spec("postgresql", "15")
    short = dom.container(pg, "postgres:15", health=timing)
    assert short.body["Healthcheck"] | {"Test": None} == {
        "Test": None,
        "Interval": 2 * S,
        "Timeout": 1 * S,
        "Retries": 4,
        "StartPeriod": 0,
    }
    assert short.digest != dom.container(pg, "postgres:15").digest
    assert (
        dom.container(pg, "postgres:15", health=health.HealthTiming()).digest == dom.container(pg, "postgres:15").digest
    )


def test_settings_refuse_a_health_check_that_could_not_work():
    from pydantic import ValidationError

    base = {"nats_url": "nats://127.0.0.1:1", "database_url": "postgresql://x@127.0.0.1/x", "secret_key": "k"}
    for bad in ({"database_health_interval_s": 0}, {"database_health_retries": 0}, {"database_health_timeout_s": 0}):
        with pytest.raises(ValidationError):
            SchedulerSettings(**base, **bad)


def test_a_container_docker_did_not_start_is_told_from_a_stopped_one():
    assert dom.never_started({"State": {"Status": "created", "Error": ""}})
    assert dom.never_started({"State": {"Status": "exited", "Error": "port is already allocated"}})
    assert dom.never_started({"State": {"Status": "dead"}})
    assert not dom.never_started({"State": {"Status": "exited", "Error": "", "ExitCode": 0}})
    assert not dom.never_started({"State": {"Status": "running", "Running": True}})
