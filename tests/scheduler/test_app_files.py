"""The application's files in its replicas: which file lands at which path, the exact archive put into a
container before it starts, the label that makes changed files a changed container, the files sealed in
the deployment command's JSON, and the real engine extracting the archive into a created container,
keeping a read-only files volume a replica binds from through ``docker volume prune``, and filling such a
volume once (no filler container on the next replica's start)."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import tarfile
import time
import uuid
from types import SimpleNamespace
from typing import Any, cast

import pytest
from pydantic import ValidationError

from berth_common import labels, sealing
from berth_common.catalogue import ApplicationSpec
from berth_scheduler.adapters.docker import DockerExecutor
from berth_scheduler.domain import app_files
from berth_scheduler.domain.containers import ContainerSpec, container_spec, definition
from berth_scheduler.usecases.read_only_files import with_read_only_files
from berth_scheduler.usecases.rollout import pruning
from tests.scheduler.conftest import remove_labelled
from tests.scheduler.images import busybox_image

CONF = "server { listen 80; }\n"
SECRET = "pw-Zq81kX"


def _spec(files: list[dict[str, object]] | None = None, mounts: list[dict[str, str]] | None = None) -> ApplicationSpec:
    return ApplicationSpec.model_validate(
        {
            "name": "shop",
            "source": {"kind": "image", "image": "x:1"},
            "private_network": True,
            "services": [{"kind": "worker", "name": "web", "files": mounts or []}],
            "files": files or [],
        }
    )


FILES = [
    {"path": "nginx/default.conf", "content": CONF},
    {"path": "nginx/snippets/auth.conf", "content": f"password {SECRET};\n", "mode": 0o600},
    {"path": "init.sql", "content": "create table t (id int);\n"},
]


def _members(tar: bytes) -> list[tuple[str, int, int, int, int, str]]:
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        out = []
        for m in t.getmembers():
            data = t.extractfile(m)
            assert data is not None
            out.append((m.name, m.mode, m.uid, m.gid, int(m.mtime), data.read().decode()))
        return out


def test_a_file_lands_at_its_target_and_a_directory_under_its_target_exactly():
    spec = _spec(
        FILES,
        [
            {"source": "nginx", "target": "/etc/nginx/conf.d"},
            {"source": "init.sql", "target": "/docker-entrypoint-initdb.d/01.sql"},
        ],
    )
    svc = spec.services[0]
    assert [(p, f.path) for p, f in app_files.placed(spec, svc)] == [
        ("/etc/nginx/conf.d/default.conf", "nginx/default.conf"),
        ("/etc/nginx/conf.d/snippets/auth.conf", "nginx/snippets/auth.conf"),
        ("/docker-entrypoint-initdb.d/01.sql", "init.sql"),
    ]
    assert _members(app_files.archive(spec, svc) or b"") == [
        ("etc/nginx/conf.d/default.conf", 0o644, 0, 0, 0, CONF),
        ("etc/nginx/conf.d/snippets/auth.conf", 0o600, 0, 0, 0, f"password {SECRET};\n"),
        ("docker-entrypoint-initdb.d/01.sql", 0o644, 0, 0, 0, "create table t (id int);\n"),
    ]
    assert app_files.archive(spec, svc) == app_files.archive(spec, svc)  # the same files, the same bytes


def test_a_read_only_mount_writes_its_files_without_write_permission():
    spec = _spec(
        FILES,
        [
            {"source": "nginx", "target": "/etc/nginx/conf.d", "read_only": True},
            {"source": "init.sql", "target": "/docker-entrypoint-initdb.d/01.sql"},
        ],
    )
    svc = spec.services[0]
    assert [(name, mode) for name, mode, *_ in _members(app_files.archive(spec, svc) or b"")] == [
        ("etc/nginx/conf.d/default.conf", 0o444),
        ("etc/nginx/conf.d/snippets/auth.conf", 0o400),
        ("docker-entrypoint-initdb.d/01.sql", 0o644),
    ]
    writable = _spec(
        FILES,
        [
            {"source": "nginx", "target": "/etc/nginx/conf.d"},
            {"source": "init.sql", "target": "/docker-entrypoint-initdb.d/01.sql"},
        ],
    )
    assert app_files.digest(spec, svc) != app_files.digest(writable, writable.services[0])  # a new definition


def test_a_replica_mounts_its_read_only_files_from_their_volume_exactly():
    """Compose's ``:ro``: the replica's layer gets only the writable files; the read-only ones go into a
    volume named by their digest, through a filler never started, each bound read-only at its path."""
    mounts = [
        {"source": "nginx", "target": "/etc/nginx/conf.d", "read_only": True},
        {"source": "init.sql", "target": "/docker-entrypoint-initdb.d/01.sql"},
    ]
    spec = _spec(FILES, mounts)
    svc = spec.services[0]
    assert [(n, mode) for n, mode, *_ in _members(app_files.archive(spec, svc, read_only=False) or b"")] == [
        ("docker-entrypoint-initdb.d/01.sql", 0o644)
    ]
    assert [(n, mode, body) for n, mode, _, _, _, body in _members(app_files.read_only_archive(spec, svc) or b"")] == [
        ("etc/nginx/conf.d/default.conf", 0o444, CONF),
        ("etc/nginx/conf.d/snippets/auth.conf", 0o400, f"password {SECRET};\n"),
        (".berth-filled", 0o444, ""),  # last: the volume is filled
    ]
    volume = app_files.read_only_volume("app1", spec, svc)
    assert volume is not None and volume.startswith(app_files.files_volume_prefix("app1"))
    assert volume == f"berth-app1_files-{volume.rsplit('-', 1)[1]}" and len(volume.rsplit("-", 1)[1]) == 24
    changed = _spec([{**FILES[0], "content": "server { listen 81; }\n"}, *FILES[1:]], mounts)
    assert app_files.read_only_volume("app1", changed, changed.services[0]) != volume  # new files, new volume
    assert app_files.read_only_mounts(spec, svc, volume, "/var/lib/docker/volumes/v/_data/") == [
        {
            "Type": "bind",
            "Source": "/var/lib/docker/volumes/v/_data/etc/nginx/conf.d/default.conf",
            "Target": "/etc/nginx/conf.d/default.conf",
            "ReadOnly": True,
        },
        {
            "Type": "bind",
            "Source": "/var/lib/docker/volumes/v/_data/etc/nginx/conf.d/snippets/auth.conf",
            "Target": "/etc/nginx/conf.d/snippets/auth.conf",
            "ReadOnly": True,
        },
        {"Type": "volume", "Source": volume, "Target": "/.berth-files", "ReadOnly": True},  # counted as a use
    ]
    listed = [  # ``Mounts`` of a container as ``GET /containers/json`` lists them
        {"Type": "bind", "Source": "/x", "Destination": "/etc/x", "RW": False},
        {"Type": "volume", "Name": volume + "0", "Destination": "/other"},  # the engine's filter matched it too
        {"Type": "volume", "Name": volume, "Destination": "/.berth-files", "RW": False},
        {"Type": "volume", "Name": volume, "Destination": "/berth-files/"},
    ]
    assert app_files.marker_paths(listed, volume, ".berth-filled") == [
        "/.berth-files/.berth-filled",
        "/berth-files/.berth-filled",
    ]
    assert app_files.volume_body(volume, "app1", "team-1") == {
        "Name": volume,
        "Driver": "local",
        "Labels": {"berth.team": "team-1", "berth.app": "app1", "berth.managed": "true", "berth.files": volume},
    }
    assert app_files.filler_name(volume) == f"{volume}-filler"  # one per volume: the engine's lock
    assert app_files.filler_body("x:1", volume, "app1", "team-1") == {
        "Image": "x:1",
        "Entrypoint": ["/berth-files/.none"],
        "Cmd": [],
        "NetworkDisabled": True,
        "Labels": {
            "berth.team": "team-1",
            "berth.app": "app1",
            "berth.managed": "true",
            "berth.kind": "files-filler",
            "berth.files": volume,
        },
        "HostConfig": {"Mounts": [{"Type": "volume", "Source": volume, "Target": "/berth-files"}]},
    }
    assert app_files.filler_body("x:1", volume, "app1", None)["Labels"] == {
        "berth.app": "app1",
        "berth.managed": "true",
        "berth.kind": "files-filler",
        "berth.files": volume,
    }
    assert app_files.filler(app_files.filler_body("x:1", volume, "app1", None)["Labels"])
    assert not app_files.filler({"berth.app": "app1", "berth.kind": "worker", "berth.files": "0" * 64})  # a replica
    writable = _spec(FILES, [{**m, "read_only": False} for m in mounts])
    assert app_files.read_only_volume("app1", writable, writable.services[0]) is None
    assert app_files.read_only_archive(writable, writable.services[0]) is None
    assert app_files.servers_with_files([spec.model_dump(mode="json")]) == ["local"]
    old, other = "berth-app1_files-" + "0" * 24, "berth-app1-files-kept"  # a named volume called files-kept
    used = [{app_files.VOLUME_LABEL: volume}, {"berth.app": "app1"}]
    assert app_files.unused_volumes("app1", [old, volume, other, "berth-app2_files-" + "1" * 24], used) == [old]


def test_a_service_without_files_has_no_archive_and_no_label():
    spec = _spec(FILES)
    svc = spec.services[0]
    assert app_files.archive(spec, svc) is None
    assert app_files.LABEL not in container_spec("app1", "dep1", spec, svc, 1, "x:1").body["Labels"]


def test_the_label_is_the_digest_of_the_placed_files_and_changed_files_change_the_definition():
    mounts = [{"source": "nginx/default.conf", "target": "/etc/nginx/conf.d/default.conf"}]
    spec = _spec(FILES, mounts)
    svc = spec.services[0]
    body = container_spec("app1", "dep1", spec, svc, 1, "x:1").body
    assert body["Labels"][app_files.LABEL] == app_files.digest(spec, svc)
    assert len(body["Labels"][app_files.LABEL]) == 64 and CONF not in json.dumps(body)
    other = _spec([{**FILES[0], "content": "server { listen 81; }\n"}, *FILES[1:]], mounts)
    unrelated = _spec([*FILES[:2], {"path": "init.sql", "content": "changed"}], mounts)
    assert definition("app1", other, other.services[0], "x:1") != definition("app1", spec, svc, "x:1")
    assert definition("app1", unrelated, unrelated.services[0], "x:1") == definition("app1", spec, svc, "x:1")


def test_file_contents_are_sealed_in_the_commands_json_and_open_again():
    spec = _spec(FILES, [{"source": "nginx", "target": "/etc/nginx"}])
    wire = spec.model_dump_json()
    assert SECRET not in wire and CONF not in wire and SECRET not in repr(spec)
    back = ApplicationSpec.model_validate_json(wire)
    assert [f.reveal() for f in back.files] == [f["content"] for f in FILES]
    assert all(sealing.is_sealed(f.content.get_secret_value()) for f in back.files)
    assert app_files.archive(back, back.services[0]) == app_files.archive(spec, spec.services[0])


@pytest.mark.parametrize(
    ("files", "mounts", "words"),
    [
        (FILES, [{"source": "nginx/missing.conf", "target": "/x"}], "mounts files/nginx/missing.conf"),
        (FILES, [{"source": "ngin", "target": "/x"}], "mounts files/ngin"),
        ([*FILES, FILES[0]], [], "file paths must be unique"),
        ([{"path": "../etc/passwd", "content": "x"}], [], "'..'"),
        ([{"path": "/etc/passwd", "content": "x"}], [], "relative"),
        ([{"path": "a//b", "content": "x"}], [], "'//'"),
        ([{"path": "big", "content": "x" * (256 * 1024 + 1)}], [], "limited to 262144 bytes"),
    ],
)
def test_a_spec_refuses_files_it_cannot_place(files, mounts, words):
    with pytest.raises(ValidationError, match=words.replace("(", r"\(").replace(".", r"\.")):
        _spec(files, mounts)


async def test_the_engine_extracts_the_archive_into_a_created_container(docker: DockerExecutor):
    spec = _spec(
        FILES,
        [
            {"source": "nginx", "target": "/srv/conf"},
            {"source": "init.sql", "target": "/bin/init.sql"},  # beside the image's own files
        ],
    )
    svc = spec.services[0]
    name = f"berth-files-test-{uuid.uuid4().hex[:8]}"
    script = "ls -l /srv/conf/snippets/auth.conf && ls /bin/sh && cat /srv/conf/default.conf /bin/init.sql"
    body = {"Image": busybox_image(), "Cmd": ["sh", "-c", script]}
    await docker.create(ContainerSpec(name=name, service="web", kind="worker", replica=1, body=body))
    try:
        await docker.put_archive(name, "/", app_files.archive(spec, svc) or b"")
        await docker.start(name)
        assert (await docker.docker.json("POST", f"containers/{name}/wait", timeout=30))["StatusCode"] == 0
        _, raw = await docker.docker.request("GET", f"containers/{name}/logs", params={"stdout": 1})
        out = raw.decode(errors="replace")
        assert "-rw-------" in out and "/bin/sh" in out  # its mode kept, the image's own files still there
        assert CONF in out and "create table t (id int);" in out
    finally:
        await docker.remove(name)


def _volumes(app: str) -> list[str]:
    found = ["docker", "volume", "ls", "-q", "--filter", f"label=berth.app={app}"]
    return subprocess.run(found, capture_output=True, text=True, check=True).stdout.split()


def _replica(app: str, name: str, cmd: list[str]) -> ContainerSpec:
    body = {"Image": busybox_image(), "Cmd": cmd, "Labels": {labels.APP: app}}
    return ContainerSpec(name=name, service="web", kind="worker", replica=1, body=body)


async def _ran(docker: DockerExecutor, name: str) -> str:
    await docker.start(name)
    assert (await docker.docker.json("POST", f"containers/{name}/wait", timeout=30))["StatusCode"] == 0
    return await docker.logs(name)


def _cleanup(app: str) -> None:
    remove_labelled(f"berth.app={app}")
    for volume in _volumes(app):
        subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True, check=False)


@pytest.mark.docker
async def test_a_files_volume_a_replica_binds_from_survives_docker_volume_prune(docker: DockerExecutor, monkeypatch):
    """The engine counts the replica as a user of its files volume (mounted whole at ``/.berth-files``): an
    operator's ``docker volume prune`` leaves it and the replica starts again; Berth's own pruning removes
    it once no replica uses it."""
    app, unique = f"test-files-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    spec = _spec(FILES, [{"source": "nginx", "target": "/etc/nginx/conf.d", "read_only": True}])
    svc, name = spec.services[0], f"berth-files-test-{unique}"
    cs = _replica(app, name, ["cat", "/etc/nginx/conf.d/default.conf"])
    cs = await with_read_only_files(docker, app, None, spec, svc, cs)
    volume = cs.body["Labels"][app_files.VOLUME_LABEL]
    rt = cast(Any, SimpleNamespace(docker=docker, settings=SimpleNamespace(prune_server_timeout_s=30.0)))

    async def no_other_server(*_: object) -> list[str]:
        return []  # the application's containers are all on this engine

    monkeypatch.setattr(pruning, "servers_of", no_other_server)
    try:
        await docker.create(cs)
        assert await _ran(docker, name) == CONF
        # limited to this test's volumes by label: the engine's other volumes are not this test's to remove
        prune = ["docker", "volume", "prune", "-f", "--filter", f"label=berth.app={app}"]
        assert subprocess.run(prune, capture_output=True, text=True, check=True).returncode == 0
        assert _volumes(app) == [volume]
        assert await _ran(docker, name) == CONF * 2  # restarted: its binds' sources are still there
        await pruning.prune_files_volumes(rt, app)
        assert _volumes(app) == [volume]  # a replica binds from it
        await docker.remove(name)
        await pruning.prune_files_volumes(rt, app)
        assert _volumes(app) == []
    finally:
        _cleanup(app)


@pytest.mark.docker
async def test_a_filled_files_volume_takes_no_filler_on_the_next_start(docker: DockerExecutor):
    """The first replica's start fills the volume through one filler container; the second one's start sees
    the volume filled through the first replica's mount of it, and makes no filler."""
    app, unique = f"test-files-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    spec = _spec(FILES, [{"source": "nginx", "target": "/etc/nginx/conf.d", "read_only": True}])
    svc = spec.services[0]
    since = f"{time.time() - 1:.3f}"
    try:
        volume = ""
        for n in (1, 2):
            name = f"berth-files-test-{unique}-{n}"
            cs = await with_read_only_files(docker, app, None, spec, svc, _replica(app, name, ["true"]))
            volume = cs.body["Labels"][app_files.VOLUME_LABEL]
            await docker.create(cs)
        await asyncio.sleep(0.2)
        events = [
            *("docker", "events", "--since", since, "--until", f"{time.time():.3f}"),
            *("--filter", "type=container", "--filter", "event=create", "--filter", f"label=berth.files={volume}"),
            *("--format", "{{.Actor.Attributes.name}}"),
        ]
        made = subprocess.run(events, capture_output=True, text=True, check=True, timeout=30).stdout.split()
        assert made == [app_files.filler_name(volume)]
        assert _volumes(app) == [volume]
    finally:
        _cleanup(app)
