"""Every operation has an explicit, unique, stable id named as a person would (``list_projects``, not
FastAPI's ``list_projects_v1_projects_get``); the committed list makes a rename a visible change; and a
client generated from the OpenAPI document (openapi-python-client) imports and has those methods."""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from berth_api.entrypoints.http import check_operation_ids, create_app
from berth_api.settings import ApiSettings

EXPECTED = Path(__file__).parent / "operation_ids.txt"
SNAKE = re.compile(r"^[a-z]+(_[a-z0-9]+)+$")
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def listing(spec: dict) -> list[str]:
    """``<operation id> <METHOD> <path>`` per operation, ordered by path then method."""
    rows = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                rows.append((path, method.upper(), op["operationId"]))
    return [f"{op_id} {method} {path}" for path, method, op_id in sorted(rows)]


@pytest.fixture(scope="module")
def spec() -> dict:
    """The live document: what ``GET /openapi.json`` answers, in-process."""
    app = create_app(ApiSettings(http_port=0))

    async def fetch() -> dict:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://berth.test") as c:
            r = await c.get("/openapi.json")
            assert r.status_code == 200
            return r.json()

    import asyncio

    return asyncio.run(fetch())


def test_operation_ids_match_the_committed_list(spec):
    got = listing(spec)
    expected = [line for line in EXPECTED.read_text().splitlines() if line and not line.startswith("#")]
    missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    assert (missing, extra) == ([], []), (
        "The operations changed; if that is meant, update tests/api/operation_ids.txt.\n"
        f"no longer there: {missing}\nnew: {extra}"
    )
    assert got == expected  # in the file's order (by path, then method)


def test_operation_ids_are_unique_and_read_as_a_person_writes_them(spec):
    ids = [line.split()[0] for line in listing(spec)]
    assert len(ids) == len(set(ids))
    odd = [i for i in ids if not SNAKE.fullmatch(i) or "_v1_" in i or re.search(r"_(get|post|put|patch|delete)$", i)]
    assert odd == []
    for wanted in ("list_projects", "create_application", "get_deployment", "rollback_application", "get_me"):
        assert wanted in ids


def test_a_duplicate_operation_id_is_refused_when_the_app_is_built():
    router = APIRouter()

    @router.get("/a", operation_id="same")
    async def a() -> None: ...

    @router.get("/b", operation_id="same")
    async def b() -> None: ...

    with pytest.raises(ValueError, match="operation id 'same' names both GET /a and GET /b"):
        check_operation_ids(router.routes)
    check_operation_ids(FastAPI().routes)  # FastAPI's own (the docs are off in Berth's) are not operations


def test_a_generated_client_has_the_methods_a_person_would_write(spec, tmp_path, monkeypatch):
    from openapi_python_client import generate
    from openapi_python_client.config import Config, ConfigFile, MetaType

    document = tmp_path / "openapi.json"
    document.write_text(json.dumps(spec))
    config = Config.from_sources(
        ConfigFile(post_hooks=[], package_name_override="berth_client"),  # no formatting: only imported here
        MetaType.NONE,
        document,
        "utf-8",
        True,
        tmp_path / "berth_client",
    )
    problems = generate(config=config)
    assert [f"{p.header}: {p.detail}" for p in problems] == []

    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        client = importlib.import_module("berth_client")
        assert hasattr(client, "AuthenticatedClient")
        for module, function in (
            ("account.get_me", "get_me"),
            ("projects.list_projects", "list_projects"),
            ("applications.create_application", "create_application"),
            ("deployments.get_deployment", "get_deployment"),
            ("deployments.rollback_application", "rollback_application"),
            ("notifications.list_notification_channels", "list_notification_channels"),
        ):
            method = importlib.import_module(f"berth_client.api.{module}")
            assert callable(method.sync) and callable(method.asyncio_detailed), module
            assert function in method.__name__
        modules = {p.stem for p in (tmp_path / "berth_client" / "api").rglob("*.py")} - {"__init__"}
        assert len(modules) == len(listing(spec))  # one module per operation, none lost to a parse problem
        assert not [m for m in modules if "_v1_" in m]
    finally:
        for name in [m for m in sys.modules if m == "berth_client" or m.startswith("berth_client.")]:
            del sys.modules[name]
