"""The shared route shapes alone (``entrypoints.resources`` and ``rpc_routes``): a tag's router documents the
404 of routes naming a resource and answers creations 201 and started work 202; a Resource declaration is a
route with its role, its path id (named as in the path), its answer model and status; its endpoint calls the
use case with the caller and the id and shapes the record (or each record) with the view."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel

from berth_api.entrypoints import resources, rpc_routes
from berth_api.entrypoints.auth import declared_access
from berth_api.entrypoints.resources import NOT_FOUND, Resource, V1Router, path_parameters
from berth_api.entrypoints.v1 import problem_doc
from berth_common import catalogue as cat


class ThingOut(BaseModel):
    id: str
    name: str


calls: list[tuple[Any, ...]] = []


async def get_thing(d: Any, principal: Any, thing_id: str) -> dict[str, str]:
    calls.append((d, principal, thing_id))
    return {"id": thing_id, "name": "one", "extra": "dropped"}


async def list_things(d: Any, principal: Any) -> list[dict[str, str]]:
    calls.append((d, principal))
    return [{"id": "a", "name": "x"}, {"id": "b", "name": "y"}]


async def delete_thing(d: Any, principal: Any, thing_id: str) -> None:
    calls.append((d, principal, thing_id))


def _app() -> tuple[FastAPI, dict[str, APIRoute]]:
    router = V1Router("things", {404: problem_doc("No such thing")})
    things = Resource(router, ThingOut)
    things.listing("/things", "list_things", list_things, "The things")
    things.get("/things/{thing_id}", "get_thing", get_thing, "A thing")
    things.delete("/things/{thing_id}", "delete_thing", delete_thing, "Delete a thing")
    Resource(router, ThingOut, view=lambda r: ThingOut(id=r["id"], name=r["name"].upper())).action(
        "POST", "/things/{thing_id}/shout", "shout_thing", get_thing, "Shout", role="developer", status_code=202
    )

    @router.create("/things", summary="Create a thing")
    async def create_thing() -> ThingOut:
        return ThingOut(id="c", name="new")

    @router.start("/things/{thing_id}/work", summary="Start work", responses={409: problem_doc("Busy")})
    async def start_work(thing_id: str) -> ThingOut:
        return ThingOut(id=thing_id, name="busy")

    app = FastAPI()
    app.router.routes.extend(router.routes)
    return app, {r.name: r for r in app.routes if isinstance(r, APIRoute)}


def test_path_parameters_in_order():
    assert path_parameters("/a/{a_id}/b/{b_id}") == ["a_id", "b_id"]
    assert path_parameters("/things") == []


def test_routes_carry_role_status_answer_and_the_404_of_a_named_resource():
    app, routes = _app()
    expected = {
        "list_things": ("viewer", None, list[ThingOut]),
        "get_thing": ("viewer", None, ThingOut),
        "delete_thing": ("admin", 204, None),
        "shout_thing": ("developer", 202, ThingOut),
    }
    for name, (role, status, answer) in expected.items():
        route = routes[name]
        assert declared_access(route.dependant) == role, name
        assert route.status_code == status, name
        assert route.response_model == answer, name
    assert routes["create_thing"].status_code == 201
    assert routes["start_work"].status_code == 202

    spec = app.openapi()["paths"]
    assert "404" not in spec["/v1/things"]["get"]["responses"]
    assert "404" not in spec["/v1/things"]["post"]["responses"]
    for method, path in [("get", "/v1/things/{thing_id}"), ("delete", "/v1/things/{thing_id}")]:
        op = spec[path][method]
        assert op["responses"]["404"]["description"] == "No such thing"
        assert [(p["in"], p["name"], p["schema"]["pattern"]) for p in op["parameters"]] == [
            ("path", "thing_id", "^[0-9a-f]{32}$")
        ]
    work = spec["/v1/things/{thing_id}/work"]["post"]["responses"]
    assert {"202", "404", "409"} <= set(work)


def test_a_route_that_documents_its_own_404_keeps_it():
    router = V1Router("things")
    own = {404: problem_doc("Gone elsewhere")}

    @router.get("/things/{thing_id}", responses=own)
    async def thing(thing_id: str) -> None:
        return None

    route = router.routes[0]
    assert isinstance(route, APIRoute)
    assert route.responses[404]["description"] == "Gone elsewhere"
    assert NOT_FOUND[404]["description"] == "No such resource in this team"


async def test_endpoints_call_the_use_case_with_the_caller_and_the_id_and_shape_the_answer(monkeypatch):
    monkeypatch.setattr(resources, "deps", lambda request: "deps")
    _, routes = _app()
    calls.clear()
    one = await routes["get_thing"].endpoint(request=None, item_id="t1", principal="caller")
    assert one == ThingOut(id="t1", name="one")
    many = await routes["list_things"].endpoint(request=None, principal="caller")
    assert many == [ThingOut(id="a", name="x"), ThingOut(id="b", name="y")]
    gone = await routes["delete_thing"].endpoint(request=None, item_id="t2", principal="caller")
    assert gone.status_code == 204 and gone.body == b""
    shouted = await routes["shout_thing"].endpoint(request=None, item_id="t3", principal="caller")
    assert shouted == ThingOut(id="t3", name="ONE")
    assert calls == [("deps", "caller", "t1"), ("deps", "caller"), ("deps", "caller", "t2"), ("deps", "caller", "t3")]


def test_a_resource_route_takes_one_path_parameter_at_most():
    with pytest.raises(TypeError, match="one path parameter"):
        Resource(V1Router("things")).delete("/a/{a_id}/b/{b_id}", "x", delete_thing, "x")


async def test_a_relayed_deletion_asks_for_the_callers_team_and_names_the_path_on_refusal(monkeypatch):
    asked: list[tuple[Any, ...]] = []

    async def ask(d: Any, service: str, q: Any, reply: Any, *, fields: Any) -> None:
        asked.append((d, service, q, reply, dict(fields)))

    monkeypatch.setattr(rpc_routes, "ask", ask)

    class Caller:
        team_id = "f" * 32

    delete = rpc_routes.relayed_delete("notifier", cat.ChannelDelete)
    await delete("deps", Caller(), "a" * 32)
    assert asked == [
        (
            "deps",
            "notifier",
            cat.ChannelDelete(team_id="f" * 32, channel_id="a" * 32),
            cat.ChannelDelete.REPLY,
            {"channel_id": "/path/channel_id"},
        )
    ]


def test_a_bad_id_is_a_422_naming_the_path_parameter(monkeypatch):
    from fastapi.testclient import TestClient

    from berth_api.entrypoints.auth import RoleGuard
    from berth_api.entrypoints.errors import install_error_handlers

    async def anyone(self: RoleGuard, request: Request) -> str:
        return "caller"

    anyone.__annotations__ = {"request": Request, "return": str}  # read by FastAPI, which resolves no strings here

    monkeypatch.setattr(resources, "deps", lambda request: "deps")
    monkeypatch.setattr(RoleGuard, "__call__", anyone)
    app, _ = _app()
    install_error_handlers(app)
    with TestClient(app) as client:
        bad = client.get("/v1/things/NOT-AN-ID")
        good = client.get(f"/v1/things/{'a' * 32}")
    assert bad.status_code == 422
    assert [e["loc"] for e in bad.json()["errors"]] == ["/path/thing_id"]
    assert good.status_code == 200 and good.json() == {"id": "a" * 32, "name": "one"}


def test_no_free_database_connection_is_a_503_to_retry():
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from sqlalchemy.exc import TimeoutError as PoolTimeoutError

    from berth_api.entrypoints.errors import install_error_handlers

    app = FastAPI()

    @app.get("/busy")
    async def busy() -> None:
        raise PoolTimeoutError("QueuePool limit of size 1 overflow 10 reached, connection timed out")

    @app.get("/bug")
    async def bug() -> None:
        raise KeyError("a bug")

    install_error_handlers(app)
    with TestClient(app, raise_server_exceptions=False) as client:
        busy_answer, bug_answer = client.get("/busy"), client.get("/bug")
    assert (busy_answer.status_code, busy_answer.headers["retry-after"]) == (503, "2")
    assert (
        busy_answer.json()["detail"]
        == "A service this request needs is busy, restarting or unreachable; try again shortly."
    )
    assert busy_answer.headers["content-type"] == "application/problem+json"
    assert bug_answer.status_code == 500
