"""Commit statuses back to the forge for the deployments a webhook started: ``pending`` once queued, then
``success`` or ``failure`` with the deployment's link (``domain.commit_status`` builds each forge's request),
named ``berth/deploy``, or ``berth/preview`` for a preview's deployment (``usecases.previews``).

A webhook's status target (forge, API address, repository, token sealed) is set by a developer; the token is
never returned. Each deployment a push starts owes its statuses (``webhook_status_reports``, written with
the deployment): the debounce sweep sends what is owed over httpx, retrying a failed send (a transport error,
429 or 5xx) a few times at once and then in later sweeps with a growing delay; a refusal (another 4xx: a bad
token, an unknown repository) is not retried and is shown on the webhook's ``last_result``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from berth_api.adapters import applications as apps_repo
from berth_api.adapters import webhook_statuses as repo
from berth_api.adapters import webhooks as hooks_repo
from berth_api.adapters.sealed import hold_for_sealing
from berth_api.adapters.secretbox import SecretUnavailableError
from berth_api.domain import outbound_checks
from berth_api.domain.applications import row_aad
from berth_api.domain.commit_status import CONTEXT, PREVIEW_CONTEXT, State, request, state_of
from berth_api.domain.forges import Forge
from berth_api.domain.identity import Principal
from berth_api.domain.problems import invalid_field
from berth_api.usecases import Deps
from berth_api.usecases.applications import application_missing
from berth_api.usecases.webhooks import webhook_missing
from berth_common.logging import get_logger

if TYPE_CHECKING:
    import httpx

log = get_logger(__name__)
TRIES_PER_SEND = 3
PAUSES_S = (0.25, 0.5)  # between the tries of one send
MAX_ROUNDS = 6  # sends of one status before it is given up
TIMEOUT_S = 10.0


def aad(webhook_id: str) -> str:
    return row_aad("webhook_status_targets", webhook_id)


async def set_target(
    deps: Deps,
    principal: Principal,
    application_id: str,
    *,
    forge: Forge,
    api_url: str,
    repository: str,
    token: str,
    link_base: str,
) -> None:
    found = outbound_checks.url_refusal(deps.settings.outbound_policy_for(principal.team_id), api_url)
    if found is not None:  # the token is sent there: the outbound rule applies (422)
        raise invalid_field("/body/api_url", found)
    async with deps.sessionmaker() as s, s.begin():
        hook = await hooks_repo.for_application(s, principal.team_id, application_id)
        if hook is None:
            raise webhook_missing(principal, application_id)
        await hold_for_sealing(s, deps.box)
        values = {"id": hook["id"], "forge": forge, "api_url": api_url, "repository": repository}
        values |= {"sealed": deps.box.seal(token, aad(hook["id"])), "link_base": link_base}
        await repo.put_target(s, values)


async def drop_target(deps: Deps, principal: Principal, application_id: str) -> None:
    """Stop reporting statuses (idempotent: an application without a webhook or a target has none to stop)."""
    async with deps.sessionmaker() as s, s.begin():
        if await apps_repo.get_application(s, principal.team_id, application_id) is None:
            raise application_missing(principal, application_id)
        hook = await hooks_repo.for_application(s, principal.team_id, application_id)
        if hook is not None:
            await repo.drop_target(s, hook["id"])


async def target_of(deps: Deps, webhook_id: str) -> dict[str, Any] | None:
    async with deps.sessionmaker() as s:
        row = await repo.target(s, webhook_id)
    return None if row is None else {k: row[k] for k in ("forge", "api_url", "repository")}


async def _send(client: httpx.AsyncClient, row: dict[str, Any], token: str, state: str) -> tuple[bool, str]:
    """(sent, error): tried up to ``TRIES_PER_SEND`` times; a refusal other than 429 is final at once."""
    import httpx  # already loaded by ``report``

    from berth_common.outbound_net import OutboundRefused

    target_url = f"{row['link_base'].rstrip('/')}/v1/deployments/{row['deployment_id']}"
    forge, status = cast(Forge, row["forge"]), cast(State, state)
    context = PREVIEW_CONTEXT if row.get("preview") else CONTEXT
    req = request(forge, row["api_url"], row["repository"], token, row["commit"], status, target_url, context)
    error = ""
    for attempt in range(TRIES_PER_SEND):
        try:
            r = await client.post(req.url, json=req.json, headers=req.headers)
        except OutboundRefused as exc:  # the forge's address (or its redirect) is refused: final
            return False, "refused: " + exc.reason
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        else:
            if r.is_success:
                return True, ""
            error = f"the forge answered {r.status_code}"
            if r.status_code < 500 and r.status_code != 429:
                return False, "refused: " + error
        if attempt < len(PAUSES_S):
            await asyncio.sleep(PAUSES_S[attempt])
    return False, error


async def _report_one(deps: Deps, s: Any, client: httpx.AsyncClient, row: dict[str, Any]) -> None:
    state = state_of(row["state"])
    deployment_id = row["deployment_id"]
    if state is None:  # cancelled: the newer commit's deployment reports instead
        await repo.drop(s, deployment_id)
        return
    if state == row["sent_state"]:
        return
    try:
        token = deps.box.open(row["sealed"], aad(row["webhook_id"]))
    except SecretUnavailableError:
        await repo.drop(s, deployment_id)
        log.error("commit status token does not open", webhook_id=row["webhook_id"])
        return
    ok, error = await _send(client, row, token, state)
    if ok:
        await repo.sent(s, deployment_id, state, done=state != "pending")
        log.info("commit status sent", deployment_id=deployment_id, state=state, forge=row["forge"])
        return
    rounds = row["attempts"] + 1
    if error.startswith("refused") or rounds >= MAX_ROUNDS:
        await repo.drop(s, deployment_id)
        note = f"commit status {state} of {row['commit']} not sent: {error}"[:300]
        await hooks_repo.update_webhook(s, row["webhook_id"], last_result=note)
        log.warning("commit status given up", deployment_id=deployment_id, error=error)
        return
    later = datetime.now(UTC) + timedelta(seconds=min(300.0, 2.0**rounds))
    await repo.failed(s, deployment_id, rounds, later, error)


def _changed(row: dict[str, Any]) -> bool:
    state = state_of(row["state"])
    return state is None or state != row["sent_state"]


async def report(deps: Deps) -> bool:
    """Send the statuses owed now; whether some are still owed (the sweep then looks again soon)."""
    async with deps.sessionmaker() as s, s.begin():
        rows = [r for r in await repo.owed(s, datetime.now(UTC)) if _changed(r)]
        if rows:  # a client (and its TLS context) only when a status changed (or a cancelled one is dropped)
            # loaded with the first status sent: the api has no other use for an HTTP client
            from berth_common.outbound_net import guarded_client

            for team_id in sorted({r["team_id"] for r in rows}):  # the forge is the team's: its outbound policy
                policy = deps.settings.outbound_policy_for(team_id)
                async with guarded_client(policy, timeout=TIMEOUT_S, follow_redirects=False) as client:
                    for row in (r for r in rows if r["team_id"] == team_id):
                        await _report_one(deps, s, client, row)
        return await repo.outstanding(s)
