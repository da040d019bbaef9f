"""A git forge's delivery to an application's webhook, and the deployments debounced pushes start.

``receive``: which forge sent it (``domain.forges``), the signature checked over the raw body with the
webhook's secret before anything is parsed (an unknown webhook fails exactly like a wrong signature, after
the same work), the delivery id recorded so a replay is refused, then the event read
(``domain.forge_payloads``) and judged (``domain.webhook_rules``). A push to deploy is stored as the
application's waiting push (a newer one replaces it) with the time it is due.

``Debouncer``: deploys each waiting push once its time has come (and sends the commit statuses owed,
``usecases.commit_statuses``), through the deployments use case (the
commit pinned and recorded; ``when_busy=replace_queued``, so a deployment still queued behind a running
one is replaced by the newer commit). Waiting pushes live in the database: an api restart loses none, and
several api processes never start one twice (``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from berth_api.adapters import webhook_statuses as statuses_repo
from berth_api.adapters import webhooks as repo
from berth_api.adapters.secretbox import SecretUnavailableError
from berth_api.domain.forge_payloads import Other, PayloadError, read_event
from berth_api.domain.forges import identify, verify
from berth_api.domain.identity import Principal, system_principal
from berth_api.domain.previews import is_pull_request
from berth_api.domain.problems import ProblemError
from berth_api.domain.webhook_rules import Decision, decide, due_at
from berth_api.usecases import Deps, commit_statuses, deployments, previews
from berth_api.usecases.webhooks import aad
from berth_common.catalogue import RolloutOptions
from berth_common.db import Unit
from berth_common.logging import get_logger

log = get_logger(__name__)
UNVERIFIED = "The delivery could not be verified: check the webhook URL and its secret in the forge."
FORGE_HEADERS = "X-GitHub-Event, X-Gitlab-Event, X-Gitea-Event, X-Forgejo-Event, X-Gogs-Event or X-Event-Key"
_DECOY = secrets.token_urlsafe(32)  # verified against when the webhook does not exist: the same work
RESULT_MAX = 300
DEBOUNCER = "webhook_debouncer"  # ctx.extra key, set by bootstrap.wire


class RefusedError(ProblemError):
    """A delivery refused (``status``): ``team_id`` names the webhook's team when the webhook exists (so the
    refusal can be audited), ``forge`` and ``event`` what its headers claim, ``why`` a fixed word of ours
    (never a part of the body)."""

    def __init__(self, status: int, detail: str, team_id: str | None, forge: str, event: str, why: str) -> None:
        super().__init__(status, detail)
        self.team_id = team_id
        self.forge = forge
        self.event = event
        self.why = why


class UnverifiedError(RefusedError):
    """401: the delivery is not verified (the only refusal that counts towards the rate limit)."""

    def __init__(self, team_id: str | None, forge: str, event: str) -> None:
        super().__init__(401, UNVERIFIED, team_id, forge, event, "not verified")


@dataclass(frozen=True)
class Outcome:
    """What a verified delivery did: ``pong``, ``queued`` (``commit``, due at ``deploy_at``) or ``skipped``."""

    result: str
    detail: str
    forge: str
    delivery_id: str
    team_id: str
    event: str = ""
    commit: str | None = None
    deploy_at: datetime | None = None


def _system(team_id: str) -> Principal:
    """Who a webhook's deployment is made by: no user, the webhook's team."""
    return system_principal(team_id, "webhook")


def _open(deps: Deps, row: dict[str, Any] | None) -> str:
    """The webhook's secret, or the decoy (no webhook, or a secret that does not open: refused alike)."""
    if row is None:
        return _DECOY
    try:
        return deps.box.open(row["sealed"], aad(row["id"]))
    except SecretUnavailableError:
        log.error("webhook secret does not open", webhook_id=row["id"])
        return _DECOY


async def receive(deps: Deps, webhook_id: str, headers: Mapping[str, str], body: bytes, content_type: str) -> Outcome:
    """Verify and act on one delivery (``headers``' names lower-case), in one transaction. Raises
    ``ProblemError``: 400 no forge's headers; ``RefusedError``: 400 an unreadable verified body, 401 not
    verified (``UnverifiedError``), 409 a replay."""
    delivery = identify(headers)
    if delivery is None:
        raise ProblemError(400, f"Not a git forge delivery: no {FORGE_HEADERS} header.")
    async with deps.sessionmaker() as s, s.begin():
        row = await repo.for_delivery(s, webhook_id)  # the webhook and its application's configuration
        if not verify(delivery, headers, _open(deps, row), body) or row is None:
            known = row is not None
            log.warning("webhook delivery not verified", webhook_id=webhook_id, forge=delivery.forge, known=known)
            raise UnverifiedError(row["team_id"] if known and row is not None else None, delivery.forge, delivery.event)
        delivery_id = delivery.delivery_id or "sha256:" + hashlib.sha256(body).hexdigest()
        try:
            event = read_event(delivery, body, content_type)
        except PayloadError as exc:
            detail = f"The {delivery.forge} {delivery.event!r} delivery does not read: {exc}."
            raise RefusedError(400, detail, row["team_id"], delivery.forge, delivery.event, "unreadable") from None
        if not await repo.first_delivery(s, webhook_id, delivery_id):
            detail = f"Delivery {delivery_id} was already received: a replay is not acted on."
            raise RefusedError(409, detail, row["team_id"], delivery.forge, delivery.event, "replay")
        now = datetime.now(UTC)
        if isinstance(event, Other) and is_pull_request(delivery):  # a preview's (usecases.previews)
            try:
                result, detail = await previews.on_delivery(s, row, delivery, body, content_type, now)
            except PayloadError as exc:
                detail = f"The {delivery.forge} {delivery.event!r} delivery does not read: {exc}."
                raise RefusedError(400, detail, row["team_id"], delivery.forge, delivery.event, "unreadable") from None
            base = {"forge": delivery.forge, "delivery_id": delivery_id, "team_id": row["team_id"]}
            outcome = Outcome(result=result, detail=detail, event=delivery.event, **base)
        else:
            decision = decide(event, row["config"]["source"], tags=row["tags"], watch_paths=row["watch_paths"])
            outcome = await _act(deps, s, row, decision, delivery.forge, delivery_id, now)
            outcome = replace(outcome, event=delivery.event)
        await repo.update_webhook(s, webhook_id, last_delivery_at=now, last_result=_summary(outcome)[:RESULT_MAX])
    log.info(
        "webhook delivery",
        webhook_id=webhook_id,
        forge=delivery.forge,
        forge_event=delivery.event,
        delivery_id=delivery_id,
        result=outcome.result,
        detail=outcome.detail,
        commit=outcome.commit,
    )
    return outcome


def _summary(outcome: Outcome) -> str:
    commit = f" {outcome.commit}" if outcome.commit else ""
    return f"{outcome.forge} {outcome.result}{commit}: {outcome.detail}".strip().removesuffix(":")


async def _act(
    deps: Deps, s: Any, row: dict[str, Any], decision: Decision, forge: str, delivery_id: str, now: datetime
) -> Outcome:
    base = {"forge": forge, "delivery_id": delivery_id, "team_id": row["team_id"]}
    if decision.action == "pong":
        return Outcome(result="pong", detail="the webhook is verified", **base)
    if decision.action == "skip":
        return Outcome(result="skipped", detail=decision.reason, **base)
    assert decision.commit is not None and decision.ref is not None
    settings = deps.settings
    waiting = await repo.pending_push(s, row["application_id"])
    first_at = waiting["first_at"] if waiting is not None else now
    when = due_at(now, first_at, settings.webhook_debounce_s, settings.webhook_debounce_max_s)
    await repo.put_push(
        s,
        {
            "application_id": row["application_id"],
            "team_id": row["team_id"],
            "commit": decision.commit,
            "ref": decision.ref[:300],
            "forge": forge,
            "delivery_id": delivery_id,
            "pushes": (waiting["pushes"] + 1) if waiting is not None else 1,
            "first_at": first_at,
            "received_at": now,
            "due_at": when,
        },
    )
    replaced = f", replacing {waiting['commit']}" if waiting is not None else ""
    detail = f"{decision.ref} at {decision.commit} deploys at {when.isoformat()}{replaced}"
    return Outcome(result="queued", detail=detail, commit=decision.commit, deploy_at=when, **base)


async def _fire_one(deps: Deps, push: dict[str, Any]) -> dict[str, Any] | None:
    """Start the deployment of one due push (None: it was taken meanwhile or could not start)."""

    async def body(unit: Unit) -> dict[str, Any] | None:
        s = unit.session
        row = await repo.pending_push(s, push["application_id"])
        if row is None or row["due_at"] > datetime.now(UTC) or row["commit"] != push["commit"]:
            return None  # fired by another process, or replaced by a newer push that is not due yet
        await repo.drop_push(s, push["application_id"])
        options = RolloutOptions(when_busy="replace_queued")
        try:
            async with s.begin_nested():
                started = await deployments.start_in(
                    deps, unit, _system(row["team_id"]), row["application_id"], options, commit=row["commit"]
                )
            hook = await repo.for_application(s, row["team_id"], row["application_id"])
            if hook is not None and await statuses_repo.target(s, hook["id"]) is not None:
                await statuses_repo.owe(s, started["id"], hook["id"], row["commit"], datetime.now(UTC))
            return started
        except ProblemError as exc:  # removed, or its configuration does not deploy: say so on the webhook
            log.warning("webhook push not deployed", application_id=row["application_id"], error=exc.detail)
            hook = await repo.for_application(s, row["team_id"], row["application_id"])
            if hook is not None:
                note = f"deploy of {row['commit']} failed to start: {exc.detail}"[:RESULT_MAX]
                await repo.update_webhook(s, hook["id"], last_result=note)
            return None

    started = await deployments.run(deps, body)
    if started is not None:
        await deployments.purge(deps)
        log.info("webhook deployment queued", application_id=push["application_id"], deployment_id=started["id"])
    return started


async def fire_due(deps: Deps) -> int:
    """Start a deployment for every waiting push whose time has come; how many started."""
    async with deps.sessionmaker() as s, s.begin():
        due = await repo.due_pushes(s, datetime.now(UTC))
    started = 0
    for push in due:
        if await _fire_one(deps, push) is not None:
            started += 1
    return started


async def next_due(deps: Deps) -> datetime | None:
    async with deps.sessionmaker() as s:
        return await repo.next_due(s)


async def forget_old_deliveries(deps: Deps) -> int:
    before = datetime.now(UTC) - timedelta(days=deps.settings.webhook_delivery_retention_days)
    async with deps.sessionmaker() as s, s.begin():
        return await repo.forget_deliveries(s, before)


class Debouncer:
    """Deploys waiting pushes when due: woken by a push this process received, else it looks again at the
    earliest due time (at most ``idle_s`` apart, for pushes other api processes received)."""

    def __init__(self, deps: Deps, idle_s: float = 5.0, status_poll_s: float | None = None) -> None:
        self.deps = deps
        self.idle_s = idle_s
        # while commit statuses or previews are owed: how often deployments are looked at (None: the setting)
        self.status_poll_s = deps.settings.webhook_status_poll_s if status_poll_s is None else status_poll_s
        self.wake = asyncio.Event()

    def poke(self) -> None:
        self.wake.set()

    async def run(self) -> None:
        last_prune = 0.0
        loop = asyncio.get_running_loop()
        while True:
            self.wake.clear()
            owed = False
            try:
                await fire_due(self.deps)
                owed = await commit_statuses.report(self.deps)
                owed = await previews.sweep(self.deps) or owed  # previews of pull requests
                if loop.time() - last_prune > 3600:
                    await forget_old_deliveries(self.deps)
                    last_prune = loop.time()
                nxt = await next_due(self.deps)
            except Exception as exc:  # the database comes back: try again shortly
                log.warning("webhook debounce sweep failed", error=str(exc))
                nxt = None
            wait = min(self.idle_s, self.status_poll_s) if owed else self.idle_s
            if nxt is not None:
                wait = min(wait, max(0.0, (nxt - datetime.now(UTC)).total_seconds()))
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=wait)
            except TimeoutError:
                pass
