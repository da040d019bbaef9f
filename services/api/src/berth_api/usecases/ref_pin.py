"""The commit a git application's branch or tag names when a deployment is requested, asked of the builder
(``rpc.builder.resolve_ref``: ``git ls-remote`` with the application's credentials and the team's outbound
rule), so the deployment records it at once and its build takes exactly it, whatever the branch names by
the time the build starts (a deployment queued behind another, a push in between).

Nothing is refused here: when the builder cannot be asked, does not answer in time, or cannot tell (no such
branch, no access, an abbreviated commit id), the deployment goes on with the ref as it is and its build
resolves it, failing there with the reason as before.
"""

from __future__ import annotations

import re

from berth_api.usecases import Deps
from berth_common.catalogue import ApplicationSpec, GitSource, ResolveRefQuery, ResolveRefReply
from berth_common.logging import get_logger

log = get_logger(__name__)
BUILDER = "builder"
MARGIN_S = 2.0  # the builder's own deadline comes first; then the bus gives up
FULL_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def to_resolve(spec: ApplicationSpec) -> GitSource | None:
    """The git source whose ref names no commit by itself (None: not git, or a full commit id already)."""
    source = spec.source
    if not isinstance(source, GitSource) or FULL_COMMIT.fullmatch(source.ref):
        return None
    return source


async def commit_now(deps: Deps, spec: ApplicationSpec, team_id: str) -> str | None:
    """The full commit the spec's ref names now, or None (see the module's docstring)."""
    source = to_resolve(spec)
    if source is None or not deps.bus.connected:
        return None
    timeout = deps.settings.ref_resolve_timeout_s
    query = ResolveRefQuery(
        repository=source.repository, ref=source.ref, timeout_s=timeout, auth=source.auth, team_id=team_id
    )
    try:
        reply = await deps.bus.request(BUILDER, "resolve_ref", query, ResolveRefReply, timeout=timeout + MARGIN_S)
    except Exception as exc:  # away, too slow, or the connection dropped: the build resolves it
        log.info("ref not resolved at request", ref=source.ref, error=f"{type(exc).__name__}: {str(exc)[:200]}")
        return None
    if reply.problem is not None or not FULL_COMMIT.fullmatch(reply.commit):
        why = reply.problem.detail if reply.problem is not None else "an abbreviated commit id"
        log.info("ref not resolved at request", ref=source.ref, reason=(why or "")[:300])
        return None
    return reply.commit
