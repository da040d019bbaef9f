"""A MariaDB minor-version upgrade between two real releases of one line, on a real scheduler and Docker.

The local MariaDB image is Debian bookworm's release (10.11.18 when this was written); the second image is
the same with the MariaDB packages of the machine's newest Debian source (bookworm-security: 10.11.19),
made by ``tests.support.images.mariadb_minor_image`` (skipped, saying why, when the sources offer nothing
newer). The test's image map sends Berth's pinned ``mariadb:10.11.10`` to it: the container is made again
with the newer server on the same volume, the rows are kept, and MariaDB's own ``mariadb-upgrade`` finds
nothing to do within the line (measured: "There is no need to run mysql_upgrade again for 10.11.19-MariaDB,
because they're both 10.11"), which is why a minor upgrade runs no engine step after the new version is ready.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from berth_common import dbengines
from berth_common.catalogue import RunDatabase, UpgradeDatabase
from tests.scheduler.test_databases import Made, Rig, mapped_rig, rid, spec_of
from tests.support import images

pytestmark = [pytest.mark.docker, pytest.mark.slow]
PINNED = "10.11.10"  # a pinned minor version Berth offers on the 10.11 line


@pytest.fixture(scope="module")
def minor() -> tuple[str, str, str]:
    try:
        return images.mariadb_minor_image()
    except images.NoNewerVersion as exc:
        pytest.skip(str(exc))


@pytest.fixture
async def rig(nats_server: Any, database: Any, minor: tuple[str, str, str]) -> AsyncIterator[Rig]:
    async with mapped_rig(nats_server, database, {f"mariadb:{PINNED}": minor[0]}, 120) as made:
        yield made


@pytest.fixture
def made() -> Iterator[Made]:
    m = Made()
    yield m
    m.cleanup()


def in_container(made: Made, password: str, *argv: str) -> str:
    """``argv`` run in the database's container, the password in the exec's environment (not in an argv)."""
    cmd = [images.DOCKER, "exec", "-e", "MYSQL_PWD", made.container, *argv]
    env = {**os.environ, "MYSQL_PWD": password}
    got = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert got.returncode == 0, got.stderr
    return got.stdout.strip()


def sql(made: Made, spec: Any, password: str, query: str) -> str:
    return in_container(
        made, password, "mariadb", "-u", spec.user, "-h", "127.0.0.1", "-NB", "-e", query, spec.database
    )


def image_of(made: Made) -> tuple[str, bool]:
    state = json.loads(images.docker("inspect", made.container))[0]
    return state["Config"]["Image"], state["State"]["Running"]


async def test_a_mariadb_minor_upgrade_keeps_the_rows_and_leaves_nothing_to_upgrade(
    rig: Rig, made: Made, minor: tuple[str, str, str], capfd: pytest.CaptureFixture[str]
) -> None:
    tag, old, new = minor
    password = "pw-" + uuid.uuid4().hex
    spec = spec_of(made, "mariadb", "10.11", password)
    assert (await rig.wait(await rig.send(RunDatabase(request_id=rid(), spec=spec))))["state"] == "running"
    sql(made, spec, password, "CREATE TABLE t (x int); INSERT INTO t SELECT seq FROM seq_1_to_500")
    assert sql(made, spec, password, "SELECT VERSION()").startswith(old + "-MariaDB")

    target = spec.model_copy(update={"version": PINNED, "image": dbengines.engine("mariadb").image(PINNED)})
    command = UpgradeDatabase(request_id=rid(), spec=target, from_version=spec.version, from_image=spec.image)
    await rig.send(command)
    done = await rig.wait(command.request_id, "evt.database.upgraded", timeout=300)
    assert done["from_version"] == "10.11" and done["to_version"] == PINNED and done["image"] == tag
    assert (await rig.wait(command.request_id))["state"] == "running"
    assert image_of(made) == (tag, True)  # made again with the newer server
    assert sql(made, spec, password, "SELECT VERSION()").startswith(new + "-MariaDB")
    assert sql(made, spec, password, "SELECT count(*), sum(x) FROM t") == "500\t125250"  # on the same volume
    # nothing is left to upgrade: MariaDB's own tool, run against the new server, finds the system tables
    # of the old minor version current for the line (so Berth runs no upgrade step of its own)
    said = in_container(made, password, "mariadb-upgrade", "-uroot", "-h", "localhost")
    assert f"There is no need to run mysql_upgrade again for {new}-MariaDB" in said, said

    out, err = capfd.readouterr()
    assert password not in out + err and all(password.encode() not in raw for raw in rig.raw)
