"""Checking out a ref of a repository: resolve it to a commit, clone it shallow, read the commit back.

The one way the builder runs git, for a build (``build.py``) and for reading one file of a repository
(``repository_files.py``): the clone plan of ``domain.clone`` run by ``adapters.git`` within one deadline,
a shallow fetch the server refuses retried with its branches, and a failure turned into a sentence a person
can act on, with every credential redacted from what git said.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from berth_builder.adapters.git import GitResult, GitRunner, LineSink
from berth_builder.domain import clone
from berth_builder.domain.git_credentials import CredentialPlan
from berth_builder.domain.progress import Redactor
from berth_builder.domain.source import GitRef, GitUrl
from berth_common.outbound import HostError, OutboundPolicy
from berth_common.outbound_net import OutboundRefused, checked_addresses

Say = Callable[[str], Awaitable[None]]
Redact = Callable[[str], str]


class CloneFailed(Exception):
    """git could not resolve or check out the ref; ``failure`` is its kind, ``reason`` is for a person."""

    def __init__(self, failure: clone.Failure, reason: str) -> None:
        super().__init__(reason)
        self.failure = failure
        self.reason = reason


@dataclass(frozen=True)
class Checkout:
    """Runs the git commands of one repository and ref against one deadline (``time.monotonic()``)."""

    git: GitRunner
    url: GitUrl
    ref: GitRef
    timeout_s: float  # the whole checkout's budget, named in a timeout's reason
    deadline: float
    redact: Redact
    git_binary: str = "git"
    credentials: CredentialPlan = field(default_factory=CredentialPlan)  # a private repository's
    policy: OutboundPolicy = field(default_factory=OutboundPolicy)  # the team's outbound policy

    @classmethod
    def starting_now(
        cls,
        git: GitRunner,
        url: GitUrl,
        ref: GitRef,
        timeout_s: float,
        redact: Redact,
        git_binary: str = "git",
        *,
        policy: OutboundPolicy,
    ) -> Checkout:
        deadline = time.monotonic() + timeout_s
        return cls(git, url, ref, timeout_s, deadline, redact, git_binary, policy=policy)

    async def _addresses(self) -> tuple[str, ...]:
        """The checked addresses of the git server (none for a local repository). Raises :class:`CloneFailed`
        when the outbound rule refuses one, or the name does not resolve."""
        target = clone.target_of(self.url)
        if target is None:
            return ()
        try:
            return tuple(await checked_addresses(*target, self.policy))
        except OutboundRefused as exc:
            raise self.failure("refused", exc.reason) from None
        except (OSError, HostError):
            raise self.failure("network") from None

    def with_credentials(self, plan: CredentialPlan) -> Checkout:
        """The same checkout authenticating with ``plan`` (its secrets redacted from git's output too)."""
        redact = self.redact
        if plan.secrets:
            more = Redactor(plan.secrets)

            def redact(text: str) -> str:
                return more(self.redact(text))

        return dataclasses.replace(self, credentials=plan, redact=redact)

    async def run(self, command: clone.GitCommand, env: dict[str, str], on_line: LineSink | None) -> GitResult:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            return GitResult(-1, "", "", timed_out=True)
        env = {k: v for k, v in env.items() if k not in self.credentials.drop} | self.credentials.env
        if command.purpose in ("resolve", "clone", "fetch"):  # the steps that reach the server
            command = clone.pinned(command, self.url, await self._addresses())
        return await self.git.run(command, env, remaining, on_line)

    def failed(self, result: GitResult) -> CloneFailed:
        failure = clone.classify_git_failure(result.stderr, timed_out=result.timed_out)
        return self.failure(failure, self.redact(result.stderr))

    def failure(self, failure: clone.Failure, stderr: str = "") -> CloneFailed:
        reason = clone.failure_reason(
            failure, display_url=self.url.display, ref=self.ref.value, timeout_s=self.timeout_s, stderr=stderr
        )
        return CloneFailed(failure, reason)

    async def resolve(self) -> tuple[str, bool]:
        """(the commit the ref names, whether the remote has a ref of that name), without cloning. A full
        commit id is its own answer; an abbreviated one the remote has no ref of gives ('', False)."""
        if self.ref.kind == "commit":
            return self.ref.value, True
        command = clone.resolve_command(self.url, self.ref, self.git_binary)
        assert command is not None
        result = await self.run(command, clone.git_env(self.url, os.environ), None)
        if not result.ok:
            raise self.failed(result)
        commit = clone.parse_ls_remote(result.stdout, self.ref) or ""
        if not commit and self.ref.kind != "short":
            raise self.failure("ref_not_found")
        return commit, bool(commit)

    async def clone(
        self, directory: str, *, ref_found: bool, on_line: LineSink | None, say: Say | None, only: str | None = None
    ) -> str:
        """Check the ref out into ``directory`` (made by git); the commit checked out. ``only``: the one file
        needed (``domain.clone.clone_plan``: a branch or tag is then fetched without other blobs)."""
        plan = clone.clone_plan(
            self.url,
            self.ref,
            directory,
            timeout_s=self.timeout_s,
            inherited_env=os.environ,
            ref_found=ref_found,
            git=self.git_binary,
            only=only,
        )
        for step in plan.steps:
            result = await self.run(step, dict(plan.env), on_line)
            if not result.ok and step.purpose == "fetch" and plan.fallback and not result.timed_out:
                if say is not None:
                    await say("the server refused a shallow fetch of the commit: fetching its branches instead")
                for fallback in plan.fallback:
                    result = await self.run(fallback, dict(plan.env), on_line)
                    if not result.ok:
                        raise self.failed(result)
                break
            if not result.ok:
                raise self.failed(result)
        head = await self.run(plan.head, dict(plan.env), None)
        if not head.ok:
            raise self.failed(head)
        return head.stdout.strip()
