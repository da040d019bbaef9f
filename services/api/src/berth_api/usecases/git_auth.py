"""The credentials an application's repository takes, for the builder: ``auth_for`` gives the ``GitAuth`` a
deployment or a compose file read carries (the deploy key with the pinned host keys, or the token),
pinning at first contact the host keys the server presents when none is pinned for it (``offered``: read
by the builder, which reaches the forge, through ``rpc.builder.host_keys``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters import git_credentials as repo
from berth_api.adapters.sealed import hold_for_sealing
from berth_api.domain import git_access as domain
from berth_api.domain.applications import row_aad
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError, invalid_field
from berth_api.usecases import Deps
from berth_common import ssh_keys
from berth_common.bus import QueryFailedError, ServiceUnavailableError
from berth_common.catalogue import ApplicationSpec, GitSource, HostKeysQuery, HostKeysReply
from berth_common.catalogue.git_auth import GitAuth, HostKey
from berth_common.envelope import new_id
from berth_common.logging import get_logger

log = get_logger(__name__)
BUILDER = "builder"
SCAN_TIMEOUT_S = 10.0


def aad(credential_id: str) -> str:
    return row_aad("git_credentials", credential_id)


def pins(keys: Sequence[HostKey], source: str, user_id: str | None) -> list[dict[str, Any]]:
    return [{"key_type": k.key_type, "key": k.key, "source": source, "pinned_by": user_id or None} for k in keys]


async def offered(deps: Deps, repository: str, team_id: str | None) -> list[HostKey]:
    """The host keys the repository's SSH server presents now, read by the builder (502/503 if none; the
    builder connects through the team's outbound rule)."""
    query = HostKeysQuery(repository=repository, timeout_s=SCAN_TIMEOUT_S, team_id=team_id or "")
    try:
        reply = await deps.bus.request(BUILDER, "host_keys", query, HostKeysReply, timeout=SCAN_TIMEOUT_S + 10)
    except ServiceUnavailableError as exc:
        raise ProblemError(503, f"The builder service is unavailable: {exc}. Try again shortly.") from None
    except (QueryFailedError, ValidationError) as exc:
        log.warning("host keys query failed", error=str(exc)[:300])
        raise ProblemError(502, "The builder failed to read the server's host keys; it has been logged.") from None
    if reply.problem is not None:
        detail = reply.problem.detail or reply.problem.title
        raise ProblemError(502, f"The host keys of the repository's server could not be read: {detail}")
    return reply.host_keys


async def auth_for(deps: Deps, s: AsyncSession, app: dict[str, Any], repository: str | None = None) -> GitAuth | None:
    """The credentials the application's repository URL takes, opened for the builder (None: it has none).
    A deploy key whose server has no pinned host key pins what the server presents now (first contact)."""
    repository = repository or domain.repository_of(app["config"])
    kind = domain.kind_for(repository)
    if repository is None or kind is None:
        return None
    row = await repo.credential(s, app["team_id"], app["id"], kind)
    if row is None:
        return None
    secret = deps.box.open(row["sealed"], aad(row["id"]))
    if kind == domain.TOKEN:
        return domain.token_auth(row["username"], secret)
    host = domain.ssh_server(repository)
    assert host is not None
    pinned = domain.pins_for(await repo.host_keys(s, app["id"]), host)
    if not pinned:
        pinned = await offered(deps, repository, app["team_id"])
        await repo.pin(s, app["id"], host, pins(pinned, "first-contact", None))
        log.info("host keys pinned at first contact", application_id=app["id"], host=host)
    return domain.ssh_auth(secret, pinned)


async def with_auth(deps: Deps, s: AsyncSession, app: dict[str, Any], spec: ApplicationSpec) -> ApplicationSpec:
    """The deployment's snapshot with its repository's credentials, if it builds from git and has some."""
    if not isinstance(spec.source, GitSource):
        return spec
    auth = await auth_for(deps, s, app, spec.source.repository)
    if auth is None:
        return spec
    return spec.model_copy(update={"source": spec.source.model_copy(update={"auth": auth})})


async def store(
    deps: Deps,
    s: AsyncSession,
    principal: Principal,
    application_id: str,
    kind: str,
    row: dict[str, Any] | None,
    secret: str,
    shown: dict[str, Any],
) -> dict[str, Any]:
    """Seal ``secret`` into the application's credential of ``kind`` (made, or replaced: then rotated now)."""
    await hold_for_sealing(s, deps.box)
    credential_id = row["id"] if row is not None else new_id()
    values = {
        "id": credential_id,
        "team_id": principal.team_id,
        "application_id": application_id,
        "kind": kind,
        "sealed": deps.box.seal(secret, aad(credential_id)),
        "created_by": principal.user_id or None,
        **shown,
        **({"rotated_at": datetime.now(UTC)} if row is not None else {}),
    }
    return await repo.put_credential(s, values)


@dataclass(frozen=True)
class Given:
    """A credential given on create, checked: what the builder gets now, and what is stored with the row."""

    access: domain.GivenAccess
    auth: GitAuth
    public_key: str | None = None
    host: str | None = None
    pins: tuple[HostKey, ...] = ()
    pinned_as: str = "given"


LOC = "/body/git_access"


async def given(deps: Deps, config: dict[str, Any], access: domain.GivenAccess, team_id: str | None) -> Given:
    """Check a credential given with a new application against its repository URL (a deploy key for an
    ssh:// or scp-style URL, a token for https://; 422 otherwise) and make the builder's ``GitAuth`` of it,
    so that the compose file of a private repository is read in the same request. A deploy key's host keys
    are the given ones, else those the server presents now (first contact)."""
    repository = domain.repository_of(config)
    kind = domain.kind_for(repository)
    if repository is None or kind is None:
        raise invalid_field(LOC, "a credential is for an application whose source is a git repository (ssh or https)")
    if kind != access.kind:
        wanted = "deploy_key" if kind == domain.DEPLOY_KEY else "token"
        raise invalid_field(LOC, f"the repository URL {repository} authenticates with a {wanted}")
    if kind == domain.TOKEN:
        return Given(access, domain.token_auth(access.username or "x-access-token", access.secret))
    try:
        public = ssh_keys.public_key_of(access.secret)
    except ssh_keys.KeyProblem as exc:
        raise invalid_field(f"{LOC}/deploy_key/private_key", str(exc)) from None
    host = domain.ssh_server(repository)
    assert host is not None
    if access.host_keys:
        try:
            pins = domain.given_keys(access.host_keys, host)
        except ValueError as exc:
            raise invalid_field(f"{LOC}/deploy_key/host_keys", str(exc)) from None
        source = "given"
    else:
        pins, source = await offered(deps, repository, team_id), "first-contact"
    auth = domain.ssh_auth(access.secret, list(pins))
    return Given(access, auth, " ".join(public.split()[:2]), host, tuple(pins), source)


async def keep_given(deps: Deps, s: AsyncSession, principal: Principal, app_id: str, cred: Given) -> None:
    """Store a credential given on create with the new application (in its transaction)."""
    if cred.access.kind == domain.TOKEN:
        shown = {"username": cred.access.username or "x-access-token"}
        await store(deps, s, principal, app_id, domain.TOKEN, None, cred.access.secret, shown)
        return
    shown = {"public_key": f"{cred.public_key} berth-{app_id}"}
    await store(deps, s, principal, app_id, domain.DEPLOY_KEY, None, cred.access.secret, shown)
    assert cred.host is not None
    await repo.pin(s, app_id, cred.host, pins(cred.pins, cred.pinned_as, principal.user_id))
