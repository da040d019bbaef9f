"""A 405 answer's ``Allow`` lists every method of the path (all routes on it), not only the first route's.
In process (the app without its runtime): the method check comes before any token or database."""

from __future__ import annotations

import re

import httpx
import pytest
from starlette.routing import Route

from berth_api.entrypoints.http import create_app
from berth_api.settings import ApiSettings

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@pytest.fixture(scope="module")
def app():
    return create_app(ApiSettings())


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


def _paths(app) -> dict[str, tuple[set[str], set[str]]]:
    """Each concrete path of the app's routes: the methods its ``Allow`` lists (every route matching it,
    or only the routes of that very path where one has no parameter, as OpenAPI reads paths), and the
    methods some route answers there (``GET /v1/templates/import`` reaches ``/v1/templates/{slug}``)."""
    routes = [r for r in app.router.routes if isinstance(r, Route) and r.methods]
    paths: dict[str, tuple[set[str], set[str]]] = {}
    for route in routes:
        path = _concrete(route.path)
        matching = [r for r in routes if r.path_regex.match(path)]
        concrete = [r for r in matching if r.path == path]
        paths[path] = (
            set().union(*(r.methods for r in concrete or matching)),
            set().union(*(r.methods for r in matching)),
        )
    return paths


async def test_every_path_answers_405_with_all_its_methods(app):
    paths = _paths(app)
    assert len(paths) > 100
    wrong = 0
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        for path, (methods, served) in paths.items():
            missing = [m for m in METHODS if m not in served]
            if not missing:
                continue
            r = await c.request(missing[0], path)
            assert r.status_code == 405, (path, missing[0], r.status_code)
            assert r.headers["allow"] == ", ".join(sorted(methods)), path
            wrong += len(methods) > 1
    assert wrong > 10  # paths with several routes were among them


async def test_a_collection_lists_get_and_post(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        r = await c.delete("/v1/projects")
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST"
    assert r.json()["detail"] == "DELETE is not allowed on /v1/projects."


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/v1/databases/engines", "GET"),  # not a /v1/databases/{database_id}: an id is 32 hex digits
        ("/v1/invitations/accept", "POST"),  # nor an /v1/invitations/{invitation_id}
        ("/v1/templates/import", "POST"),  # nor a template's slug
    ],
)
async def test_a_fixed_path_lists_only_its_own_methods(app, path, allow):
    """A route whose path parameter the path does not satisfy (the OpenAPI's pattern) is not on that path."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        r = await c.options(path)
    assert r.status_code == 405 and r.headers["allow"] == allow


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("DELETE", "/v1/databases/engines", "GET"), ("DELETE", "/v1/invitations/accept", "POST")],
)
async def test_a_concrete_path_refuses_a_method_of_a_templated_route(app, method, path, allow):
    """``DELETE /v1/databases/engines`` is a 405 (as its Allow says), not a deletion of database ``engines``."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        r = await c.request(method, path)
    assert r.status_code == 405 and r.headers["allow"] == allow
    assert r.json()["detail"] == f"{method} is not allowed on {path}."
