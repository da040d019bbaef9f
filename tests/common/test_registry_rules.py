"""The one rule of which registry credentials go with an image: the host it is pulled from once the image
map rewrote it (a mirror's), used by the api to pick them and by the scheduler and builder to use them."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from berth_common import registries as r
from berth_common.catalogue import GitSource, PushTarget, RegistryAuth
from berth_common.catalogue.specs import registry_auths

MAP = {"nginx": "mirror.internal/library/nginx", "python:3": "mirror.internal:5000/py:3", "busybox": "berth/busybox:1"}


@dataclass(frozen=True)
class Auth:
    registry: str
    user: str


def test_the_pull_host_is_the_mirrors_after_the_image_map() -> None:
    assert r.pull_host("nginx:1.27", MAP) == "mirror.internal"
    assert r.pull_host("docker.io/library/python:3", MAP) == "mirror.internal:5000"
    assert r.pull_host("ghcr.io/acme/app:1", MAP) == "ghcr.io"
    assert r.pull_host("redis:7", MAP) == "docker.io"
    assert r.mirror_hosts(MAP) == ["docker.io", "mirror.internal", "mirror.internal:5000"]


def test_credentials_are_matched_by_host() -> None:
    auths = [Auth("mirror.internal", "m"), Auth("index.docker.io", "hub"), Auth("MIRROR.internal:5000", "p")]
    assert r.credentials_for("mirror.internal", auths) == auths[0]
    assert r.credentials_for("docker.io", auths) == auths[1]  # Docker Hub's names are one host
    assert r.credentials_for("mirror.internal:5000", auths) == auths[2]
    assert r.credentials_for("ghcr.io", auths) is None
    assert r.credentials_for("not a host", auths) is None


def test_a_git_source_carries_its_build_server_and_registries_only_when_set() -> None:
    plain = GitSource(repository="https://git.example.com/acme/shop.git", ref="main")
    assert "build_server" not in plain.model_dump() and plain.build_server == "local"
    assert "push" not in plain.model_dump(mode="json") and "base_auths" not in plain.model_dump(mode="json")
    auth = RegistryAuth(registry="registry.example.com", username="ci", password=SecretStr("pw"))
    mirror = RegistryAuth(registry="mirror.internal", username="m", password=SecretStr("pw2"))
    source = GitSource(
        repository="https://git.example.com/acme/shop.git",
        ref="main",
        build_server="srv1",
        push=PushTarget(auth=auth, namespace="acme"),
        base_auths=[mirror],
    )
    assert source.model_dump()["build_server"] == "srv1"
    assert registry_auths(source) == [auth, mirror]
    assert source.push is not None and source.push.repository("shop") == "registry.example.com/acme/shop"


def test_engine_streams_are_read_the_same_for_pulls_and_pushes() -> None:
    quiet = frozenset({"Downloading"})
    assert r.progress_line({"status": "Downloading", "id": "a1"}, "pull", quiet) is None
    assert r.progress_line({"status": "Pull complete", "id": "a1"}, "pull", quiet) == "pull: a1: Pull complete"
    assert r.progress_line({"status": "Pushed", "id": "a1"}, "push", quiet) == "push: a1: Pushed"
    assert r.progress_line({"status": "done"}, "push", quiet) == "push: done"
    assert r.progress_line({"aux": {}}, "push", quiet) is None
    assert r.stream_error({"errorDetail": {"message": "denied"}, "error": "x"}) == "denied"
    assert r.stream_error({"error": "broken"}) == "broken"
    assert r.stream_error({"status": "ok"}) is None
    header = r.registry_auth_header("ghcr.io", "u", "p")
    assert header == "eyJ1c2VybmFtZSI6InUiLCJwYXNzd29yZCI6InAiLCJzZXJ2ZXJhZGRyZXNzIjoiZ2hjci5pbyJ9"
