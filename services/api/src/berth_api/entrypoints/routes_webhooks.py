"""Routes of git forge webhooks: an application's webhook (create, show, change, rotate its secret,
delete), and the URL forges deliver to: unauthenticated, every delivery verified by its signature."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Request, status
from fastapi.responses import JSONResponse

from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError
from berth_api.entrypoints.auth import anonymous, client_address, require_role
from berth_api.entrypoints.resources import PathId, Resource, V1Router
from berth_api.entrypoints.schemas_webhooks import (
    DeliveryOut,
    StatusTargetIn,
    WaitingPushOut,
    WebhookCreated,
    WebhookIn,
    WebhookOut,
    WebhookPatch,
)
from berth_api.entrypoints.state import api_state, deps
from berth_api.entrypoints.v1 import Responses, problem_doc
from berth_api.usecases import commit_statuses as statuses
from berth_api.usecases import webhook_deliveries as deliveries
from berth_api.usecases import webhooks as uc
from berth_api.usecases.webhook_deliveries import DEBOUNCER, Debouncer

router = V1Router("webhooks")
hooks = Resource(router)
PATH = "/applications/{application_id}/webhook"
DELIVERY_PROBLEMS: Responses = {
    400: problem_doc("No forge's event header, or a verified body that does not read"),
    401: problem_doc("Not verified: unknown webhook, missing or wrong signature (the answer does not say which)"),
    409: problem_doc("A delivery id already received (a replay)"),
    429: problem_doc("Too many unverified deliveries lately (a correctly signed one still passes)"),
    413: problem_doc("The body exceeds BERTH_WEBHOOK_MAX_BODY_BYTES"),
}


def _url(request: Request, webhook_id: str) -> str:
    return f"{_base(request)}/v1/webhooks/{webhook_id}"


def _out(request: Request, row: dict[str, Any]) -> dict[str, Any]:
    waiting = row.get("waiting")
    return {
        **{k: row[k] for k in WebhookOut.model_fields if k in row and k not in ("url", "waiting", "forges")},
        "url": _url(request, row["id"]),
        "waiting": WaitingPushOut.model_validate(waiting) if waiting else None,
    }


def _base(request: Request) -> str:
    return (api_state(request).settings.webhook_base_url or str(request.base_url)).rstrip("/")


@router.create(
    PATH,
    summary="Give the application a webhook: its URL and secret (the secret shown only now)",
    responses={409: problem_doc("The application already has a webhook, or is being removed")},
)
async def create_webhook(
    request: Request,
    application_id: PathId,
    body: Annotated[WebhookIn | None, Body()] = None,
    principal: Principal = require_role("developer"),
) -> WebhookCreated:
    body = body or WebhookIn()
    row, secret = await uc.create(deps(request), principal, application_id, body.watch_paths, body.tags)
    return WebhookCreated.model_validate({**_out(request, row), "secret": secret})


@router.get(PATH, summary="The application's webhook: URL, settings, last delivery, waiting push (never the secret)")
async def get_webhook(
    request: Request, application_id: PathId, principal: Principal = require_role("viewer")
) -> WebhookOut:
    return WebhookOut.model_validate(_out(request, await uc.get(deps(request), principal, application_id)))


@router.patch(PATH, summary="Change the webhook's watch paths or tag setting")
async def update_webhook(
    request: Request, application_id: PathId, body: WebhookPatch, principal: Principal = require_role("developer")
) -> WebhookOut:
    row = await uc.update(deps(request), principal, application_id, body.watch_paths, body.tags)
    return WebhookOut.model_validate(_out(request, row))


@router.post(
    PATH + "/rotate",
    summary="A new secret for the webhook (shown only now); the old one stops verifying at once",
)
async def rotate_webhook(
    request: Request, application_id: PathId, principal: Principal = require_role("developer")
) -> WebhookCreated:
    row, secret = await uc.rotate(deps(request), principal, application_id)
    return WebhookCreated.model_validate({**_out(request, row), "secret": secret})


@router.put(
    PATH + "/status",
    operation_id="put_webhook_status_target",
    summary="Report the deployments pushes start as commit statuses on the forge (the token is write-only)",
)
async def put_status_target(
    request: Request, application_id: PathId, body: StatusTargetIn, principal: Principal = require_role("developer")
) -> WebhookOut:
    d = deps(request)
    await statuses.set_target(
        d,
        principal,
        application_id,
        forge=body.forge,
        api_url=body.api_url,
        repository=body.repository,
        token=body.token.get_secret_value(),
        link_base=_base(request),
    )
    return WebhookOut.model_validate(_out(request, await uc.get(d, principal, application_id)))


hooks.delete(
    PATH + "/status",
    "delete_webhook_status_target",
    statuses.drop_target,
    "Stop reporting commit statuses to the forge",
)
hooks.delete(PATH, "delete_webhook", uc.delete, "Delete the application's webhook (its URL stops answering)")


async def _raw_body(request: Request, limit: int) -> bytes:
    """The body as sent, refused with 413 past ``limit`` bytes (by Content-Length at once, else as it
    streams)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ProblemError(413, f"The delivery's body exceeds the limit of {limit} bytes.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProblemError(413, f"The delivery's body exceeds the limit of {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/webhooks/{webhook_id}",
    operation_id="deliver_webhook",
    summary="A git forge's delivery (GitHub, GitLab, Gitea, Forgejo, Gogs, Bitbucket Cloud and Server)",
    description="No token: every delivery is verified by the forge's signature over the raw body (GitLab: its "
    "token) with the webhook's secret. A ping answers `pong`; a push to the tracked branch is queued "
    "(202; a newer push within the debounce replaces it); anything else is answered and skipped (200).",
    dependencies=[anonymous()],
    response_model=DeliveryOut,
    responses={202: {"model": DeliveryOut, "description": "A push queued to deploy"}, **DELIVERY_PROBLEMS},
)
async def deliver(request: Request, webhook_id: PathId) -> Any:
    d = deps(request)
    body = await _raw_body(request, min(d.settings.webhook_max_body_bytes, d.settings.max_body_bytes))
    headers = {k.lower(): v for k, v in request.headers.items()}
    content_type = request.headers.get("content-type", "application/json")
    outcome = await _limited(request, webhook_id, headers, body, content_type)
    _audit(request, outcome.team_id, outcome.forge, outcome.event, outcome.result, outcome.detail)
    if outcome.result == "queued" and isinstance(debouncer := d_extra(request).get(DEBOUNCER), Debouncer):
        debouncer.poke()  # it sleeps until the new push's time
    answer = DeliveryOut(
        result=outcome.result,  # type: ignore[arg-type]
        detail=outcome.detail,
        forge=outcome.forge,
        delivery_id=outcome.delivery_id,
        commit=outcome.commit,
        deploy_at=outcome.deploy_at,
    )
    if outcome.result == "queued":
        return JSONResponse(answer.model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED)
    return answer


async def _limited(
    request: Request, webhook_id: str, headers: dict[str, str], body: bytes, content_type: str
) -> deliveries.Outcome:
    """The delivery received, its unverified failures counted per source address and per webhook: once
    either is over its limit, an unverified delivery is answered 429 (Retry-After, not counted, not
    audited), while a correctly signed one is still verified and acted on."""
    state = api_state(request)
    address = client_address(request, state.settings)
    wait = state.webhook_limiter.retry_after(address, webhook_id)
    try:
        return await deliveries.receive(state.deps(), webhook_id, headers, body, content_type)
    except deliveries.UnverifiedError as exc:
        if wait is not None:
            detail = f"Too many unverified deliveries to this webhook or from this address; try again in {wait} s."
            raise ProblemError(429, detail, headers={"Retry-After": str(wait)}) from None
        state.webhook_limiter.failed(address, webhook_id)
        if exc.team_id is not None:
            _audit(request, exc.team_id, exc.forge, exc.event, "refused", exc.why)
        raise
    except deliveries.RefusedError as exc:  # verified, then refused: a replay or an unreadable body
        if exc.team_id is not None:
            _audit(request, exc.team_id, exc.forge, exc.event, "refused", exc.why)
        raise


def _audit(request: Request, team_id: str, forge: str, event: str, result: str, detail: str) -> None:
    """The delivery's audit row (written by the audit middleware): the webhook's team, no user, and labels
    in place of body field names; never a secret, a signature or the body."""
    request.state.audit_actor = {"team_id": team_id, "user_id": None, "token_id": None}
    labels = [f"forge={forge}", f"result={result}", f"detail={detail[:200]}"]
    request.state.audit_fields = labels if not event else [labels[0], f"event={event[:64]}", *labels[1:]]


def d_extra(request: Request) -> dict[str, Any]:
    return api_state(request).context().extra
