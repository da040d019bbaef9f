"""A compose file at a path of the application's git repository (``compose.path``), read by the builder:
the api does not clone, the builder does (``rpc.builder.repository_file``: the same URL and ref rules,
credentials and deadline as a build's clone).

The file is read at the ref the application builds (its commit if pinned, else its branch, else the
remote's HEAD), at most ``BERTH_COMPOSE_MAX_BYTES``, within ``BERTH_COMPOSE_READ_TIMEOUT_S``. What the
builder refuses is answered naming the request's field: the path (no such file, too large, a symlink, not
text), the ref, or the repository (not found, no access), each with a 422; a git server that did not
answer is a 502. A builder that cannot be asked is ``BuilderAway``: the caller decides (an application whose
file was never read is stored untranslated; one read before answers 503, its translation kept).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from berth_api.domain.applications import git_ref
from berth_api.domain.problems import ProblemError, invalid_field
from berth_api.usecases import Deps
from berth_common.bus import QueryFailedError, ServiceUnavailableError
from berth_common.catalogue import Problem, RepositoryFileQuery, RepositoryFileReply
from berth_common.catalogue.git_auth import GitAuth
from berth_common.logging import get_logger

log = get_logger(__name__)
BUILDER = "builder"
PATH_LOC = "/body/compose/path"
MARGIN_S = 5.0  # the builder's own deadline comes first; then the bus gives up
RETRY_AFTER_S = 5


class BuilderAway(Exception):
    """The builder could not be asked (not running, or the bus is down); ``str()`` says which."""


def unavailable(reason: str) -> ProblemError:
    """The 503 for a compose file that must be read now while the builder cannot be asked."""
    return ProblemError(
        503,
        f"The builder service is unavailable: {reason}. Try again shortly.",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


@dataclass(frozen=True)
class ComposeFile:
    path: str
    text: str
    commit: str


def _loc(field: str | None, source: dict[str, Any]) -> str:
    if field == "repository":
        return "/body/source/repository"
    if field == "ref":
        return "/body/source/commit" if source.get("commit") else "/body/source/branch"
    return PATH_LOC


def _refusal(problem: Problem, path: str, source: dict[str, Any]) -> ProblemError:
    detail = f"reading compose.path {path!r}: {problem.detail or problem.title}"
    loc = _loc(problem.field, source)
    if 400 <= problem.status < 500:
        return invalid_field(loc, detail, status=problem.status)
    return ProblemError(
        502,
        f"The builder could not read compose.path {path!r}: {problem.detail or problem.title}",
        slug="upstream-error",
        title="Bad gateway",
        errors=[{"loc": loc, "detail": detail, "type": "upstream-error"}],
    )


async def read(
    deps: Deps, config: dict[str, Any], auth: GitAuth | None = None, team_id: str | None = None
) -> ComposeFile:
    """The compose file ``config["compose"]["path"]`` of the application's git source, as the builder reads
    it now (raises ``ProblemError`` for what the builder refused, ``BuilderAway`` when it cannot be asked);
    ``auth``: the repository's credentials (``usecases.git_auth``)."""
    source = config["source"]
    path = config["compose"]["path"]
    query = RepositoryFileQuery(
        repository=source["repository"],
        ref=git_ref(source),
        path=path,
        max_bytes=deps.settings.compose_max_bytes,
        timeout_s=deps.settings.compose_read_timeout_s,
        auth=auth,
        team_id=team_id or "",
    )
    if not deps.bus.connected:
        raise BuilderAway("the bus cannot be reached")
    timeout = deps.settings.compose_read_timeout_s + MARGIN_S
    try:
        reply = await deps.bus.request(BUILDER, "repository_file", query, RepositoryFileReply, timeout=timeout)
    except ServiceUnavailableError as exc:
        raise BuilderAway(str(exc).replace(f"service {BUILDER!r} ", "it ")) from None
    except (QueryFailedError, ValidationError) as exc:
        log.warning("repository file query failed", error=str(exc)[:300])
        raise ProblemError(
            502, f"The builder failed to read compose.path {path!r}; it has been logged.", slug="upstream-error"
        ) from None
    except Exception as exc:  # the connection dropped while asking
        raise BuilderAway(f"the bus cannot be reached ({type(exc).__name__})") from None
    if reply.problem is not None:
        raise _refusal(reply.problem, path, source)
    return ComposeFile(path, reply.text, reply.commit)
