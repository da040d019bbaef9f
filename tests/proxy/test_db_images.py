"""The local database images for one-click databases: MariaDB and Redis made by debootstrap keep the official
images' contracts (the image map sends ``mariadb:10.11`` and ``redis:7`` to them)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import pytest

from berth_cli.baseimages import resolve_image
from berth_common.images import DEFAULT_IMAGE_MAP
from tests.support import images


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("mariadb:10.11", "berth/mariadb:10.11-bookworm"),
        ("docker.io/library/mariadb:10.11", "berth/mariadb:10.11-bookworm"),
        ("mariadb:11.4", "mariadb:11.4"),  # Debian bookworm's MariaDB is 10.11: no stand-in for 11
        ("mariadb:10.6", "mariadb:10.6"),
        ("redis:7", "berth/redis:7-bookworm"),
        ("redis:7.0", "berth/redis:7-bookworm"),
        ("redis:7.2", "redis:7.2"),  # bookworm's Redis is 7.0
        ("redis:6.2", "redis:6.2"),
        ("mysql:8.4", "mysql:8.4"),
        ("mongo:7.0", "mongo:7.0"),
    ],
)
def test_the_image_map_sends_exactly_the_versions_made_here(ref, expected):
    assert resolve_image(ref, DEFAULT_IMAGE_MAP) == expected


def _until(
    check: Callable[[], subprocess.CompletedProcess[str]], timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    deadline = time.monotonic() + timeout
    while (got := check()).returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.3)
    return got


def _exec(name: str, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    flags = [a for k, v in (env or {}).items() for a in ("-e", f"{k}={v}")]
    return subprocess.run([images.DOCKER, "exec", *flags, name, *argv], capture_output=True, text=True, timeout=60)


@pytest.mark.docker
@pytest.mark.slow
def test_mariadb_image_keeps_the_official_contract(unique):
    """MARIADB_ROOT_PASSWORD/DATABASE/USER/PASSWORD make the accounts and the database on first start (values
    with quotes and backslashes included); password logins over TCP work, wrong or empty ones do not; the
    data is in /var/lib/mysql and root@localhost also logs in through the unix socket."""
    tag = images.mariadb_image()
    name = f"berth-test-mariadb-{unique}"
    root_pw, user_pw = "r'oo\\t-" + unique, "p'w-" + unique
    env = ["-e", f"MARIADB_ROOT_PASSWORD={root_pw}", "-e", "MARIADB_DATABASE=orders", "-e", "MARIADB_USER=shop"]
    images.docker(
        "run", "-d", "--label", images.TEST_LABEL, "--name", name, *env, "-e", f"MARIADB_PASSWORD={user_pw}", tag
    )
    try:

        def sql(user: str, password: str, query: str) -> subprocess.CompletedProcess[str]:
            argv = ["mariadb", "-h", "127.0.0.1", "-u", user, "-N", "-e", query]
            return _exec(name, *argv, env={"MYSQL_PWD": password})

        assert _until(lambda: sql("shop", user_pw, "SELECT 1")).returncode == 0
        got = sql(
            "shop", user_pw, "USE orders; SELECT CONCAT(SUBSTRING_INDEX(current_user(), '@', 1), '/', database())"
        )
        assert got.stdout.strip() == "shop/orders", got.stderr
        assert sql("root", root_pw, "SELECT 1").stdout.strip() == "1"
        wrong = sql("shop", "not-the-password", "SELECT 1")
        assert wrong.returncode != 0 and "Access denied" in wrong.stderr
        assert sql("root", "", "SELECT 1").returncode != 0  # no root account without a password is left
        socket = _exec(name, "mariadb", "-uroot", "-N", "-e", "SELECT 1")
        assert socket.stdout.strip() == "1", socket.stderr
        ping = _exec(
            name, "mariadb-admin", "ping", "--silent", "-h", "127.0.0.1", "-u", "shop", env={"MYSQL_PWD": user_pw}
        )
        assert ping.returncode == 0 and "alive" in ping.stdout
        assert "ibdata1" in images.docker("exec", name, "ls", "/var/lib/mysql")
        assert user_pw not in images.docker("logs", name) and root_pw not in images.docker("logs", name)
    finally:
        images.remove_container(name)


@pytest.mark.docker
@pytest.mark.slow
def test_mariadb_image_refuses_to_start_without_a_root_password(unique):
    name = f"berth-test-mariadb-{unique}"
    proc = subprocess.run(
        [images.DOCKER, "run", "--rm", "--label", images.TEST_LABEL, "--name", name, images.mariadb_image()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "MARIADB_ROOT_PASSWORD is required" in proc.stderr


@pytest.mark.docker
@pytest.mark.slow
def test_redis_image_keeps_the_official_contract(unique):
    """``redis-server --requirepass PW`` (the official image's way): a client needs the password, the server
    listens on every address, runs as redis and keeps its data in /data across a restart."""
    tag = images.redis_image()
    name = f"berth-test-redis-{unique}"
    password = "pw-" + unique
    images.docker(
        "run", "-d", "--label", images.TEST_LABEL, "--name", name, tag, "redis-server", "--requirepass", password
    )
    try:

        def cli(*argv: str, auth: str | None = password) -> subprocess.CompletedProcess[str]:
            env = {"REDISCLI_AUTH": auth} if auth is not None else {}
            return _exec(name, "redis-cli", "-h", "127.0.0.1", *argv, env=env)

        got = _until(lambda: cli("ping"))
        assert got.stdout.strip() == "PONG", got.stderr
        assert "NOAUTH" in cli("ping", auth=None).stdout
        wrong = cli("ping", auth="wrong")
        assert "WRONGPASS" in wrong.stderr and "PONG" not in wrong.stdout
        assert cli("set", "k", "kept").stdout.strip() == "OK"
        assert images.docker("exec", name, "stat", "-c", "%U", "/proc/1") == "redis"
        images.docker("restart", name, timeout=60)
        got = _until(lambda: cli("get", "k"))
        assert got.stdout.strip() == "kept"
        assert "dump.rdb" in images.docker("exec", name, "ls", "/data")
    finally:
        images.remove_container(name)
