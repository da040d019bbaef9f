"""A compose application's read-only root, secret file and internal network on the real scheduler, bus,
Postgres, proxy-sync, Traefik and Docker: the web service serves its files through the proxy with a
read-only root and reads its secret file, the service on the internal network only sits there alone (the
network made Docker-internal), and the application's removal removes that network too."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.scheduler.conftest import remove_labelled
from tests.scheduler.platform import containers_of, wait_served

pytestmark = [pytest.mark.slow, pytest.mark.docker]
SECRET = "pw-Zq81kX 'x'"


def _app(busybox: str, host: str) -> dict:
    sleep = ["sh", "-c", "exec sleep 3600"]
    return {
        "name": "rt",
        "source": {"kind": "image", "image": busybox},
        "services": [
            {
                "kind": "web",
                "name": "web",
                "port": 8080,
                "hosts": [host],
                "command": ["httpd", "-f", "-p", "8080", "-h", "/srv/www"],
                "files": [{"source": "www", "target": "/srv/www"}],
                "host_limits": {"read_only_rootfs": True, "reservations": {"memory_mb": 16}},
                "secret_files": [{"target": "/run/secrets/pw", "mode": 0o400, "value": SECRET}],
            },
            {"kind": "worker", "name": "api", "command": sleep, "internal_network": "also"},
            {"kind": "worker", "name": "db", "command": sleep, "internal_network": "only"},
        ],
        "files": [{"path": "www/index.html", "content": "page v1\n"}],
        "private_network": True,
        "stop_timeout_s": 1,
    }


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False).stdout.strip()


async def test_a_read_only_root_a_secret_file_and_the_internal_network_deploy_and_go(platform, busybox, app_id, unique):
    host = f"rt-{unique}.localhost"
    dep = await platform.deploy(app_id, _app(busybox, host))
    internal = f"berth-app-{app_id}-internal"
    try:
        assert (await platform.wait(dep, timeout=90))["type"] == "evt.deployment.succeeded", platform.steps(dep)
        await wait_served(platform, host, "page v1")
        names = {n.split("-")[-3]: n for n, _ in containers_of(app_id)}  # berth-rt-<service>-<deployment>-1
        web, db = names["web"], names["db"]
        touch = "(touch /x) 2>/dev/null && echo written || echo refused"
        assert _run(["docker", "exec", web, "sh", "-c", f"{touch}; cat /run/secrets/pw"]) == f"refused\n{SECRET}"
        info = json.loads(_run(["docker", "inspect", web]))[0]
        assert info["HostConfig"]["ReadonlyRootfs"] is True and info["HostConfig"]["MemoryReservation"] == 16 << 20
        assert SECRET not in json.dumps(info)
        networks = json.loads(_run(["docker", "inspect", "-f", "{{json .NetworkSettings.Networks}}", db]))
        assert list(networks) == [internal]
        assert _run(["docker", "network", "inspect", "-f", "{{.Internal}}", internal]) == "true"
        await platform.remove(app_id, drain_grace_s=0.2)
        done = await platform.wait_app(app_id, timeout=30)
        assert done["type"] == "evt.application.removed", done
        assert _run(["docker", "network", "ls", "-q", "--filter", f"name=^{internal}$"]) == ""
    finally:
        remove_labelled(f"berth.app={app_id}")
        subprocess.run(["docker", "network", "rm", internal], capture_output=True, check=False)
        found = ["docker", "volume", "ls", "-q", "--filter", f"label=berth.app={app_id}"]
        for volume in _run(found).split():
            subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True, check=False)
