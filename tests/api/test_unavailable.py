"""A database that restarts answers 503 with Retry-After, not a logged 500: found by the chaos suite
(``tests/e2e/test_chaos.py``), where requests met Postgres starting up ("the database system is starting
up") and a refused connection while it was down."""

from __future__ import annotations

import asyncpg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from berth_api.entrypoints.errors import install_error_handlers, unavailable
from berth_cli.components import free_port


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/refused")
    async def refused() -> None:
        await asyncpg.connect(f"postgresql://u:p@127.0.0.1:{free_port()}/db", timeout=5)  # nothing listens

    @app.get("/refused-via-sqlalchemy")
    async def refused_via_sqlalchemy() -> None:
        engine = create_async_engine(f"postgresql+asyncpg://u:p@127.0.0.1:{free_port()}/db")
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    @app.get("/starting")
    async def starting() -> None:
        raise asyncpg.exceptions.CannotConnectNowError("the database system is starting up")

    @app.get("/bug")
    async def bug() -> None:
        raise RuntimeError("a real bug")

    return app


@pytest.mark.parametrize("path", ["/refused", "/refused-via-sqlalchemy", "/starting"])
def test_an_unreachable_database_is_a_503_with_retry_after(path):
    with TestClient(_app(), raise_server_exceptions=False) as client:
        resp = client.get(path)
    assert resp.status_code == 503, resp.text
    assert resp.headers["retry-after"] == "2"
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["status"] == 503 and "try again" in resp.json()["detail"]


def test_any_other_error_stays_a_500_without_details():
    with TestClient(_app(), raise_server_exceptions=False) as client:
        resp = client.get("/bug")
    assert resp.status_code == 500 and "retry-after" not in resp.headers
    assert "a real bug" not in resp.text


def test_the_cause_is_found_through_wrapping_and_not_invented():
    inner = ConnectionResetError("reset")
    try:
        try:
            raise inner
        except ConnectionResetError as exc:
            raise DBAPIError("SELECT 1", {}, exc) from exc
    except DBAPIError as wrapped:
        assert unavailable(wrapped) is inner
    assert unavailable(ValueError("no")) is None
    assert unavailable(asyncpg.exceptions.UniqueViolationError("dup")) is None
