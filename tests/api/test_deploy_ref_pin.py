"""A deployment of a git application builds the commit its branch named when the deployment was requested:
the api asks the builder (``rpc.builder.resolve_ref``) and records the commit at once. A push after the
request, before the build, changes nothing for that deployment. When the builder cannot tell (no such
branch) or cannot be asked, the deployment still starts with the branch (its build resolves it, as before).
Real parts: the api, the builder in-process on the same nats-server and Postgres, a git daemon."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth_common.catalogue import ResolveRefQuery, ResolveRefReply
from tests.api import test_compose_git as compose_git
from tests.api.conftest import make_app
from tests.api.test_compose_git import repository, republish
from tests.builder.support import GitDaemon, git

pytestmark = pytest.mark.slow
builder = compose_git.builder  # the builder in-process, on the api's nats-server and Postgres
served = compose_git.served  # a git daemon on loopback


def git_app(served: GitDaemon, branch: str = "main") -> dict:
    source = {"kind": "git", "repository": served.url("stack.git"), "branch": branch}
    return {"name": "site", "source": source, "services": [{"kind": "web", "name": "web", "port": 8080}]}


async def deploy(client, members, app_id: str) -> dict:
    r = await client.post(f"/v1/applications/{app_id}/deployments", headers=members.developer, json={})
    assert r.status_code == 202, r.text
    return r.json()


async def test_the_branch_is_pinned_to_its_commit_when_the_deployment_is_requested(
    client, members, scheduler, builder, served, tmp_path: Path
):
    repo, first = repository(tmp_path, served, {"Dockerfile": "FROM scratch\n"})
    app = await make_app(client, members.developer, git_app(served))
    requested = await deploy(client, members, app["id"])
    assert requested["commit"] == first  # known at once
    second = republish(repo, served, {"index.html": "newer\n"})  # a push before the build starts
    (start,) = await scheduler.wait_for("cmd.deployment.start")
    assert start.data["deployment_id"] == requested["id"]
    assert start.data["spec"]["source"]["ref"] == first  # what was asked for, not what main names now
    await scheduler.run_to_success(start)
    again = await deploy(client, members, app["id"])
    assert again["commit"] == second


async def test_a_ref_the_builder_cannot_tell_leaves_the_branch_to_the_build(
    client, members, scheduler, builder, served, tmp_path: Path
):
    repository(tmp_path, served, {"Dockerfile": "FROM scratch\n"})
    app = await make_app(client, members.developer, git_app(served, "no-such-branch"))
    requested = await deploy(client, members, app["id"])
    assert requested["commit"] is None
    (start,) = await scheduler.wait_for("cmd.deployment.start")
    assert start.data["spec"]["source"]["ref"] == "no-such-branch"


async def test_the_builder_answers_a_branch_a_tag_and_a_commit_and_names_what_it_cannot(
    builder, served, tmp_path: Path
):
    repo, first = repository(tmp_path, served, {"Dockerfile": "FROM scratch\n"})
    git("tag", "v1", cwd=repo)
    git("push", "-q", str(served.base / "stack.git"), "v1", cwd=repo)
    second = republish(repo, served, {"a": "b\n"})
    url = served.url("stack.git")

    async def ask(**query: object) -> ResolveRefReply:
        data = ResolveRefQuery.model_construct(**query)  # as a producer that skips the catalogue's checks could
        return await builder.api.request("builder", "resolve_ref", data, ResolveRefReply, timeout=30)

    assert (await ask(repository=url, ref="main")).commit == second
    assert (await ask(repository=url, ref="v1")).commit == first
    assert (await ask(repository=url, ref=first)).commit == first
    missing = await ask(repository=url, ref="nope")
    assert missing.commit == "" and missing.problem is not None
    assert (missing.problem.status, missing.problem.field) == (422, "ref")
    assert "has no branch, tag or commit 'nope'" in (missing.problem.detail or "")
    gone = await ask(repository=served.url("gone.git"), ref="main")
    assert gone.problem is not None and (gone.problem.status, gone.problem.field) == (422, "repository")
    bad = await ask(repository="file:///etc", ref="main")
    assert bad.problem is not None and bad.problem.field == "repository"
    worse = await ask(repository=url, ref="--upload-pack=touch /tmp/x")
    assert worse.problem is not None and worse.problem.field == "ref"
