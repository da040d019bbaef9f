"""Images pulled by digest from the team's push registry are pruned like built ones: Debian's
docker-registry (htpasswd) on 127.0.0.1, the scheduler on the local engine, each build answered as the
builder answers a build it pushed (``pushed_ref``). After four deployments with two kept, the first two
pushed digests are gone from the engine, the last two stay, and an image of the user's own in the same
registry is never touched."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import aiodocker
import pytest

from berth_common.bus import Bus, subscriptions_confirmed
from berth_common.catalogue import BuildSucceeded
from tests.scheduler.conftest import remove_labelled
from tests.scheduler.platform import web_app
from tests.support import registry as reg

pytestmark = [pytest.mark.slow, pytest.mark.docker]
USER, PASSWORD = "ci", "pw-prune-never-shown"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[reg.Registry]:
    if (why := reg.available()) is not None:
        pytest.skip(why)
    r = reg.Registry(tmp_path_factory.mktemp("prune-registry"), users={USER: PASSWORD}).start()
    yield r
    r.stop()


def _pulled(repository: str) -> set[str]:
    out = subprocess.run(
        ["docker", "images", "--digests", "--format", "{{.Repository}}@{{.Digest}}", repository],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return {line for line in out.stdout.split() if not line.endswith("@<none>")}


async def _pushed(registry: reg.Registry, source: str, repository: str, tag: str) -> str:
    await reg.push(source, registry, repository, tag, mark=tag)
    return f"{registry.host}/{repository}@{registry.manifest_digest(repository, tag)}"


async def test_old_pulled_digests_go_and_the_kept_ones_stay(platform, registry, busybox, app_id, unique):
    platform.scheduler.settings.keep_images = 2
    name = f"pr{unique}"
    repository = f"acme/{name}"
    pushed = [await _pushed(registry, busybox, repository, f"t{n}") for n in range(1, 5)]
    users = await _pushed(registry, busybox, f"acme/own{unique}", "v1")  # the user's own image, pulled by hand
    docker = aiodocker.Docker()
    try:
        await docker.images.pull(users, auth={"username": USER, "password": PASSWORD, "serveraddress": registry.host})
    finally:
        await docker.close()
    assert _pulled(users.split("@", 1)[0]) == {users}
    starts: dict[str, str] = {}

    async def on_start(msg: Any) -> None:
        data = json.loads(msg.data)["data"]
        starts[data["deployment_id"]] = data["build_id"]

    sub = await platform.nc.subscribe("cmd.build.start", cb=on_start)
    await subscriptions_confirmed(platform.nc)
    builder = Bus("builder", platform.nats_url)
    await builder.connect()
    host = f"web-{name}.localhost"
    auth = {"registry": registry.host, "username": USER, "password": PASSWORD}
    source = {"kind": "git", "repository": "https://git.example/acme/shop.git", "ref": "main"}
    spec = {
        **web_app("unused", "x", host),
        "name": name,
        "source": {**source, "push": {"auth": auth, "namespace": "acme"}},
    }
    try:
        for n, ref in enumerate(pushed, start=1):
            dep = await platform.deploy(app_id, spec, drain_grace_s=0)
            deadline = time.monotonic() + 30
            while dep not in starts and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert dep in starts, platform.steps(dep)
            image = f"berth/{name}:t{n}"
            await builder.publish(BuildSucceeded(build_id=starts[dep], deployment_id=dep, image=image, pushed_ref=ref))
            done = await platform.wait(dep, timeout=120)
            assert done["type"] == "evt.deployment.succeeded", (done, platform.steps(dep))
            assert done["data"]["image_digest"] == ref
        repo = f"{registry.host}/{repository}"
        deadline = time.monotonic() + 15  # pruning runs right after the success event
        while _pulled(repo) != set(pushed[2:]) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert _pulled(repo) == set(pushed[2:])
        assert _pulled(users.split("@", 1)[0]) == {users}
    finally:
        await sub.unsubscribe()
        await builder.close()
        remove_labelled(f"berth.app={app_id}")  # the last replica still runs its image
        subprocess.run(["docker", "rmi", *pushed, users], capture_output=True, check=False, timeout=120)
