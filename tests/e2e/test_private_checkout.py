"""A checkout in a private (0700) directory, as root: `berth up` and a database-backed test work from there,
and no directory outside the data directory changes mode (Postgres runs as an unprivileged user, which
reaches its binaries and cluster by design, never because Berth opened a parent).

The checkout is a copy of this repository's files as they stand in the work tree (what a clone of
the current commit holds, with any uncommitted edits), with its own virtual environment installed offline
from the package cache the main install filled.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth_cli import pgplace
from berth_cli.platform import free_port_base, leftovers
from tests.e2e.conftest import mentioning, platform_env

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the private-directory case is about running as root"),
]


def _copy_checkout(dest: Path) -> None:
    files = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = REPO / os.fsdecode(name)
        if not src.exists():  # deleted in the work tree
            continue
        target = dest / os.fsdecode(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)


def _install_venv(checkout: Path) -> None:
    """The checkout's own .venv, from requirements.lock, offline from the cache of the main install."""
    subprocess.run([sys.executable, "-m", "venv", str(checkout / ".venv")], check=True)
    uv = Path(sys.executable).parent / "uv"
    env = {**os.environ, "VIRTUAL_ENV": str(checkout / ".venv")}
    proc = subprocess.run(
        [str(uv), "pip", "install", "-q", "--offline", "-r", "requirements.lock"],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def _modes(checkout: Path, data_dir: Path) -> dict[str, int]:
    """The mode of every directory outside the data directory that Berth could touch: the checkout's
    parents up to / and every directory of the checkout (its .venv included)."""
    seen = {str(p): stat.S_IMODE(p.stat().st_mode) for p in [checkout, *checkout.parents]}
    for dirpath, dirnames, _ in os.walk(checkout):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d != data_dir]
        for d in dirnames:
            seen[str(here / d)] = stat.S_IMODE((here / d).stat().st_mode)
    return seen


@pytest.fixture(scope="module")
def private_checkout() -> Iterator[Path]:
    top = Path(tempfile.mkdtemp(prefix="berth-private-"))
    assert stat.S_IMODE(top.stat().st_mode) == 0o700
    checkout = top / "berth"
    try:
        _copy_checkout(checkout)
        _install_venv(checkout)
        yield checkout
    finally:
        shutil.rmtree(pgplace.system_home(checkout / ".berth"), ignore_errors=True)
        shutil.rmtree(top, ignore_errors=True)


def test_berth_up_from_a_private_checkout_changes_no_mode(private_checkout: Path) -> None:
    data_dir = private_checkout / ".berth"
    before = _modes(private_checkout, data_dir)
    env = platform_env(free_port_base())
    berth = str(private_checkout / ".venv" / "bin" / "berth")
    try:
        up = subprocess.run(
            [berth, "up", "--data-dir", str(data_dir)], env=env, capture_output=True, text=True, timeout=300
        )
        assert up.returncode == 0, f"berth up failed:\n{up.stdout}\n{up.stderr}"
        status = subprocess.run(
            [berth, "status", "--data-dir", str(data_dir)], env=env, capture_output=True, text=True, timeout=60
        )
        assert status.returncode == 0, status.stdout + status.stderr
        cluster = pgplace.system_home(data_dir) / "data"
        assert (cluster / "PG_VERSION").exists()  # the cluster lives where the Postgres user reaches it
        assert (pgplace.system_home(data_dir) / "owner").read_text().strip() == str(data_dir.resolve())
    finally:
        subprocess.run([berth, "down", "--all", "--data-dir", str(data_dir)], env=env, capture_output=True, timeout=120)
        for p in {*leftovers(data_dir), *mentioning(data_dir)}:
            p.kill()
    after = _modes(private_checkout, data_dir)
    changed = {path: (oct(before[path]), oct(after.get(path, 0))) for path in before if after.get(path) != before[path]}
    assert changed == {}


def test_a_database_backed_test_passes_from_a_private_checkout(private_checkout: Path) -> None:
    before = _modes(private_checkout, private_checkout / ".berth")
    proc = subprocess.run(
        [
            str(private_checkout / ".venv" / "bin" / "pytest"),
            "-p",
            "no:xdist",
            "-p",
            "no:cacheprovider",
            "-q",
            "tests/common/test_db_outbox.py",
        ],
        cwd=private_checkout,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "error" not in proc.stdout.splitlines()[-1]
    after = _modes(private_checkout, private_checkout / ".berth")
    assert {p for p in before if after.get(p) != before[p]} == set()
