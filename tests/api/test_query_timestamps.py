"""A ``date-time`` query parameter takes RFC 3339 text only, as the OpenAPI says: a number (which pydantic
would read as a Unix time) is refused naming the parameter (schemathesis' negative cases found
``/v1/notification-deliveries?before=0.5`` answered 200). Walks every route's query parameters."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute

from berth_api.entrypoints.http import create_app
from berth_api.settings import ApiSettings


def _timestamp_params() -> list[tuple[str, object]]:
    app = create_app(ApiSettings(http_port=0))
    doc = app.openapi()
    found = []
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        for method in route.methods:
            spec = doc["paths"].get(route.path, {}).get(method.lower(), {})
            for param in spec.get("parameters", []):
                schemas = [param.get("schema", {}), *param.get("schema", {}).get("anyOf", [])]
                if param["in"] == "query" and any(s.get("format") == "date-time" for s in schemas):
                    field = next(f for f in route.dependant.query_params if f.alias == param["name"])
                    found.append((f"{method} {route.path}?{param['name']}", field))
    return found


PARAMS = _timestamp_params()


def test_the_api_has_timestamp_queries():
    assert len(PARAMS) >= 8


@pytest.mark.parametrize("value", ["0.5", "1700000000", "-3", "1e9"])
def test_a_number_is_no_timestamp(value):
    taken = [label for label, field in PARAMS if not field.validate(value, {}, loc=("query",))[1]]
    assert not taken, taken


def test_rfc3339_is_taken():
    for label, field in PARAMS:
        for value in ("2026-01-31T12:00:00Z", "2026-01-31T12:00:00.5+01:00"):
            assert not field.validate(value, {}, loc=("query",))[1], (label, value)
