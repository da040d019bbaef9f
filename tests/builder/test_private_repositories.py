"""Private repositories through the real builder (in-process on nats-server and Postgres): an OpenSSH server
on loopback serving git to a deploy key only, and git's http-backend behind Basic auth.

A deploy key clones over ``ssh://`` and scp-like URLs once the server's host key is pinned (read at first
contact through ``rpc.builder.host_keys``); without a key, or with another one, the clone is refused with
a reason a person can act on; a server whose host key changed is refused until the new key is pinned. A
token reaches the http server in the ``Authorization`` header only: never in a request line, a log line, an
event or a reply. The credentials directory is gone after every checkout."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from berth_common import ssh_keys
from berth_common.catalogue import HostKeysQuery, HostKeysReply, RepositoryFileQuery, RepositoryFileReply
from berth_common.catalogue.git_auth import GitAuth, HostKey
from tests.builder.git_servers import HttpGitServer, SshGitServer
from tests.builder.support import build_command, make_repo, publish_bare

COMPOSE = "services:\n  web:\n    image: nginx\n"


async def read(b: Any, **query: Any) -> RepositoryFileReply:
    data = RepositoryFileQuery.model_construct(**{"ref": "main", "path": "compose.yml", **query})
    return await b.api.request("builder", "repository_file", data, RepositoryFileReply, timeout=60)


async def host_keys(b: Any, repository: str) -> HostKeysReply:
    query = HostKeysQuery(repository=repository, timeout_s=5)
    return await b.api.request("builder", "host_keys", query, HostKeysReply, timeout=30)


def auth_dirs_left(b: Any) -> list[str]:
    base = b.settings.workspaces / ".auth"
    return [p.name for p in base.iterdir()] if base.exists() else []


@pytest.fixture
def ssh_git(tmp_path):
    server = SshGitServer(tmp_path / "sshd").start()
    yield server
    server.stop()


async def test_a_deploy_key_clones_over_ssh_and_scp_urls_with_the_host_key_pinned(builder_factory, ssh_git, tmp_path):
    repo = tmp_path / "repo"
    sha = make_repo(repo, {"compose.yml": COMPOSE})
    bare = publish_bare(repo, tmp_path / "served", "app.git")
    private, public = ssh_keys.generate_key_pair()
    ssh_git.authorize(public)
    b = await builder_factory()

    # first contact: the builder reads the server's host key, as known_hosts names it
    found = await host_keys(b, ssh_git.scp_url(bare))
    assert found.problem is None, found
    assert [(k.host, f"{k.key_type} {k.key}") for k in found.host_keys] == [(ssh_git.address, ssh_git.host_key_line())]
    auth = GitAuth(kind="ssh", private_key=private, host_keys=found.host_keys)  # type: ignore[arg-type]

    for url in (ssh_git.scp_url(bare), ssh_git.ssh_url(bare)):
        reply = await read(b, repository=url, auth=auth)
        assert reply.problem is None, reply
        assert (reply.text, reply.commit) == (COMPOSE, sha)
    assert auth_dirs_left(b) == []

    # without the key: refused, saying credentials are needed (the builder's own ssh has no key and no pin)
    reply = await read(b, repository=ssh_git.scp_url(bare))
    assert reply.problem is not None and reply.problem.field == "repository"
    assert "needs credentials" in reply.problem.detail

    # another key (not authorized): refused as credentials, the key never in the answer
    other, _ = ssh_keys.generate_key_pair()
    wrong = GitAuth(kind="ssh", private_key=other, host_keys=found.host_keys)  # type: ignore[arg-type]
    reply = await read(b, repository=ssh_git.scp_url(bare), auth=wrong)
    assert reply.problem is not None and "needs credentials" in reply.problem.detail, reply
    assert "PRIVATE KEY" not in reply.model_dump_json()

    # a deploy key with an https URL is refused before any git runs
    reply = await read(b, repository="https://example.invalid/x.git", auth=auth)
    assert reply.problem is not None and reply.problem.field == "auth", reply
    assert auth_dirs_left(b) == []


async def test_a_changed_host_key_refuses_the_clone_until_the_new_one_is_pinned(builder_factory, ssh_git, tmp_path):
    repo = tmp_path / "repo"
    make_repo(repo, {"compose.yml": COMPOSE})
    bare = publish_bare(repo, tmp_path / "served", "app.git")
    private, public = ssh_keys.generate_key_pair()
    ssh_git.authorize(public)
    b = await builder_factory()
    pinned = (await host_keys(b, ssh_git.ssh_url(bare))).host_keys
    auth = GitAuth(kind="ssh", private_key=private, host_keys=pinned)  # type: ignore[arg-type]
    assert (await read(b, repository=ssh_git.ssh_url(bare), auth=auth)).problem is None

    ssh_git.replace_host_key()
    reply = await read(b, repository=ssh_git.ssh_url(bare), auth=auth)
    assert reply.problem is not None and (reply.problem.status, reply.problem.field) == (422, "repository")
    assert "presented a host key that is not the one pinned for it" in reply.problem.detail, reply
    assert "accept it" in reply.problem.detail

    # a key pinned for another host does not admit this one either
    elsewhere = [HostKey(host="git.example.com", key_type=k.key_type, key=k.key) for k in pinned]
    reply = await read(b, repository=ssh_git.ssh_url(bare), auth=auth.model_copy(update={"host_keys": elsewhere}))
    assert reply.problem is not None and "not the one pinned" in reply.problem.detail, reply

    offered = (await host_keys(b, ssh_git.ssh_url(bare))).host_keys
    assert [f"{k.key_type} {k.key}" for k in offered] == [ssh_git.host_key_line()] and offered != pinned
    accepted = auth.model_copy(update={"host_keys": offered})
    assert (await read(b, repository=ssh_git.ssh_url(bare), auth=accepted)).problem is None
    assert auth_dirs_left(b) == []


async def test_host_keys_of_a_server_that_does_not_answer(builder_factory):
    b = await builder_factory()
    reply = await host_keys(b, "git@127.0.0.9:nobody/app.git")
    assert reply.problem is not None and reply.problem.status == 502 and reply.host_keys == []
    reply = await host_keys(b, "https://example.com/x.git")
    assert reply.problem is not None and reply.problem.status == 422


async def test_an_https_token_clones_and_never_reaches_a_url_a_log_or_an_event(
    builder_factory, busybox, tmp_path, unique, images, capfd
):
    token = f"tok-{unique}-S3cr3t"
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    repo = tmp_path / "repo"
    sha = make_repo(repo, {"compose.yml": COMPOSE, "Dockerfile": f'FROM {busybox}\nCMD ["true"]\n'})
    served = tmp_path / "served"
    publish_bare(repo, served, "app.git")
    server = HttpGitServer(served, "x-access-token", token).start()
    try:
        b = await builder_factory()
        auth = GitAuth(kind="https", username="x-access-token", token=token)  # type: ignore[arg-type]
        reply = await read(b, repository=server.url("app.git"), auth=auth)
        assert reply.problem is None, reply
        assert (reply.text, reply.commit) == (COMPOSE, sha)

        refused = await read(b, repository=server.url("app.git"))
        assert refused.problem is not None and "needs credentials" in refused.problem.detail, refused
        wrong = GitAuth(kind="https", username="x-access-token", token=f"{token}-wrong")  # type: ignore[arg-type]
        refused_wrong = await read(b, repository=server.url("app.git"), auth=wrong)
        assert refused_wrong.problem is not None and "needs credentials" in refused_wrong.problem.detail

        # a build with the token, its log lines and its event captured
        tag = f"berth-test/private-{unique}:d1"
        images.append(tag)
        cmd = build_command(build_id=f"p1-{unique}", repository=server.url("app.git"), image_tag=tag)
        cmd = cmd.model_copy(update={"source": cmd.source.model_copy(update={"auth": auth})})
        await b.api.publish(cmd)
        evt = await b.result(cmd.build_id)
        assert evt["type"] == "evt.build.succeeded", evt
        assert evt["data"]["commit"] == sha
        lines = b.lines(cmd.deployment_id)
        assert "authenticating with the application's access token" in lines
        assert f"checked out {sha}" in lines
    finally:
        server.stop()
    out, err = capfd.readouterr()
    for text in [*lines, json.dumps(b.events), reply.model_dump_json(), refused_wrong.model_dump_json(), out, err]:
        assert token not in text and basic not in text
    request_lines = [s for s in server.seen if not s.startswith(("Authorization:", "Host:", "User-Agent:"))]
    assert not any(token in s or basic in s for s in request_lines)
    assert any(s == f"Authorization: Basic {basic}" for s in server.seen)  # the one place it travels
    assert auth_dirs_left(b) == []


async def test_a_build_clones_with_the_deploy_key(builder_factory, ssh_git, busybox, tmp_path, unique, images):
    repo = tmp_path / "repo"
    sha = make_repo(repo, {"Dockerfile": f'FROM {busybox}\nCMD ["true"]\n'})
    bare = publish_bare(repo, tmp_path / "served", "app.git")
    private, public = ssh_keys.generate_key_pair()
    ssh_git.authorize(public)
    b = await builder_factory()
    pinned = (await host_keys(b, ssh_git.scp_url(bare))).host_keys
    auth = GitAuth(kind="ssh", private_key=private, host_keys=pinned)  # type: ignore[arg-type]
    tag = f"berth-test/deploykey-{unique}:d1"
    images.append(tag)
    cmd = build_command(build_id=f"k1-{unique}", repository=ssh_git.scp_url(bare), image_tag=tag)
    cmd = cmd.model_copy(update={"source": cmd.source.model_copy(update={"auth": auth})})
    await b.api.publish(cmd)
    evt = await b.result(cmd.build_id)
    assert evt["type"] == "evt.build.succeeded", evt
    assert evt["data"]["commit"] == sha
    lines = b.lines(cmd.deployment_id)
    assert "authenticating with the application's deploy key" in lines
    assert not any("PRIVATE KEY" in line for line in lines)

    ssh_git.replace_host_key()  # the same build later: refused at the clone stage, naming the host key
    again = build_command(build_id=f"k2-{unique}", repository=ssh_git.scp_url(bare), image_tag=tag, ref="main")
    again = again.model_copy(update={"source": again.source.model_copy(update={"auth": auth})})
    await b.api.publish(again)
    failed = await b.result(again.build_id)
    assert failed["type"] == "evt.build.failed", failed
    assert failed["data"]["stage"] == "clone"
    assert "not the one pinned" in failed["data"]["reason"]
    assert auth_dirs_left(b) == []


async def test_credentials_a_crashed_builder_left_are_removed_at_start(builder_factory, tmp_path):
    left = tmp_path / "data0" / "builds" / ".auth" / "git-auth-crashed"
    left.mkdir(parents=True)
    (left / "id_deploy").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    b = await builder_factory()
    assert b.settings.workspaces == tmp_path / "data0" / "builds"
    assert not left.exists() and auth_dirs_left(b) == []
