"""The git runner against real git: a clone from `git daemon` on loopback, a fetch by commit, and the
kill on timeout (a server that accepts and never answers)."""

from __future__ import annotations

import asyncio
import os
import socket
import time

from berth_builder.adapters.git import GitRunner
from berth_builder.domain.clone import classify_git_failure, clone_plan, parse_ls_remote, resolve_command
from berth_builder.domain.source import GitRef, validate_git_url
from tests.builder.support import commit, make_repo, publish_bare


async def _run_plan(runner, plan):
    for step in plan.steps:
        result = await runner.run(step, plan.env, plan.timeout_s)
        if not result.ok:
            return result
    return await runner.run(plan.head, plan.env, plan.timeout_s)


async def test_clone_branch_and_commit_from_git_daemon(tmp_path, git_daemon):
    repo = tmp_path / "repo"
    first = make_repo(repo, {"index.html": "v1"})
    second = commit(repo, {"index.html": "v2"})
    publish_bare(repo, git_daemon.base, "app.git")
    url = validate_git_url(git_daemon.url("app.git"))
    runner = GitRunner()

    resolved = await runner.run(
        resolve_command(url, GitRef("name", "main")),
        clone_plan(url, GitRef("name", "main"), "/x", timeout_s=30, inherited_env=os.environ).env,
        30,
    )
    assert resolved.ok and parse_ls_remote(resolved.stdout, GitRef("name", "main")) == second

    lines: list[str] = []

    async def on_line(line: str) -> None:
        lines.append(line)

    plan = clone_plan(url, GitRef("name", "main"), str(tmp_path / "b1"), timeout_s=30, inherited_env=os.environ)
    result = await runner.run(plan.steps[0], plan.env, 30, on_line)
    assert result.ok, result.stderr
    assert (tmp_path / "b1" / "index.html").read_text() == "v2"
    assert lines and lines[0].startswith("Cloning into")
    head = await runner.run(plan.head, plan.env, 30)
    assert head.stdout.strip() == second
    # shallow: one commit only
    count = await runner.run(
        plan.head.__class__("head", (*plan.head.argv[:11], "rev-list", "--count", "HEAD")), plan.env, 30
    )
    assert count.stdout.strip() == "1"

    plan = clone_plan(url, GitRef("commit", first), str(tmp_path / "b2"), timeout_s=30, inherited_env=os.environ)
    result = await _run_plan(runner, plan)
    assert result.ok, result.stderr
    assert result.stdout.strip() == first
    assert (tmp_path / "b2" / "index.html").read_text() == "v1"


async def test_missing_repository_and_branch(tmp_path, git_daemon):
    make_repo(tmp_path / "repo", {"a": "1"})
    publish_bare(tmp_path / "repo", git_daemon.base, "app.git")
    runner = GitRunner()
    url = validate_git_url(git_daemon.url("nope.git"))
    plan = clone_plan(url, GitRef("default"), str(tmp_path / "c1"), timeout_s=30, inherited_env=os.environ)
    result = await runner.run(plan.steps[0], plan.env, 30)
    assert not result.ok and classify_git_failure(result.stderr) == "repository_not_found"
    url = validate_git_url(git_daemon.url("app.git"))
    plan = clone_plan(url, GitRef("name", "nobranch"), str(tmp_path / "c2"), timeout_s=30, inherited_env=os.environ)
    result = await runner.run(plan.steps[0], plan.env, 30)
    assert not result.ok and classify_git_failure(result.stderr) == "ref_not_found"


async def test_timeout_kills_git_and_its_helpers(tmp_path):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    try:
        url = validate_git_url(f"git://127.0.0.1:{port}/stuck.git")
        plan = clone_plan(url, GitRef("default"), str(tmp_path / "t"), timeout_s=1.0, inherited_env=os.environ)
        runner = GitRunner()
        started = time.monotonic()
        result = await runner.run(plan.steps[0], plan.env, 1.0)
        took = time.monotonic() - started
        assert result.timed_out and not result.ok
        assert took < 5, took
        assert classify_git_failure(result.stderr, timed_out=result.timed_out) == "timeout"
        await asyncio.sleep(0.2)
        # nothing of that clone is left running
        leftovers = [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p).find(f"127.0.0.1:{port}") >= 0]
        assert leftovers == []
    finally:
        silent.close()


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
