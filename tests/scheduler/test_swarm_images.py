"""The application's image on a Swarm's manager before Berth runs a one-off container there (the
pre-deploy job, a run): a registry image the manager lacks is pulled with the application's credentials
for its registry (Debian's docker-registry with htpasswd on loopback, the local engine as the manager);
without them the pull's refusal is the reason; Berth's own image that is missing is told, not pulled."""

from __future__ import annotations

import pytest

from berth_common.catalogue import ImageSource
from berth_common.catalogue.specs import RegistryAuth
from berth_scheduler.usecases.swarm_images import on_manager
from tests.support import registry as reg

pytestmark = [pytest.mark.docker]
USER, PASSWORD = "deploy", "pw-manager-never-shown"


@pytest.fixture
def private_registry(tmp_root, unique, busybox):
    if (why := reg.available()) is not None:
        pytest.skip(why)
    r = reg.Registry(tmp_root / f"registry-mgr-{unique}", users={USER: PASSWORD}).start()
    yield r
    r.stop()


async def test_a_registry_image_is_pulled_on_the_manager_with_the_applications_credentials(
    docker, busybox, unique, private_registry
):
    image = await reg.push(busybox, private_registry, f"berth-test/mgr-{unique}", "v1")
    try:
        anonymous = ImageSource(image=image)
        refused = await on_manager(docker, image, anonymous)
        assert refused is not None and refused.startswith(f"the image {image} could not be pulled on the Swarm's")
        assert PASSWORD not in refused
        auth = RegistryAuth(registry=private_registry.host, username=USER, password=PASSWORD)
        assert await on_manager(docker, image, ImageSource(image=image, auth=auth)) is None
        assert await on_manager(docker, image, anonymous) is None  # there now: nothing to pull
    finally:
        reg.remove_local(image)
    missing = f"berth/never-built-{unique}:1"
    assert await on_manager(docker, missing, anonymous) == (
        f"the image {missing} is not on the Swarm's manager (it is delivered with each deployment)"
    )
