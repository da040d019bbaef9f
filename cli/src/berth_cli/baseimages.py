"""Local base images, made without a registry: busybox-static and debootstrap, then ``docker import``.

No registry is reachable from a Berth machine (air-gapped installs and the test machines alike), so the
images that applications start from are made here and cached by tag: a build is skipped when
``docker image inspect NAME:TAG`` succeeds. Official image names in user configuration (``python:3.12-slim``)
are mapped to these local images by the ``BERTH_IMAGE_MAP`` setting (:func:`image_map`, :func:`resolve_image`).

Everything runs through the docker CLI with argv lists; no shell is involved. The Debian mirror for
debootstrap is read from the machine's apt sources at run time and never written into the repository.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from berth_cli.aptsources import http_uri, mirror_from_sources
from berth_common.images import (
    BUSYBOX_IMAGE,
    DEFAULT_IMAGE_MAP,
    MARIADB_IMAGE,
    POSTGRES_IMAGE,
    PYTHON_IMAGE,
    REDIS_IMAGE,
    ImageMapError,
    check_ref,
    parse_image_map,
    resolve_image,
)
from berth_common.images import image_map as common_image_map

__all__ = [
    "BUSYBOX_IMAGE",
    "DEFAULT_IMAGE_MAP",
    "MARIADB_IMAGE",
    "POSTGRES_IMAGE",
    "PYTHON_IMAGE",
    "REDIS_IMAGE",
    "BaseImageError",
    "ImageMapError",
    "check_ref",
    "ensure_base_images",
    "image_map",
    "machine_mirror",
    "mirror_from_sources",
    "parse_image_map",
    "resolve_image",
]

DOCKER = "/usr/bin/docker"
IMAGE_FILES = Path(__file__).parent / "imagefiles"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_SUITE_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]{0,99}$")


class BaseImageError(RuntimeError):
    """A base image could not be made (missing tool, no mirror, a command failed)."""


# --- the image map (pure) ----------------------------------------------------------------------------


def image_map(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The defaults, overridden and extended by ``BERTH_IMAGE_MAP`` from ``env`` (the process environment)."""
    env = os.environ if env is None else env
    return common_image_map(env.get("BERTH_IMAGE_MAP", ""))


# --- apt sources ---------------------------------------------------------------------------------------


def machine_mirror(suite: str = "bookworm", etc_apt: Path = Path("/etc/apt")) -> str:
    """The mirror from this machine's apt sources, read at run time."""
    listed = etc_apt / "sources.list.d"
    deb822 = [p.read_text() for p in sorted(listed.glob("*.sources"))]
    lists = [etc_apt / "sources.list", *sorted(listed.glob("*.list"))]
    found = mirror_from_sources(deb822, [p.read_text() for p in lists if p.is_file()], suite)
    if found is None:
        raise BaseImageError(f"no apt source for {suite!r} in {etc_apt}; cannot debootstrap")
    return found


# --- docker --------------------------------------------------------------------------------------------


def _run(argv: list[str], *, input: bytes | None = None, timeout: float = 600) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, input=input, capture_output=True, timeout=timeout, check=False)


def image_exists(tag: str) -> bool:
    return _run([DOCKER, "image", "inspect", "--format", "{{.Id}}", check_ref(tag)], timeout=30).returncode == 0


def docker_import(
    source: bytes | Path, tag: str, *, env: Mapping[str, str], cmd: list[str], entrypoint: list[str] | None = None
) -> None:
    """``docker import - tag`` from a tar in memory, or from ``tar -C DIR -c .`` joined by a pipe (no shell)."""
    argv = [DOCKER, "import", *(a for k, v in env.items() for a in ("--change", f"ENV {k}={v}"))]
    if entrypoint:
        argv += ["--change", f"ENTRYPOINT {json.dumps(entrypoint)}"]
    argv += ["--change", f"CMD {json.dumps(cmd)}", "-", check_ref(tag)]
    if isinstance(source, bytes):
        proc, tar_rc, tar_err = _run(argv, input=source), 0, b""
    else:
        tar_argv = ["tar", "--numeric-owner", "-C", str(source), "-c", "."]
        with subprocess.Popen(tar_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as tar:
            proc = subprocess.run(argv, stdin=tar.stdout, capture_output=True, timeout=900, check=False)
            _, tar_err = tar.communicate(timeout=60)
            tar_rc = tar.returncode
    if proc.returncode != 0 or tar_rc != 0:
        err = (proc.stderr + tar_err).decode(errors="replace").strip()[-2000:]
        raise BaseImageError(f"docker import {tag} failed: {err}")


# --- busybox -------------------------------------------------------------------------------------------


def _is_static_elf(path: Path) -> bool:
    """True for an ELF64 executable without a PT_INTERP header (no dynamic loader needed)."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return False
    order: Literal["little", "big"] = "little" if data[5] == 1 else "big"
    phoff = int.from_bytes(data[0x20:0x28], order)
    phentsize = int.from_bytes(data[0x36:0x38], order)
    phnum = int.from_bytes(data[0x38:0x3A], order)
    for i in range(phnum):
        start = phoff + i * phentsize
        if int.from_bytes(data[start : start + 4], order) == 3:  # PT_INTERP
            return False
    return True


def find_busybox(install: bool = True) -> Path:
    """A statically linked busybox (Debian's busybox-static), installed with apt-get if missing."""
    for candidate in (Path("/bin/busybox"), Path("/usr/bin/busybox")):
        if candidate.exists() and _is_static_elf(candidate):
            return candidate
    if install and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        proc = subprocess.run(
            ["apt-get", "install", "-y", "-q", "busybox-static"], capture_output=True, env=env, check=False, timeout=600
        )
        if proc.returncode == 0:
            return find_busybox(install=False)
    raise BaseImageError("a static busybox is needed: apt-get install busybox-static")


def busybox_applets(busybox: Path) -> list[str]:
    """Applet paths relative to the root (``bin/sh``, ``usr/bin/wget``), from ``busybox --list-full``."""
    proc = _run([str(busybox), "--list-full"], timeout=30)
    paths = [p.strip().lstrip("/") for p in proc.stdout.decode().splitlines() if p.strip()]
    if proc.returncode != 0 or not paths:
        proc = _run([str(busybox), "--list"], timeout=30)
        paths = [f"bin/{name.strip()}" for name in proc.stdout.decode().splitlines() if name.strip()]
    ok = re.compile(r"^(bin|sbin|usr/bin|usr/sbin)/[A-Za-z0-9_.\[\]-]+$")
    return sorted({p for p in paths if ok.fullmatch(p) and p != "bin/busybox"})


PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"


def busybox_rootfs_tar(busybox: Path, applets: list[str]) -> bytes:
    """The rootfs as an uncompressed tar: /bin/busybox, a symlink per applet, /tmp, /www, /etc."""
    buf = io.BytesIO()

    def add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, 0
        tar.addfile(info)

    def add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), mode, 0
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "www", "root", "var", "proc", "sys", "dev"):
            add_dir(tar, d, 0o700 if d == "root" else 0o755)
        add_dir(tar, "tmp", 0o1777)
        add_dir(tar, "var/tmp", 0o1777)
        add_file(tar, "bin/busybox", busybox.read_bytes(), 0o755)
        for path in applets:
            info = tarfile.TarInfo(path)
            info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, "/bin/busybox", 0o777, 0
            tar.addfile(info)
        add_file(tar, "etc/passwd", PASSWD.encode())
        add_file(tar, "etc/group", GROUP.encode())
    return buf.getvalue()


def build_busybox(tag: str = BUSYBOX_IMAGE, *, force: bool = False) -> bool:
    """Make the busybox image unless ``tag`` exists. Returns True when it was built now."""
    if not force and image_exists(tag):
        return False
    busybox = find_busybox()
    docker_import(busybox_rootfs_tar(busybox, busybox_applets(busybox)), tag, env={"PATH": DEFAULT_PATH}, cmd=["sh"])
    return True


# --- debootstrap ---------------------------------------------------------------------------------------


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()).rstrip("/") + "/"
    with contextlib.suppress(OSError):
        lines = Path("/proc/mounts").read_text().splitlines()
        return [m for line in lines if len(fields := line.split()) > 1 and (m := fields[1]).startswith(prefix)]
    return []


def debootstrap_image(
    tag: str,
    include: list[str],
    *,
    suite: str = "bookworm",
    mirror: str | None = None,
    cmd: list[str] | None = None,
    force: bool = False,
    workdir: Path | None = None,
    entrypoint: str | None = None,
    env: Mapping[str, str] | None = None,
    empty: Iterable[str] = (),
) -> bool:
    """A Debian ``minbase`` image with ``include`` packages, imported as ``tag`` (skipped if it exists).

    Used for the Python base image and the database images. ``entrypoint``: the name of a script in
    ``berth_cli/imagefiles`` installed as ``/usr/local/bin/docker-entrypoint.sh`` and made the entry point
    (the official images' contract, so that the image map can stand in for them). ``empty``: directories of
    the root file system emptied before the import (what a package's installation initialised there, such
    as a data directory the entry point initialises on first start).
    """
    if not force and image_exists(check_ref(tag)):
        return False
    if not _SUITE_RE.fullmatch(suite):
        raise ValueError(f"invalid suite {suite!r}")
    for pkg in include:
        if not _PACKAGE_RE.fullmatch(pkg):
            raise ValueError(f"invalid package name {pkg!r}")
    mirror = mirror or machine_mirror(suite)
    if not http_uri(mirror):
        raise ValueError("the mirror must be an http(s) URL")
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if not Path(debootstrap).exists():
        raise BaseImageError("debootstrap is not installed: apt-get install debootstrap")
    tmp = Path(tempfile.mkdtemp(prefix="berth-rootfs-", dir=workdir))
    rootfs = tmp / "rootfs"
    try:
        argv = [debootstrap, "--variant=minbase"]
        if include:
            argv.append("--include=" + ",".join(include))
        proc = _run([*argv, suite, str(rootfs), mirror], timeout=1800)
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).decode(errors="replace").strip()[-2000:]
            raise BaseImageError(f"debootstrap {suite} failed: {tail}")
        for leftover in (rootfs / "var/cache/apt/archives").glob("*.deb"):
            leftover.unlink()
        for lists in (rootfs / "var/lib/apt/lists").glob("*_*"):
            lists.unlink()
        for directory in empty:
            target = rootfs / directory.strip("/")
            if target.resolve().is_relative_to(rootfs.resolve()) and target.is_dir():
                for child in target.iterdir():
                    shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        entry: list[str] | None = None
        if entrypoint:
            script = rootfs / "usr/local/bin/docker-entrypoint.sh"
            script.write_bytes((IMAGE_FILES / entrypoint).read_bytes())
            script.chmod(0o755)
            entry = ["/usr/local/bin/docker-entrypoint.sh"]
        image_env = {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8", **(env or {})}
        docker_import(rootfs, tag, env=image_env, cmd=cmd or ["bash"], entrypoint=entry)
    finally:
        mounted = _mounts_under(tmp)
        if mounted:  # never delete through a mount left behind by a failed debootstrap
            raise BaseImageError(f"mounts left under {tmp}: {mounted}; unmount them and remove it")
        shutil.rmtree(tmp, ignore_errors=True)
    return True


def build_python(tag: str = PYTHON_IMAGE, *, force: bool = False) -> bool:
    return debootstrap_image(tag, ["python3"], cmd=["python3"], force=force)


def build_postgres(tag: str = POSTGRES_IMAGE, *, force: bool = False) -> bool:
    """Debian's PostgreSQL with the official image's entry point (POSTGRES_PASSWORD, POSTGRES_USER, ...)."""
    return debootstrap_image(
        tag,
        ["postgresql"],
        cmd=["postgres"],
        force=force,
        entrypoint="postgres-entrypoint.sh",
        env={"PGDATA": "/var/lib/postgresql/data"},
    )


def build_mariadb(tag: str = MARIADB_IMAGE, *, force: bool = False) -> bool:
    """Debian's MariaDB with the official image's entry point (MARIADB_ROOT_PASSWORD, MARIADB_DATABASE,
    MARIADB_USER, MARIADB_PASSWORD; data in /var/lib/mysql, initialised on first start)."""
    return debootstrap_image(
        tag,
        ["mariadb-server", "mariadb-client"],
        cmd=["mariadbd"],
        force=force,
        entrypoint="mariadb-entrypoint.sh",
        empty=["var/lib/mysql"],
    )


def build_redis(tag: str = REDIS_IMAGE, *, force: bool = False) -> bool:
    """Debian's Redis with the official image's entry point (data in /data; the password is the server's
    ``--requirepass`` option)."""
    return debootstrap_image(
        tag, ["redis-server", "redis-tools"], cmd=["redis-server"], force=force, entrypoint="redis-entrypoint.sh"
    )


# --- all of them -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaseImage:
    tag: str
    build: Callable[..., bool]
    description: str


BASE_IMAGES: dict[str, BaseImage] = {
    BUSYBOX_IMAGE: BaseImage(BUSYBOX_IMAGE, build_busybox, "busybox-static: sh, httpd, wget (2 MB, seconds)"),
    PYTHON_IMAGE: BaseImage(PYTHON_IMAGE, build_python, "Debian bookworm minbase with python3 (about 40 s)"),
    POSTGRES_IMAGE: BaseImage(POSTGRES_IMAGE, build_postgres, "Debian bookworm's PostgreSQL 15 (about 60 s)"),
    MARIADB_IMAGE: BaseImage(MARIADB_IMAGE, build_mariadb, "Debian bookworm's MariaDB 10.11 (about 60 s)"),
    REDIS_IMAGE: BaseImage(REDIS_IMAGE, build_redis, "Debian bookworm's Redis 7 (about 40 s)"),
}
_ALIASES = {
    "busybox": BUSYBOX_IMAGE,
    "python": PYTHON_IMAGE,
    "postgres": POSTGRES_IMAGE,
    "mariadb": MARIADB_IMAGE,
    "redis": REDIS_IMAGE,
}


def ensure_base_images(names: Iterable[str] | None = None, *, force: bool = False) -> dict[str, bool]:
    """Make the named base images (all by default) that are missing; ``{tag: built_now}``.

    A name is a local tag (``berth/busybox:1``), a short alias (``busybox``, ``python``) or an official
    name the image map resolves to one of them (``python:3.12-slim``).
    """
    wanted: list[str] = []
    mapping = image_map()
    for name in list(BASE_IMAGES) if names is None else names:
        tag = _ALIASES.get(name) or (name if name in BASE_IMAGES else resolve_image(name, mapping))
        if tag not in BASE_IMAGES:
            raise ValueError(f"unknown base image {name!r}; known: {', '.join([*BASE_IMAGES, *_ALIASES])}")
        if tag not in wanted:
            wanted.append(tag)
    # One maker at a time on this machine (parallel test workers, two `berth images base`): the second
    # waits and then finds the image made.
    lock_path = Path(tempfile.gettempdir()) / "berth-base-images.lock"
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return {tag: BASE_IMAGES[tag].build(tag, force=force) for tag in wanted}
