"""Prebuilt images pulled from real registries: Debian's docker-registry on 127.0.0.1 (one open, one with
htpasswd auth), an image pushed to it through the Docker API and removed locally, then deployed through the
scheduler (real bus, Postgres, proxy-sync, Traefik, containers)."""

from __future__ import annotations

import asyncio

import pytest

from tests.scheduler.conftest import remove_labelled
from tests.scheduler.platform import web_app
from tests.support import registry as reg

pytestmark = [pytest.mark.slow, pytest.mark.docker]
USER, PASSWORD = "deploy", "pw-registry-never-shown"


@pytest.fixture
def open_registry(tmp_root, unique, busybox):
    if (why := reg.available()) is not None:
        pytest.skip(why)
    r = reg.Registry(tmp_root / f"registry-{unique}").start()
    yield r
    r.stop()


@pytest.fixture
def private_registry(tmp_root, unique, busybox):
    if (why := reg.available()) is not None:
        pytest.skip(why)
    r = reg.Registry(tmp_root / f"registry-auth-{unique}", users={USER: PASSWORD}).start()
    yield r
    r.stop()


@pytest.fixture
def local_refs(app_id):
    """References a test pulled or pushed: removed afterwards (after the application's containers)."""
    refs: list[str] = []
    yield refs
    remove_labelled(f"berth.app={app_id}")
    for ref in refs:
        reg.remove_local(ref)


def _spec(image: str, host: str, content: str, **source) -> dict:
    app = web_app(image, content, host)
    return {**app, "source": {"kind": "image", "image": image, **source}}


def _logs(platform, dep: str) -> list[str]:
    return [e["data"]["line"] for e in platform.logs if e["data"]["deployment_id"] == dep]


async def test_pull_from_an_open_registry_records_the_digest_and_logs_progress(
    platform, busybox, app_id, unique, open_registry, local_refs
):
    repo = f"berth-test/pull-{unique}"
    image = await reg.push(busybox, open_registry, repo, "v1")
    digest = open_registry.manifest_digest(repo, "v1")
    pinned = f"{open_registry.host}/{repo}@{digest}"
    local_refs += [image, pinned]
    host = f"pull-{unique}.localhost"

    d1 = await platform.deploy(app_id, _spec(image, host, "v1"))
    done = await platform.wait(d1, timeout=90)
    assert done["type"] == "evt.deployment.succeeded", done
    assert done["data"]["image"] == image and done["data"]["image_digest"] == pinned
    assert await asyncio.to_thread(platform.traefik.get, host) == (200, b"v1\n")
    (ready,) = [e for e in platform.of(d1, "evt.deployment.progressed") if e["data"]["step"] == "image ready"]
    assert (
        ready["data"]["image_digest"] == pinned
        and f"pulled {image} from {open_registry.host}" in (ready["data"]["detail"])
    )
    assert [s for _, s in platform.steps(d1)][:3] == ["queued", "starting replicas", "image ready"]
    lines = _logs(platform, d1)
    assert f"[starting] pull: {image} from {open_registry.host} (pull policy always, anonymous)" in lines
    assert any(line.endswith((": Pull complete", ": Already exists")) for line in lines), lines
    assert f"[starting] pull: Digest: {digest}" in lines

    # The tag moves to another image: always follows it; the first digest still names the first image.
    moved = await reg.push(busybox, open_registry, repo, "v1", mark="-moved")
    moved_digest = f"{open_registry.host}/{repo}@{open_registry.manifest_digest(repo, 'v1')}"
    local_refs.append(moved_digest)
    assert moved == image and moved_digest != pinned
    d2 = await platform.deploy(app_id, _spec(image, host, "v2"))
    done = await platform.wait(d2, timeout=90)
    assert done["type"] == "evt.deployment.succeeded", done
    assert done["data"]["image_digest"] == moved_digest
    # A rollback runs the recorded digest: pulled by digest (if-missing: it is no longer on the server).
    await reg.untag(pinned)
    d3 = await platform.deploy(app_id, _spec(pinned, host, "v3"))
    done = await platform.wait(d3, timeout=90)
    assert done["type"] == "evt.deployment.succeeded", done
    assert done["data"]["image"] == pinned and done["data"]["image_digest"] == pinned
    assert f"[starting] pull: {pinned} from {open_registry.host} (pull policy if-missing, anonymous)" in _logs(
        platform, d3
    )

    # A name the registry does not have: said so.
    absent = f"{open_registry.host}/berth-test/absent-{unique}:v1"
    d_absent = await platform.deploy(app_id, _spec(absent, host, "absent"))
    failed = await platform.wait(d_absent, timeout=60)
    assert failed["type"] == "evt.deployment.failed", failed
    assert failed["data"]["reason"].startswith(
        f"image {absent!r} is not on this server and could not be pulled: {open_registry.host} has no such image"
    ), failed["data"]["reason"]

    # if-missing with the image on the server: no registry is contacted (it is stopped now).
    open_registry.stop()
    d4 = await platform.deploy(app_id, _spec(pinned, host, "v4"))
    done = await platform.wait(d4, timeout=60)
    assert done["type"] == "evt.deployment.succeeded", done
    (ready,) = [e for e in platform.of(d4, "evt.deployment.progressed") if e["data"]["step"] == "image ready"]
    assert "no registry contacted" in ready["data"]["detail"] and ready["data"]["image_digest"] == pinned
    assert not any("pull:" in line for line in _logs(platform, d4))

    # always, with the registry gone: a reason a person can act on; the live version keeps serving.
    d5 = await platform.deploy(app_id, _spec(pinned, host, "v5", pull_policy="always"))
    failed = await platform.wait(d5, timeout=60)
    assert failed["type"] == "evt.deployment.failed", failed
    assert f"could not pull {pinned!r}" in failed["data"]["reason"]
    assert f"the registry {open_registry.host} could not be reached" in failed["data"]["reason"]
    assert await asyncio.to_thread(platform.traefik.get, host) == (200, b"v4\n")


async def test_private_registry_pulls_with_credentials_and_fails_clearly_without(
    platform, busybox, app_id, unique, private_registry, local_refs
):
    repo = f"berth-test/private-{unique}"
    image = await reg.push(busybox, private_registry, repo, "v1")
    local_refs.append(image)
    host = f"private-{unique}.localhost"

    d1 = await platform.deploy(app_id, _spec(image, host, "v1"))
    failed = await platform.wait(d1, timeout=60)
    assert failed["type"] == "evt.deployment.failed", failed
    assert failed["data"]["reason"].startswith(
        f"image {image!r} is not on this server and could not be pulled: {private_registry.host} refused an "
        "anonymous pull"
    ), failed["data"]["reason"]
    assert "POST /v1/registries" in failed["data"]["reason"]

    wrong = {"registry": private_registry.host, "username": USER, "password": "not-the-password"}
    d2 = await platform.deploy(app_id, _spec(image, host, "v1", auth=wrong))
    failed = await platform.wait(d2, timeout=60)
    assert failed["type"] == "evt.deployment.failed", failed
    assert f"{private_registry.host} refused the credentials of its registry entry" in failed["data"]["reason"]

    auth = {"registry": private_registry.host, "username": USER, "password": PASSWORD}
    d3 = await platform.deploy(app_id, _spec(image, host, "v1", auth=auth))
    done = await platform.wait(d3, timeout=90)
    assert done["type"] == "evt.deployment.succeeded", done
    assert (
        done["data"]["image_digest"] == f"{private_registry.host}/{repo}@{private_registry.manifest_digest(repo, 'v1')}"
    )
    local_refs.append(done["data"]["image_digest"])
    assert await asyncio.to_thread(platform.traefik.get, host) == (200, b"v1\n")
    assert f"[starting] pull: {image} from {private_registry.host} (pull policy always, as {USER})" in _logs(
        platform, d3
    )
    # the password is in no event and no log line
    for e in [*platform.events, *platform.logs]:
        assert PASSWORD not in str(e) and "not-the-password" not in str(e)


@pytest.fixture
async def mirrored(open_registry, busybox, unique, monkeypatch):
    """``nginx:1.27`` mapped (BERTH_IMAGE_MAP, read by the scheduler the platform starts) to an image pushed
    to the test registry, as an air-gapped site maps official names to its mirror."""
    image = await reg.push(busybox, open_registry, f"mirror/nginx-{unique}", "1.27")
    monkeypatch.setenv("BERTH_IMAGE_MAP", f"nginx:1.27={image}")
    yield image
    reg.remove_local(image)


async def test_the_image_map_sends_a_pull_to_the_mirror(mirrored, platform, app_id, unique, open_registry):
    host = f"mirror-{unique}.localhost"
    d1 = await platform.deploy(app_id, _spec("nginx:1.27", host, "from the mirror"))
    done = await platform.wait(d1, timeout=90)
    assert done["type"] == "evt.deployment.succeeded", done
    assert done["data"]["image"] == mirrored
    assert await asyncio.to_thread(platform.traefik.get, host) == (200, b"from the mirror\n")
    assert f"[starting] pull: {mirrored} from {open_registry.host} (pull policy always, anonymous)" in _logs(
        platform, d1
    )
    remove_labelled(f"berth.app={app_id}")
