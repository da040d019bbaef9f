"""The clone plan as pure data: git argv lists, their environment and deadline, and reading git's answers.

Every git invocation disables the ``ext`` transport and (unless local repositories are allowed) the
``file`` transport, both by ``-c protocol.*.allow`` and by the ``GIT_ALLOW_PROTOCOL`` whitelist; puts
``--`` before positional arguments; runs without a terminal prompt, without askpass helpers and without
hooks, in an environment built from scratch.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from berth_builder.domain.source import GitRef, GitUrl
from berth_common.outbound import url_host

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PASSTHROUGH_ENV = (
    "HOME",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "GIT_SSL_CAINFO",
    "SSH_AUTH_SOCK",
)
_SHA_LINE = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})\t(\S+)$")

Purpose = Literal["resolve", "clone", "init", "fetch", "checkout", "head"]
Failure = Literal[
    "timeout", "host_key", "auth", "repository_not_found", "ref_not_found", "network", "refused", "unknown"
]
DEFAULT_PORTS = {"https": 443, "http": 80, "ssh": 22, "git": 9418}


@dataclass(frozen=True)
class GitCommand:
    purpose: Purpose
    argv: tuple[str, ...]
    cwd: str | None = None


@dataclass(frozen=True)
class ClonePlan:
    """``steps`` check out the source into ``directory``; ``fallback`` replaces the shallow fetch of a
    commit when the server refuses to serve an unadvertised object; ``head`` prints the commit."""

    directory: str
    steps: tuple[GitCommand, ...]
    head: GitCommand
    env: Mapping[str, str]
    timeout_s: float
    fallback: tuple[GitCommand, ...] = field(default=())


def git_env(url: GitUrl, inherited: Mapping[str, str]) -> dict[str, str]:
    """The complete environment of every git process (nothing else is inherited)."""
    env = {k: inherited[k] for k in PASSTHROUGH_ENV if k in inherited}
    env.update(
        {
            "PATH": SAFE_PATH,
            "LC_ALL": "C",
            "LANG": "C",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ALLOW_PROTOCOL": "https:http:git:ssh" + (":file" if url.local else ""),
            "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o ConnectTimeout=30",
            "GIT_LFS_SKIP_SMUDGE": "1",
        }
    )
    env.setdefault("HOME", "/nonexistent")
    return env


def git_base(url: GitUrl, git: str = "git") -> tuple[str, ...]:
    return (
        git,
        "-c",
        "protocol.ext.allow=never",
        "-c",
        f"protocol.file.allow={'always' if url.local else 'never'}",
        "-c",
        "core.hooksPath=/dev/null",
        "-c",
        "submodule.recurse=false",
    )


def target_of(url: GitUrl) -> tuple[str, int] | None:
    """(host, port) git connects to for ``url`` (None for a local repository): the outbound rule checks the
    addresses of that host before git runs."""
    if url.local:
        return None
    host = url_host(url.url).strip("[]")
    port = urlsplit(url.url).port if "://" in url.url else None
    return host, port or DEFAULT_PORTS.get(url.transport, 22)


def pinned(command: GitCommand, url: GitUrl, addresses: tuple[str, ...]) -> GitCommand:
    """``command`` connecting only to ``addresses`` (checked by the outbound rule) where git allows it:
    over http(s), curl resolves the host to exactly these (``http.curloptResolve``, so a second DNS answer
    cannot differ: DNS rebinding) and follows no redirect (``http.followRedirects=false``: a redirect
    could lead anywhere). ssh and git:// connect by name: the check before the run is what holds there."""
    target = target_of(url)
    if target is None or url.transport not in ("http", "https") or not addresses:
        return command
    host, port = target
    shown = ",".join(f"[{a}]" if ":" in a else a for a in addresses)
    host_part = f"[{host}]" if ":" in host else host
    options = ("-c", "http.followRedirects=false", "-c", f"http.curloptResolve={host_part}:{port}:{shown}")
    return dataclasses.replace(command, argv=(command.argv[0], *options, *command.argv[1:]))


def resolve_command(url: GitUrl, ref: GitRef, git: str = "git") -> GitCommand | None:
    """``git ls-remote`` for the ref's commit (None for a full commit id: nothing to resolve)."""
    if ref.kind == "commit":
        return None
    if ref.kind == "default":
        patterns: tuple[str, ...] = ("HEAD",)
    else:
        patterns = (f"refs/heads/{ref.value}", f"refs/tags/{ref.value}", f"refs/tags/{ref.value}^{{}}")
    return GitCommand("resolve", (*git_base(url, git), "ls-remote", "--", url.url, *patterns))


def parse_ls_remote(output: str, ref: GitRef) -> str | None:
    """The commit ``ref`` names in ``git ls-remote`` output: a branch first, then a peeled tag, then a tag."""
    refs: dict[str, str] = {}
    for line in output.splitlines():
        m = _SHA_LINE.match(line.strip())
        if m:
            refs[m.group(2)] = m.group(1)
    if ref.kind == "default":
        return refs.get("HEAD")
    if ref.kind == "commit":
        return ref.value
    for name in (f"refs/heads/{ref.value}", f"refs/tags/{ref.value}^{{}}", f"refs/tags/{ref.value}"):
        if name in refs:
            return refs[name]
    return None


def clone_plan(
    url: GitUrl,
    ref: GitRef,
    directory: str,
    *,
    timeout_s: float,
    inherited_env: Mapping[str, str],
    ref_found: bool = True,
    git: str = "git",
    only: str | None = None,
) -> ClonePlan:
    """How to check out ``ref`` of ``url`` into ``directory`` (an absolute path in the workspace).

    ``ref_found`` is the result of the resolve step for a ``short`` ref: True when the remote has a
    branch or tag of that name (cloned as a name), False when it is taken as an abbreviated commit.
    ``only``: one file (a checked relative path) is all that is needed: a branch, tag or the default
    branch is then cloned without blobs where the server allows it (``--filter=blob:none``) and only that
    path is checked out (a sparse checkout); a commit is checked out whole, as for a build.
    """
    base = git_base(url, git)
    env = git_env(url, inherited_env)
    head = GitCommand("head", (*base, "-C", directory, "rev-parse", "--verify", "HEAD^{commit}"))
    if ref.kind == "default" or (ref.kind in ("name", "short") and ref_found):
        branch = ("--branch", ref.value) if ref.kind != "default" else ()
        sparse = ("--filter=blob:none", "--no-checkout") if only is not None else ()
        argv = (
            *(*base, "clone", "--depth", "1", "--single-branch", *branch, "--no-tags", *sparse),
            *("--", url.url, directory),
        )
        steps: tuple[GitCommand, ...] = (GitCommand("clone", argv),)
        if only is not None:
            pattern = sparse_pattern(only)
            steps += (
                GitCommand("checkout", (*base, "-C", directory, "sparse-checkout", "set", "--no-cone", pattern)),
                GitCommand("checkout", (*base, "-C", directory, "read-tree", "-mu", "HEAD")),
            )
        return ClonePlan(directory, steps, head, env, timeout_s)
    init = GitCommand("init", (*base, "init", "-q", "--", directory))
    full_fetch = GitCommand(
        "fetch",
        (*base, "-C", directory, "fetch", "-q", "--no-tags", "--", url.url, "+refs/heads/*:refs/remotes/origin/*"),
    )
    checkout = GitCommand("checkout", (*base, "-C", directory, "checkout", "-q", "--detach", ref.value, "--"))
    if ref.kind == "short":  # an abbreviated commit cannot be fetched by itself: fetch the branches
        return ClonePlan(directory, (init, full_fetch, checkout), head, env, timeout_s)
    shallow = GitCommand(
        "fetch", (*base, "-C", directory, "fetch", "-q", "--depth", "1", "--no-tags", "--", url.url, ref.value)
    )
    detach = GitCommand("checkout", (*base, "-C", directory, "checkout", "-q", "--detach", "FETCH_HEAD", "--"))
    return ClonePlan(directory, (init, shallow, detach), head, env, timeout_s, fallback=(full_fetch, checkout))


def sparse_pattern(path: str) -> str:
    """The sparse-checkout pattern (gitignore syntax) that matches exactly the file ``path`` of the root:
    anchored with '/', every wildcard and space escaped (a checked path has no backslash to confuse)."""
    return "/" + "".join(f"\\{c}" if c in "*?[]!# " else c for c in path)


_PATTERNS: tuple[tuple[Failure, tuple[str, ...]], ...] = (
    (
        "host_key",  # against pinned host keys (a deploy key's clone): changed, or none pinned for the server
        (
            "remote host identification has changed",
            "has changed and you have requested strict checking",
            "host key is known for",
        ),
    ),
    (
        "auth",
        (
            "authentication failed",
            "could not read username",
            "could not read password",
            "terminal prompts disabled",
            "permission denied (publickey",
            "invalid username or password",
            "host key verification failed",
            "the requested url returned error: 401",
            "the requested url returned error: 403",
        ),
    ),
    (
        "ref_not_found",
        (
            "remote branch",
            "couldn't find remote ref",
            "could not find remote branch",
            "not our ref",
            "did not match any file",
            "unknown revision",
            "reference is not a tree",
        ),
    ),
    (
        "repository_not_found",
        (
            "repository not found",
            "does not appear to be a git repository",
            "access denied or repository not exported",
            "the requested url returned error: 404",
            "not found",
        ),
    ),
    (
        "network",
        (
            "could not resolve host",
            "connection refused",
            "connection timed out",
            "network is unreachable",
            "unable to connect",
            "failed to connect",
            "no route to host",
            "connection reset",
        ),
    ),
)


def classify_git_failure(stderr: str, *, timed_out: bool = False) -> Failure:
    if timed_out:
        return "timeout"
    text = stderr.lower()
    for failure, needles in _PATTERNS:
        if any(n in text for n in needles):
            return failure
    return "unknown"


def failure_reason(failure: Failure, *, display_url: str, ref: str, timeout_s: float, stderr: str) -> str:
    """A sentence a person can act on (the URL is already redacted; ``stderr`` must be, too)."""
    target = f"{display_url} (ref {ref!r})" if ref else display_url
    last = next((ln.strip() for ln in reversed(stderr.splitlines()) if ln.strip()), "")
    detail = f" git said: {last[:500]}" if last and failure != "refused" else ""
    reasons = {
        "timeout": f"cloning {target} timed out after {timeout_s:g}s: check that the server is reachable from "
        "the builder, or raise BERTH_CLONE_TIMEOUT_S for a large repository.",
        "host_key": f"the SSH server of {display_url} presented a host key that is not the one pinned for it, "
        "so the clone was refused: if the forge really changed its key, check the new fingerprint with the forge "
        "and accept it (the application's deploy key: host keys); otherwise someone may be in between.",
        "auth": f"cloning {display_url} needs credentials the builder does not have: make the repository "
        "public, or give the application a deploy key (ssh URLs) or an access token (https URLs) the forge "
        "accepts (docs/git.md).",
        "ref_not_found": f"the repository {display_url} has no branch, tag or commit {ref!r}: check the ref."
        if ref
        else f"the repository {display_url} has no default branch: is it empty?",
        "repository_not_found": f"repository {display_url} not found: check the URL (and that it is exported "
        "or that the builder may read it).",
        "network": f"cannot reach the git server of {display_url}: check the host name and the network.",
        "refused": f"{display_url} was not cloned: {stderr}",
        "unknown": f"cloning {target} failed.",
    }
    return reasons[failure] + detail
