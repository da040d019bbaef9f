"""A compose service with ``volumes_from`` on the real engine: the api's translation and snapshot, then the
scheduler's create bodies (exact mounts of one Docker volume), and containers of both services see the same
file; the one with ``other:ro`` reads it and cannot write there."""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import replace

import pytest

from berth_api.adapters.compose_parser import normalise
from berth_api.domain.compose import precheck, translate
from berth_api.usecases.compose_snapshot import compose_spec
from berth_common.catalogue import ApplicationSpec
from berth_scheduler.adapters.docker import DockerExecutor
from berth_scheduler.domain.containers import container_spec
from berth_scheduler.usecases.read_only_files import with_read_only_files
from tests.scheduler.test_app_files import _cleanup, _ran

TEXT = """
services:
  app:
    image: {image}
    volumes: [data:/srv/data]
  daemon:
    image: {image}
    volumes_from: [app]
  reader:
    image: {image}
    volumes_from: ['app:ro']
volumes:
  data: {{}}
"""


async def _spec(image: str) -> ApplicationSpec:
    text = TEXT.format(image=image)
    found = await normalise(text, {})
    result = translate(found.model, precheck(text))
    core = [
        {k: s[k] for k in ("kind", "name", "command", "health_command", "volumes") if k in s}
        for s in result["services"]
    ]
    spec = ApplicationSpec.model_validate(
        {"name": "vf", "source": {"kind": "image", "image": image}, "restart_policy": "no", "services": core}
    )
    return compose_spec(spec, {"compose": {"inline": text}, "compose_translated": result}, files=[])


@pytest.mark.docker
async def test_services_of_volumes_from_see_the_same_file(docker: DockerExecutor, busybox):
    app = f"test-vf-{uuid.uuid4().hex[:8]}"
    spec = await _spec(busybox)
    scripts = {
        "app": "echo same > /srv/data/f && echo written",
        "daemon": "cat /srv/data/f && echo more >> /srv/data/f && echo appended",
        "reader": "cat /srv/data/f; (echo x > /srv/data/g) 2>/dev/null && echo written || echo refused",
    }
    outputs = {}
    network = f"berth-app-{app}"  # the application's private network, made by the rollout otherwise
    subprocess.run(["docker", "network", "create", network], capture_output=True, check=True)
    try:
        for svc in spec.services:  # in the start order: daemon and reader after app
            cs = container_spec(app, uuid.uuid4().hex[:8], spec, svc, 1, busybox)
            mounts = [(m["Source"], m["Target"], m["ReadOnly"]) for m in cs.body["HostConfig"]["Mounts"]]
            assert mounts == [(f"berth-{app}-data", "/srv/data", svc.name == "reader")]
            cs = await with_read_only_files(docker, app, None, spec, svc, cs)
            cs = replace(cs, body={**cs.body, "Cmd": ["sh", "-c", scripts[svc.name]]})
            await docker.create(cs)
            outputs[svc.name] = (await _ran(docker, cs.name)).strip().split("\n")
        assert outputs == {
            "app": ["written"],
            "daemon": ["same", "appended"],
            "reader": ["same", "more", "refused"],
        }
    finally:
        _cleanup(app)
        subprocess.run(["docker", "volume", "rm", "-f", f"berth-{app}-data"], capture_output=True, check=False)
        subprocess.run(["docker", "network", "rm", network], capture_output=True, check=False)
