"""Who may read a Prometheus exposition of Berth, and what they see.

The platform's scrape token (``BERTH_METRICS_TOKEN``, generated at first start like the other secrets)
is the operator's: it reads every series, labelled by container id and server only, never by team,
application or deployment. A team's scrape token is derived from it (an HMAC of the team's id), so the
metrics service checks it without a store: it reads that team's containers only, with their Berth labels.
The metrics service and the cli (which hands a team its token) share this one rule.

Every other service's ``/metrics`` (its process registry: request counts by route, bus and database
timings) answers the platform's token only (``platform_exposition``): nothing there is a team's, and a
service's internals are the operator's. No token configured: ``/metrics`` answers no one.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

TEAM_TOKEN_PREFIX = "bmt_"  # berth metrics team token: ``bmt_<team id>.<hex digest>``
_CONTEXT = b"berth metrics scrape token for team "


@dataclass(frozen=True)
class ScrapeScope:
    """What a caller may see: every series without team metadata (``team`` None), or one team's."""

    team: str | None = None


def team_token(platform_token: str, team_id: str) -> str:
    """The scrape token of ``team_id``: only a holder of the platform token can make it."""
    if not team_id or "." in team_id:
        raise ValueError(f"not a team id: {team_id!r}")
    digest = hmac.new(platform_token.encode(), _CONTEXT + team_id.encode(), hashlib.sha256).hexdigest()
    return f"{TEAM_TOKEN_PREFIX}{team_id}.{digest}"


def scope_of(authorization: str, platform_token: str) -> ScrapeScope | None:
    """The scope the ``Authorization`` header's bearer token grants; None when it grants nothing (no
    header, another scheme, a wrong token, or no platform token configured)."""
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if not platform_token or scheme.lower() != "bearer" or not token:
        return None
    if hmac.compare_digest(token.encode(), platform_token.encode()):
        return ScrapeScope()
    if token.startswith(TEAM_TOKEN_PREFIX):
        team, _, _ = token[len(TEAM_TOKEN_PREFIX) :].rpartition(".")
        if team and "." not in team and hmac.compare_digest(token.encode(), team_token(platform_token, team).encode()):
            return ScrapeScope(team=team)
    return None


def platform_exposition(platform_token: str, render: Callable[[], bytes]) -> Callable[[str], bytes | None]:
    """What a service's ``/metrics`` answers a request's ``Authorization`` header: ``render()`` for the
    platform token's bearer, None (refused) for anyone else, a team's token included."""

    def answer(authorization: str) -> bytes | None:
        scope = scope_of(authorization, platform_token)
        return render() if scope is not None and scope.team is None else None

    return answer
