"""Local base images: the image map, the apt-sources mirror parser, and a real busybox image serving HTTP."""

from __future__ import annotations

import subprocess
import time
import urllib.request

import pytest

from berth_cli import baseimages
from berth_cli.baseimages import DEFAULT_IMAGE_MAP, image_map, mirror_from_sources, parse_image_map, resolve_image
from tests.support import images

# --- resolve_image / BERTH_IMAGE_MAP --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("busybox", "berth/busybox:1"),
        ("busybox:1.36", "berth/busybox:1"),
        ("docker.io/library/busybox:latest", "berth/busybox:1"),
        ("busybox@sha256:" + "a" * 64, "berth/busybox:1"),
        ("python:3.12-slim", "berth/python:3-bookworm"),
        ("python:3", "berth/python:3-bookworm"),
        ("docker.io/library/python:3.12-slim", "berth/python:3-bookworm"),
        ("python:2.7", "python:2.7"),  # no entry for this tag, and no untagged "python" key
        ("postgres:16", "postgres:16"),  # Debian bookworm's PostgreSQL is 15: no stand-in for 16
        ("postgres:15", "berth/postgres:15-bookworm"),
        ("example.test:5000/team/app:v1", "example.test:5000/team/app:v1"),
    ],
)
def test_resolve_image_defaults(ref, expected):
    assert resolve_image(ref, DEFAULT_IMAGE_MAP) == expected


def test_resolve_image_registry_port_is_not_a_tag():
    mapping = {"example.test:5000/app": "local/app:1"}
    assert resolve_image("example.test:5000/app", mapping) == "local/app:1"
    assert resolve_image("example.test:5000/app:7", mapping) == "local/app:1"
    assert resolve_image("example.test:5001/app:7", mapping) == "example.test:5001/app:7"


def test_image_map_setting_overrides_and_extends_defaults():
    env = {"BERTH_IMAGE_MAP": "postgres:16=berth/postgres:16-bookworm, python:3.12-slim=mine/py:1"}
    m = image_map(env)
    assert m["postgres:16"] == "berth/postgres:16-bookworm"
    assert m["python:3.12-slim"] == "mine/py:1"
    assert m["busybox"] == "berth/busybox:1"
    assert image_map({"BERTH_IMAGE_MAP": '{"redis:7": "berth/redis:7"}'})["redis:7"] == "berth/redis:7"
    assert image_map({}) == DEFAULT_IMAGE_MAP


@pytest.mark.parametrize(
    "bad", ["python", "a=b c", "a=--privileged", '{"a": 1}', "=x", "a=$(id)", '["a"]', "a=b;rm -rf /"]
)
def test_image_map_rejects_malformed(bad):
    with pytest.raises(ValueError):
        parse_image_map(bad)


# --- mirror from apt sources --------------------------------------------------------------------------

DEB822 = """\
Types: deb
# http://snapshot.test/archive/debian/20250520T000000Z
URIs: http://mirror.test/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.test/debian-security
Suites: bookworm-security
Components: main
"""


def test_mirror_from_deb822_sources():
    only_security = DEB822.split("\n\n")[1]
    assert mirror_from_sources([only_security, DEB822], []) == "http://mirror.test/debian"
    assert mirror_from_sources([DEB822.replace("Types: deb\n#", "Types: deb-src\n#")], []) is None
    disabled = "Enabled: no\n" + DEB822.split("\n\n")[0]
    assert mirror_from_sources([disabled], []) is None


def test_mirror_from_one_line_sources():
    text = """\
# deb http://commented.test/debian bookworm main
deb-src http://src.test/debian bookworm main
deb http://other.test/debian-security bookworm-security main
deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] https://mirror.test/debian/ bookworm main contrib
"""
    assert mirror_from_sources([], [text]) == "https://mirror.test/debian"
    assert mirror_from_sources([], [text], suite="trixie") is None
    assert mirror_from_sources([], ["deb file:/cdrom bookworm main"]) is None


def test_machine_mirror_reads_a_directory(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    assert baseimages.machine_mirror(etc_apt=tmp_path) == "http://mirror.test/debian"
    (tmp_path / "sources.list.d" / "debian.sources").unlink()
    with pytest.raises(baseimages.BaseImageError):
        baseimages.machine_mirror(etc_apt=tmp_path)


# --- real images ------------------------------------------------------------------------------------


def test_busybox_rootfs_layout():
    busybox = baseimages.find_busybox(install=False)
    applets = baseimages.busybox_applets(busybox)
    assert {"bin/sh", "usr/sbin/httpd", "usr/bin/wget", "usr/bin/env"} <= set(applets)
    assert baseimages._is_static_elf(busybox)
    assert not baseimages._is_static_elf(__import__("pathlib").Path("/usr/bin/env"))


@pytest.mark.docker
def test_busybox_image_serves_http_and_has_wget():
    tag = images.busybox_image()
    assert tag == "berth/busybox:1" and baseimages.image_exists(tag)
    assert baseimages.build_busybox(tag) is False  # cached by tag
    with images.container("hello from busybox") as (cid, port):
        images.wait_http(f"http://127.0.0.1:{port}/")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
            assert resp.status == 200
            assert resp.read() == b"hello from busybox"
        out = images.docker("exec", cid, "wget", "-qO-", "http://127.0.0.1:8080/")
        assert out == "hello from busybox"


@pytest.mark.docker
@pytest.mark.slow
def test_python_image_runs_python3():
    tag = images.python_image()
    proc = subprocess.run(
        [images.DOCKER, "run", "--rm", tag, "python3", "-c", "import http.server, sys; print(sys.version_info[0])"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "3"
    assert baseimages.ensure_base_images(["python:3.12-slim"]) == {tag: False}


@pytest.mark.docker
@pytest.mark.slow
def test_postgres_image_keeps_the_official_contract(unique):
    """``POSTGRES_PASSWORD``/``USER``/``DB`` make the user and database on first start; a password login over
    TCP works, a wrong password does not; the data directory is ``PGDATA``."""
    tag = images.postgres_image()
    name = f"berth-test-pg-{unique}"
    env = ["-e", "POSTGRES_PASSWORD=pw-" + unique, "-e", "POSTGRES_USER=shop", "-e", "POSTGRES_DB=orders"]
    images.docker("run", "-d", "--label", images.TEST_LABEL, "--name", name, *env, tag)
    try:

        def psql(password: str) -> subprocess.CompletedProcess[str]:
            argv = ["exec", "-e", f"PGPASSWORD={password}", name, "psql", "-h", "127.0.0.1", "-U", "shop", "-d"]
            argv += ["orders", "-tAc", "SELECT current_user || '@' || current_database()"]
            return subprocess.run([images.DOCKER, *argv], capture_output=True, text=True, timeout=30)

        deadline = time.monotonic() + 60
        while (got := psql("pw-" + unique)).returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.3)
        assert got.stdout.strip() == "shop@orders", got.stderr
        wrong = psql("not-the-password")
        assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr
        pgdata = images.docker("exec", name, "sh", "-c", 'echo "$PGDATA"; ls "$PGDATA"')
        assert pgdata.startswith("/var/lib/postgresql/data\n") and "PG_VERSION" in pgdata
    finally:
        images.remove_container(name)


def test_ensure_base_images_rejects_unknown_names():
    with pytest.raises(ValueError):
        baseimages.ensure_base_images(["postgres:16"])
    with pytest.raises(ValueError):
        baseimages.ensure_base_images(["mysql:8"])


@pytest.mark.docker
def test_busybox_build_is_cached_by_tag(unique):
    tag = f"berth-test/busybox:{unique}"
    try:
        assert baseimages.build_busybox(tag) is True
        assert baseimages.image_exists(tag)
        assert baseimages.build_busybox(tag) is False
        out = images.docker("run", "--rm", tag, "sh", "-c", "test -d /tmp && test -d /www && echo ok")
        assert out == "ok"
    finally:
        subprocess.run([images.DOCKER, "rmi", "-f", tag], capture_output=True)
