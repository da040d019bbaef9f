"""Run `berth up` on a temporary data dir and a free port range (never the defaults: a developer's
platform on this machine is left alone)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from berth_cli import appcontainers, components, dataplane
from berth_cli.baseimages import DOCKER
from berth_cli.layout import Paths, mentions_path, resolve_ports
from berth_cli.platform import free_port_base, leftovers
from tests.conftest import SHARED_PLATFORM_FILES


@dataclass
class Platform:
    paths: Paths
    env: dict[str, str]

    @property
    def ports(self) -> dict[str, int]:
        return resolve_ports(self.env)

    def berth(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        argv = [components.bin_path("berth"), *args, "--data-dir", str(self.paths.root)]
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout)

    def up(self, *extra: str) -> subprocess.CompletedProcess[str]:
        proc = self.berth("up", *extra)
        assert proc.returncode == 0, f"berth up failed:\n{proc.stdout}\n{proc.stderr}"
        return proc

    def down(self, *extra: str) -> subprocess.CompletedProcess[str]:
        proc = self.berth("down", *extra)
        assert proc.returncode == 0, f"berth down failed:\n{proc.stdout}\n{proc.stderr}"
        return proc

    def status(self) -> tuple[int, dict]:
        proc = self.berth("status", "--json", timeout=60)
        return proc.returncode, json.loads(proc.stdout)

    def state(self) -> dict:
        return json.loads(self.paths.state.read_text())


def mentioning(root: Path) -> list[psutil.Process]:
    """Every other process whose command line names the data dir (a wider net than `berth down` casts)."""
    me = psutil.Process()
    skip = {me.pid, *(p.pid for p in me.parents())}
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        if p.pid not in skip and mentions_path(p.info["cmdline"] or [], root):
            found.append(p)
    return found


def platform_env(base: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("BERTH_") and (k.endswith("_PORT") or k.endswith("_URL") or k == "BERTH_PORT_BASE"))
    }
    env.pop("BERTH_DATA_DIR", None)
    env.pop("BERTH_MIGRATE_IN_SUBPROCESS", None)  # the platform migrates as in production (tests/conftest.py)
    env["BERTH_PORT_BASE"] = str(base)
    return env


def platform_teams(platform: Platform) -> list[str]:
    """The team ids of a running platform (its admin's), or none when it is not answering."""
    try:
        token = platform.paths.admin_token.read_text().strip()
        url = f"http://127.0.0.1:{platform.ports['api']}/v1/me"
        me = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5).json()
        return [str(me["team"]["id"])]
    except (OSError, httpx.HTTPError, ValueError, KeyError, TypeError):
        return []


def remove_team_resources(teams: list[str]) -> None:
    """What a platform's apps left on this machine's engine: `berth down` keeps apps running by design, and a
    test's apps must not run on (nor hold a network address pool) through the rest of the suite."""

    def docker(*args: str) -> list[str]:
        proc = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=120, check=False)
        return proc.stdout.split()

    for team in teams:
        containers = docker("ps", "-aq", "--filter", f"label=berth.team={team}")
        if containers:
            docker("rm", "-f", *containers)
        networks = docker("network", "ls", "-q", "--filter", f"label=berth.team={team}")
        networks += docker("network", "ls", "-q", "--filter", f"name=^berth-team-{team}$")
        if networks:
            docker("network", "rm", *networks)


def make_platform(root: Path) -> Iterator[Platform]:
    platform = Platform(Paths(root), platform_env(free_port_base()))
    try:
        yield platform
    finally:
        teams = platform_teams(platform)
        platform.berth("down")  # the control plane, gracefully (its Postgres shuts down clean)
        # The data plane and the apps are thrown away: killed and removed. `berth down --all` would stop Traefik
        # gracefully and each app container within its stop timeout first, seconds that test nothing here
        # (tests/e2e/test_data_plane.py and test_traefik_upgrade.py run `down --all` themselves).
        dataplane.stop(root, timeout=0)
        remove_team_resources(sorted({*teams, *(appcontainers.known_teams(root) or [])}))
        for p in {*leftovers(root), *mentioning(root)}:  # never leave a process behind, even when a test failed
            p.kill()


@pytest.fixture(scope="module")
def split_platform(tmp_root: Path) -> Iterator[Platform]:
    root = tmp_root / "platform-split"
    gen = make_platform(root)
    platform = next(gen)
    platform.up()
    yield platform
    gen.close()


@pytest.fixture
def fresh_platform(tmp_root: Path, unique: str) -> Iterator[Platform]:
    yield from make_platform(tmp_root / f"platform-{unique}")


_shared: list[tuple[Platform, Iterator[Platform]]] = []  # the running shared platform of this process, if any


@pytest.fixture(scope="module")
def shared_platform(tmp_root: Path) -> Platform:
    """One `berth up` (local git sources allowed) for the files of SHARED_PLATFORM_FILES, which run one after
    the other (xdist hands them to one worker as one unit): made by the first, taken down after the last
    (``pytest_runtest_teardown`` below)."""
    if not _shared:
        gen = make_platform(tmp_root / f"platform-shared-{uuid.uuid4().hex[:8]}")
        platform = next(gen)
        platform.env["BERTH_ALLOW_LOCAL_GIT"] = "1"
        try:
            platform.up()
        except BaseException:
            gen.close()
            raise
        _shared.append((platform, gen))
    return _shared[0][0]


def _close_shared() -> None:
    while _shared:
        _shared.pop()[1].close()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """The shared platform goes down once the next test is not of a file that shares it."""
    if _shared and (nextitem is None or nextitem.nodeid.split("::", 1)[0] not in SHARED_PLATFORM_FILES):
        _close_shared()


def pytest_sessionfinish(session: pytest.Session) -> None:
    _close_shared()  # an interrupted run too
