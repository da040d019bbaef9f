"""Builds pushed to the team's push registry: Debian's docker-registry with htpasswd on 127.0.0.1, the
builder in-process (real bus, Postgres, git, the Docker engine). A git app is built and pushed with the
registry's credentials, and ``pushed_ref`` pulls the very image built; wrong credentials fail the build
clearly and leave nothing behind, in the registry or on the engine. Base images the image map sends to a
private mirror are pulled with the team's credentials for that mirror."""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiodocker
import pytest
from pydantic import SecretStr

from berth_common.catalogue import PushTarget, RegistryAuth, StartBuild
from tests.builder.support import Running, build_command, make_repo, start_builder, stop_builder
from tests.support import registry as reg
from tests.support.images import busybox_image

pytestmark = [pytest.mark.slow, pytest.mark.docker]
USER, PASSWORD = "ci", "pw-push-never-shown"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[reg.Registry]:
    if (why := reg.available()) is not None:
        pytest.skip(why)
    r = reg.Registry(tmp_path_factory.mktemp("push-registry"), users={USER: PASSWORD}).start()
    yield r
    r.stop()


@pytest.fixture
async def builder(nats_server: Any, database: str, tmp_path: Path) -> AsyncIterator[Any]:
    started: list[Running] = []

    async def make(**overrides: Any) -> Running:
        running = await start_builder(nats_server.url, database, tmp_path / f"data{len(started)}", **overrides)
        started.append(running)
        return running

    yield make
    for running in started:
        await stop_builder(running)


@pytest.fixture
def local_images() -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    if made:
        subprocess.run(["docker", "rmi", "-f", *made], capture_output=True, check=False, timeout=120)


def with_source(cmd: StartBuild, **fields: Any) -> StartBuild:
    return cmd.model_copy(update={"source": cmd.source.model_copy(update=fields)})


def auth(registry: reg.Registry, password: str = PASSWORD) -> RegistryAuth:
    return RegistryAuth(registry=registry.host, username=USER, password=SecretStr(password))


def catalog(registry: reg.Registry) -> list[str]:
    req = urllib.request.Request(f"http://{registry.host}/v2/_catalog")
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())
    with urllib.request.urlopen(req, timeout=5) as r:
        return list(json.loads(r.read())["repositories"] or [])


def local_id(ref: str) -> str | None:
    out = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", ref], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def app_repo(tmp_path: Path, marker: str, base: str | None = None) -> Path:
    repo = tmp_path / f"repo-{marker}"
    base = base or busybox_image()
    make_repo(repo, {"Dockerfile": f"FROM {base}\nCOPY marker.txt /marker.txt\n", "marker.txt": marker})
    return repo


async def test_a_built_image_is_pushed_and_its_pushed_ref_pulls_it(
    builder: Any, registry: reg.Registry, tmp_path: Path, unique: str, local_images: list[str]
) -> None:
    b = await builder(allow_local_git=True)
    tag = f"berth-test/shop-{unique}:d1"
    local_images.append(tag)
    cmd = build_command(build_id=f"pb-{unique}", repository=str(app_repo(tmp_path, unique)), image_tag=tag)
    cmd = with_source(cmd, push=PushTarget(auth=auth(registry), namespace="acme"))
    await b.api.publish(cmd)
    evt = await b.result(cmd.build_id, timeout=180)
    assert evt["type"] == "evt.build.succeeded", evt
    repository = f"{registry.host}/acme/shop-{unique}"
    digest = registry.manifest_digest(f"acme/shop-{unique}", "d1")
    assert evt["data"]["pushed_ref"] == f"{repository}@{digest}"
    lines = b.lines(cmd.deployment_id)
    assert f"pushing {repository}:d1 (as {USER})" in lines and f"pushed {repository}@{digest}" in lines
    assert any(line.startswith("push: ") and line.endswith(": Pushed") for line in lines)
    assert PASSWORD not in json.dumps(lines) and PASSWORD not in json.dumps(evt)
    assert local_id(f"{repository}:d1") is None  # the push tag does not stay on the build server

    # The pushed reference is the image built: removed here, pulled back with the credentials.
    built = evt["data"]["image_id"]
    subprocess.run(["docker", "rmi", "-f", built], capture_output=True, check=True, timeout=60)
    assert local_id(built) is None
    docker = aiodocker.Docker()
    try:
        creds = {"username": USER, "password": PASSWORD, "serveraddress": registry.host}
        await docker.images.pull(evt["data"]["pushed_ref"], auth=creds)
        assert (await docker.images.inspect(evt["data"]["pushed_ref"]))["Id"] == built
        subprocess.run(["docker", "rmi", "-f", built], capture_output=True, check=True, timeout=60)
        with pytest.raises(aiodocker.DockerError):  # and the registry is private: nothing without them
            await docker.images.pull(evt["data"]["pushed_ref"])
    finally:
        await docker.close()
        subprocess.run(["docker", "rmi", "-f", built], capture_output=True, check=False, timeout=60)


async def test_wrong_credentials_fail_the_build_and_leave_nothing(
    builder: Any, registry: reg.Registry, tmp_path: Path, unique: str, local_images: list[str]
) -> None:
    b = await builder(allow_local_git=True)
    tag = f"berth-test/bad-{unique}:d1"
    local_images.append(tag)
    cmd = build_command(build_id=f"wb-{unique}", repository=str(app_repo(tmp_path, unique)), image_tag=tag)
    cmd = with_source(cmd, push=PushTarget(auth=auth(registry, "not-the-password"), namespace="acme"))
    await b.api.publish(cmd)
    evt = await b.result(cmd.build_id, timeout=180)
    assert evt["type"] == "evt.build.failed", evt
    data = evt["data"]
    assert data["stage"] == "push"
    assert data["reason"].startswith(
        f"could not push {registry.host}/acme/bad-{unique}:d1: {registry.host} refused the credentials of the "
        "team's push registry"
    ), data["reason"]
    assert "not-the-password" not in json.dumps(evt) and "not-the-password" not in json.dumps(
        b.lines(cmd.deployment_id)
    )
    assert f"acme/bad-{unique}" not in catalog(registry)  # nothing half-written in the registry
    with pytest.raises(urllib.error.HTTPError) as missing:
        registry.manifest_digest(f"acme/bad-{unique}", "d1")
    assert missing.value.code == 404
    assert local_id(tag) is None and local_id(f"{registry.host}/acme/bad-{unique}:d1") is None  # nor here


async def test_a_base_image_from_a_private_mirror_is_pulled_with_the_teams_credentials(
    builder: Any, registry: reg.Registry, tmp_path: Path, unique: str, local_images: list[str]
) -> None:
    mirrored = await reg.push(busybox_image(), registry, f"mirror/base-{unique}", "1", mark=unique)
    local_images.append(mirrored)
    assert local_id(mirrored) is None  # only in the registry
    b = await builder(allow_local_git=True, image_map=json.dumps({f"acme-base-{unique}": mirrored}))
    repo = app_repo(tmp_path, unique, base=f"acme-base-{unique}")

    anonymous = build_command(build_id=f"ab-{unique}", repository=str(repo), image_tag=f"berth-test/m-{unique}:1")
    await b.api.publish(anonymous)
    evt = await b.result(anonymous.build_id, timeout=180)
    assert evt["type"] == "evt.build.failed", evt  # the mirror is private
    assert f"pulling from host {registry.host} failed" in evt["data"]["reason"]
    assert "401 Unauthorized" in evt["data"]["reason"]

    tag = f"berth-test/m-{unique}:2"
    local_images.append(tag)
    cmd = build_command(build_id=f"mb-{unique}", repository=str(repo), image_tag=tag)
    cmd = with_source(cmd, base_auths=[auth(registry)])
    await b.api.publish(cmd)
    evt = await b.result(cmd.build_id, timeout=180)
    assert evt["type"] == "evt.build.succeeded", evt
    lines = b.lines(cmd.deployment_id)
    assert f"base image acme-base-{unique} -> local image {mirrored} (image map)" in lines
    assert f"base images from {registry.host}: as {USER} (the team's registry credentials)" in lines
    assert PASSWORD not in json.dumps(lines)
