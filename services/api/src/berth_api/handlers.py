"""The api's identity use cases (bootstrap admin, tokens, status) and its bus handlers (the projection).

Routes call these; these call the adapters. Nothing here knows about HTTP.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_api.adapters import applications as apps_repo
from berth_api.adapters import deployments as deployments_repo
from berth_api.adapters import identity as repo
from berth_api.adapters.readpool import BatchedLookup, ReadPool
from berth_api.adapters.secret_file import write_private_file
from berth_api.adapters.secretbox import SecretBox
from berth_api.domain import deployments as projection
from berth_api.domain import tokens
from berth_api.domain.applications import open_spec, redact, snapshot_aad
from berth_api.domain.identity import Principal, needs_touch, principal_for
from berth_api.domain.status import PlatformStatus, ServiceStatus, summarise
from berth_common.bus import Bus, ServiceUnavailableError
from berth_common.catalogue import (
    ApplicationRemovalFailed,
    ApplicationRemovalProgressed,
    ApplicationRemoved,
    BuildSucceeded,
    DeploymentCancelled,
    DeploymentFailed,
    DeploymentProgressed,
    DeploymentSucceeded,
    HealthQuery,
    HealthReply,
)
from berth_common.db import Unit
from berth_common.logging import get_logger

log = get_logger(__name__)

DEFAULT_TEAM = "default"
BOOTSTRAP_TOKEN_NAME = "bootstrap"


@dataclass(frozen=True)
class IssuedToken:
    row: dict[str, Any]
    plaintext: str

    def __repr__(self) -> str:
        return f"IssuedToken(id={self.row.get('id')!r})"


async def bootstrap_admin(sessionmaker: async_sessionmaker[AsyncSession], email: str, token_path: Path) -> bool:
    """On the very first start, create the admin, the ``default`` team and a token written to ``token_path``.

    Serialised by an advisory lock, so concurrent first starts create one admin. The file is written
    before the transaction commits: if the write fails nothing is created; if the commit fails the next
    start writes a fresh token. Returns True when this call created the admin.
    """
    async with sessionmaker() as session, session.begin():
        await repo.lock_bootstrap(session)
        if await repo.any_user(session):
            return False
        user_id = await repo.create_user(session, email, "admin")
        team_id = await repo.create_team(session, DEFAULT_TEAM)
        await repo.add_member(session, user_id, team_id, "admin")
        token = tokens.generate()
        await repo.insert_token(session, user_id, team_id, BOOTSTRAP_TOKEN_NAME, token, None)
        await asyncio.to_thread(write_private_file, token_path, token.plaintext + "\n")
    log.info("bootstrap admin created", email=email, team=DEFAULT_TEAM, path=str(token_path))
    return True


@dataclass(frozen=True)
class Authenticated:
    """A verified token's principal, and its team's revision (what the application list is cached by)."""

    principal: Principal
    revision: int


async def authenticate(
    pool: ReadPool, lookup: BatchedLookup, presented: str, touch_interval_s: float
) -> Authenticated | None:
    """The principal behind a presented token, or None (malformed, unknown, wrong, expired, revoked).

    One statement (token, user, team, role, revision; shared with the requests waiting at the same time,
    sent after this one came), no cache: a revocation holds at the next request, in every api process.
    last_used_at is written at most once per ``touch_interval_s``.
    """
    parsed = tokens.parse(presented)
    if parsed is None:
        return None
    prefix, secret = parsed
    now = datetime.now(UTC)
    found = await repo.check_token(lookup, prefix)
    record, revision = found if found is not None else (None, 0)
    principal = principal_for(record, secret, now)
    if principal is None or record is None:
        return None
    if needs_touch(record.last_used_at, now, touch_interval_s):
        await repo.touch_token_now(pool, record.token_id, now)
    return Authenticated(principal, revision)


async def issue_token(
    sessionmaker: async_sessionmaker[AsyncSession], principal: Principal, name: str, expires_in_days: int | None
) -> IssuedToken:
    """A new token for the caller in the caller's team; its plaintext exists only in the return value."""
    expires_at = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
    token = tokens.generate()
    async with sessionmaker() as session, session.begin():
        row = await repo.insert_token(session, principal.user_id, principal.team_id, name, token, expires_at)
    log.info("api token issued", id=row["id"], prefix=token.prefix, team_id=principal.team_id)
    return IssuedToken(row=row, plaintext=token.plaintext)


async def list_tokens(sessionmaker: async_sessionmaker[AsyncSession], team_id: str) -> list[dict[str, Any]]:
    async with sessionmaker() as session:
        return await repo.list_tokens(session, team_id)


async def revoke_token(
    sessionmaker: async_sessionmaker[AsyncSession], team_id: str, token_id: str
) -> dict[str, Any] | None:
    """Revoke a token of the team; None when the team has no such token (another team's is "missing")."""
    async with sessionmaker() as session, session.begin():
        row = await repo.revoke_token(session, team_id, token_id, datetime.now(UTC))
    if row is not None:
        log.info("api token revoked", id=token_id, team_id=team_id)
    return row


async def service_health(bus: Bus, service: str, timeout_s: float) -> ServiceStatus:
    try:
        reply = await bus.request(service, "health", HealthQuery(), HealthReply, timeout=timeout_s)
    except ServiceUnavailableError as exc:
        return ServiceStatus(service=service, ready=False, error=str(exc))
    except Exception as exc:
        return ServiceStatus(service=service, ready=False, error=f"health query failed: {str(exc)[:300]}")
    return ServiceStatus(service=service, ready=reply.ready, components=reply.components)


async def platform_status(bus: Bus, timeout_s: float) -> PlatformStatus:
    """Ask every service's health over the bus, concurrently; a silent one shows as not ready."""
    services = HealthQuery.CONSUMERS
    statuses = await asyncio.gather(*(service_health(bus, s, timeout_s) for s in services))
    return summarise(list(statuses))


# --- the deployment projection (bus events -> the deployments table) ---------------------------------


@dataclass
class DeploymentProjection:
    """Keeps each deployment's status current from the scheduler's and the builder's events.

    Each handler runs inside ``berth_common.db.idempotent`` (the message id is recorded with the change);
    the deployment row is locked, so events of one deployment apply one at a time, and the pure rules of
    ``domain.deployments`` drop stale ones. Texts are redacted of the deployment's secret values.
    """

    box: SecretBox

    def secrets_of(self, row: dict[str, Any]) -> list[str]:
        try:
            spec = open_spec(row["spec"], self.box.open_text, snapshot_aad(row["id"]))
        except Exception:  # an unreadable snapshot must not block the projection
            return []
        return spec.secret_values()

    @staticmethod
    def _at(unit: Unit) -> datetime:
        return unit.delivery.envelope.time if unit.delivery is not None else datetime.now(UTC)

    async def on_progressed(self, msg: DeploymentProgressed, unit: Unit) -> None:
        row = await deployments_repo.lock_deployment(unit.session, msg.deployment_id)
        if row is None:
            log.info("event for an unknown deployment ignored", deployment_id=msg.deployment_id, type=msg.TYPE)
            return
        secrets = self.secrets_of(row)
        step, detail = redact(msg.step, secrets), redact(msg.detail, secrets)
        new = projection.on_progressed(deployments_repo.projection_of(row), msg.state, step, detail, self._at(unit))
        if new is None:
            log.info("stale progress ignored", deployment_id=msg.deployment_id, state=msg.state, current=row["state"])
            return
        digest = {"image_digest": msg.image_digest} if msg.image_digest else {}
        await deployments_repo.save_projection(unit.session, msg.deployment_id, new, **digest)

    async def _terminal(self, deployment_id: str, state: str, reason: str | None, unit: Unit, **extra: Any) -> None:
        row = await deployments_repo.lock_deployment(unit.session, deployment_id)
        if row is None:
            log.info("event for an unknown deployment ignored", deployment_id=deployment_id, state=state)
            return
        reason = redact(reason, self.secrets_of(row)) if reason else None
        new = projection.on_terminal(deployments_repo.projection_of(row), state, reason, self._at(unit))
        if new is None:
            log.warning("conflicting end ignored", deployment_id=deployment_id, state=state, current=row["state"])
            return
        await deployments_repo.save_projection(unit.session, deployment_id, new, **extra)

    async def on_succeeded(self, msg: DeploymentSucceeded, unit: Unit) -> None:
        extra: dict[str, Any] = {"duration_s": msg.duration_s, "previous_deployment_id": msg.previous_deployment_id}
        if msg.image:
            extra["image"] = msg.image
        if msg.image_digest:
            extra["image_digest"] = msg.image_digest
        await self._terminal(msg.deployment_id, "succeeded", None, unit, **extra)

    async def on_failed(self, msg: DeploymentFailed, unit: Unit) -> None:
        await self._terminal(msg.deployment_id, "failed", msg.reason, unit, duration_s=msg.duration_s)

    async def on_cancelled(self, msg: DeploymentCancelled, unit: Unit) -> None:
        await self._terminal(msg.deployment_id, "cancelled", msg.reason or "cancelled", unit)

    async def on_build_succeeded(self, msg: BuildSucceeded, unit: Unit) -> None:
        """The commit built and, when Berth detected how to build, the Dockerfile it generated."""
        row = await deployments_repo.lock_deployment(unit.session, msg.deployment_id)
        if row is None:
            return
        values: dict[str, Any] = {"commit": msg.commit or None, "generated_dockerfile": msg.generated_dockerfile}
        if not row["image"] and msg.image:
            values["image"] = msg.image
        await deployments_repo.update_fields(unit.session, msg.deployment_id, **values)


# --- removing an application (the scheduler's answers to cmd.application.remove) ---------------------


@dataclass
class ApplicationRemoval:
    """Applies the scheduler's answer to ``cmd.application.remove`` (each inside ``idempotent``).

    ``removed``: the application's rows go (variables, host names, deployments: cascades), freeing its host
    names; ``removal_failed``: it is ``active`` again, with the reason (redacted of the secret values of its
    recent deployments) until the next ``DELETE``; ``removal_progressed``: its ``removal_phase`` moves on. An
    application already gone, of another team or not being removed is left alone.
    """

    projection: DeploymentProjection

    async def _removing(self, application_id: str, team_id: str, unit: Unit, what: str) -> dict[str, Any] | None:
        """The application's row, locked, when it is being removed; else None (the event is ignored)."""
        row = await apps_repo.get_application(unit.session, team_id, application_id, lock=True)
        if row is None or row["state"] != "removing":
            state = None if row is None else row["state"]
            log.info("removal answer ignored", application_id=application_id, type=what, state=state)
            return None
        return row

    async def on_removed(self, msg: ApplicationRemoved, unit: Unit) -> None:
        if await self._removing(msg.application_id, msg.team_id, unit, msg.TYPE) is None:
            return
        await apps_repo.delete_application(unit.session, msg.application_id)
        log.info(
            "application removed",
            application_id=msg.application_id,
            routes=msg.routes_removed,
            containers=msg.containers_removed,
            images=msg.images_removed,
            duration_s=msg.duration_s,
        )

    async def on_removal_progressed(self, msg: ApplicationRemovalProgressed, unit: Unit) -> None:
        if await self._removing(msg.application_id, msg.team_id, unit, msg.TYPE) is None:
            return
        if await apps_repo.set_removal_phase(unit.session, msg.application_id, msg.phase, msg.version):
            log.info("application removal progressed", application_id=msg.application_id, phase=msg.phase)

    async def on_removal_failed(self, msg: ApplicationRemovalFailed, unit: Unit) -> None:
        if await self._removing(msg.application_id, msg.team_id, unit, msg.TYPE) is None:
            return
        recent = await deployments_repo.list_deployments(unit.session, msg.team_id, msg.application_id, 5)
        secrets = [value for row in recent for value in self.projection.secrets_of(row)]
        reason = redact(msg.reason, secrets) or "the removal failed"
        await apps_repo.set_state(unit.session, msg.application_id, "active", reason)
        log.warning("application removal failed", application_id=msg.application_id, reason=reason)
