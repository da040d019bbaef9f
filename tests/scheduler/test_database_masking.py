"""What an engine says about a database is masked with the shared rule (``berth_common.redaction.mask``)
before it leaves the scheduler: a real Docker error that quotes the password reaches the upgrade's failure
event as ``**********``, and no event or log line carries the password.

The test's image map sends the pinned ``postgres:15.10`` to an image name that holds the password (Docker
has no such image and no registry answers): the image step fails, and Docker's error names the image.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from berth_common import dbengines
from berth_common.catalogue import RunDatabase, UpgradeDatabase
from berth_common.redaction import MASK
from berth_scheduler.settings import SchedulerSettings
from tests.scheduler.test_databases import Made, Rig, rid, scheduler_rig, spec_of
from tests.support import images

pytestmark = [pytest.mark.docker]
PASSWORD = "pw" + uuid.uuid4().hex  # lower-case letters and digits: also a valid image name


@pytest.fixture
async def rig(nats_server: Any, database: Any) -> AsyncIterator[Rig]:
    from berth_common.db.provision import provision

    images.postgres_image()
    urls = await provision(database, "test-secret", ("scheduler",))
    settings = SchedulerSettings(
        nats_url=nats_server.url,
        database_url=urls["scheduler"],
        secret_key="test-secret",
        http_port=0,
        image_map=json.dumps({"postgres:15.10": f"berth-test/absent-{PASSWORD}:1"}),
        database_ready_timeout_s=60,
        pull_timeout_s=30,
    )
    async with scheduler_rig(nats_server.url, settings) as made:
        yield made


@pytest.fixture
def made() -> Iterator[Made]:
    m = Made()
    yield m
    m.cleanup()


async def test_a_docker_error_quoting_the_password_reaches_the_event_masked(
    rig: Rig, made: Made, capfd: pytest.CaptureFixture[str]
) -> None:
    spec = spec_of(made, "postgresql", "15", PASSWORD)
    assert (await rig.wait(await rig.send(RunDatabase(request_id=rid(), spec=spec))))["state"] == "running"

    target = spec.model_copy(update={"version": "15.10", "image": dbengines.engine("postgresql").image("15.10")})
    command = UpgradeDatabase(request_id=rid(), spec=target, from_version=spec.version, from_image=spec.image)
    await rig.send(command)
    failed = await rig.wait(command.request_id, "evt.database.upgrade_failed", timeout=120)
    reason = failed["reason"]
    assert reason.startswith("the image of 15.10 is not available: "), reason
    assert f"berth-test/absent-{MASK}:1" in reason and PASSWORD not in reason, reason  # Docker named it
    assert failed["rolled_back"] is False and failed["running_version"] == "15"

    out, err = capfd.readouterr()
    assert "database upgrade failed" in out + err  # the log line with the reason is there, masked
    assert PASSWORD not in out + err and all(PASSWORD.encode() not in raw for raw in rig.raw)
