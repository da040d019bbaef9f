"""The clone plan (argv, environment, fallback) and reading git's answers, by exact comparison."""

from __future__ import annotations

import pytest

from berth_builder.domain.clone import (
    ClonePlan,
    GitCommand,
    classify_git_failure,
    clone_plan,
    failure_reason,
    git_env,
    parse_ls_remote,
    resolve_command,
)
from berth_builder.domain.source import GitRef, validate_git_url

URL = validate_git_url("https://example.com/acme/app.git")
LOCAL = validate_git_url("/srv/git/app.git", allow_local=True)
BASE = (
    "git",
    "-c",
    "protocol.ext.allow=never",
    "-c",
    "protocol.file.allow=never",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "submodule.recurse=false",
)
SHA = "0123456789abcdef0123456789abcdef01234567"
INHERITED = {
    "HOME": "/root",
    "PATH": "/evil/bin",
    "GIT_ASKPASS": "/usr/bin/askpass",
    "SSH_ASKPASS": "/usr/bin/askpass",
    "GIT_DIR": "/elsewhere",
    "GIT_CONFIG_PARAMETERS": "'core.sshCommand=touch /tmp/x'",
    "https_proxy": "http://127.0.0.1:3128",
}
ENV = {
    "HOME": "/root",
    "https_proxy": "http://127.0.0.1:3128",
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL": "C",
    "LANG": "C",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ALLOW_PROTOCOL": "https:http:git:ssh",
    "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o ConnectTimeout=30",
    "GIT_LFS_SKIP_SMUDGE": "1",
}


def test_environment_is_built_from_scratch():
    assert git_env(URL, INHERITED) == ENV
    local = git_env(LOCAL, {})
    assert local["GIT_ALLOW_PROTOCOL"] == "https:http:git:ssh:file"
    assert local["HOME"] == "/nonexistent"
    assert "GIT_ASKPASS" not in local and "SSH_ASKPASS" not in local


def test_clone_of_a_branch():
    plan = clone_plan(URL, GitRef("name", "main"), "/w/b1/src", timeout_s=120, inherited_env=INHERITED)
    assert plan == ClonePlan(
        directory="/w/b1/src",
        steps=(
            GitCommand(
                "clone",
                (
                    *BASE,
                    "clone",
                    "--depth",
                    "1",
                    "--single-branch",
                    "--branch",
                    "main",
                    "--no-tags",
                    "--",
                    "https://example.com/acme/app.git",
                    "/w/b1/src",
                ),
            ),
        ),
        head=GitCommand("head", (*BASE, "-C", "/w/b1/src", "rev-parse", "--verify", "HEAD^{commit}")),
        env=ENV,
        timeout_s=120,
    )


def test_clone_of_the_default_branch():
    plan = clone_plan(URL, GitRef("default"), "/w/b1/src", timeout_s=60, inherited_env={})
    assert plan.steps == (
        GitCommand(
            "clone",
            (
                *BASE,
                "clone",
                "--depth",
                "1",
                "--single-branch",
                "--no-tags",
                "--",
                "https://example.com/acme/app.git",
                "/w/b1/src",
            ),
        ),
    )


def test_fetch_of_a_commit_with_fallback():
    plan = clone_plan(URL, GitRef("commit", SHA), "/w/b/src", timeout_s=60, inherited_env={})
    url = "https://example.com/acme/app.git"
    assert plan.steps == (
        GitCommand("init", (*BASE, "init", "-q", "--", "/w/b/src")),
        GitCommand("fetch", (*BASE, "-C", "/w/b/src", "fetch", "-q", "--depth", "1", "--no-tags", "--", url, SHA)),
        GitCommand("checkout", (*BASE, "-C", "/w/b/src", "checkout", "-q", "--detach", "FETCH_HEAD", "--")),
    )
    assert plan.fallback == (
        GitCommand(
            "fetch",
            (*BASE, "-C", "/w/b/src", "fetch", "-q", "--no-tags", "--", url, "+refs/heads/*:refs/remotes/origin/*"),
        ),
        GitCommand("checkout", (*BASE, "-C", "/w/b/src", "checkout", "-q", "--detach", SHA, "--")),
    )


def test_short_ref_is_a_branch_when_the_remote_has_it_else_an_abbreviated_commit():
    as_branch = clone_plan(URL, GitRef("short", "deadbee"), "/w/src", timeout_s=1, inherited_env={}, ref_found=True)
    assert as_branch.steps[0].purpose == "clone" and "deadbee" in as_branch.steps[0].argv
    as_commit = clone_plan(URL, GitRef("short", "deadbee"), "/w/src", timeout_s=1, inherited_env={}, ref_found=False)
    assert [s.purpose for s in as_commit.steps] == ["init", "fetch", "checkout"]
    assert as_commit.steps[2].argv[-3:] == ("--detach", "deadbee", "--")
    assert as_commit.fallback == ()


def test_local_repositories_allow_the_file_protocol_only_then():
    plan = clone_plan(LOCAL, GitRef("name", "main"), "/w/src", timeout_s=1, inherited_env={})
    argv = plan.steps[0].argv
    assert argv[:5] == ("git", "-c", "protocol.ext.allow=never", "-c", "protocol.file.allow=always")
    assert argv[-3:] == ("--", "file:///srv/git/app.git", "/w/src")


def test_every_command_puts_double_dash_before_positionals():
    url = "https://example.com/acme/app.git"
    for ref in (GitRef("default"), GitRef("name", "main"), GitRef("commit", SHA), GitRef("short", "abcdef1")):
        plan = clone_plan(URL, ref, "/w/src", timeout_s=1, inherited_env={}, ref_found=False)
        for cmd in (*plan.steps, *plan.fallback):
            dashes = cmd.argv.index("--")
            for positional in (url, SHA, "abcdef1", "FETCH_HEAD"):
                if positional in cmd.argv and cmd.purpose != "checkout":
                    assert cmd.argv.index(positional) > dashes, cmd
            if cmd.purpose in ("clone", "init"):
                assert cmd.argv[-1] == "/w/src" and cmd.argv.index("/w/src") > dashes


def test_resolve_commands():
    assert resolve_command(URL, GitRef("commit", SHA)) is None
    assert resolve_command(URL, GitRef("default")) == GitCommand(
        "resolve", (*BASE, "ls-remote", "--", "https://example.com/acme/app.git", "HEAD")
    )
    assert resolve_command(URL, GitRef("name", "v1")) == GitCommand(
        "resolve",
        (
            *BASE,
            "ls-remote",
            "--",
            "https://example.com/acme/app.git",
            "refs/heads/v1",
            "refs/tags/v1",
            "refs/tags/v1^{}",
        ),
    )


def test_parse_ls_remote():
    out = (
        f"{'1' * 40}\tHEAD\n{'2' * 40}\trefs/heads/main\n{'3' * 40}\trefs/tags/v1\n{'4' * 40}\trefs/tags/v1^{{}}\n"
        f"{'5' * 40}\trefs/heads/v2\n{'6' * 40}\trefs/tags/v2\nwarning: redirecting\n"
    )
    assert parse_ls_remote(out, GitRef("default")) == "1" * 40
    assert parse_ls_remote(out, GitRef("name", "main")) == "2" * 40
    assert parse_ls_remote(out, GitRef("name", "v1")) == "4" * 40  # the peeled annotated tag
    assert parse_ls_remote(out, GitRef("name", "v2")) == "5" * 40  # a branch wins over a tag
    assert parse_ls_remote(out, GitRef("name", "nope")) is None
    assert parse_ls_remote(out, GitRef("commit", SHA)) == SHA
    assert parse_ls_remote("", GitRef("default")) is None


@pytest.mark.parametrize(
    ("stderr", "failure"),
    [
        ("fatal: Authentication failed for 'https://example.com/x.git/'", "auth"),
        ("fatal: could not read Username for 'https://example.com': terminal prompts disabled", "auth"),
        ("git@example.com: Permission denied (publickey).", "auth"),
        ("Host key verification failed.", "auth"),
        (
            "warning: Could not find remote branch nope to clone.\nfatal: Remote branch nope not found in upstream origin",
            "ref_not_found",
        ),
        ("fatal: couldn't find remote ref refs/heads/x", "ref_not_found"),
        ("error: pathspec 'abc1234' did not match any file(s) known to git", "ref_not_found"),
        ("fatal: remote error: access denied or repository not exported: /nope.git", "repository_not_found"),
        ("remote: Repository not found.\nfatal: repository 'https://x/y/' not found", "repository_not_found"),
        ("fatal: '/srv/nope' does not appear to be a git repository", "repository_not_found"),
        ("fatal: unable to access 'https://nohost.invalid/x/': Could not resolve host: nohost.invalid", "network"),
        ("fatal: unable to connect to 127.0.0.1:\n127.0.0.1[0: 127.0.0.1]: errno=Connection refused", "network"),
        ("something odd", "unknown"),
    ],
)
def test_classify_git_failure(stderr, failure):
    assert classify_git_failure(stderr) == failure


def test_timeout_wins_and_reasons_are_actionable():
    assert classify_git_failure("Connection refused", timed_out=True) == "timeout"
    reason = failure_reason("timeout", display_url="https://x/y.git", ref="main", timeout_s=30, stderr="")
    assert reason == (
        "cloning https://x/y.git (ref 'main') timed out after 30s: check that the server is reachable from the "
        "builder, or raise BERTH_CLONE_TIMEOUT_S for a large repository."
    )
    reason = failure_reason(
        "repository_not_found",
        display_url="git://h/x.git",
        ref="",
        timeout_s=1,
        stderr="fatal: remote error: access denied or repository not exported: /x.git\n",
    )
    assert reason == (
        "repository git://h/x.git not found: check the URL (and that it is exported or that the builder may read "
        "it). git said: fatal: remote error: access denied or repository not exported: /x.git"
    )
    assert "needs credentials" in failure_reason("auth", display_url="u", ref="", timeout_s=1, stderr="")
    assert "has no branch, tag or commit 'v9'" in failure_reason(
        "ref_not_found", display_url="u", ref="v9", timeout_s=1, stderr=""
    )
    assert failure_reason("ref_not_found", display_url="u", ref="", timeout_s=1, stderr="") == (
        "the repository u has no default branch: is it empty?"
    )
