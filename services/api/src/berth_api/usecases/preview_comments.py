"""The comment each preview keeps on its pull request, written once and updated in place when its text
changes, through the webhook's commit status target (its forge, API address, repository and token)."""

from __future__ import annotations

from typing import Any, cast

from berth_api.adapters import previews as repo
from berth_api.adapters import webhook_statuses as statuses_repo
from berth_api.adapters import webhooks as hooks_repo
from berth_api.adapters.secretbox import SecretUnavailableError
from berth_api.domain import previews as domain
from berth_api.domain.forges import Forge
from berth_api.usecases import Deps
from berth_api.usecases.commit_statuses import aad as status_aad
from berth_common.logging import get_logger

log = get_logger(__name__)
TIMEOUT_S = 10.0

# -- the comment ---------------------------------------------------------------------------------------

_STATUS = {
    "succeeded": "deployed",
    "failed": "the deployment failed",
    "cancelled": "replaced by a newer commit",
    "destroyed": "destroyed",
}


def _text(deps: Deps, row: dict[str, Any]) -> str:
    state = row.get("deployment_state")
    status = _STATUS.get(state or "", "deploying" if state else "waiting")
    url = f"http://{row['host']}" if row.get("host") and state != "destroyed" else None
    return domain.comment_body(url, status, row["head_commit"], row.get("reason"))


async def comment(deps: Deps, row: dict[str, Any]) -> None:
    """Write the preview's comment, or update it in place, when its text changed; a failure is tried again
    at the next sweep."""
    text = _text(deps, row)
    if text == row.get("comment_sent") or row["application_id"] is None:
        return  # unchanged, or the application (and its webhook) is gone
    async with deps.sessionmaker() as s:
        hook = await hooks_repo.for_application(s, row["team_id"], row["application_id"])
        target = None if hook is None else await statuses_repo.target(s, hook["id"])
    if target is None:
        return
    try:
        token = deps.box.open(target["sealed"], status_aad(target["id"]))
    except SecretUnavailableError:
        return
    method, req = domain.comment_request(
        cast(Forge, target["forge"]),
        target["api_url"],
        target["repository"],
        token,
        row["number"],
        row.get("comment_id"),
        text,
    )
    import httpx

    from berth_common.outbound_net import OutboundRefused, guarded_client

    policy = deps.settings.outbound_policy_for(row["team_id"])  # the forge is the team's: its outbound rule
    try:
        async with guarded_client(policy, timeout=TIMEOUT_S, follow_redirects=False) as client:
            r = await client.request(method, req.url, json=req.json, headers=req.headers)
    except (httpx.HTTPError, OutboundRefused) as exc:
        log.warning("preview comment not sent", preview_id=row["id"], error=type(exc).__name__)
        return
    if not r.is_success:
        log.warning("preview comment refused", preview_id=row["id"], status=r.status_code)
        return
    comment_id = row.get("comment_id")
    if comment_id is None:
        answer = r.json()
        comment_id = str(answer.get("id"))
        if target["forge"] == "bitbucket-server":
            comment_id = f"{comment_id}:{answer.get('version', 0)}"
    elif target["forge"] == "bitbucket-server":
        comment_id = f"{comment_id.partition(':')[0]}:{r.json().get('version', 0)}"
    async with deps.sessionmaker() as s, s.begin():
        if await repo.by_id(s, row["id"]) is not None:
            await repo.update(s, row["id"], comment_id=comment_id, comment_sent=text)
