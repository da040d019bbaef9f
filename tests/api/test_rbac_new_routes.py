"""RBAC of the members, invitations, audit, configuration and registry routes, generated from the route walk: every such
route x {no token, expired, revoked, another team's admin, viewer, developer, admin} against the role it
declares (``x-berth-role``). A route added to these routers is walked too (and fails until it has a body
sample, if it takes one)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.routing import APIRoute

from berth_api.domain.roles import allows
from berth_api.entrypoints import routes_config, routes_members, routes_registries
from berth_api.entrypoints.auth import declared_access
from tests.api.conftest import bearer, make_app

# A valid body per operation, so that a refusal can only come from authorization (or a missing resource).
BODIES: dict[tuple[str, str], dict] = {
    ("PATCH", "/v1/members/{user_id}"): {"role": "viewer"},
    ("POST", "/v1/invitations"): {"email": "walk@example.com"},
    ("POST", "/v1/invitations/accept"): {"code": "berthinv_000000000000_" + "A" * 43},
    ("PUT", "/v1/environments/{environment_id}/variables"): {"variables": [{"name": "A", "value": "1"}]},
    ("POST", "/v1/environments/{environment_id}/variables/import"): {"content": "A=1\n"},
    ("POST", "/v1/applications/{application_id}/variables/import"): {"content": "A=1\n"},
    ("POST", "/v1/env-groups"): {"name": "walked"},
    ("PATCH", "/v1/env-groups/{group_id}"): {"redeploy_on_change": False},
    ("PUT", "/v1/env-groups/{group_id}/variables"): {"variables": [{"name": "A", "value": "1"}]},
    ("POST", "/v1/env-groups/{group_id}/variables/import"): {"content": "A=1\n"},
    ("POST", "/v1/registries"): {"name": "walked", "host": "walk.example.com", "username": "u", "password": "p"},
    ("PATCH", "/v1/registries/{registry_id}"): {"namespace": "walked"},
}


@pytest.fixture
def api_settings(api_settings):
    # The matrix makes well over 20 failed authentications from one address: lift the brute-force limits.
    return api_settings.model_copy(update={"auth_failures_per_address": 0, "auth_failures_per_prefix": 0})


def _operations() -> list[tuple[str, str, str, APIRoute]]:
    ops = []
    for router in (routes_members.router, routes_config.router, routes_registries.router):
        for route in router.routes:
            assert isinstance(route, APIRoute)
            access = declared_access(route.dependant)
            assert access is not None, route.path
            for method in sorted(route.methods):
                ops.append((method, route.path, access, route))
    return sorted(ops, key=lambda op: op[0] == "DELETE")  # deletions last: the others need the resources


def test_every_walked_operation_with_a_body_has_a_sample():
    missing = [(m, p) for m, p, _, route in _operations() if route.body_field is not None and (m, p) not in BODIES]
    assert missing == []
    assert len(_operations()) >= 25


async def test_rbac_matrix_of_the_new_routes(client, members, identities):
    app = await make_app(client, members.developer)
    group = (await client.post("/v1/env-groups", headers=members.developer, json={"name": "matrix"})).json()
    inv = (await client.post("/v1/invitations", headers=members.admin, json={"email": "inv@example.com"})).json()
    registry = (
        await client.post(
            "/v1/registries",
            headers=members.developer,
            json={"name": "matrix", "host": "matrix.example.com", "username": "u", "password": "p"},
        )
    ).json()
    throwaway = await identities.member("spare@example.com", "viewer")
    ids = {
        "user_id": throwaway,
        "invitation_id": inv["id"],
        "environment_id": app["environment_id"],
        "application_id": app["id"],
        "group_id": group["id"],
        "registry_id": registry["id"],
    }
    dev_user = (await client.get("/v1/me", headers=members.developer)).json()["user"]["id"]
    expired, _ = await identities.token(dev_user, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    revoked_token, revoked_id = await identities.token(dev_user)
    assert (await client.delete(f"/v1/tokens/{revoked_id}", headers=members.admin)).status_code == 200
    roles = {"viewer": members.viewer, "developer": members.developer, "admin": members.admin}

    violations: list[str] = []
    walked = 0
    for method, path, access, _ in _operations():
        url = path.format(**{k: v for k, v in ids.items() if "{" + k + "}" in path})
        body = BODIES.get((method, path))

        async def call(headers, method=method, url=url, body=body):
            return await client.request(method, url, headers=headers or {}, json=body)

        def check(who: str, status: int, ok: set[int], method=method, path=path) -> None:
            if status not in ok:
                violations.append(f"{method} {path} as {who}: {status} not in {sorted(ok)}")

        walked += 1
        if access == "anonymous":
            for who, headers in (("nobody", None), ("viewer", members.viewer)):
                check(who, (await call(headers)).status_code, {404})  # the sample code matches nothing
            continue
        for who, headers in (("nobody", None), ("expired", bearer(expired)), ("revoked", bearer(revoked_token))):
            check(who, (await call(headers)).status_code, {401})
        # Another team's admin: our resources are missing; its own collections are its own.
        r = await call(members.other)
        if "{" in path:
            check("other team", r.status_code, {404})
        else:
            check("other team", r.status_code, {200, 201, 409})
            for value in ids.values():  # (its audit log records the ids it tried: its own requests)
                if value in r.text and path != "/v1/audit":
                    violations.append(f"{method} {path} as other team: shows {value}")
        done = False  # a deletion by a lower role leaves nothing for the next one: 404 then
        for role, headers in roles.items():
            r = await call(headers)
            if allows(role, access):  # type: ignore[arg-type]
                check(role, r.status_code, {200, 201, 204, 409} | ({404} if done and method == "DELETE" else set()))
                done = done or r.status_code < 300
            else:
                check(role, r.status_code, {403})
    assert walked >= 25
    assert violations == [], "\n".join(violations)
