"""A scale on the control plane's engine after the live deployment's image left it, in-process (the scheduler,
the real bus and Postgres, proxy-sync, Traefik, containers, Debian's docker-registry on 127.0.0.1): the tag
the application names has moved on to another image in the registry and is gone from the engine; the scale
pulls the digest the deployment ran, tags it as before, and the new replica runs the same image as the
first one. A registry that no longer answers fails the scale naming the image, instead of retrying it."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.scheduler import apps
from tests.scheduler.conftest import remove_labelled
from tests.scheduler.platform import web_app
from tests.scheduler.test_scale import scale, wait_scaled
from tests.support import registry as reg

pytestmark = [pytest.mark.slow, pytest.mark.docker]


@pytest.fixture
def registry(tmp_root, unique, busybox):
    if (why := reg.available()) is not None:
        pytest.skip(why)
    r = reg.Registry(tmp_root / f"scale-registry-{unique}").start()
    yield r
    r.stop()


def _image_ids(app_id: str) -> list[str]:
    ids = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=berth.app={app_id}"], capture_output=True, text=True, check=True
    ).stdout.split()
    found = json.loads(subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True, check=True).stdout)
    return sorted(c["Image"] for c in found)


def _names(image: str) -> list[str]:
    """``image`` and its digests: every name it has on the engine."""
    out = subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True, check=True).stdout
    return [image, *json.loads(out)[0].get("RepoDigests", [])]


def _forget(names: list[str]) -> None:
    """Take an image off the engine by every name: a running container keeps it, nothing else finds it."""
    subprocess.run(["docker", "rmi", "-f", *names], capture_output=True, check=True)
    assert subprocess.run(["docker", "image", "inspect", *names], capture_output=True).returncode != 0


async def test_a_scale_pulls_the_digest_the_deployment_ran_when_the_engine_lost_the_image(
    platform, busybox, app_id, unique, registry
):
    repo = f"berth-test/scale-{unique}"
    image = await reg.push(busybox, registry, repo, "v1")
    try:
        spec = {**web_app(image, "pinned", f"sc-{unique}.localhost"), "stop_timeout_s": 2}
        dep = await platform.deploy(app_id, spec, drain_grace_s=0.2)
        done = await platform.wait(dep, timeout=90)
        assert done["type"] == "evt.deployment.succeeded", platform.steps(dep)
        (ran,) = _image_ids(app_id)
        names = _names(image)
        await reg.push(busybox, registry, repo, "v1", mark="-moved")  # the tag names another image now
        _forget(names)

        rid = await scale(platform, app_id, {"web": 2})
        result = await wait_scaled(platform, app_id, rid, timeout=90)
        assert (result["outcome"], result["to_replicas"]) == ("scaled", 2), result
        assert _image_ids(app_id) == [ran, ran]
        tagged = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", image], capture_output=True)
        assert tagged.stdout.decode().strip() == ran
        lines = [e["data"]["line"] for e in platform.logs if e["data"]["deployment_id"] == dep]
        assert any(line.startswith("[scale] the application's image: pulled ") for line in lines), lines

        # the image gone again and the registry down: the scale fails, naming the image, and 2 keep running
        _forget(names)
        registry.stop()
        rid = await scale(platform, app_id, {"web": 3})
        result = await wait_scaled(platform, app_id, rid, timeout=90)
        assert (result["outcome"], result["to_replicas"]) == ("failed", 2), result
        assert result["failure"].startswith(f"the application's image: image '{image.rsplit(':', 1)[0]}@"), result
        assert len(_image_ids(app_id)) == 2
    finally:
        remove_labelled(f"berth.app={app_id}")
        reg.remove_local(image)


async def test_a_scale_whose_image_the_engine_lost_fails_naming_it_instead_of_retrying(
    platform, busybox, app_id, unique
):
    """A compose service's own image in Berth's namespace (never pulled) gone from the engine: the new
    replica cannot be made, so the scale fails saying so (as a deployment would), and the next one runs."""
    own = f"berth/sc{unique}-side:v1"
    subprocess.run(["docker", "tag", busybox, own], capture_output=True, check=True)
    try:
        spec = {
            "name": f"sc{unique}",
            "source": {"kind": "image", "image": busybox},
            "services": [{"kind": "worker", "name": "side", "image": {"image": own}, "command": apps.worker()}],
            "private_network": True,
            "stop_timeout_s": 1,
        }
        dep = await platform.deploy(app_id, spec, drain_grace_s=0.2)
        done = await platform.wait(dep, timeout=90)
        assert done["type"] == "evt.deployment.succeeded", platform.steps(dep)
        subprocess.run(["docker", "rmi", "-f", own], capture_output=True, check=True)

        rid = await scale(platform, app_id, {"side": 2})
        result = await wait_scaled(platform, app_id, rid, timeout=60)
        assert (result["outcome"], result["to_replicas"]) == ("failed", 1), result
        assert result["failure"] == (
            f"a new replica could not start: image {own!r} is not on this server (build it or load it first)"
        )
        assert len(_image_ids(app_id)) == 1
        subprocess.run(["docker", "tag", busybox, own], capture_output=True, check=True)
        rid = await scale(platform, app_id, {"side": 2})  # the application is not held by the failed one
        result = await wait_scaled(platform, app_id, rid, timeout=60)
        assert (result["outcome"], result["to_replicas"]) == ("scaled", 2), result
    finally:
        remove_labelled(f"berth.app={app_id}")
        subprocess.run(["docker", "rmi", "-f", own], capture_output=True, check=False)
