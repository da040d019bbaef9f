"""An application's git forge webhook: create it (a generated secret, sealed, shown once), rotate its secret
(the new one shown once; the old one stops verifying at once), change its watch paths and tag setting,
show it (never the secret), delete it.

The secret is sealed like every secret value of the api (``SecretBox``, aad ``webhook:<id>``, re-sealed by
key rotation) and only opened to verify a delivery (``usecases.webhook_deliveries``).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from berth_api.adapters import applications as apps_repo
from berth_api.adapters import webhook_statuses as statuses_repo
from berth_api.adapters import webhooks as repo
from berth_api.adapters.sealed import hold_for_sealing
from berth_api.domain.applications import row_aad
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError, not_in_team
from berth_api.usecases import Deps
from berth_api.usecases.applications import application_missing, refuse_if_removing
from berth_common.envelope import new_id
from berth_common.logging import get_logger

log = get_logger(__name__)
SECRET_PREFIX = "bwhs_"  # recognisable in a leaked-secret scan


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def aad(webhook_id: str) -> str:
    return row_aad("webhooks", webhook_id)


def webhook_missing(principal: Principal, application_id: str) -> ProblemError:
    return not_in_team("webhook of application", application_id, principal.team_name)


async def create(
    deps: Deps, principal: Principal, application_id: str, watch_paths: Sequence[str], tags: bool
) -> tuple[dict[str, Any], str]:
    """The new webhook's row and its secret (the only time it is returned)."""
    secret = new_secret()
    async with deps.sessionmaker() as s, s.begin():
        app = await apps_repo.get_application(s, principal.team_id, application_id, lock=True)
        if app is None:
            raise application_missing(principal, application_id)
        refuse_if_removing(app)
        if await repo.for_application(s, principal.team_id, application_id) is not None:
            raise ProblemError(
                409,
                f"Application {application_id} already has a webhook: rotate its secret or delete it first.",
            )
        await hold_for_sealing(s, deps.box)
        webhook_id = new_id()
        row = await repo.insert_webhook(
            s,
            {
                "id": webhook_id,
                "team_id": principal.team_id,
                "application_id": application_id,
                "sealed": deps.box.seal(secret, aad(webhook_id)),
                "watch_paths": list(watch_paths),
                "tags": tags,
                "created_by": principal.user_id,
            },
        )
    log.info("webhook created", webhook_id=row["id"], application_id=application_id)
    return row, secret


async def _mine(deps: Deps, principal: Principal, application_id: str) -> dict[str, Any]:
    async with deps.sessionmaker() as s:
        row = await repo.for_application(s, principal.team_id, application_id)
        if row is None:
            raise webhook_missing(principal, application_id)
        return await _shown(s, row)


async def _shown(s: Any, row: dict[str, Any]) -> dict[str, Any]:
    """The webhook with its waiting push and its status target (never the token)."""
    target = await statuses_repo.target(s, row["id"])
    shown = None if target is None else {k: target[k] for k in ("forge", "api_url", "repository")}
    return {**row, "waiting": await repo.waiting(s, row["application_id"]), "status": shown}


async def get(deps: Deps, principal: Principal, application_id: str) -> dict[str, Any]:
    """The webhook with the push waiting to deploy, if any (never the secret)."""
    return await _mine(deps, principal, application_id)


async def rotate(deps: Deps, principal: Principal, application_id: str) -> tuple[dict[str, Any], str]:
    """A new secret (returned once); deliveries signed with the old one are refused from now on."""
    secret = new_secret()
    async with deps.sessionmaker() as s, s.begin():
        row = await repo.for_application(s, principal.team_id, application_id)
        if row is None:
            raise webhook_missing(principal, application_id)
        await hold_for_sealing(s, deps.box)
        row = await repo.update_webhook(
            s, row["id"], sealed=deps.box.seal(secret, aad(row["id"])), rotated_at=datetime.now(UTC)
        )
    log.info("webhook secret rotated", webhook_id=row["id"], application_id=application_id)
    return row, secret


async def update(
    deps: Deps, principal: Principal, application_id: str, watch_paths: Sequence[str] | None, tags: bool | None
) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if watch_paths is not None:
        changes["watch_paths"] = list(watch_paths)
    if tags is not None:
        changes["tags"] = tags
    async with deps.sessionmaker() as s, s.begin():
        row = await repo.for_application(s, principal.team_id, application_id)
        if row is None:
            raise webhook_missing(principal, application_id)
        if changes:  # the answer is this change's row, whatever another request changes next
            row = await repo.update_webhook(s, row["id"], **changes)
        return await _shown(s, row)


async def delete(deps: Deps, principal: Principal, application_id: str) -> None:
    """Delete the webhook: its URL answers as any unknown one, and a push waiting to deploy is dropped."""
    async with deps.sessionmaker() as s, s.begin():
        row = await repo.for_application(s, principal.team_id, application_id)
        if row is None:
            raise webhook_missing(principal, application_id)
        await repo.drop_push(s, application_id)
        await repo.delete_webhook(s, row["id"])
    log.info("webhook deleted", webhook_id=row["id"], application_id=application_id)
