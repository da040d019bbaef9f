"""A detected build listens on the service's port: a repository holding only ``index.html``, deployed as a
web service on port 80 (not the 8080 a generated Dockerfile used to hard-code), goes live. Real builder (git
daemon on loopback, Docker build), scheduler, proxy-sync and Traefik on one bus."""

from __future__ import annotations

import pytest

from tests.builder.support import GitDaemon, make_repo, publish_bare, remove_built_images, start_builder, stop_builder
from tests.scheduler.platform import wait_served

pytestmark = [pytest.mark.slow, pytest.mark.docker]


async def test_static_site_on_port_80_deploys(platform, database, busybox, app_id, unique, tmp_path):
    daemon = GitDaemon(tmp_path / "served").start()
    builder = await start_builder(platform.nats_url, database, tmp_path / "builder")
    name = f"s{unique}"
    host = f"web-{name}.localhost"
    try:
        make_repo(tmp_path / "repo", {"index.html": f"static on 80 {unique}\n"})
        publish_bare(tmp_path / "repo", daemon.base, "site.git")
        spec = {
            "name": name,
            "source": {"kind": "git", "repository": daemon.url("site.git"), "ref": "main", "dockerfile": None},
            "services": [{"kind": "web", "name": "web", "port": 80, "health_path": "/", "hosts": [host]}],
            "stop_timeout_s": 3,
        }
        dep = await platform.deploy(app_id, spec)
        done = await platform.wait(dep, timeout=180)
        assert done["type"] == "evt.deployment.succeeded", done
        await wait_served(platform, host, f"static on 80 {unique}")
    finally:
        await stop_builder(builder)
        daemon.stop()
        remove_built_images(name)
