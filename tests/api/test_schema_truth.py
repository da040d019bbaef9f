"""The OpenAPI document tells the truth: every request-body ``name`` the server checks has the pattern it
checks (a display name's pattern and validator agree on every character), the ``metric`` query is the enum
of the metrics the metrics service answers, and every operation with a body documents the body limit (413).
In process: the app without its runtime."""

from __future__ import annotations

import re
from typing import Any, get_args

import pydantic
import pytest

from berth_api.domain import names
from berth_api.entrypoints.http import create_app
from berth_api.entrypoints.schemas_members import InvitationAccept
from berth_api.settings import ApiSettings
from berth_common.catalogue import QueryMetric
from berth_common.values import DNS_LABEL_PATTERN, SLUG_PATTERN
from berth_metrics.domain.series import ALL_METRICS


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return create_app(ApiSettings(max_body_bytes=4096)).openapi()


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _body_names(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each request body schema (by name) that has a ``name`` property, with that property's schema."""
    found: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()

    def walk(schema: dict[str, Any]) -> None:
        ref = schema.get("$ref")
        if ref is not None:
            if ref in seen:
                return
            seen.add(ref)
        schema = _resolve(spec, schema)
        for alt in schema.get("anyOf", []) + schema.get("oneOf", []) + schema.get("allOf", []):
            walk(alt)
        if "name" in schema.get("properties", {}) and ref is not None:
            found[ref.rsplit("/", 1)[1]] = schema["properties"]["name"]
        for prop in schema.get("properties", {}).values():
            walk(prop)
        if isinstance(schema.get("items"), dict):
            walk(schema["items"])

    for item in spec["paths"].values():
        for op in item.values():
            for media in op.get("requestBody", {}).get("content", {}).values():
                walk(media["schema"])
    return found


def _patterns(prop: dict[str, Any]) -> set[str]:
    return {p for alt in [prop, *prop.get("anyOf", [])] if (p := alt.get("pattern"))}


def test_every_checked_body_name_has_its_pattern(spec):
    found = _body_names(spec)
    unconstrained = {where for where, prop in found.items() if not _patterns(prop) and "enum" not in prop}
    # Free text the server takes as it is (any character, up to the length): nothing more to document.
    assert unconstrained == {"AlertRuleIn"}
    assert len(found) > 20
    for where in ("RegistryCreate", "ServerCreate", "SwarmCreate", "CertificateCreate", "S3DestinationIn"):
        assert _patterns(found[where]) == {DNS_LABEL_PATTERN}, where
    for where in ("DatabaseCreate", "RestoreCreate", "VolumeRestoreCreate"):
        assert _patterns(found[where]) == {SLUG_PATTERN}, where
    for where in ("InvitationAccept", "TemplateImport"):
        assert _patterns(found[where]) == {names.DISPLAY_NAME_PATTERN}, where


def _accepted(value: str) -> bool:
    try:
        names.display_name(value)
    except ValueError:
        return False
    return True


def test_display_name_pattern_and_validator_agree_on_every_character():
    pattern = re.compile(names.DISPLAY_NAME_PATTERN)
    for code in range(0x10000):
        for value in (f"a{chr(code)}b", chr(code)):
            assert bool(pattern.search(value)) == _accepted(value), (hex(code), value)
    assert _accepted("Zoë Li 李") and not _accepted("   ") and not _accepted("Eve\u202eevil")
    with pytest.raises(pydantic.ValidationError, match="control characters"):
        InvitationAccept(code="x", name="Mallory\x07")


def test_metric_query_is_the_enum_the_metrics_service_answers(spec):
    assert tuple(get_args(QueryMetric)) == ALL_METRICS
    params = [
        p
        for item in spec["paths"].values()
        for op in item.values()
        for p in op.get("parameters", [])
        if p["name"] == "metric"
    ]
    assert len(params) == 3
    for param in params:
        items = next(alt["items"] for alt in param["schema"]["anyOf"] if alt.get("type") == "array")
        assert tuple(items["enum"]) == ALL_METRICS


def test_every_operation_with_a_body_documents_the_body_limit(spec):
    with_body = 0
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if "requestBody" in op:
                with_body += 1
                response = op["responses"].get("413")
                assert response is not None, (method, path)
                assert "4096 bytes" in response["description"]
                assert "application/problem+json" in response["content"]
    assert with_body > 50
