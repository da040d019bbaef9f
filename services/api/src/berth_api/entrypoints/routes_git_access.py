"""Routes of private repositories: what an application authenticates to its repository with (shown without
a secret), its deploy key (create, rotate, delete), the SSH host keys pinned for its git server (read at
first contact, given, or a changed one accepted), and its access token for https:// repositories (set,
delete)."""

from __future__ import annotations

from fastapi import Request

from berth_api.domain.identity import Principal
from berth_api.entrypoints.auth import require_role
from berth_api.entrypoints.resources import PathId, Resource, V1Router
from berth_api.entrypoints.schemas_git import (
    AcceptHostKeyIn,
    DeployKeyCreate,
    DeployKeyOut,
    GitAccessOut,
    GitTokenOut,
    HostKeysIn,
    TokenIn,
)
from berth_api.entrypoints.state import deps
from berth_api.entrypoints.v1 import Responses, problem_doc
from berth_api.usecases import git_access as uc

router = V1Router("git")
keys = Resource(router, DeployKeyOut)
tokens = Resource(router, GitTokenOut)
views = Resource(router, GitAccessOut)
KEY = "/applications/{application_id}/deploy-key"
TOKEN = "/applications/{application_id}/git-token"
SERVER_PROBLEMS: Responses = {
    409: problem_doc("The server presents another host key than the pinned one, or not the one named"),
    502: problem_doc("The server's host keys could not be read"),
    503: problem_doc("The builder service is unavailable"),
}


@router.create(
    KEY,
    summary="Make the application a deploy key (ed25519): the public key to add to the forge",
    responses={409: problem_doc("The application already has a deploy key, or is being removed")},
)
async def create_deploy_key(
    request: Request,
    application_id: PathId,
    body: DeployKeyCreate | None = None,
    principal: Principal = require_role("developer"),
) -> DeployKeyOut:
    host_keys = body.host_keys if body is not None else []
    return DeployKeyOut.model_validate(await uc.create_deploy_key(deps(request), principal, application_id, host_keys))


views.get(
    "/applications/{application_id}/git-access",
    "get_git_access",
    uc.access,
    "The application's deploy key (public key, fingerprint, pinned host keys) and token (never a secret)",
)
keys.action(
    "POST", KEY + "/rotate", "rotate_deploy_key", uc.rotate_deploy_key,
    "A new deploy key in place of the old one (add the new public key to the forge)", role="developer",
)  # fmt: skip
keys.action(
    "POST", KEY + "/host-keys/scan", "scan_git_host_keys", uc.scan_host_keys,
    "Pin the host keys the repository's SSH server presents, when none is pinned (first contact)",
    role="developer", responses=SERVER_PROBLEMS,
)  # fmt: skip
keys.delete(KEY, "delete_deploy_key", uc.delete_deploy_key, "Delete the deploy key and the host keys pinned with it")


@router.put(
    KEY + "/host-keys",
    operation_id="pin_git_host_keys",
    summary="Pin the host keys given for the repository's SSH server (replacing the pinned)",
)
async def pin_host_keys(
    request: Request, application_id: PathId, body: HostKeysIn, principal: Principal = require_role("admin")
) -> DeployKeyOut:
    row = await uc.pin_host_keys(deps(request), principal, application_id, body.host_keys)
    return DeployKeyOut.model_validate(row)


@router.post(
    KEY + "/host-keys/accept",
    operation_id="accept_git_host_key",
    summary="Accept the host keys the server offered at the last scan (one named by its fingerprint) in place of the "
    "pinned",
    responses={409: problem_doc("The server offered no other key, or not the one named")},
)
async def accept_host_key(
    request: Request, application_id: PathId, body: AcceptHostKeyIn, principal: Principal = require_role("admin")
) -> DeployKeyOut:
    row = await uc.accept_host_key(deps(request), principal, application_id, body.fingerprint)
    return DeployKeyOut.model_validate(row)


@router.put(TOKEN, summary="Set the access token for the application's https:// repository (write-only, sealed)")
async def put_git_token(
    request: Request, application_id: PathId, body: TokenIn, principal: Principal = require_role("developer")
) -> GitTokenOut:
    row = await uc.set_token(deps(request), principal, application_id, body.username, body.token.get_secret_value())
    return GitTokenOut.model_validate(row)


tokens.delete(TOKEN, "delete_git_token", uc.delete_token, "Delete the application's access token")
