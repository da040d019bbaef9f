"""An image the image map sends to a private mirror is pulled with the team's credentials for the mirror's
host (the api puts them in the snapshot by ``berth_common.registries.pull_host``): Debian's docker-registry
with htpasswd on 127.0.0.1, the scheduler's real pull path."""

from __future__ import annotations

import asyncio

import pytest

from tests.scheduler.conftest import remove_labelled
from tests.scheduler.platform import web_app
from tests.support import registry as reg

pytestmark = [pytest.mark.slow, pytest.mark.docker]
USER, PASSWORD = "mirror", "pw-mirror-never-shown"


@pytest.fixture
def private_mirror(tmp_root, unique, busybox):
    if (why := reg.available()) is not None:
        pytest.skip(why)
    r = reg.Registry(tmp_root / f"mirror-auth-{unique}", users={USER: PASSWORD}).start()
    yield r
    r.stop()


@pytest.fixture
async def mirrored(private_mirror, busybox, unique, monkeypatch):
    """``nginx:1.27`` mapped (BERTH_IMAGE_MAP, read by the scheduler the platform starts) to the private mirror."""
    image = await reg.push(busybox, private_mirror, f"mirror/nginx-{unique}", "1.27")
    monkeypatch.setenv("BERTH_IMAGE_MAP", f"nginx:1.27={image}")
    yield image
    reg.remove_local(image)


async def test_a_mapped_image_is_pulled_from_a_private_mirror_with_its_credentials(
    mirrored, platform, app_id, unique, private_mirror
):
    host = f"mirror-auth-{unique}.localhost"
    app = web_app("nginx:1.27", "from the private mirror", host)
    hub = {"registry": "docker.io", "username": "hub", "password": "hub-pw"}  # not the host pulled from
    d1 = await platform.deploy(app_id, {**app, "source": {"kind": "image", "image": "nginx:1.27", "auth": hub}})
    failed = await platform.wait(d1, timeout=60)
    assert failed["type"] == "evt.deployment.failed", failed
    assert f"{private_mirror.host} refused an anonymous pull" in failed["data"]["reason"]

    auth = {"registry": private_mirror.host, "username": USER, "password": PASSWORD}
    d2 = await platform.deploy(app_id, {**app, "source": {"kind": "image", "image": "nginx:1.27", "auth": auth}})
    done = await platform.wait(d2, timeout=90)
    assert done["type"] == "evt.deployment.succeeded", done
    assert done["data"]["image"] == mirrored
    assert await asyncio.to_thread(platform.traefik.get, host) == (200, b"from the private mirror\n")
    lines = [e["data"]["line"] for e in platform.logs if e["data"]["deployment_id"] == d2]
    assert f"[starting] pull: {mirrored} from {private_mirror.host} (pull policy always, as {USER})" in lines
    for e in [*platform.events, *platform.logs]:
        assert PASSWORD not in str(e)
    remove_labelled(f"berth.app={app_id}")
