"""Minor-version upgrades of a database on a real scheduler and Docker, and its logs over the bus.

Only one PostgreSQL image is made here, so the test's image map sends ``postgres:15.9`` to a second tag of
it (the container really is made again with another image, on the same volume) and ``postgres:15.8`` to a
broken image that runs but never answers (``sleep``): that upgrade is rolled back to the old image, which
runs again with the same rows. An upgrade between two real PostgreSQL releases (Debian's and the newer one
of its security source) is ``test_database_upgrade_postgres``.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from berth_common import dbengines
from berth_common.catalogue import ContainerLogsQuery, ContainerLogsReply, RunDatabase, UpgradeDatabase
from tests.scheduler.test_databases import Made, Rig, app, mapped_rig, rid, spec_of, url
from tests.support import images

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def tags() -> Iterator[dict[str, str]]:
    """Two images made for this module: the local PostgreSQL under a second tag, and a broken one."""
    base = images.postgres_image()
    name = f"berth-test/pg-{uuid.uuid4().hex[:10]}"
    minor, broken, holder = f"{name}:15.9", f"{name}:broken", f"berth-test-holder-{uuid.uuid4().hex[:10]}"
    images.docker("tag", base, minor)
    images.docker("create", "--name", holder, "--label", images.TEST_LABEL, images.busybox_image(), "true")
    try:
        images.docker("commit", "--change", 'ENTRYPOINT ["sleep", "3600"]', "--change", "CMD []", holder, broken)
    finally:
        images.remove_container(holder)
    yield {"postgres:15.9": minor, "postgres:15.8": broken}
    subprocess.run([images.DOCKER, "rmi", minor, broken], capture_output=True, check=False)


@pytest.fixture
async def rig(nats_server, database, tags) -> AsyncIterator[Rig]:
    async with mapped_rig(nats_server, database, tags, 20) as made:
        yield made


@pytest.fixture
def made() -> Iterator[Made]:
    m = Made()
    yield m
    m.cleanup()


PSQL = ("sh", "-c", 'psql "$DATABASE_URL" -tAc "$SQL"')


def sql(spec: Any, password: str, query: str) -> str:
    got = app(
        images.postgres_image(),
        dbengines.team_network(spec.team_id),
        {"DATABASE_URL": url(spec, password), "SQL": query},
        *PSQL,
    )
    assert got.returncode == 0, got.stderr
    return got.stdout.strip()


def image_of(made: Made) -> tuple[str, bool]:
    state = json.loads(images.docker("inspect", made.container))[0]
    return state["Config"]["Image"], state["State"]["Running"]


async def _running_with_rows(rig: Rig, made: Made, password: str) -> Any:
    spec = spec_of(made, "postgresql", "15", password)
    assert (await rig.wait(await rig.send(RunDatabase(request_id=rid(), spec=spec))))["state"] == "running"
    sql(spec, password, "CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 500)")
    assert sql(spec, password, "SELECT count(*), sum(x) FROM t") == "500|125250"
    return spec


def _upgrade(spec: Any, version: str) -> UpgradeDatabase:
    new = spec.model_copy(update={"version": version, "image": dbengines.engine("postgresql").image(version)})
    return UpgradeDatabase(request_id=rid(), spec=new, from_version=spec.version, from_image=spec.image)


async def test_an_upgrade_within_the_line_keeps_the_rows_and_the_logs_are_read(rig: Rig, made: Made, tags, capfd):
    password = "pw-" + uuid.uuid4().hex
    spec = await _running_with_rows(rig, made, password)
    assert image_of(made) == (images.postgres_image(), True)

    command = _upgrade(spec, "15.9")
    await rig.send(command)
    done = await rig.wait(command.request_id, "evt.database.upgraded")
    assert done["from_version"] == "15" and done["to_version"] == "15.9" and done["image"] == tags["postgres:15.9"]
    assert (await rig.wait(command.request_id))["state"] == "running"
    assert image_of(made) == (tags["postgres:15.9"], True)  # made again with the new image
    assert sql(spec, password, "SELECT count(*), sum(x) FROM t") == "500|125250"  # on the same volume

    query = ContainerLogsQuery(team_id=made.team_id, container=made.container, tail=50)
    reply = await rig.api.request("scheduler", "container_logs", query, ContainerLogsReply, timeout=30)
    assert reply.found and 0 < len(reply.lines) <= 50
    assert all(line.time is not None for line in reply.lines)
    assert {line.stream for line in reply.lines} <= {"stdout", "stderr"}
    assert any("ready to accept connections" in line.line for line in reply.lines)
    assert all(password not in line.line for line in reply.lines)
    other = ContainerLogsQuery(team_id=uuid.uuid4().hex, container=made.container)  # another team's: not found
    assert (await rig.api.request("scheduler", "container_logs", other, ContainerLogsReply)).found is False

    out, err = capfd.readouterr()
    assert password not in out + err and all(password.encode() not in raw for raw in rig.raw)


async def test_a_new_version_that_never_gets_ready_is_rolled_back_with_the_data(rig: Rig, made: Made, tags):
    password = "pw-" + uuid.uuid4().hex
    spec = await _running_with_rows(rig, made, password)

    command = _upgrade(spec, "15.8")  # the broken image: it runs, but the engine never answers
    await rig.send(command)
    failed = await rig.wait(command.request_id, "evt.database.upgrade_failed", timeout=240)
    assert failed["rolled_back"] is True and failed["running_version"] == "15", failed
    assert "15.8 did not start, 15 runs again on the same data" in failed["reason"]
    assert "was not ready within 20 s" in failed["reason"]
    assert (await rig.wait(command.request_id))["state"] == "running"
    assert image_of(made) == (images.postgres_image(), True)
    assert sql(spec, password, "SELECT count(*), sum(x) FROM t") == "500|125250"
    assert not [e for e in rig.events if e["type"] == "evt.database.upgraded"]
