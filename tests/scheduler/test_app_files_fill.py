"""Filling a read-only files volume on a real engine (``adapters/files_volumes.py``): once per volume, even
when replicas start at the same moment from several scheduler processes (the filler's name, derived from the
volume, is the lock: the engine makes one container of a name), a filler an interrupted fill left behind
taken over, and every filler removed with its volume by the pruning and by the application's removal."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from types import SimpleNamespace
from typing import Any, cast

import pytest

from berth_common.docker import DockerEngines, local_engine
from berth_scheduler.adapters import files_volumes
from berth_scheduler.adapters.docker import DockerExecutor
from berth_scheduler.domain import app_files
from berth_scheduler.domain.containers import ContainerSpec
from berth_scheduler.usecases.read_only_files import with_read_only_files
from berth_scheduler.usecases.rollout import pruning
from tests.scheduler.images import busybox_image
from tests.scheduler.test_app_files import CONF, FILES, _cleanup, _ran, _replica, _spec, _volumes

pytestmark = pytest.mark.docker
MOUNTS = [{"source": "nginx", "target": "/etc/nginx/conf.d", "read_only": True}]


def _created(volume: str, since: str) -> list[str]:
    """The names of the containers labelled as ``volume``'s fillers that the engine created since ``since``."""
    events = [
        *("docker", "events", "--since", since, "--until", f"{time.time():.3f}"),
        *("--filter", "type=container", "--filter", "event=create", "--filter", f"label=berth.files={volume}"),
        *("--format", "{{.Actor.Attributes.name}}"),
    ]
    return subprocess.run(events, capture_output=True, text=True, check=True, timeout=30).stdout.split()


def _containers(app: str) -> list[str]:
    found = ["docker", "ps", "-aq", "--filter", f"label=berth.app={app}"]
    return subprocess.run(found, capture_output=True, text=True, check=True).stdout.split()


async def test_replicas_started_at_once_on_a_new_files_volume_make_one_filler(docker: DockerExecutor):
    """Four replicas' starts at the same moment, two through this executor and two through another one (as
    another scheduler process's, with its own locks): one filler is created, the others wait until it shows
    the volume filled, and every replica reads the files."""
    app, unique = f"test-files-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    spec = _spec(FILES, MOUNTS)
    svc = spec.services[0]
    other = DockerExecutor(DockerEngines(local_engine(None)))
    since = f"{time.time() - 1:.3f}"
    try:
        starts = [
            with_read_only_files(ex, app, None, spec, svc, _replica(app, f"berth-fill-test-{unique}-{n}", ["cat", p]))
            for n, ex in enumerate([docker, other, docker, other])
            for p in ["/etc/nginx/conf.d/default.conf"]
        ]
        made = await asyncio.gather(*starts)
        volume = made[0].body["Labels"][app_files.VOLUME_LABEL]
        for cs in made:
            await docker.create(cs)
            assert await _ran(docker, cs.name) == CONF
        await asyncio.sleep(0.2)
        assert len(_created(volume, since)) == 1, _created(volume, since)
        assert _volumes(app) == [volume]
    finally:
        await other.engines.close()
        _cleanup(app)


async def interrupted_fill(docker: DockerExecutor, app: str, volume: str, team: str | None = None) -> str:
    """What a fill interrupted after its filler was made leaves: the volume and the filler, no files in it;
    the filler's id."""
    await docker.ensure_volume(app_files.volume_body(volume, app, team))
    body = app_files.filler_body(busybox_image(), volume, app, team)
    name = app_files.filler_name(volume)
    return await docker.create(
        ContainerSpec(name=name, service="web", kind=app_files.FILLER_KIND, replica=0, body=body)
    )


async def test_a_filler_an_interrupted_fill_left_is_made_again_once_it_shows_no_files_for_a_while(
    docker: DockerExecutor, monkeypatch
):
    """The process that made the filler stopped before the archive went in: the next start waits for its
    marker ``STALE_S``, then removes it and fills the volume through a filler of its own."""
    monkeypatch.setattr(files_volumes, "STALE_S", 0.5)
    app, unique = f"test-files-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    spec = _spec(FILES, MOUNTS)
    svc = spec.services[0]
    volume = app_files.read_only_volume(app, spec, svc)
    assert volume is not None
    try:
        left = await interrupted_fill(docker, app, volume)
        await asyncio.sleep(0.1)
        since, started = f"{time.time():.3f}", time.monotonic()
        cs = _replica(app, f"berth-fill-test-{unique}", ["cat", "/etc/nginx/conf.d/default.conf"])
        cs = await with_read_only_files(docker, app, None, spec, svc, cs)
        assert time.monotonic() - started >= 0.5  # it was given its time
        await docker.create(cs)
        assert await _ran(docker, cs.name) == CONF
        found = await docker.inspect(app_files.filler_name(volume))
        assert found is not None and found["Id"] != left  # made again, and kept: it shows the volume filled
        assert _created(volume, since) == [app_files.filler_name(volume)]
    finally:
        _cleanup(app)


async def test_the_pruning_removes_an_unused_files_volume_with_the_filler_an_interrupted_fill_left(
    docker: DockerExecutor, monkeypatch
):
    app = f"test-files-{uuid.uuid4().hex[:8]}"
    volume = app_files.files_volume_prefix(app) + "0" * 24
    rt = cast(Any, SimpleNamespace(docker=docker, settings=SimpleNamespace(prune_server_timeout_s=30.0)))

    async def no_other_server(*_: object) -> list[str]:
        return []

    monkeypatch.setattr(pruning, "servers_of", no_other_server)
    try:
        await interrupted_fill(docker, app, volume)
        await pruning.prune_files_volumes(rt, app)
        assert (_containers(app), _volumes(app)) == ([], [])
    finally:
        _cleanup(app)


async def test_the_removal_of_an_application_removes_its_fillers_then_its_files_volumes(docker: DockerExecutor):
    """Every filler of the application on the engine goes (one an interrupted fill left too), and only its
    own: then its files volumes can go."""
    app, other = f"test-files-{uuid.uuid4().hex[:8]}", f"test-files-{uuid.uuid4().hex[:8]}"
    volumes = [app_files.files_volume_prefix(a) + "0" * 24 for a in (app, other)]
    try:
        for a, volume in zip((app, other), volumes, strict=True):
            await interrupted_fill(docker, a, volume)
        assert await files_volumes.remove_fillers(docker, app) == [app_files.filler_name(volumes[0])]
        assert _containers(app) == [] and len(_containers(other)) == 1
        assert await docker.remove_volume(volumes[0])
    finally:
        _cleanup(app)
        _cleanup(other)


async def test_a_filler_removed_under_its_fill_is_made_again(docker: DockerExecutor, monkeypatch):
    """The deployment's end (or a takeover) removes the filler while the archive is on its way: the fill
    starts over with a new filler, and the replica gets its files."""
    app, unique = f"test-files-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    spec = _spec(FILES, MOUNTS)
    svc = spec.services[0]
    put = docker.put_archive
    removed: list[str] = []

    async def removed_first(name: str, path: str, tar: bytes) -> None:
        if not removed:
            removed.append(name)
            await docker.remove(name)
        await put(name, path, tar)

    monkeypatch.setattr(docker, "put_archive", removed_first)
    since = f"{time.time() - 1:.3f}"
    try:
        cs = _replica(app, f"berth-fill-test-{unique}", ["cat", "/etc/nginx/conf.d/default.conf"])
        cs = await with_read_only_files(docker, app, None, spec, svc, cs)
        volume = cs.body["Labels"][app_files.VOLUME_LABEL]
        await docker.create(cs)
        assert await _ran(docker, cs.name) == CONF
        assert removed == [app_files.filler_name(volume)]
        assert _created(volume, since) == [app_files.filler_name(volume)] * 2
    finally:
        _cleanup(app)
