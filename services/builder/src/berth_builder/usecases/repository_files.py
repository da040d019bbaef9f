"""One file of a repository at a ref, for the api (``rpc.builder.repository_file``): a compose file at
``compose.path`` is read here because the builder is the service that clones. And the commit a ref names now
(``rpc.builder.resolve_ref``: ``git ls-remote``, no clone), which the api records on a deployment when it is
requested, so the build takes that commit whatever the branch names by the time it starts.

The query is checked first (``domain.repository_file``: no git process runs for a bad URL, ref or path);
then the ref is checked out like a build's (``checkout.py``: the same URL rules, credentials, shallow clone
and deadline; a branch or tag without the other files' blobs where the server allows it, and only the file
checked out) into a workspace of its own, the file read without following a symlink (``adapters.context``)
and the workspace removed. At most ``BERTH_MAX_CONCURRENT_READS`` reads run at once; a refusal names the
query's field and never carries a credential (git's output is redacted of the URL's) or a builder path.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from berth_builder.adapters.context import ContextError, read_bytes
from berth_builder.adapters.git import GitRunner
from berth_builder.adapters.git_credentials import auth_base, credentials
from berth_builder.domain import repository_file as files
from berth_builder.domain.progress import Redactor
from berth_builder.domain.source import GitRef, GitUrl, InvalidInput, url_secrets
from berth_builder.settings import BuilderSettings
from berth_builder.usecases.checkout import Checkout, CloneFailed
from berth_common import sealing
from berth_common.catalogue import RepositoryFileQuery, RepositoryFileReply, ResolveRefQuery, ResolveRefReply
from berth_common.logging import get_logger

log = get_logger(__name__)


@dataclass(eq=False)
class RepositoryFiles:
    settings: BuilderSettings
    git: GitRunner
    slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.slots = asyncio.Semaphore(self.settings.max_concurrent_reads)

    async def answer(self, data: dict[str, Any]) -> RepositoryFileReply:
        """The reply to a received query (a malformed one is refused naming its first bad field)."""
        try:
            query = RepositoryFileQuery.model_validate(data)
        except ValidationError as exc:
            first = exc.errors(include_input=False, include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "query"
            return files.refused(where, first["msg"])
        return await self.read(query)

    async def read(self, query: RepositoryFileQuery) -> RepositoryFileReply:
        try:
            request = files.file_request(
                query,
                allow_local=self.settings.allow_local_git,
                max_bytes=self.settings.file_max_bytes,
                timeout_s=self.settings.file_timeout_s,
            )
        except InvalidInput as exc:
            return files.invalid(exc)
        workspace = self.settings.workspaces / f"file-{secrets.token_hex(8)}"
        git = self._checkout(query.repository, query.team_id, request.url, request.ref, request.timeout_s)
        try:
            async with self.slots, credentials(query.auth, request.url, auth_base(self.settings.workspaces)) as plan:
                git = git.with_credentials(plan)
                _, ref_found = await git.resolve()
                await asyncio.to_thread(workspace.mkdir, parents=True, exist_ok=True)
                checkout = workspace / "src"
                commit = await git.clone(str(checkout), ref_found=ref_found, on_line=None, say=None, only=request.path)
                data = await asyncio.to_thread(read_bytes, checkout, request.path, request.max_bytes)
        except CloneFailed as exc:
            log.info("repository file not read", repository=request.url.display, failure=exc.failure)
            return files.clone_refused(exc.failure, git.redact(exc.reason).replace(str(workspace), "."))
        except (InvalidInput, sealing.UnsealError) as exc:
            return files.refused("auth", f"the repository's credentials cannot be used: {exc}")
        except ContextError as exc:
            return files.refused("path", f"{exc} (at commit {commit})")
        finally:
            await asyncio.to_thread(shutil.rmtree, workspace, True)
        return files.found(data, commit, request.path)

    def _checkout(self, repository: str, team_id: str, url: GitUrl, ref: GitRef, timeout_s: float) -> Checkout:
        """A checkout of ``url`` at ``ref`` whose deadline starts now (the wait for a slot counts too), git's
        output redacted of the credentials ``repository`` carries, the team's outbound rule applied."""
        return Checkout.starting_now(
            self.git,
            url,
            ref,
            timeout_s,
            Redactor(url_secrets(repository)),
            self.settings.git_binary,
            policy=self.settings.outbound_policy_for(team_id),
        )

    async def answer_ref(self, data: dict[str, Any]) -> ResolveRefReply:
        """The reply to a received ``resolve_ref`` query (a malformed one is refused naming its first bad
        field)."""
        try:
            query = ResolveRefQuery.model_validate(data)
        except ValidationError as exc:
            first = exc.errors(include_input=False, include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "query"
            return ResolveRefReply(problem=files.problem(where, first["msg"]))
        return await self.resolve(query)

    async def resolve(self, query: ResolveRefQuery) -> ResolveRefReply:
        try:
            request = files.ref_request(
                query, allow_local=self.settings.allow_local_git, timeout_s=self.settings.file_timeout_s
            )
        except InvalidInput as exc:
            return ResolveRefReply(problem=files.problem(exc.field, exc.why))
        git = self._checkout(query.repository, query.team_id, request.url, request.ref, request.timeout_s)
        try:
            async with self.slots, credentials(query.auth, request.url, auth_base(self.settings.workspaces)) as plan:
                commit, _ = await git.with_credentials(plan).resolve()
        except CloneFailed as exc:
            log.info("ref not resolved", repository=request.url.display, failure=exc.failure)
            return files.ref_refused(exc.failure, exc.reason)
        except (InvalidInput, sealing.UnsealError) as exc:
            return ResolveRefReply(problem=files.problem("auth", f"the repository's credentials cannot be used: {exc}"))
        return ResolveRefReply(commit=commit)
