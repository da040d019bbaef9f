"""Authorization is declared once per route: every route names its role (or that it is public)."""

from __future__ import annotations

from fastapi.routing import APIRoute

from berth_api.domain.problems import MEDIA_TYPE
from berth_api.entrypoints.auth import RoleGuard, declared_access
from berth_api.entrypoints.http import create_app
from berth_api.settings import ApiSettings

PUBLIC = {"/livez", "/readyz", "/metrics", "/asyncapi.json", "/v1/invitations/accept", "/v1/webhooks/{webhook_id}"}
PUBLIC |= {"/docs", "/docs/assets/{name}", "/events"}  # the pages that describe the api
# The /v1 operations without a token: an invitee has none yet (the code is checked and rate-limited); a git
# forge signs its deliveries with the webhook's secret instead (verified over the raw body).
PUBLIC_V1 = {("POST", "/v1/invitations/accept"), ("POST", "/v1/webhooks/{webhook_id}")}
# Deletions are for admins, except detaching a group (a configuration change, like attaching it).
DEVELOPER_DELETES = {("DELETE", "/v1/applications/{application_id}/env-groups/{group_id}")}
# Changes any member makes to their own account, whatever their role (docs/teams.md): create a team, mint a
# token for a team they belong to, revoke a token of their own, leave one (membership is checked on the team
# named).
SELF_SERVICE = {
    ("POST", "/v1/teams"),
    ("POST", "/v1/me/tokens"),
    ("DELETE", "/v1/me/tokens/{token_id}"),
    ("POST", "/v1/me/teams/leave"),
}


def _app():
    return create_app(ApiSettings(http_port=0))


def test_every_v1_route_declares_a_role():
    app = _app()
    v1 = [r for r in app.routes if isinstance(r, APIRoute) and r.path.startswith("/v1")]
    assert len(v1) >= 5
    missing = []
    for route in v1:
        if {(m, route.path) for m in route.methods} <= PUBLIC_V1:
            continue
        guards = [d.call for d in _walk(route.dependant) if isinstance(d.call, RoleGuard)]
        if len(guards) != 1:
            missing.append(f"{sorted(route.methods)} {route.path}: {len(guards)} role dependencies")
    assert missing == []


def test_every_route_declares_its_access_and_only_known_ones_are_public():
    app = _app()
    undeclared, public = [], set()
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        access = declared_access(route.dependant)
        if access is None:
            undeclared.append(route.path)
        elif access == "anonymous":
            public.add(route.path)
    assert undeclared == []
    assert public == PUBLIC


def test_openapi_carries_the_role_of_every_operation():
    spec = _app().openapi()
    for path, item in spec["paths"].items():
        for method, op in item.items():
            assert op.get("x-berth-role") in {"viewer", "developer", "admin", "anonymous"}, (method, path)
            if path.startswith("/v1") and (method.upper(), path) not in PUBLIC_V1:
                assert op["x-berth-role"] != "anonymous"
                assert op["security"] == [{"token": []}]
                assert "401" in op["responses"] and "403" in op["responses"]
            for code, response in op["responses"].items():
                if code == "default" or int(code) >= 400:
                    assert set(response["content"]) == {MEDIA_TYPE}, (method, path, code)


def test_the_walker_catches_an_undeclared_route():
    """The check above can fail: an unguarded route is reported."""
    app = _app()

    @app.get("/v1/oops")
    async def oops() -> dict:
        return {}

    route = next(r for r in app.routes if isinstance(r, APIRoute) and r.path == "/v1/oops")
    assert declared_access(route.dependant) is None


def _walk(dependant):
    for dep in dependant.dependencies:
        yield dep
        yield from _walk(dep)


def test_mutations_need_a_developer_and_deletions_an_admin():
    """Viewers only read; deleting projects, environments and applications is for admins."""
    spec = _app().openapi()
    roles = {(m.upper(), p): op["x-berth-role"] for p, item in spec["paths"].items() for m, op in item.items()}
    for (method, path), role in roles.items():
        if not path.startswith("/v1") or (method, path) in PUBLIC_V1:
            continue
        if method != "GET" and (method, path) not in SELF_SERVICE:
            assert role in ("developer", "admin"), (method, path, role)
        if method == "DELETE" and (method, path) not in DEVELOPER_DELETES | SELF_SERVICE:
            assert role == "admin", (method, path, role)
    assert roles[("POST", "/v1/applications/{application_id}/deployments")] == "developer"
    assert {roles[op] for op in SELF_SERVICE} == {"viewer"}
    assert roles[("GET", "/v1/deployments/{deployment_id}/logs")] == "viewer"
    logs = spec["paths"]["/v1/deployments/{deployment_id}/logs"]["get"]["responses"]["200"]["content"]
    assert set(logs) == {"text/plain", "text/event-stream"}


def test_revealing_secret_values_needs_an_admin_and_says_so():
    spec = _app().openapi()
    exports = [p for p in spec["paths"] if p.endswith("/variables/export")]
    assert len(exports) == 3
    for path in exports:
        op = spec["paths"][path]["get"]
        assert op["x-berth-role"] == "viewer"
        assert op["x-berth-role-elevated"] == {"reveal_secrets=true": "admin"}
