"""A rollback of a compose application whose services build their own images, through the REST API across
the real processes of `berth up`: v1 and v2 are built and deployed (each service its own image), then a
rollback to v1 runs the images built for v1 again, per service, with no build: v1's content answers through
Traefik and the containers run v1's tags."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import Platform
from tests.e2e.test_compose_build_deploy import clients, containers_of, create_stack, leftovers_removed, write_repo
from tests.e2e.test_compose_deploy import docker
from tests.e2e.test_deploy_flow import git, wait_deployment
from tests.support.images import busybox_image

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def platform(shared_platform: Platform) -> Platform:
    return shared_platform  # its project and applications are this file's own (tests/conftest.py)


async def test_a_rollback_runs_the_images_each_service_built_for_v1(platform, tmp_path: Path, unique: str):
    base = busybox_image()
    repo = tmp_path / "stack"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write_repo(repo, base)
    name = f"rb{unique}"[:20]
    api, proxy = clients(platform)
    app_id = None

    async def serves(hosts: dict[str, str], expected: dict[str, str]) -> None:
        for service, text in expected.items():
            resp = await proxy.get("/", headers={"Host": hosts[service]})
            assert (resp.status_code, resp.text) == (200, text), service

    try:
        app = await create_stack(api, f"rollback-{unique}", name, repo, base)
        app_id = app["id"]
        hosts = {s["name"]: s["hosts"][0] for s in app["services"] if s.get("hosts")}

        # v1, then v2 with other content in both built services
        r = await api.post(f"/v1/applications/{app_id}/deployments", json={"options": {"drain_grace_s": 0.2}})
        assert r.status_code == 202, r.text
        v1 = await wait_deployment(api, r.json()["id"], timeout=240)
        assert v1["status"] == "succeeded", (v1["reason"], v1["step"], v1["detail"])
        await serves(hosts, {"front": "front v1", "back": "hello-from-back"})
        write_repo(repo, base, back_extra='RUN printf %s " v2" >> /www/index.html\n')
        (repo / "front" / "index.html").write_text("front v2")
        git(repo, "commit", "-q", "-am", "v2")
        r = await api.post(f"/v1/applications/{app_id}/deployments", json={"options": {"drain_grace_s": 0.2}})
        assert r.status_code == 202, r.text
        v2 = await wait_deployment(api, r.json()["id"], timeout=240)
        assert v2["status"] == "succeeded", (v2["reason"], v2["detail"])
        await serves(hosts, {"front": "front v2", "back": "hello-from-back v2"})

        # the rollback: no build, each service on the image built for v1
        r = await api.post(f"/v1/applications/{app_id}/rollback", json={"options": {"drain_grace_s": 0.2}})
        assert r.status_code == 202, r.text
        assert r.json()["rollback_of"] == v1["id"]
        back = await wait_deployment(api, r.json()["id"], timeout=120)
        assert back["status"] == "succeeded", (back["reason"], back["detail"])
        await serves(hosts, {"front": "front v1", "back": "hello-from-back"})
        short = v1["id"].replace("-", "")[:8]
        running = containers_of(app_id)
        assert {s: (c["image"], c["deployment"]) for s, c in running.items() if s != "cache"} == {
            "front": (f"berth/{name}-front:{short}", back["id"]),
            "back": (f"berth/{name}-back:{short}", back["id"]),
        }
        short2 = v2["id"].replace("-", "")[:8]
        for service in ("front", "back"):  # nothing was built for the rollback
            tags = docker("images", "--format", "{{.Tag}}", f"berth/{name}-{service}").split()
            assert sorted(tags) == sorted([short, short2]), (service, tags)
    finally:
        await api.aclose()
        await proxy.aclose()
        leftovers_removed(app_id, name)
