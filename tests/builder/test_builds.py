"""Builds end to end through the real handler path: nats-server, Postgres, git (`git daemon` on loopback or a
local path), the Docker engine. The built image is run on a loopback port and fetched over HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import time

import pytest

from berth_builder.domain.detect import detect
from berth_cli.components import free_port
from tests.builder.support import build_command, commit, http_get, make_repo, publish_bare
from tests.support.images import docker

pytestmark = [pytest.mark.slow, pytest.mark.docker]


def dockerfile(busybox: str, *extra: str) -> str:
    lines = [
        f"FROM {busybox}",
        "COPY index.html /www/index.html",
        *extra,
        'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]',
    ]
    return "\n".join(lines) + "\n"


def serve_image(image: str, containers: list[str]) -> int:
    port = free_port()
    cid = docker("run", "-d", "--label", "berth.test=1", "-p", f"127.0.0.1:{port}:8080", image)
    containers.append(cid)
    return port


async def test_build_from_git_daemon_serves_and_streams_logs(
    builder_factory, git_daemon, busybox, tmp_path, unique, images, containers
):
    repo = tmp_path / "repo"
    sha = make_repo(
        repo,
        {"Dockerfile": dockerfile(busybox, "RUN echo step-output-marker"), "index.html": f"<h1>hello {unique}</h1>"},
    )
    publish_bare(repo, git_daemon.base, "app.git")
    b = await builder_factory()
    tag = f"berth-test/app-{unique}:d1"
    images.append(tag)
    started = time.monotonic()
    cmd = await b.start_build(build_id=f"b1-{unique}", repository=git_daemon.url("app.git"), image_tag=tag)
    evt = await b.result(cmd.build_id)
    took = time.monotonic() - started
    assert evt["type"] == "evt.build.succeeded", evt
    data = evt["data"]
    assert data["image"] == tag and data["commit"] == sha and data["reused"] is False
    assert data["generated_dockerfile"] is None
    assert data["image_id"] == docker("image", "inspect", "--format", "{{.Id}}", tag)
    labels = json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", tag))
    assert labels["berth.deployment"] == cmd.deployment_id and labels["berth.commit"] == sha
    port = serve_image(tag, containers)
    assert http_get(port) == (200, f"<h1>hello {unique}</h1>")
    lines = b.lines(cmd.deployment_id)
    assert lines[:3] == [
        f"resolving main of {git_daemon.url('app.git')}",
        f"cloning {git_daemon.url('app.git')} (main)",
        "Cloning into 'src'...",
    ]
    assert any(line.endswith(" step-output-marker") for line in lines), lines
    assert f"checked out {sha}" in lines
    assert lines[-1] == f"built {tag} = {data['image_id']}"
    assert not (b.settings.workspaces / cmd.build_id).exists()  # the workspace is removed
    print(f"\nMEASURED build from git daemon (first, cold cache): {took:.2f}s (event duration {data['duration_s']}s)")


async def test_local_path_commit_ref_redelivery_and_reuse(builder_factory, busybox, tmp_path, unique, images):
    repo = tmp_path / "repo"
    first = make_repo(repo, {"Dockerfile": dockerfile(busybox), "index.html": "v1"})
    commit(repo, {"index.html": "v2"})
    b = await builder_factory(allow_local_git=True)
    tag1, tag2 = f"berth-test/local-{unique}:d1", f"berth-test/local-{unique}:d2"
    images += [tag1, tag2]
    cmd = await b.start_build(build_id=f"c1-{unique}", repository=str(repo), ref=first, image_tag=tag1)
    evt = await b.result(cmd.build_id)
    assert evt["type"] == "evt.build.succeeded", evt
    assert evt["data"]["commit"] == first
    assert docker("run", "--rm", tag1, "cat", "/www/index.html") == "v1"
    gits = b.handler.pipeline.git.started

    # the same command again (a new message for the same build id): the result again, no second build
    await b.api.publish(cmd)
    again = await b.result(cmd.build_id, after=1)
    assert again["type"] == "evt.build.succeeded" and again["id"] != evt["id"]
    assert {k: again["data"][k] for k in ("image", "image_id", "commit")} == {
        k: evt["data"][k] for k in ("image", "image_id", "commit")
    }
    assert b.handler.pipeline.git.started == gits

    # another build of the same commit and inputs: the image is reused (tagged again), nothing is cloned
    started = time.monotonic()
    cmd2 = await b.start_build(build_id=f"c2-{unique}", repository=str(repo), ref=first, image_tag=tag2)
    reused = await b.result(cmd2.build_id)
    took = time.monotonic() - started
    assert reused["data"]["reused"] is True and reused["data"]["image_id"] == evt["data"]["image_id"]
    assert docker("image", "inspect", "--format", "{{.Id}}", tag2) == evt["data"]["image_id"]
    assert b.handler.pipeline.git.started == gits  # a commit ref needs no ls-remote either
    print(f"\nMEASURED reuse of an image built from the same commit: {took:.2f}s")


async def test_build_failure_reason_has_the_last_lines(builder_factory, busybox, tmp_path, unique, images):
    repo = tmp_path / "repo"
    make_repo(repo, {"Dockerfile": f"FROM {busybox}\nRUN echo about-to-fail && exit 3\n", "index.html": "x"})
    b = await builder_factory(allow_local_git=True)
    tag = f"berth-test/fail-{unique}:d1"
    images.append(tag)
    cmd = await b.start_build(build_id=f"f-{unique}", repository=str(repo), image_tag=tag)
    evt = await b.result(cmd.build_id)
    assert evt["type"] == "evt.build.failed"
    reason = evt["data"]["reason"]
    assert evt["data"]["stage"] == "build"
    assert reason.startswith("a build step failed: fix it and deploy again. Docker said: ")
    assert "exit code: 3" in reason
    assert "about-to-fail" in reason.split("Last lines:", 1)[1]


async def test_clone_failures_are_clear(builder_factory, git_daemon, tmp_path, unique):
    make_repo(tmp_path / "repo", {"index.html": "x"})
    publish_bare(tmp_path / "repo", git_daemon.base, "app.git")
    b = await builder_factory(allow_local_git=True)
    missing = await b.start_build(
        build_id=f"m-{unique}", repository=git_daemon.url("nope.git"), image_tag="berth-test/x:1"
    )
    no_branch = await b.start_build(
        build_id=f"n-{unique}", repository=git_daemon.url("app.git"), ref="nobranch", image_tag="berth-test/x:1"
    )
    no_path = await b.start_build(
        build_id=f"p-{unique}", repository=str(tmp_path / "absent"), image_tag="berth-test/x:1"
    )
    no_dockerfile = await b.start_build(
        build_id=f"d-{unique}",
        repository=git_daemon.url("app.git"),
        dockerfile="deploy/Dockerfile",
        image_tag="berth-test/x:1",
    )
    evt = await b.result(missing.build_id)
    assert evt["data"]["stage"] == "clone"
    assert evt["data"]["reason"].startswith(f"repository {git_daemon.url('nope.git')} not found: check the URL")
    evt = await b.result(no_branch.build_id)
    assert (
        evt["data"]["reason"]
        == f"the repository {git_daemon.url('app.git')} has no branch, tag or commit 'nobranch': check the ref."
    )
    evt = await b.result(no_path.build_id)
    assert evt["data"]["stage"] == "clone" and "not found" in evt["data"]["reason"]
    evt = await b.result(no_dockerfile.build_id)
    assert (evt["data"]["stage"], evt["data"]["reason"]) == (
        "dockerfile",
        "Dockerfile 'deploy/Dockerfile' not found: check the path, or leave it empty to let Berth detect how to "
        "build the repository.",
    )


async def test_auto_detected_static_site_builds_and_serves(
    builder_factory, git_daemon, busybox, tmp_path, unique, images, containers
):
    repo = tmp_path / "site"
    make_repo(
        repo, {"index.html": f"static {unique}", "css/site.css": "body{}", "notes.log": "x", ".dockerignore": "*.log\n"}
    )
    publish_bare(repo, git_daemon.base, "site.git")
    b = await builder_factory(image_map=f"busybox={busybox}")
    tag = f"berth-test/site-{unique}:d1"
    images.append(tag)
    started = time.monotonic()
    cmd = await b.start_build(build_id=f"s-{unique}", repository=git_daemon.url("site.git"), image_tag=tag)
    evt = await b.result(cmd.build_id)
    took = time.monotonic() - started
    assert evt["type"] == "evt.build.succeeded", evt
    from berth_builder.domain.detect import Probe

    expected = detect(Probe(names=frozenset({"index.html"}), texts={})).dockerfile
    assert evt["data"]["generated_dockerfile"] == expected  # official names, as the user would write it
    assert expected.startswith("FROM busybox:1.36 AS site\n")
    lines = b.lines(cmd.deployment_id)
    assert f"base image busybox:1.36 -> local image {busybox} (image map)" in lines
    port = serve_image(tag, containers)
    assert http_get(port) == (200, f"static {unique}")
    assert http_get(port, "/css/site.css") == (200, "body{}")
    files = docker("run", "--rm", "--entrypoint", "find", tag, "/www").split()
    assert sorted(files) == ["/www", "/www/.dockerignore", "/www/css", "/www/css/site.css", "/www/index.html"]
    print(f"\nMEASURED auto-detected static site build: {took:.2f}s")


async def test_secret_build_arg_reaches_the_step_but_no_layer_history_or_log(
    builder_factory, busybox, tmp_path, unique, images
):
    secret = f"s3cr3t-{unique}-value"
    digest = hashlib.sha256(secret.encode()).hexdigest()  # the Dockerfile checks the value without naming it
    repo = tmp_path / "repo"
    make_repo(
        repo,
        {
            "Dockerfile": (
                f"FROM {busybox}\n"
                "ARG PUBLIC_MODE\n"
                'RUN echo "mode=$PUBLIC_MODE"\n'
                "RUN --mount=type=secret,id=API_TOKEN "
                'test "$(sha256sum < /run/secrets/API_TOKEN | cut -c1-64)" = "' + digest + '" && echo secret-ok '
                "&& echo leaked: $(cat /run/secrets/API_TOKEN)\n"
                "ARG API_TOKEN\n"
                'RUN echo "as-arg=[$API_TOKEN]"\n'
            ),
        },
    )
    b = await builder_factory(allow_local_git=True)
    tag = f"berth-test/secret-{unique}:d1"
    images.append(tag)
    cmd = await b.start_build(
        build_id=f"sec-{unique}",
        repository=str(repo),
        image_tag=tag,
        build_args=[("PUBLIC_MODE", f"visible-{unique}", False), ("API_TOKEN", secret, True)],
    )
    evt = await b.result(cmd.build_id)
    assert evt["type"] == "evt.build.succeeded", evt
    lines = b.lines(cmd.deployment_id)
    text = "\n".join(lines)
    assert any(line.endswith(" secret-ok") for line in lines), text  # the step saw the right value
    assert any(line.endswith(" leaked: ***") for line in lines), text  # printed by the step, redacted by Berth
    assert any(line.endswith(" as-arg=[]") for line in lines), text  # never passed as a build arg
    history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", tag)
    inspect = docker("image", "inspect", tag)
    assert f"visible-{unique}" in history  # the control: plain build args are in the history
    for place in (history, inspect, text, json.dumps(b.events)):
        assert secret not in place
    saved = subprocess.run(["docker", "save", tag], capture_output=True, check=True, timeout=120).stdout
    assert secret.encode() not in saved  # in no layer either


async def test_auto_detected_python_app_builds_and_serves(
    builder_factory, git_daemon, busybox, tmp_path, unique, images, containers
):
    from tests.support.images import python_image

    python_image()  # berth/python:3-bookworm (debootstrap, cached by tag); python:3.12-slim maps to it by default
    app = (
        "import os\n"
        "from http.server import BaseHTTPRequestHandler, HTTPServer\n\n\n"
        "class H(BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        f"        body = b'python {unique}'\n"
        "        self.send_response(200)\n"
        "        self.send_header('Content-Length', str(len(body)))\n"
        "        self.end_headers()\n"
        "        self.wfile.write(body)\n\n\n"
        "HTTPServer(('0.0.0.0', int(os.environ['PORT'])), H).serve_forever()\n"
    )
    repo = tmp_path / "py"
    make_repo(
        repo, {"app.py": app, "requirements.txt": "# no dependencies\n", "Procfile": "web: exec python3 app.py\n"}
    )
    publish_bare(repo, git_daemon.base, "py.git")
    b = await builder_factory()
    tag = f"berth-test/py-{unique}:d1"
    images.append(tag)
    started = time.monotonic()
    cmd = await b.start_build(
        build_id=f"py-{unique}", repository=git_daemon.url("py.git"), image_tag=tag, dockerfile=None
    )
    evt = await b.result(cmd.build_id, timeout=300)
    took = time.monotonic() - started
    assert evt["type"] == "evt.build.succeeded", evt
    assert evt["data"]["generated_dockerfile"].startswith("FROM python:3.12-slim\n")
    assert evt["data"]["generated_dockerfile"].endswith('CMD ["/bin/sh", "-c", "exec python3 app.py"]\n')
    port = serve_image(tag, containers)
    assert http_get(port, timeout=30) == (200, f"python {unique}")
    print(f"\nMEASURED auto-detected Python app build: {took:.2f}s")


async def test_long_build_keeps_its_message_and_one_slot_at_a_time(builder_factory, busybox, tmp_path, unique, images):
    """ack_wait 1 s and builds of about 3 s: the keepalive keeps the message (one result each, no second
    build); with one build slot the second build starts only after the first one finished."""
    repo = tmp_path / "slow"
    make_repo(repo, {"Dockerfile": f"FROM {busybox}\nARG N\nRUN echo start-$N && sleep 3 && echo end-$N\n"})
    b = await builder_factory(allow_local_git=True, ack_wait_s=1.0, max_concurrent_builds=1)
    cmds = []
    for n in (1, 2):
        tag = f"berth-test/slow-{unique}:{n}"
        images.append(tag)
        cmds.append(
            await b.start_build(
                build_id=f"slow{n}-{unique}",
                repository=str(repo),
                image_tag=tag,
                build_args=[("N", f"{n}-{unique}", False)],
                no_cache=True,
            )
        )
    first, second = [await b.result(c.build_id, timeout=120) for c in cmds]
    assert first["type"] == second["type"] == "evt.build.succeeded"
    await asyncio.sleep(2.5)  # more than twice ack_wait: a lost message would have come back by now
    assert [e["data"]["build_id"] for e in b.events] == [cmds[0].build_id, cmds[1].build_id]
    times = {}
    for cmd in cmds:
        for t, line in b.line_times(cmd.deployment_id):
            if line.startswith("building "):
                times[(cmd.build_id, "start")] = t
            if line.startswith("built "):
                times[(cmd.build_id, "end")] = t
    a, c = cmds[0].build_id, cmds[1].build_id
    ordered = sorted([(times[(a, "start")], times[(a, "end")]), (times[(c, "start")], times[(c, "end")])])
    assert ordered[0][1] <= ordered[1][0], "two builds overlapped with one build slot"


async def test_build_timeout(builder_factory, busybox, tmp_path, unique, images):
    repo = tmp_path / "stuck"
    make_repo(repo, {"Dockerfile": f"FROM {busybox}\nRUN echo going-to-sleep && sleep 60\n"})
    b = await builder_factory(allow_local_git=True)
    tag = f"berth-test/stuck-{unique}:1"
    images.append(tag)
    cmd = build_command(build_id=f"to-{unique}", repository=str(repo), image_tag=tag, no_cache=True)
    cmd = cmd.model_copy(update={"timeout_s": 3.0})
    started = time.monotonic()
    await b.api.publish(cmd)
    evt = await b.result(cmd.build_id, timeout=60)
    took = time.monotonic() - started
    assert evt["type"] == "evt.build.failed" and evt["data"]["stage"] == "build"
    assert evt["data"]["reason"].startswith("the build did not finish within 3s")
    assert "going-to-sleep" in evt["data"]["reason"]
    assert took < 15, took
