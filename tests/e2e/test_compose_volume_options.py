"""A compose application with a tmpfs volume (``driver: local``, ``driver_opts: {type: tmpfs, ...}``) deployed
through the REST API across the real processes of `berth up` (issue 14): the volume is made with its options,
the service's container writes a file there and /proc/mounts shows it on a tmpfs of the asked size; a second
deployment asking another size keeps the volume (Docker cannot change its options) and says so in its log."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

import httpx
import pytest

from tests.e2e.conftest import Platform
from tests.e2e.test_deploy_flow import wait_deployment
from tests.support.images import busybox_image

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def platform(shared_platform: Platform) -> Platform:
    return shared_platform  # its projects and applications are this file's own (tests/conftest.py)


def docker(*args: str) -> str:
    out = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _compose(image: str, size: str) -> str:
    return (
        "services:\n  cache:\n"
        f"    image: {image}\n"
        "    command: [sleep, '3600']\n"
        "    volumes: [scratch:/scratch]\n"
        "volumes:\n  scratch:\n    driver: local\n"
        f"    driver_opts: {{type: tmpfs, device: tmpfs, o: 'size={size},mode=1777'}}\n"
    )


async def test_a_tmpfs_volume_holds_a_file_on_tmpfs_and_a_changed_size_is_reported(platform, unique: str):
    base = busybox_image()
    token = platform.paths.admin_token.read_text().strip()
    api = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{platform.ports['api']}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    app_id = None
    try:
        r = await api.post("/v1/projects", json={"name": f"scratch-{unique}"})
        assert r.status_code == 201, r.text
        env_id = r.json()["environments"][0]["id"]
        body = {"name": "scratch", "compose": {"inline": _compose(base, "8m")}, "stop_timeout_s": 1}
        r = await api.post(f"/v1/environments/{env_id}/applications", json=body)
        assert r.status_code == 201, r.text
        app_id = r.json()["id"]
        translated = r.json()["compose"]["translated"]
        assert translated["volume_options"] == {
            "scratch": {"type": "tmpfs", "device": "tmpfs", "o": "size=8m,mode=1777"}
        }

        r = await api.post(f"/v1/applications/{app_id}/deployments", json={"options": {"drain_grace_s": 0.2}})
        assert r.status_code == 202, r.text
        dep = await wait_deployment(api, r.json()["id"])
        assert dep["status"] == "succeeded", dep
        volume = json.loads(docker("volume", "inspect", f"berth-{app_id}-scratch"))[0]
        assert volume["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=8m,mode=1777"}
        (name,) = docker("ps", "-q", "--filter", f"label=berth.app={app_id}").split()
        written = docker("exec", name, "sh", "-c", "echo berth > /scratch/f && cat /scratch/f")
        assert written == "berth"
        mounts = docker("exec", name, "grep", " /scratch ", "/proc/mounts")
        assert mounts.startswith("tmpfs /scratch tmpfs rw,") and "size=8192k" in mounts, mounts

        r = await api.patch(f"/v1/applications/{app_id}", json={"compose": {"inline": _compose(base, "16m")}})
        assert r.status_code == 200, r.text
        r = await api.post(f"/v1/applications/{app_id}/deployments", json={"options": {"drain_grace_s": 0.2}})
        assert r.status_code == 202, r.text
        again = await wait_deployment(api, r.json()["id"])
        assert again["status"] == "succeeded", again
        logs = (await api.get(f"/v1/deployments/{again['id']}/logs")).text
        assert "volume scratch on server local keeps the options it was made with (device=tmpfs, o=size=8m" in logs
        assert json.loads(docker("volume", "inspect", f"berth-{app_id}-scratch"))[0]["Options"] == volume["Options"]
    finally:
        if app_id is not None:
            await api.delete(f"/v1/applications/{app_id}", params={"drain_grace_s": 0.2, "delete_volumes": "true"})
            deadline = time.monotonic() + 60
            while (await api.get(f"/v1/applications/{app_id}")).status_code != 404 and time.monotonic() < deadline:
                await asyncio.sleep(0.3)
        await api.aclose()
