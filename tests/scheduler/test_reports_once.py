"""A volume that keeps other options than the spec pins is reported once per deployment, on the real
scheduler, bus, Postgres, Traefik and Docker: the server is prepared for the pre-deploy job, again for the
replicas and again for a scale of the live deployment, and the deployment's log says it once."""

from __future__ import annotations

import subprocess

import pytest

from berth_common.catalogue import docker_volume_name
from tests.scheduler.platform import web_app
from tests.scheduler.test_pre_deploy import log_of, with_job
from tests.scheduler.test_scale import scale, wait_scaled

pytestmark = [pytest.mark.slow, pytest.mark.docker]


async def test_a_volume_keeping_other_options_is_reported_once_per_deployment(platform, busybox, app_id, unique):
    volume = docker_volume_name(app_id, "cache")
    made = ["docker", "volume", "create", "--driver", "local", "--opt", "type=tmpfs", "--opt", "device=tmpfs"]
    subprocess.run([*made, "--opt", "o=size=1m", "--label", f"berth.app={app_id}", volume], check=True)
    try:
        spec = with_job(web_app(busybox, "v1", f"web-rep-{unique}.localhost"), ["sh", "-c", "echo migrated"])
        spec["services"][0]["volumes"] = [{"name": "cache", "path": "/cache"}]
        spec["volume_options"] = {"cache": {"type": "tmpfs", "device": "tmpfs", "o": "size=8m"}}
        dep = await platform.deploy(app_id, spec)
        done = await platform.wait(dep, timeout=90)
        assert done["type"] == "evt.deployment.succeeded", done
        assert "[pre-deploy] migrated" in log_of(platform, dep)
        await wait_scaled(platform, app_id, await scale(platform, app_id, {"web": 2}))
        reports = [line for line in log_of(platform, dep) if line.startswith("[preparing] volume cache")]
        assert reports == [
            "[preparing] volume cache on server local keeps the options it was made with (device=tmpfs, o=size=1m, "
            "type=tmpfs), not the ones asked now (device=tmpfs, o=size=8m, type=tmpfs): Docker cannot change a "
            "volume's options; remove the application with delete_volumes=true, or the volume on the server, to "
            "make it anew (its data is lost)"
        ]
    finally:
        ids = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=berth.app={app_id}"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False)
        subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True, check=False)
