"""A PostgreSQL minor-version upgrade between two real releases of one line, on a real scheduler and Docker.

The local PostgreSQL image is Debian bookworm's release (15.18 when this was written); the second image is
the same with the server, client and libpq of the machine's newest Debian source (bookworm-security: 15.20),
made by ``tests.support.images.postgres_minor_image`` (skipped, saying why, when the sources offer nothing
newer). The test's image map sends Berth's pinned ``postgres:15.10`` to it: the container is made again with
the newer server on the same volume, the rows are kept, and ``SHOW server_version`` names the newer release
(a minor release of PostgreSQL reads the data directory of any other of its line as it is).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from berth_common import dbengines
from berth_common.catalogue import RunDatabase, UpgradeDatabase
from tests.scheduler.test_databases import Made, Rig, app, mapped_rig, rid, spec_of, url
from tests.support import images

pytestmark = [pytest.mark.docker, pytest.mark.slow]
PINNED = "15.10"  # a pinned minor version Berth offers on the 15 line


@pytest.fixture(scope="module")
def minor() -> tuple[str, str, str]:
    try:
        return images.postgres_minor_image()
    except images.NoNewerVersion as exc:
        pytest.skip(str(exc))


@pytest.fixture
async def rig(nats_server: Any, database: Any, minor: tuple[str, str, str]) -> AsyncIterator[Rig]:
    async with mapped_rig(nats_server, database, {f"postgres:{PINNED}": minor[0]}, 120) as made:
        yield made


@pytest.fixture
def made() -> Iterator[Made]:
    m = Made()
    yield m
    m.cleanup()


def sql(spec: Any, password: str, query: str) -> str:
    """``query`` through psql in a container on the team's network (the URL in its environment, not its argv)."""
    got = app(
        images.postgres_image(),
        dbengines.team_network(spec.team_id),
        {"DATABASE_URL": url(spec, password), "SQL": query},
        "sh", "-c", 'psql "$DATABASE_URL" -tAc "$SQL"',
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    return got.stdout.strip()


def image_of(made: Made) -> tuple[str, bool]:
    state = json.loads(images.docker("inspect", made.container))[0]
    return state["Config"]["Image"], state["State"]["Running"]


async def test_a_postgres_minor_upgrade_keeps_the_rows_and_the_server_is_the_newer_release(
    rig: Rig, made: Made, minor: tuple[str, str, str], capfd: pytest.CaptureFixture[str]
) -> None:
    tag, old, new = minor
    password = "pw-" + uuid.uuid4().hex
    spec = spec_of(made, "postgresql", "15", password)
    assert (await rig.wait(await rig.send(RunDatabase(request_id=rid(), spec=spec))))["state"] == "running"
    sql(spec, password, "CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 500)")
    assert image_of(made) == (images.postgres_image(), True)
    assert sql(spec, password, "SHOW server_version").startswith(old + " ")  # "15.18 (Debian 15.18-0+deb12u1)"

    target = spec.model_copy(update={"version": PINNED, "image": dbengines.engine("postgresql").image(PINNED)})
    command = UpgradeDatabase(request_id=rid(), spec=target, from_version=spec.version, from_image=spec.image)
    await rig.send(command)
    done = await rig.wait(command.request_id, "evt.database.upgraded", timeout=300)
    assert done["from_version"] == "15" and done["to_version"] == PINNED and done["image"] == tag
    assert (await rig.wait(command.request_id))["state"] == "running"
    assert image_of(made) == (tag, True)  # made again with the newer server
    assert sql(spec, password, "SHOW server_version").startswith(new + " ")
    assert sql(spec, password, "SELECT count(*), sum(x) FROM t") == "500|125250"  # on the same volume
    sql(spec, password, "INSERT INTO t VALUES (501)")  # and it writes
    assert sql(spec, password, "SELECT count(*) FROM t") == "501"

    logs = subprocess.run([images.DOCKER, "logs", made.container], capture_output=True, text=True, check=False)
    out, err = capfd.readouterr()
    assert "database system is ready to accept connections" in logs.stdout + logs.stderr
    assert password not in out + err + logs.stdout + logs.stderr
    assert all(password.encode() not in raw for raw in rig.raw)
