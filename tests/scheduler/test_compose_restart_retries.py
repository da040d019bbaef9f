"""A compose service's restart retries (compose's ``deploy.restart_policy.max_attempts`` or
``restart: on-failure:<n>``) as Docker's ``MaximumRetryCount`` of ``on-failure`` in the create body (exact),
Berth's 5 without them, and the engine keeping them as asked."""

from __future__ import annotations

import subprocess
import uuid

import pytest
from pydantic import ValidationError

from berth_common.catalogue import ApplicationSpec
from berth_scheduler.adapters.docker import DockerExecutor
from berth_scheduler.domain.containers import container_spec

APP = "app-1"
DEP = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def _spec(image: str = "x:1", restart_policy: str = "always", **job: object) -> ApplicationSpec:
    return ApplicationSpec.model_validate(
        {
            "name": "erp",
            "source": {"kind": "image", "image": image},
            "restart_policy": restart_policy,
            "services": [{"kind": "worker", "name": "job", "command": ["true"], **job}],
        }
    )


@pytest.mark.parametrize(
    ("policy", "job", "expected"),
    [
        ("always", {"restart": "on-failure", "restart_retries": 3}, {"Name": "on-failure", "MaximumRetryCount": 3}),
        ("always", {"restart": "on-failure", "restart_retries": 0}, {"Name": "on-failure", "MaximumRetryCount": 0}),
        ("on-failure", {"restart_retries": 7}, {"Name": "on-failure", "MaximumRetryCount": 7}),
        ("on-failure", {}, {"Name": "on-failure", "MaximumRetryCount": 5}),
        ("always", {"restart": "no"}, {"Name": "no"}),
    ],
)
def test_the_create_body_restarts_as_the_service_asks(policy: str, job: dict, expected: dict) -> None:
    spec = _spec(restart_policy=policy, **job)
    cs = container_spec(APP, DEP, spec, spec.services[0], 1, "x:1")
    assert cs.body["HostConfig"]["RestartPolicy"] == expected


def test_retries_are_a_whole_number_docker_takes() -> None:
    with pytest.raises(ValidationError):
        _spec(restart="on-failure", restart_retries=-1)
    with pytest.raises(ValidationError):
        _spec(restart="on-failure", restart_retries=2**31)
    dumped = _spec().model_dump(mode="json")["services"][0]
    assert "restart_retries" not in dumped  # unset: left out, a snapshot dumps as before


@pytest.mark.docker
async def test_the_engine_keeps_the_retries(docker: DockerExecutor, busybox, app_id) -> None:
    spec = _spec(busybox, restart="on-failure", restart_retries=2)
    cs = container_spec(app_id, uuid.uuid4().hex[:8], spec, spec.services[0], 1, busybox)
    try:
        await docker.create(cs)
        info = await docker.inspect(cs.name)
        assert info is not None
        assert info["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    finally:
        subprocess.run(["docker", "rm", "-f", cs.name], capture_output=True, check=False)
