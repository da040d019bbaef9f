"""Reading one file of a repository (``rpc.builder.repository_file``), and the commit a ref names now
(``rpc.builder.resolve_ref``), as pure data: the checked requests and the answers, a refusal naming the
query's field.

The path is relative to the repository's root, normalised, without ``..`` and without a leading ``-``
(``domain.source.validate_relpath``); the file itself is read without following a symlink anywhere on
the way (``adapters.context``). The size cap and the deadline are the query's when smaller than the
builder's settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from berth_builder.domain import git_credentials
from berth_builder.domain.clone import Failure
from berth_builder.domain.source import (
    GitRef,
    GitUrl,
    InvalidInput,
    validate_git_url,
    validate_ref,
    validate_relpath,
)
from berth_common.catalogue import (
    Problem,
    RepositoryFileQuery,
    RepositoryFileReply,
    ResolveRefQuery,
    ResolveRefReply,
)

UNPROCESSABLE = 422
BAD_GATEWAY = 502
# What a failed clone is about: the repository (its URL or the builder's access to it) or the ref; a
# server that did not answer is the git server's failure, not the request's.
FAILURE_FIELD: dict[Failure, tuple[str, int]] = {
    "auth": ("repository", UNPROCESSABLE),
    "host_key": ("repository", UNPROCESSABLE),
    "repository_not_found": ("repository", UNPROCESSABLE),
    "ref_not_found": ("ref", UNPROCESSABLE),
    "network": ("repository", BAD_GATEWAY),
    "refused": ("repository", UNPROCESSABLE),
    "timeout": ("repository", BAD_GATEWAY),
    "unknown": ("repository", BAD_GATEWAY),
}


@dataclass(frozen=True)
class FileRequest:
    url: GitUrl
    ref: GitRef
    path: str
    max_bytes: int
    timeout_s: float


def file_request(query: RepositoryFileQuery, *, allow_local: bool, max_bytes: int, timeout_s: float) -> FileRequest:
    """The checked request (raises ``InvalidInput`` naming ``repository``, ``ref`` or ``path``)."""
    url = validate_git_url(query.repository, allow_local=allow_local, field="repository")
    ref = validate_ref(query.ref, field="ref")
    path = validate_relpath(query.path, "path", allow_empty=False)
    git_credentials.check(query.auth, url, "auth")
    cap = min(query.max_bytes or max_bytes, max_bytes)
    deadline = min(query.timeout_s or timeout_s, timeout_s)
    return FileRequest(url, ref, path, cap, deadline)


@dataclass(frozen=True)
class RefRequest:
    url: GitUrl
    ref: GitRef
    timeout_s: float


def ref_request(query: ResolveRefQuery, *, allow_local: bool, timeout_s: float) -> RefRequest:
    """The checked request (raises ``InvalidInput`` naming ``repository``, ``ref`` or ``auth``)."""
    url = validate_git_url(query.repository, allow_local=allow_local, field="repository")
    ref = validate_ref(query.ref, field="ref")
    git_credentials.check(query.auth, url, "auth")
    return RefRequest(url, ref, min(query.timeout_s or timeout_s, timeout_s))


def problem(field: str, why: str, status: int = UNPROCESSABLE) -> Problem:
    """Why a query was not answered (``field``: the query's field it is about)."""
    title = "Invalid request" if status == UNPROCESSABLE else "The git server failed"
    kind = "invalid" if status == UNPROCESSABLE else "upstream-error"
    return Problem(status=status, type=kind, title=title, field=field, detail=why)


def refused(field: str, why: str, status: int = UNPROCESSABLE) -> RepositoryFileReply:
    """The reply that says why the file was not read."""
    return RepositoryFileReply(problem=problem(field, why, status))


def clone_refused(failure: Failure, reason: str) -> RepositoryFileReply:
    field, status = FAILURE_FIELD[failure]
    return refused(field, reason, status)


def ref_refused(failure: Failure, reason: str) -> ResolveRefReply:
    """The reply that says why the ref was not resolved (what git's failure is about)."""
    field, status = FAILURE_FIELD[failure]
    return ResolveRefReply(problem=problem(field, reason, status))


def found(data: bytes, commit: str, path: str) -> RepositoryFileReply:
    """The file's text; a file that is not UTF-8 is refused (a compose file, a manifest: text)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return refused("path", f"{path!r} is not a UTF-8 text file")
    return RepositoryFileReply(text=text, size=len(data), commit=commit)


def invalid(exc: InvalidInput) -> RepositoryFileReply:
    return refused(exc.field, exc.why)
