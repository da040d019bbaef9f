"""A minor upgrade to an image that cannot start at all (its entrypoint exits at once, as a bad build or a
missing library would): the upgrade fails naming the exit, the old image runs again on the same data, and
nothing is reported upgraded. The image that runs but never answers is in ``test_database_upgrade.py``."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.scheduler.test_database_upgrade import _running_with_rows, _upgrade, image_of, sql
from tests.scheduler.test_databases import Made, Rig, mapped_rig
from tests.support import images

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def crashing() -> Iterator[str]:
    name = f"berth-test/pg-crash-{uuid.uuid4().hex[:10]}:15.10"
    holder = f"berth-test-holder-{uuid.uuid4().hex[:10]}"
    images.docker("create", "--name", holder, "--label", images.TEST_LABEL, images.busybox_image(), "true")
    try:
        entry = '["sh", "-c", "echo FATAL: could not load library libpq-crash.so >&2; exit 1"]'
        images.docker("commit", "--change", f"ENTRYPOINT {entry}", "--change", "CMD []", holder, name)
    finally:
        images.remove_container(holder)
    yield name
    subprocess.run([images.DOCKER, "rmi", name], capture_output=True, check=False)


@pytest.fixture
async def rig(nats_server, database, crashing) -> AsyncIterator[Rig]:
    async with mapped_rig(nats_server, database, {"postgres:15.10": crashing}, 60) as made:
        yield made


@pytest.fixture
def made() -> Iterator[Made]:
    m = Made()
    yield m
    m.cleanup()


async def test_an_image_that_cannot_start_is_rolled_back_with_the_data(rig: Rig, made: Made):
    password = "pw-" + uuid.uuid4().hex
    spec = await _running_with_rows(rig, made, password)
    command = _upgrade(spec, "15.10")
    await rig.send(command)
    failed = await rig.wait(command.request_id, "evt.database.upgrade_failed", timeout=240)
    assert failed["rolled_back"] is True and failed["running_version"] == "15", failed
    assert "15.10 did not start, 15 runs again on the same data" in failed["reason"]
    assert "keeps exiting (exit code 1, restarted " in failed["reason"], failed["reason"]
    assert "FATAL: could not load library libpq-crash.so" in failed["reason"], failed["reason"]
    assert (await rig.wait(command.request_id))["state"] == "running"
    assert image_of(made) == (images.postgres_image(), True)
    assert sql(spec, password, "SELECT count(*), sum(x) FROM t") == "500|125250"
    assert not [e for e in rig.events if e["type"] == "evt.database.upgraded"]
    assert password not in failed["reason"]
