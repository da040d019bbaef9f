"""The client against a real platform (`berth up`): log in from the data directory, create a project and an
application from a local git repository, `berth deploy` shows the build and the rollout and exits 0, the URL
`berth open --print` gives answers through Traefik, `berth status APP` shows it live, `berth run` runs a
command in the live image and exits with its code (124 when it timed out), and a deployment
whose build fails exits 1 naming the reason."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from berth_cli import components
from tests.e2e.conftest import make_platform
from tests.e2e.test_deploy_flow import commit_site, git
from tests.support.images import busybox_image

pytestmark = pytest.mark.slow


def test_login_deploy_open_status_against_berth_up(tmp_root: Path, tmp_path: Path, unique: str):
    base = busybox_image()
    repo = tmp_path / "site"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit_site(repo, f"hello from {unique}", base)
    gen = make_platform(tmp_root / f"platform-cli-{unique}")
    platform = next(gen)
    platform.env["BERTH_ALLOW_LOCAL_GIT"] = "1"
    try:
        platform.up()
        home = tmp_path / "home"
        env = {**platform.env, "HOME": str(home), "XDG_CONFIG_HOME": str(home / "config")}
        env = {k: v for k, v in env.items() if k not in {"BERTH_TOKEN", "BERTH_API_URL", "BERTH_CONTEXT"}}

        def berth(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
            argv = [components.bin_path("berth"), *args]
            return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)

        r = berth("login", "--data-dir", str(platform.paths.root))
        assert r.returncode == 0, r.stderr
        assert berth("projects", "create", "web").returncode == 0
        r = berth(
            "apps", "create", "site", "--project", "web", "--git", str(repo), "--branch", "main", "--port", "8080"
        )
        assert r.returncode == 0, r.stderr

        r = berth("deploy", "web/site")
        assert r.returncode == 0, r.stdout + r.stderr
        lines = r.stdout.splitlines()
        assert lines[0].startswith("Deployment #1 of site started (")
        assert any("index.html" in line for line in lines), r.stdout  # the build's output
        assert any(line.startswith("[routing] ") for line in lines), r.stdout  # the rollout's steps
        assert lines[-1] == "Deployment #1 of site succeeded", r.stdout

        url = berth("open", "site", "--print").stdout.strip()
        assert url.endswith(f":{platform.ports['proxy']}/"), url  # the local proxy's port, known from login
        host = urlsplit(url).hostname
        answer = httpx.get(f"http://127.0.0.1:{platform.ports['proxy']}/", headers={"Host": host}, timeout=10)
        assert (answer.status_code, answer.text) == (200, f"hello from {unique}")
        r = berth("status", "site")
        assert r.returncode == 0 and r.stdout.startswith("site: live #1 (")

        # A one-off run in the live image: its output as it came, its exit code the command's.
        r = berth("run", "site", "--", "sh", "-c", "cat /www/index.html; echo; echo oops >&2; exit 3")
        assert r.returncode == 3, r.stdout + r.stderr
        assert r.stdout == f"hello from {unique}\n"
        started, said, ended = r.stderr.splitlines()
        run_id = started.removeprefix("Run ").removesuffix(" of site (web) started")
        assert re.fullmatch(r"[0-9a-f]{32}", run_id), r.stderr
        assert (said, ended) == ("oops", f"Run {run_id} of site failed: exited with code 3")
        r = berth("run", "site", "--timeout", "1", "--", "sleep", "30")
        assert r.returncode == 124, r.stdout + r.stderr
        slow = r.stderr.splitlines()[0].removeprefix("Run ").removesuffix(" of site (web) started")
        assert r.stderr.splitlines()[-1].startswith(f"Run {slow} of site timed_out: "), r.stderr
        r = berth("run", "site", "--detach", "--", "true")
        assert r.returncode == 0 and re.fullmatch(r"[0-9a-f]{32}\n", r.stdout), r
        listed = berth("runs", "list", "site").stdout.splitlines()
        assert [row.split()[:2] for row in listed[2:]] == [[slow, "timed_out"], [run_id, "failed"]], listed

        r = berth(
            "apps", "create", "broken", "--project", "web", "--git", str(repo), "--branch", "nope", "--port", "8080"
        )
        assert r.returncode == 0, r.stderr
        r = berth("deploy", "broken")
        assert r.returncode == 1, r.stdout + r.stderr
        assert r.stdout.splitlines()[-1].startswith("Deployment #1 of broken failed: ")
    finally:
        gen.close()
