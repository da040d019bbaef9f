"""A boolean of a request body is a JSON ``true`` or ``false``, as the OpenAPI's ``"type": "boolean"`` says:
``0``, ``1`` or ``"yes"`` is refused naming the field, not read as one (schemathesis' negative cases found
``{"redeploy_on_change": 0}`` and ``{"push": 0}`` accepted). Walks every route's body model."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel

from berth_api.entrypoints.http import create_app
from berth_api.settings import ApiSettings


def _boolean_fields() -> list[tuple[str, type[BaseModel], str]]:
    app = create_app(ApiSettings(http_port=0))
    found: dict[tuple[type[BaseModel], str], str] = {}
    for route in app.routes:
        if not isinstance(route, APIRoute) or route.body_field is None:
            continue
        model = route.body_field.field_info.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        props: dict[str, Any] = model.model_json_schema().get("properties", {})
        for name, prop in props.items():
            kinds = [prop.get("type")] + [alt.get("type") for alt in prop.get("anyOf", [])]
            if "boolean" in kinds:
                found.setdefault((model, name), f"{next(iter(route.methods))} {route.path}")
    return [(label, model, name) for (model, name), label in found.items()]


BOOLEANS = _boolean_fields()


def test_bodies_have_booleans():
    assert len(BOOLEANS) > 20


@pytest.mark.parametrize("value", [0, 1, "yes", "true"])
def test_a_boolean_field_takes_only_a_json_boolean(value):
    lax = []
    for label, model, name in BOOLEANS:
        try:
            model.model_validate({name: value})
        except Exception as exc:
            errors = getattr(exc, "errors", lambda: [])()
            if any(e["loc"] == (name,) and e["type"] == "bool_type" for e in errors):
                continue
        lax.append(f"{label}: {model.__name__}.{name}")
    assert not lax, lax


def test_true_and_false_are_taken():
    for _, model, name in BOOLEANS:
        for value in (True, False):
            try:
                model.model_validate({name: value})
            except Exception as exc:
                errors = getattr(exc, "errors", lambda: [])()
                assert not any(e["loc"] == (name,) for e in errors), (model.__name__, name, errors)
