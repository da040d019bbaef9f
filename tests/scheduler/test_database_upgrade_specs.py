"""What a minor-version upgrade makes, as exact data, for every engine: the container of the new version is
the old one with only its image (and so its spec digest) changed: the same name, volume, mount, network,
environment, arguments, readiness and health check. Nothing else runs for it (MariaDB's own tool finds
nothing to upgrade within a line: tests/scheduler/test_database_upgrade_mariadb.py; MySQL upgrades its
tables itself when the server starts; PostgreSQL's, Redis's and MongoDB's minor versions read the data as it
is).
"""

from __future__ import annotations

import copy

import pytest

from berth_common import dbengines
from berth_common.catalogue import DatabaseSpec
from berth_scheduler.domain import databases as dom

DB, TEAM = "a" * 32, "b" * 32


def _spec(engine: str, version: str) -> DatabaseSpec:
    creds = dbengines.generate_credentials(engine, "orders")
    return DatabaseSpec(
        database_id=DB,
        team_id=TEAM,
        name="orders",
        engine=engine,
        version=version,
        image=dbengines.engine(engine).image(version),
        user=creds.user,
        password="pw-1",
        database=creds.database,
        config={"max_connections": "50"} if engine in ("mysql", "mariadb") else {},
    )


@pytest.mark.parametrize(
    ("engine", "current", "target", "old_image", "new_image"),
    [
        ("mariadb", "10.11", "10.11.10", "mariadb:10.11", "mariadb:10.11.10"),
        ("mysql", "8.0", "8.0.40", "mysql:8.0", "mysql:8.0.40"),
        ("redis", "7", "7.4.1", "redis:7", "redis:7.4.1"),
        ("postgresql", "15", "15.9", "postgres:15", "postgres:15.9"),
    ],
)
def test_the_new_version_s_container_is_the_old_one_with_another_image(engine, current, target, old_image, new_image):
    old = _spec(engine, current)
    assert dbengines.check_upgrade(engine, current, target) == new_image == dbengines.engine(engine).image(target)
    new = old.model_copy(update={"version": target, "image": new_image})
    before, after = dom.container(old, old_image), dom.container(new, new_image)
    assert before.body["Image"] == old_image and after.body["Image"] == new_image
    assert after.digest != before.digest
    assert after.body["Labels"][dom.SPEC_LABEL] == after.digest
    expected = copy.deepcopy(before.body)
    expected["Image"] = new_image
    expected["Labels"][dom.SPEC_LABEL] = after.digest
    assert after.body == expected
    assert (after.name, after.network, after.volume_body) == (before.name, before.network, before.volume_body)
    mounts = after.body["HostConfig"]["Mounts"]
    assert {"Type": "volume", "Source": dbengines.volume_name(DB), "Target": dbengines.engine(engine).data_dir} in [
        {k: m[k] for k in ("Type", "Source", "Target")} for m in mounts
    ]
    ready = dbengines.readiness(engine, new.credentials())
    assert ready == dbengines.readiness(engine, old.credentials())
