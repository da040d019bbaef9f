"""One file of a repository at a ref, read by the builder for the api (``rpc.builder.repository_file``):
real repositories made in the test, served by a `git daemon` on loopback or as local paths, the builder
in-process on a real nats-server and Postgres. The text and the commit read come back; a path that leaves
the repository (``..``, absolute, through a symlink) is refused before or without reading, a file over the
cap is refused, and every refusal names the query's field without a credential or a builder path."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from berth_builder.domain.clone import clone_plan, git_base, sparse_pattern
from berth_builder.domain.repository_file import file_request
from berth_builder.domain.source import GitRef, InvalidInput
from berth_common import values
from berth_common.catalogue import RepositoryFileQuery, RepositoryFileReply
from tests.builder.support import commit, git, make_repo, publish_bare

COMPOSE = "services:\n  web:\n    build: ./web\n    ports: ['8080']\n"
ODD = {"odd name [1]*.yml": "the one asked for", "odd name 1x.yml": "a glob's match", "#odd!.yml": "hash"}


async def ask(b: Any, timeout: float = 60, **query: Any) -> RepositoryFileReply:
    """The builder's reply to the query (sent as a producer that skips the catalogue's checks could)."""
    data = RepositoryFileQuery.model_construct(**query)
    return await b.api.request("builder", "repository_file", data, RepositoryFileReply, timeout=timeout)


def refusal(reply: RepositoryFileReply) -> tuple[int, str | None, str]:
    assert reply.problem is not None, reply
    assert reply.text == "" and reply.commit == ""
    return reply.problem.status, reply.problem.field, reply.problem.detail


def workspaces_empty(b: Any) -> bool:
    root = b.settings.workspaces
    return not root.exists() or not any(p.name.startswith("file-") for p in root.iterdir())


async def test_a_file_is_read_at_a_branch_a_tag_and_a_commit(builder_factory, git_daemon, tmp_path):
    repo = tmp_path / "repo"
    first = make_repo(repo, {"deploy/compose.yml": COMPOSE, "web/Dockerfile": "FROM scratch\n"})
    git("tag", "v1", cwd=repo)
    second = commit(repo, {"deploy/compose.yml": COMPOSE.replace("8080", "9090")})
    bare = publish_bare(repo, git_daemon.base, "app.git")
    git("config", "uploadpack.allowFilter", "true", cwd=bare)  # a blobless clone, the blob fetched on checkout
    url = git_daemon.url("app.git")
    b = await builder_factory()

    started = time.monotonic()
    reply = await ask(b, repository=url, ref="main", path="deploy/compose.yml")
    took = time.monotonic() - started
    assert reply.problem is None, reply
    print(f"\nMEASURED repository file read over git daemon (blobless clone, one file): {took:.2f}s")
    assert (reply.text, reply.commit, reply.size) == (COMPOSE.replace("8080", "9090"), second, len(COMPOSE))
    tagged = await ask(b, repository=url, ref="v1", path="deploy/compose.yml")
    assert (tagged.text, tagged.commit) == (COMPOSE, first)
    pinned = await ask(b, repository=url, ref=first, path="deploy/compose.yml")
    assert (pinned.text, pinned.commit) == (COMPOSE, first)
    head = await ask(b, repository=url, ref="HEAD", path="web/Dockerfile")
    assert (head.text, head.commit) == ("FROM scratch\n", second)

    status, field, detail = refusal(await ask(b, repository=url, ref="main", path="deploy/missing.yml"))
    assert (status, field) == (422, "path")
    assert "no file 'deploy/missing.yml'" in detail and second in detail
    status, field, detail = refusal(await ask(b, repository=url, ref="nope", path="deploy/compose.yml"))
    assert (status, field) == (422, "ref") and "has no branch, tag or commit 'nope'" in detail
    status, field, detail = refusal(await ask(b, repository=git_daemon.url("gone.git"), ref="main", path="x"))
    assert (status, field) == (422, "repository"), detail
    status, field, detail = refusal(await ask(b, repository=url, ref="main", path="deploy"))
    assert (status, field) == (422, "path") and "not a regular file" in detail
    assert workspaces_empty(b)


async def test_paths_that_leave_the_repository_are_refused(builder_factory, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.yml").write_text("services: {}\n")
    repo = tmp_path / "repo"
    make_repo(repo, {"real/compose.yml": COMPOSE, **ODD})
    os.symlink("/etc/passwd", repo / "passwd.yml")
    os.symlink(str(outside), repo / "out")
    os.symlink("real", repo / "inner")  # a symlink that stays inside: refused all the same
    commit(repo, {}, "links")
    b = await builder_factory(allow_local_git=True)
    before = b.handler.pipeline.git.started

    for path in ("../x.yml", "/etc/passwd", "real/../../x", "-x.yml", "a\\b", "a\nb"):
        status, field, detail = refusal(await ask(b, repository=str(repo), ref="main", path=path))
        assert (status, field) == (422, "path"), (path, detail)
    assert b.handler.pipeline.git.started == before  # refused before any git process ran

    # a branch checks out only the file asked for (a symlinked directory on the way is not followed: there
    # is no such file); a commit checks out the whole tree (the symlink on the way is found and refused)
    pinned = git("rev-parse", "HEAD", cwd=repo)
    for ref, path, why in (
        ("main", "passwd.yml", "is a symlink"),
        (pinned, "passwd.yml", "is a symlink"),
        ("main", "out/secret.yml", "no file 'out/secret.yml'"),
        ("main", "inner/compose.yml", "no file 'inner/compose.yml'"),
        (pinned, "out/secret.yml", "goes through a symlink"),
        (pinned, "inner/compose.yml", "goes through a symlink"),
    ):
        status, field, detail = refusal(await ask(b, repository=str(repo), ref=ref, path=path))
        assert (status, field) == (422, "path") and why in detail, (path, detail)
        assert "root:" not in detail and "services: {}" not in detail
        assert str(tmp_path) not in detail.replace(str(repo), "")  # no builder workspace path
    ok = await ask(b, repository=str(repo), ref="main", path="real/compose.yml")
    assert ok.text == COMPOSE
    for name, text in ODD.items():  # a name with wildcards and spaces is one file, not a pattern
        for ref in ("main", pinned):
            assert (await ask(b, repository=str(repo), ref=ref, path=name)).text == text
    assert workspaces_empty(b)


async def test_the_size_cap_and_the_text_rule(builder_factory, tmp_path):
    repo = tmp_path / "repo"
    make_repo(repo, {"big.yml": "x" * 3000, "small.yml": "y" * 900, "bin.dat": "ok"})
    (repo / "bin.dat").write_bytes(b"\xff\xfe\x00binary")
    commit(repo, {}, "binary")
    b = await builder_factory(allow_local_git=True, file_max_bytes=2048)

    status, field, detail = refusal(await ask(b, repository=str(repo), ref="main", path="big.yml"))
    assert (status, field) == (422, "path") and "larger than 2048 bytes" in detail
    # the query's cap counts when it is smaller than the setting, the setting when it is larger
    status, _, detail = refusal(await ask(b, repository=str(repo), ref="main", path="small.yml", max_bytes=512))
    assert status == 422 and "larger than 512 bytes" in detail
    status, _, detail = refusal(await ask(b, repository=str(repo), ref="main", path="big.yml", max_bytes=4000))
    assert status == 422 and "larger than 2048 bytes" in detail
    assert (await ask(b, repository=str(repo), ref="main", path="small.yml")).size == 900
    status, field, detail = refusal(await ask(b, repository=str(repo), ref="main", path="bin.dat"))
    assert (status, field) == (422, "path") and "not a UTF-8 text file" in detail


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A TCP port that accepts connections and never answers (a git server that hangs)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        for writer in held:
            writer.close()
        server.close()


@contextlib.asynccontextmanager
async def private_server() -> AsyncIterator[int]:
    """A git smart-HTTP server that asks for credentials (401, Basic) for every repository."""

    async def deny(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm="git"\r\n'
                b"Content-Length: 0\r\nConnection: close\r\n\r\n"
            )
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(deny, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def test_private_and_silent_servers_and_credentials_never_come_back(builder_factory):
    b = await builder_factory(file_timeout_s=30)
    async with private_server() as port:
        reply = await ask(b, repository=f"http://127.0.0.1:{port}/team/private.git", ref="main", path="x.yml")
    status, field, detail = refusal(reply)
    assert (status, field) == (422, "repository") and "needs credentials the builder does not have" in detail
    async with silent_server() as port:
        url = f"git://127.0.0.1:{port}/app.git"
        started = asyncio.get_running_loop().time()
        status, field, detail = refusal(await ask(b, repository=url, ref="main", path="x.yml", timeout_s=2))
        took = asyncio.get_running_loop().time() - started
    assert (status, field) == (502, "repository") and "timed out after 2s" in detail
    assert took < 15, took  # the query's deadline, not the setting's

    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    for url in (f"https://user:s3cr3t-token@127.0.0.1:{port}/x.git", f"https://s3cr3t-token@127.0.0.1:{port}/x.git"):
        reply = await ask(b, repository=url, ref="main", path="x.yml")
        status, field, _ = refusal(reply)
        assert (status, field) == (422, "repository")
        assert "s3cr3t" not in reply.model_dump_json()


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"path": "../a"}, "path"),
        ({"path": "a/./../.."}, "path"),
        ({"ref": "a..b"}, "ref"),
        ({"ref": "-x"}, "ref"),
        ({"repository": "ext::sh -c touch% /tmp/pwned"}, "repository"),
        ({"repository": "file:///srv/repo"}, "repository"),
    ],
)
def test_the_request_is_checked_before_any_git_process(query: dict[str, str], field: str) -> None:
    values = {"repository": "https://git.example.com/a.git", "ref": "main", "path": "compose.yml", **query}
    with pytest.raises(InvalidInput) as caught:
        file_request(RepositoryFileQuery.model_construct(**values), allow_local=False, max_bytes=10, timeout_s=5)
    assert caught.value.field == field


def test_a_branch_is_cloned_without_blobs_and_only_the_file_checked_out() -> None:
    url = values.git_location("https://git.example.com/a.git")
    plan = clone_plan(url, GitRef("name", "main"), "/w/f/src", timeout_s=60, inherited_env={}, only="d/a b*.yml")
    base = git_base(url)
    shallow = ("--depth", "1", "--single-branch", "--branch", "main", "--no-tags")
    assert [step.argv for step in plan.steps] == [
        (
            *base,
            "clone",
            *shallow,
            "--filter=blob:none",
            "--no-checkout",
            "--",
            "https://git.example.com/a.git",
            "/w/f/src",
        ),
        (*base, "-C", "/w/f/src", "sparse-checkout", "set", "--no-cone", "/d/a\\ b\\*.yml"),
        (*base, "-C", "/w/f/src", "read-tree", "-mu", "HEAD"),
    ]
    assert sparse_pattern("#x!/[y]?.yml") == "/\\#x\\!/\\[y\\]\\?.yml"
    whole = clone_plan(url, GitRef("commit", "a" * 40), "/w/f/src", timeout_s=60, inherited_env={}, only="x.yml")
    assert "sparse-checkout" not in str(whole.steps) and "--filter=blob:none" not in str(whole.steps)


def test_the_caps_are_the_smaller_of_the_query_and_the_setting() -> None:
    query = RepositoryFileQuery(repository="https://git.example.com/a.git", ref="main", path="a/b.yml")
    found = file_request(query, allow_local=False, max_bytes=1000, timeout_s=60)
    assert (found.path, found.max_bytes, found.timeout_s) == ("a/b.yml", 1000, 60)
    query = query.model_copy(update={"max_bytes": 10, "timeout_s": 5})
    found = file_request(query, allow_local=False, max_bytes=1000, timeout_s=60)
    assert (found.max_bytes, found.timeout_s) == (10, 5)
    query = query.model_copy(update={"max_bytes": 5000, "timeout_s": 500})
    found = file_request(query, allow_local=False, max_bytes=1000, timeout_s=60)
    assert (found.max_bytes, found.timeout_s) == (1000, 60)
