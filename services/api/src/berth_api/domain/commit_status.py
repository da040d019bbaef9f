"""A deployment's state as a commit status on the forge: the REST request each forge expects; pure.

The forge's API address and the repository are configured on the webhook (never taken from a delivery's
body: a body chooses no host the token is sent to). Each forge's own names for the states, its
authentication header and its path:

| forge | request | auth |
|---|---|---|
| GitHub | ``POST {api}/repos/{owner}/{repo}/statuses/{sha}`` ``{state, target_url, description, context}`` | ``Authorization: Bearer`` |
| GitLab | ``POST {api}/projects/{id or url-encoded path}/statuses/{sha}`` ``{state, target_url, description, name}`` | ``PRIVATE-TOKEN`` |
| Gitea, Forgejo, Gogs | ``POST {api}/repos/{owner}/{repo}/statuses/{sha}`` (as GitHub) | ``Authorization: token`` |
| Bitbucket Cloud | ``POST {api}/repositories/{workspace}/{repo}/commit/{sha}/statuses/build`` ``{key, state, url, description}`` | ``Authorization: Bearer`` |
| Bitbucket Server | ``POST {api}/rest/build-status/1.0/commits/{sha}`` ``{key, state, url, description}`` | ``Authorization: Bearer`` |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from berth_api.domain.forges import Forge

State = Literal["pending", "success", "failure"]
CONTEXT = "berth/deploy"  # a deployment of the application itself
PREVIEW_CONTEXT = "berth/preview"  # a preview's deployment (its own status beside the application's)
_GITLAB = {"pending": "running", "success": "success", "failure": "failed"}
_BITBUCKET = {"pending": "INPROGRESS", "success": "SUCCESSFUL", "failure": "FAILED"}
_DESCRIPTION = {"pending": "Deploying", "success": "Deployed", "failure": "The deployment failed"}


def state_of(deployment_state: str) -> State | None:
    """The commit status of a deployment's state; None: cancelled (a newer commit took its place)."""
    if deployment_state == "succeeded":
        return "success"
    if deployment_state == "failed":
        return "failure"
    if deployment_state == "cancelled":
        return None
    return "pending"


@dataclass(frozen=True)
class StatusRequest:
    url: str
    headers: dict[str, str]
    json: dict[str, Any]

    def __repr__(self) -> str:  # the token stays out of logs
        return f"StatusRequest({self.url!r})"


def request(
    forge: Forge,
    api_url: str,
    repository: str,
    token: str,
    sha: str,
    state: State,
    target_url: str | None,
    context: str = CONTEXT,
) -> StatusRequest:
    """The request that sets ``sha``'s status named ``context`` on ``repository`` (``owner/name``; GitLab: a
    project id or path) at the forge's API ``api_url``."""
    api = api_url.rstrip("/")
    description = _DESCRIPTION[state]
    json_headers = {"Accept": "application/json", "Content-Type": "application/json"}
    if forge == "github":
        body: dict[str, Any] = {"state": state, "description": description, "context": context}
        if target_url:
            body["target_url"] = target_url
        headers = {**json_headers, "Accept": "application/vnd.github+json", "Authorization": f"Bearer {token}"}
        return StatusRequest(f"{api}/repos/{repository}/statuses/{sha}", headers, body)
    if forge in ("gitea", "forgejo", "gogs"):
        body = {"state": state, "description": description, "context": context}
        if target_url:
            body["target_url"] = target_url
        return StatusRequest(
            f"{api}/repos/{repository}/statuses/{sha}", {**json_headers, "Authorization": f"token {token}"}, body
        )
    if forge == "gitlab":
        body = {"state": _GITLAB[state], "description": description, "name": context}
        if target_url:
            body["target_url"] = target_url
        project = quote(repository, safe="")
        return StatusRequest(f"{api}/projects/{project}/statuses/{sha}", {**json_headers, "PRIVATE-TOKEN": token}, body)
    body = {"key": context.replace("/", "-"), "state": _BITBUCKET[state], "description": description, "name": context}
    if target_url:
        body["url"] = target_url
    auth = {**json_headers, "Authorization": f"Bearer {token}"}
    if forge == "bitbucket":
        return StatusRequest(f"{api}/repositories/{repository}/commit/{sha}/statuses/build", auth, body)
    return StatusRequest(f"{api}/rest/build-status/1.0/commits/{sha}", auth, body)
