"""A compose application's ``build:`` sections: one ``cmd.build.start`` per compose service, each with its
own build id, image tag, ``service`` and context (``source.subdirectory``, ``dockerfile``, ``build_args``)
of the one repository, all for one deployment. Built in parallel by the real builder (nats-server,
Postgres, a `git daemon` on loopback, the Docker engine); each answer names its service, each image carries
``berth.service`` and holds its own context, and the log lines of the deployment say whose they are."""

from __future__ import annotations

import json

import pytest

from berth_common.catalogue import StartBuild
from tests.builder.support import build_command, make_repo, publish_bare
from tests.support.images import docker

pytestmark = [pytest.mark.slow, pytest.mark.docker]


def service_build(
    unique: str, url: str, service: str, subdirectory: str, dockerfile: str = "Dockerfile", **args: str
) -> StartBuild:
    """What the scheduler sends for one compose service of deployment ``dep-<unique>``."""
    cmd = build_command(
        build_id=f"b-{unique}-{service}",
        deployment_id=f"dep-{unique}",
        repository=url,
        image_tag=f"berth-test/app-{unique}-{service}:d1",
        subdirectory=subdirectory,
        dockerfile=dockerfile,
        build_args=[(k, v, False) for k, v in args.items()],
    )
    return cmd.model_copy(update={"service": service})


def image_file(image: str, path: str) -> str:
    return docker("run", "--rm", "--label", "berth.test=1", "--entrypoint", "cat", image, path)


async def test_two_services_are_built_from_two_contexts_of_one_repository(
    builder_factory, git_daemon, busybox, tmp_path, unique, images
):
    repo = tmp_path / "repo"
    sha = make_repo(
        repo,
        {
            "deploy/compose.yml": "services:\n  web:\n    build: ../web\n  worker:\n    build: ../worker\n",
            "web/Dockerfile": f"FROM {busybox}\nCOPY who.txt /who.txt\n",
            "web/who.txt": "web context\n",
            "worker/docker/Worker.dockerfile": f"FROM {busybox}\nARG ROLE\nCOPY who.txt /who.txt\n"
            'RUN echo "role=$ROLE" > /role.txt\n',
            "worker/who.txt": "worker context\n",
        },
    )
    publish_bare(repo, git_daemon.base, "app.git")
    url = git_daemon.url("app.git")
    b = await builder_factory(max_concurrent_builds=2)
    web = service_build(unique, url, "web", "web")
    worker = service_build(unique, url, "worker", "worker", "docker/Worker.dockerfile", ROLE="consumer")
    images += [web.image_tag, worker.image_tag]
    assert web.model_dump(mode="json")["service"] == "web"
    assert "service" not in web.model_copy(update={"service": None}).model_dump(mode="json")  # today's dump

    for cmd in (web, worker):
        await b.api.publish(cmd)
    results = {cmd.service: await b.result(cmd.build_id, timeout=240) for cmd in (web, worker)}

    for cmd in (web, worker):
        event = results[cmd.service]
        assert event["type"] == "evt.build.succeeded", event
        data = event["data"]
        assert (data["service"], data["image"], data["commit"]) == (cmd.service, cmd.image_tag, sha)
        assert (data["deployment_id"], data["build_id"]) == (f"dep-{unique}", cmd.build_id)
        labels = json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", cmd.image_tag))
        assert labels["berth.service"] == cmd.service and labels["berth.build"] == cmd.build_id
        assert labels["berth.deployment"] == f"dep-{unique}"
    assert results["web"]["data"]["image_id"] != results["worker"]["data"]["image_id"]
    assert image_file(web.image_tag, "/who.txt") == "web context"
    assert image_file(worker.image_tag, "/who.txt") == "worker context"
    assert image_file(worker.image_tag, "/role.txt") == "role=consumer"

    lines = b.lines(f"dep-{unique}")
    assert lines, "no log line"
    assert all(line.startswith(("[web] ", "[worker] ")) for line in lines), lines
    assert f"[web] built {web.image_tag} = {results['web']['data']['image_id']}" in lines
    assert f"[worker] built {worker.image_tag} = {results['worker']['data']['image_id']}" in lines

    # a third service with the web service's context and inputs reuses its image; a redelivered command
    # answers again with its own service
    again = service_build(unique, url, "web2", "web")
    images.append(again.image_tag)
    await b.api.publish(again)
    reused = (await b.result(again.build_id, timeout=120))["data"]
    assert (reused["service"], reused["reused"]) == ("web2", True)
    assert reused["image_id"] == results["web"]["data"]["image_id"]
    await b.api.publish(worker, id=f"redelivered-{unique}")
    replay = await b.result(worker.build_id, timeout=60, after=1)
    assert replay["data"]["service"] == "worker" and replay["data"]["image_id"] == results["worker"]["data"]["image_id"]


async def test_a_failed_service_build_names_its_service(builder_factory, git_daemon, busybox, tmp_path, unique):
    repo = tmp_path / "repo"
    make_repo(repo, {"web/Dockerfile": f"FROM {busybox}\n"})
    publish_bare(repo, git_daemon.base, "app.git")
    b = await builder_factory()
    cmd = service_build(unique, git_daemon.url("app.git"), "api", "api")  # no such context
    await b.api.publish(cmd)
    event = await b.result(cmd.build_id, timeout=120)
    assert event["type"] == "evt.build.failed"
    assert event["data"]["service"] == "api" and event["data"]["stage"] == "dockerfile"
    assert "'api' does not exist" in event["data"]["reason"]
    assert all(line.startswith("[api] ") for line in b.lines(f"dep-{unique}"))
