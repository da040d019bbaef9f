"""The application's files on a Swarm as data (``domain/swarm_files.py``): one digest-named secret per placed
file, mounted at its path with its mode; the service body that names them and an image Berth delivered by
id; which secrets are no longer used. End to end on a real Swarm: ``tests/servers/test_swarm_apps.py``."""

from __future__ import annotations

import base64

import pytest

from berth_common.catalogue import AppFile, ApplicationSpec, FileMount, ImageSource, WorkerService
from berth_scheduler.domain import swarm_files as dom
from berth_scheduler.domain.containers import container_spec
from berth_scheduler.domain.swarm import service_body

APP = "0123456789abcdef0123456789abcdef"
IMAGE_ID = "sha256:" + "ab" * 32


def _spec(content: str = "password=s3cret\n") -> tuple[ApplicationSpec, WorkerService]:
    svc = WorkerService(
        name="jobs",
        files=[FileMount(source="app.ini", target="/etc/app.ini"), FileMount(source="conf.d", target="/etc/conf.d")],
    )
    files = [
        AppFile(path="app.ini", content=content, mode=0o640),
        AppFile(path="conf.d/a.conf", content="a=1\n"),
        AppFile(path="unused.txt", content="x"),
    ]
    return ApplicationSpec(name="app", source=ImageSource(image="berth/app:1"), services=[svc], files=files), svc


def test_each_placed_file_is_one_digest_named_secret_mounted_at_its_path() -> None:
    spec, svc = _spec()
    secrets = dom.file_secrets(APP, "team1", spec, svc)
    assert [(s.target, s.mode) for s in secrets] == [("/etc/app.ini", 0o640), ("/etc/conf.d/a.conf", 0o644)]
    first = secrets[0]
    assert first.name == dom.secret_name(APP, "/etc/app.ini", 0o640, b"password=s3cret\n")
    assert first.name.startswith("berth-file-0123456789abcdef-") and len(first.name) == 60
    assert first.body == {
        "Name": first.name,
        "Labels": {
            "berth.team": "team1",
            "berth.app": APP,
            "berth.service": "jobs",
            "berth.managed": "true",
            "berth.file": "/etc/app.ini",
        },
        "Data": base64.b64encode(b"password=s3cret\n").decode(),
    }
    assert "s3cret" not in repr(first)
    # the same file is the same secret; another content, path or mode another one
    assert dom.file_secrets(APP, "team1", spec, svc)[0].name == first.name
    assert dom.file_secrets(APP, "team1", *_spec("password=other\n"))[0].name != first.name
    assert dom.secret_name(APP, "/etc/app.ini", 0o600, b"password=s3cret\n") != first.name
    with pytest.raises(ValueError):
        dom.secret_name("../x", "/etc/app.ini", 0o640, b"")


def test_the_service_mounts_its_secrets_and_runs_a_delivered_image_by_id() -> None:
    spec, svc = _spec()
    secrets = dom.file_secrets(APP, "team1", spec, svc)
    refs = dom.secret_refs(secrets, {secrets[0].name: "id1", secrets[1].name: "id2"})
    assert refs == [
        {"File": {"Name": "/etc/app.ini", "UID": "0", "GID": "0", "Mode": 0o640}, "SecretID": "id1", "SecretName": secrets[0].name},
        {"File": {"Name": "/etc/conf.d/a.conf", "UID": "0", "GID": "0", "Mode": 0o644}, "SecretID": "id2", "SecretName": secrets[1].name},
    ]  # fmt: skip
    replica = container_spec(APP, "dep1", spec, svc, 1, "berth/app:1")
    plain = service_body(replica, 2, "berth-overlay").body["TaskTemplate"]["ContainerSpec"]
    assert plain["Image"] == "berth/app:1" and "Secrets" not in plain
    body = service_body(replica, 2, "berth-overlay", secrets=refs, image_id=IMAGE_ID).body
    container = body["TaskTemplate"]["ContainerSpec"]
    assert container["Image"] == IMAGE_ID and container["Secrets"] == refs
    assert "s3cret" not in repr(body)
    with pytest.raises(ValueError):
        service_body(replica, 2, "berth-overlay", image_id="berth/app:1")


def test_the_secrets_no_service_mounts_are_the_unused_ones() -> None:
    services = [
        {"Spec": {"TaskTemplate": {"ContainerSpec": {"Secrets": [{"SecretName": "berth-file-a"}]}}}},
        {"Spec": {"TaskTemplate": {"ContainerSpec": {}}}},
    ]
    used = dom.in_use(services)
    assert used == {"berth-file-a"}
    listed = [
        {"ID": "3", "Spec": {"Name": "berth-file-c", "Labels": {"berth.file": "/c"}}},
        {"ID": "1", "Spec": {"Name": "berth-file-a", "Labels": {"berth.file": "/a"}}},
        {"ID": "2", "Spec": {"Name": "berth-file-b", "Labels": {"berth.file": "/b"}}},
        {"ID": "4", "Spec": {"Name": "someone-elses", "Labels": {}}},
    ]
    assert dom.unused(listed, used) == ["2", "3"]
