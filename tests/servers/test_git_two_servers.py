"""A git application on two servers end to end: the real builder (git daemon on loopback), scheduler and
proxy-sync, two namespace test servers (each its own dockerd, sshd and Traefik made by proxy-sync).

Without a push registry the image is built once on the control plane's engine and streamed over SSH to
both servers (``docker save | docker load``), and both servers' Traefiks serve it; built on one of the
servers (``build_server``), it is streamed from that server's engine to the other one. With the team's push
registry (Debian's docker-registry with htpasswd on the test network's gateway, which the test servers'
engines take as an insecure registry) the image is built on one of the servers, pushed, and both servers
pull exactly ``pushed_ref`` with the registry's credentials; the deployment records it, and a rollback to
that digest (what the api sends) serves the first build again on both servers. The digests pulled from the
push registry that no kept deployment runs are pruned on both servers."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from berth_builder.adapters import tables as builder_tables
from berth_common import fleet
from berth_common.bus import Bus, subscriptions_confirmed
from berth_common.catalogue import BuildSucceeded
from tests.builder.support import GitDaemon, Running, commit, git, make_repo, publish_bare, start_builder, stop_builder
from tests.scheduler.platform import web_app
from tests.scheduler.test_git_flow import app, dockerfile
from tests.servers import test_placement_e2e as e2e
from tests.servers.test_placement_e2e import HOST, _changed, _served
from tests.support import registry as reg
from tests.support.images import busybox_image, traefik_image
from tests.support.testservers import TestServer, load_images, make_net, start_servers, tear_down

pytestmark = pytest.mark.slow
USER, PASSWORD = "ci", "pw-two-servers-never-shown"
placed = e2e.placed  # the scheduler and proxy-sync, with both servers announced


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[TestServer], reg.Registry | None]]:
    """Two servers on a test network, started at once, with Berth's Traefik image; a push registry on its
    gateway when docker-registry is installed."""
    busybox_image()
    net = make_net()
    registry = None
    made: list[TestServer] = []
    try:
        if reg.available() is None:
            root = tmp_path_factory.mktemp("push-registry")
            registry = reg.Registry(root, users={USER: PASSWORD}, bind=net.gateway).start()
        insecure = (registry.host,) if registry is not None else ()
        made = start_servers(net, (2, 3), insecure_registries=insecure)
        # Berth's Traefik image there already (proxy-sync's import of it over SSH: test_remote_routes.py)
        load_images(made, traefik_image())
        yield made, registry
    finally:
        tear_down(made, [registry], net)


@pytest.fixture(scope="module")
def servers(rig: tuple[list[TestServer], reg.Registry | None]) -> list[TestServer]:
    return rig[0]


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[GitDaemon]:
    d = GitDaemon(tmp_path / "served").start()
    yield d
    d.stop()


def _lines(platform: Any, deployment_id: str) -> list[str]:
    return [e["data"]["line"] for e in platform.logs if e["data"]["deployment_id"] == deployment_id]


def _spec(name: str, url: str, ids: list[str], **source: Any) -> dict[str, Any]:
    spec = app(name, url, HOST)
    spec["services"][0]["servers"] = ids
    spec["source"].update(source)
    return spec


def _images_of(server: TestServer, app_id: str) -> list[str]:
    names = server.docker("ps", "-q", "--filter", f"label=berth.app={app_id}").split()
    return [server.docker("inspect", "--format", "{{.Config.Image}}", n).strip() for n in names]


async def test_a_git_app_built_once_is_streamed_to_both_servers_and_served_by_both(
    placed, servers, database, tmp_path, unique, daemon
):
    platform, ids = placed
    builder = await start_builder(platform.nats_url, database, tmp_path / "builder")
    name = f"g{unique}"
    app_id = f"a{unique}"
    try:
        repo = tmp_path / "repo"
        make_repo(repo, {"Dockerfile": dockerfile(busybox_image()), "index.html": "built v1\n"})
        publish_bare(repo, daemon.base, "app.git")
        d1 = await platform.deploy(app_id, _spec(name, daemon.url("app.git"), ids))
        done = await platform.wait(d1, timeout=300)
        assert done["type"] == "evt.deployment.succeeded", (done, platform.steps(d1))
        image = done["data"]["image"]
        assert image.startswith(f"berth/{name}:") and done["data"].get("image_digest") is None
        assert [s for _, s in platform.steps(d1)].count("build succeeded") == 1  # built once, for both
        lines = _lines(platform, d1)
        for sid in ids:
            assert any(line.startswith(f"[starting] image {image} delivered to server {sid} in ") for line in lines)
        for server in servers:
            await _served(server.address, "built v1")
            assert _images_of(server, app_id) == [image]  # the one replica there runs the streamed image

        # old builds are pruned on the servers too: with the images of the last two successes kept, the
        # servers end with the live image and the one before it (for a rollback), nothing older
        platform.scheduler.settings.keep_images = 2
        bare = daemon.base / "app.git"
        images = [image]
        for version in ("v2", "v3"):
            commit(repo, {"index.html": f"built {version}\n"})
            git("push", "-q", str(bare), "main", cwd=repo)
            dep = await platform.deploy(app_id, _spec(name, daemon.url("app.git"), ids))
            done = await platform.wait(dep, timeout=300)
            assert done["type"] == "evt.deployment.succeeded", (done, platform.steps(dep))
            images.append(done["data"]["image"])
        for server in servers:
            await _served(server.address, "built v3")
            # the pruning runs once the deployment has ended (and the application is free)
            for _ in range(300):
                tags = server.docker("images", "--format", "{{.Repository}}:{{.Tag}}", f"berth/{name}").split()
                if sorted(tags) == sorted(images[1:]):
                    break
                await asyncio.sleep(0.1)
            assert sorted(tags) == sorted(images[1:]), (tags, images)
    finally:
        await stop_builder(builder)
        built = set(
            subprocess.run(["docker", "images", "-q", f"berth/{name}"], capture_output=True, text=True).stdout.split()
        )
        for image_id in built:  # the build's tags on the control plane
            subprocess.run(["docker", "rmi", "-f", image_id], capture_output=True, check=False)


async def _announce_to_builder(b: Running, server: TestServer, server_id: str) -> None:
    """The server once more (a newer revision) so the builder started after the first announcement has it."""
    await b.api.publish(_changed(server, server_id).model_copy(update={"revision": 2}))
    directory = b.handler.pipeline.servers
    for _ in range(200):
        async with directory.sessionmaker() as s:
            record = await fleet.server_of(s, builder_tables.servers, server_id)
        if record is not None and record.revision >= 2:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the builder did not record server {server_id}")


async def test_built_on_one_server_the_image_is_streamed_from_there_to_the_other(
    placed, servers, database, tmp_path, unique, daemon
):
    platform, ids = placed
    builds_on, other = ids
    servers[0].load_image(busybox_image())  # the base image is on the build server (no registry for it)
    builder = await start_builder(platform.nats_url, database, tmp_path / "builder")
    name = f"r{unique}"
    app_id = f"r{unique}"
    try:
        await _announce_to_builder(builder, servers[0], builds_on)
        repo = tmp_path / "repo"
        make_repo(repo, {"Dockerfile": dockerfile(busybox_image()), "index.html": "remote v1\n"})
        publish_bare(repo, daemon.base, "app.git")
        d1 = await platform.deploy(app_id, _spec(name, daemon.url("app.git"), ids, build_server=builds_on))
        done = await platform.wait(d1, timeout=300)
        assert done["type"] == "evt.deployment.succeeded", (done, platform.steps(d1))
        image = done["data"]["image"]
        delivered = [line for line in _lines(platform, d1) if " delivered " in line]
        assert len(delivered) == 1, delivered  # the build server has it; only the other server gets it
        assert delivered[0].startswith(
            f"[starting] image {image} delivered from server {builds_on} to server {other} in "
        )
        for server in servers:
            await _served(server.address, "remote v1")
            assert _images_of(server, app_id) == [image]
        local = subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False)
        assert local.returncode != 0  # never on the control plane's engine
    finally:
        await stop_builder(builder)


async def test_with_a_push_registry_both_servers_pull_the_pushed_ref_and_a_rollback_runs_it_again(
    placed, rig, database, tmp_path, unique, daemon
):
    servers, registry = rig
    if registry is None:
        pytest.skip(reg.available() or "no registry")
    platform, ids = placed
    builds_on = ids[0]
    servers[0].load_image(busybox_image())  # the base image is on the build server (no registry for it)
    builder = await start_builder(platform.nats_url, database, tmp_path / "builder")
    name = f"p{unique}"
    app_id = f"p{unique}"
    push = {"auth": {"registry": registry.host, "username": USER, "password": PASSWORD}, "namespace": "acme"}
    try:
        await _announce_to_builder(builder, servers[0], builds_on)
        repo = tmp_path / "repo"
        make_repo(repo, {"Dockerfile": dockerfile(busybox_image()), "index.html": "pushed v1\n"})
        bare = publish_bare(repo, daemon.base, "app.git")
        spec = _spec(name, daemon.url("app.git"), ids, build_server=builds_on, push=push)
        d1 = await platform.deploy(app_id, spec)
        done = await platform.wait(d1, timeout=300)
        assert done["type"] == "evt.deployment.succeeded", (done, platform.steps(d1))
        pushed = done["data"]["image_digest"]
        assert pushed.startswith(f"{registry.host}/acme/{name}@sha256:"), done
        tag = done["data"]["image"].rsplit(":", 1)[1]  # pushed under the tag the build made
        assert pushed == f"{registry.host}/acme/{name}@{registry.manifest_digest(f'acme/{name}', tag)}"
        lines = _lines(platform, d1)
        assert not [line for line in lines if " delivered " in line]  # nothing streamed
        pulled = f"[starting] server {ids[1]}: pull: {pushed} from {registry.host} (pull policy if-missing, as {USER})"
        assert pulled in lines, lines
        assert PASSWORD not in json.dumps(lines)
        for server in servers:
            await _served(server.address, "pushed v1")
            assert _images_of(server, app_id) == [pushed]  # exactly the pushed image, on both servers

        commit(repo, {"index.html": "pushed v2\n"})
        git("push", "-q", str(bare), "main", cwd=repo)
        d2 = await platform.deploy(app_id, spec)
        done2 = await platform.wait(d2, timeout=300)
        assert done2["type"] == "evt.deployment.succeeded", (done2, platform.steps(d2))
        assert done2["data"]["image_digest"] != pushed
        for server in servers:
            await _served(server.address, "pushed v2")

        # the api's rollback to d1: its recorded digest as a prebuilt image, with the team's credentials
        auth = push["auth"]
        rollback = {**spec, "source": {"kind": "image", "image": pushed, "auth": auth}}
        d3 = await platform.deploy(app_id, rollback)
        done3 = await platform.wait(d3, timeout=120)
        assert done3["type"] == "evt.deployment.succeeded", (done3, platform.steps(d3))
        assert (done3["data"]["image"], done3["data"]["image_digest"]) == (pushed, pushed)
        assert "build requested" not in [s for _, s in platform.steps(d3)]
        for server in servers:
            await _served(server.address, "pushed v1")
            assert _images_of(server, app_id) == [pushed]
    finally:
        await stop_builder(builder)


async def test_old_pulled_digests_are_pruned_on_both_servers_and_the_kept_ones_stay(placed, rig, tmp_path, unique):
    """Four pushed builds (answered as the builder answers a pushed build), two kept: on both servers the
    first two digests pulled from the push registry are gone, the last two stay."""
    servers, registry = rig
    if registry is None:
        pytest.skip(reg.available() or "no registry")
    platform, ids = placed
    platform.scheduler.settings.keep_images = 2
    pushing = reg.Registry(tmp_path / "pushing", users={USER: PASSWORD}, storage=registry.root / "storage").start()
    name, repository = f"q{unique}", f"acme/q{unique}"
    try:
        pushed = []
        for n in range(1, 5):
            await reg.push(busybox_image(), pushing, repository, f"t{n}", mark=f"t{n}")
            pushed.append(f"{registry.host}/{repository}@{registry.manifest_digest(repository, f't{n}')}")
    finally:
        pushing.stop()
    starts: dict[str, str] = {}

    async def on_start(msg: Any) -> None:
        data = json.loads(msg.data)["data"]
        starts[data["deployment_id"]] = data["build_id"]

    sub = await platform.nc.subscribe("cmd.build.start", cb=on_start)
    await subscriptions_confirmed(platform.nc)
    builder = Bus("builder", platform.nats_url)
    await builder.connect()
    auth = {"registry": registry.host, "username": USER, "password": PASSWORD}
    spec = {**web_app("unused", "x", HOST), "name": name}
    spec["services"][0]["servers"] = ids
    spec["source"] = {"kind": "git", "repository": "https://git.example/acme/q.git", "ref": "main"}
    spec["source"]["push"] = {"auth": auth, "namespace": "acme"}
    try:
        for n, ref in enumerate(pushed, start=1):
            dep = await platform.deploy(f"q{unique}", spec)
            for _ in range(600):
                if dep in starts:
                    break
                await asyncio.sleep(0.05)
            build = BuildSucceeded(build_id=starts[dep], deployment_id=dep, image=f"berth/{name}:t{n}", pushed_ref=ref)
            await builder.publish(build)
            done = await platform.wait(dep, timeout=180)
            assert done["type"] == "evt.deployment.succeeded", (done, platform.steps(dep))

        def pulled(server: TestServer) -> set[str]:
            out = server.docker("images", "--digests", "--format", "{{.Repository}}@{{.Digest}}")
            return {line for line in out.split() if line.startswith(f"{registry.host}/{repository}@")}

        for _ in range(75):  # pruning runs right after the success event
            if all(pulled(server) == set(pushed[2:]) for server in servers):
                break
            await asyncio.sleep(0.2)
        assert [pulled(server) for server in servers] == [set(pushed[2:])] * len(servers)
    finally:
        await sub.unsubscribe()
        await builder.close()
