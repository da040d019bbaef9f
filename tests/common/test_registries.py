"""Image references and registry hosts read as Docker reads them (``berth_common.registries``): the api matches
a team's credentials by the host, the scheduler pulls from it."""

from __future__ import annotations

import pytest

from berth_common.registries import ImageRef, InvalidReferenceError, normalize_host, parse, registry_of

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("nginx", ImageRef("nginx", "docker.io")),
        ("nginx:1.27", ImageRef("nginx", "docker.io", "1.27")),
        ("library/nginx:1", ImageRef("library/nginx", "docker.io", "1")),
        ("docker.io/library/nginx:1", ImageRef("docker.io/library/nginx", "docker.io", "1")),
        ("index.docker.io/acme/app", ImageRef("index.docker.io/acme/app", "docker.io")),
        ("ghcr.io/acme/app:v2", ImageRef("ghcr.io/acme/app", "ghcr.io", "v2")),
        ("127.0.0.1:5000/team/app:v1", ImageRef("127.0.0.1:5000/team/app", "127.0.0.1:5000", "v1")),
        ("localhost/app", ImageRef("localhost/app", "localhost")),
        (
            f"registry.example.com:5000/app@{DIGEST}",
            ImageRef("registry.example.com:5000/app", "registry.example.com:5000", None, DIGEST),
        ),
        (f"app:1@{DIGEST}", ImageRef("app", "docker.io", "1", DIGEST)),
    ],
)
def test_references_are_taken_apart_as_docker_does(reference, expected):
    assert parse(reference) == expected
    assert str(parse(reference)) == reference


@pytest.mark.parametrize("bad", ["app@sha256:12", "app:", "/app", "app/", "a//b"])
def test_malformed_references_are_refused(bad):
    with pytest.raises(InvalidReferenceError):
        parse(bad)


def test_registry_hosts_are_normalised_and_validated():
    assert normalize_host("GHCR.io") == "ghcr.io"
    assert normalize_host("registry-1.docker.io") == "docker.io"
    assert normalize_host("index.docker.io") == "docker.io"
    assert normalize_host("127.0.0.1:5000") == "127.0.0.1:5000"
    for bad in ("https://ghcr.io", "ghcr.io/acme", "user@ghcr.io", "ghcr.io:99999", "ghcr.io:0", "", "a b"):
        with pytest.raises(InvalidReferenceError):
            normalize_host(bad)


def test_registry_of_an_image():
    assert [registry_of(r) for r in ("nginx:1.27", "ghcr.io/a/b", "LOCALHOST:5000/x".lower(), "acme/app")] == [
        "docker.io",
        "ghcr.io",
        "localhost:5000",
        "docker.io",
    ]
