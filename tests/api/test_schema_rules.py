"""The OpenAPI's request schemas say what the server enforces, so that a body the schema allows is one the
server takes (schemathesis' ``positive_data_acceptance``): e-mail addresses and registry hosts carry the
pattern their validators check, an application is services or a compose file (not both), a destination's
update holds the fields of one kind, text without control characters says so. Each pattern is checked
against its validator both ways: values generated from the pattern pass it, values it refuses fail the
pattern too. In process: the app without its runtime.
"""

from __future__ import annotations

import re
from typing import Any

import pydantic
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator

from berth_api.domain import names
from berth_api.entrypoints.http import create_app
from berth_api.entrypoints.routes_drills import DrillCreate
from berth_api.entrypoints.routes_registries import RegistryCreate
from berth_api.entrypoints.schemas_apps import ApplicationCreate, ApplicationUpdate
from berth_api.entrypoints.schemas_backups import DestinationUpdate
from berth_api.settings import ApiSettings
from berth_common.catalogue.applications import AutoscalePolicy
from berth_common.registries import InvalidReferenceError, normalize_host
from berth_common.values import server_address
from berth_notifier.domain.channels import FieldError, validate


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return create_app(ApiSettings()).openapi()


def _validator(spec: dict[str, Any], component: str) -> Draft202012Validator:
    """A validator of one request component, its references resolved in the document."""
    schema = {**spec["components"]["schemas"][component], "components": spec["components"]}
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _body_schema(spec: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    ref = spec["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return spec["components"]["schemas"][ref.rsplit("/", 1)[1]]


def _server_takes_email(value: str) -> bool:
    try:
        names.email(value)
    except ValueError:
        return False
    return True


# --- e-mail addresses ----------------------------------------------------------------------------------


def test_an_invitations_email_is_format_email_with_the_validators_pattern(spec):
    email = _body_schema(spec, "post", "/v1/invitations")["properties"]["email"]
    assert (email["format"], email["pattern"]) == ("email", names.EMAIL_PATTERN)
    assert (email["minLength"], email["maxLength"]) == (3, names.MAX_EMAIL)


def _generated(schema: dict[str, Any], count: int = 200, components: dict[str, Any] | None = None) -> list[Any]:
    """Bodies schemathesis generates from ``schema`` (as it does over the live api)."""
    doc = {
        "openapi": "3.1.0",
        "components": components or {},
        "info": {"title": "one body", "version": "1"},
        "paths": {
            "/x": {
                "post": {
                    "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
                    "responses": {"200": {"description": "taken"}},
                }
            }
        },
    }
    operation = next(iter(schemathesis.openapi.from_dict(doc).get_all_operations())).ok()
    bodies: list[Any] = []

    @settings(max_examples=count, suppress_health_check=list(HealthCheck), deadline=None, database=None)
    @given(operation.as_strategy())
    def collect(case: Any) -> None:
        bodies.append(case.body)

    collect()
    return bodies


def test_every_address_schemathesis_makes_of_the_email_schema_the_validator_takes(spec):
    values = _generated(_body_schema(spec, "post", "/v1/invitations")["properties"]["email"])
    assert len(set(values)) > 20
    assert [v for v in values if not _server_takes_email(v)] == []


@pytest.mark.parametrize(
    ("value", "taken"),
    [
        ("ada@example.com", True),
        ("Ada.Lovelace+berth@Mail.Example.COM.", True),  # any case, a final dot
        ("o'neil_{x}@a-b.example.io", True),
        ("x" * 64 + "@example.com", True),
        ("x" * 65 + "@example.com", False),  # a local part of at most 64
        ("ada@localhost", False),  # two labels or more
        ("ada@10.0.0.1", False),  # not an address
        ("ada@example.123", False),  # the last label not all digits
        ("a..b@example.com", False),
        (".ab@example.com", False),
        ("ada@-x.example.com", False),
        ("ada@exa_mple.com", False),
        ("ada@@example.com", False),
        ("ada example@example.com", False),
        ("adá@example.com", False),
        ("ada@example.com\n", False),
        ("ada@" + "a" * 64 + ".com", False),  # a label of at most 63
    ],
)
def test_the_email_pattern_and_validator_agree(value, taken):
    assert _server_takes_email(value) is taken
    assert bool(re.fullmatch(names.EMAIL_PATTERN, value)) is taken


def _email_target(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["components"]["schemas"]["EmailTarget"]["properties"]


def test_a_channels_addresses_are_format_email_with_the_notifiers_pattern(spec):
    target = _email_target(spec)
    for prop in (target["from_addr"], target["to_addrs"]["items"]):
        assert prop["format"] == "email"
        assert re.fullmatch(prop["pattern"], "ops@example.com")
    assert target["from_addr"]["pattern"] == target["to_addrs"]["items"]["pattern"]


def _notifier_takes(from_addr: str) -> bool:
    settings_ = {"host": "smtp.example.com", "port": 587, "security": "starttls", "from_addr": from_addr}
    try:
        validate("email", {**settings_, "to_addrs": ["ops@example.com"]}, {}, _NO_RULE)
    except FieldError as exc:
        assert exc.field == "target.from_addr"
        return False
    return True


class _NoRule:
    def check_host(self, host: str) -> None:
        return None


_NO_RULE: Any = _NoRule()


@pytest.mark.parametrize(
    "value",
    ["ops@example.com", "a@b", "a.b@example.com", "x" * 65 + "@example.com", "a b@example.com", "a@-b", "a@b.", "ä@b"],
)
def test_the_channel_address_pattern_and_the_notifier_agree(spec, value):
    pattern = _email_target(spec)["from_addr"]["pattern"]
    assert bool(re.fullmatch(pattern, value)) is _notifier_takes(value)


# --- registry hosts ------------------------------------------------------------------------------------


def _registry_host_pattern(spec: dict[str, Any]) -> str:
    return _body_schema(spec, "post", "/v1/registries")["properties"]["host"]["pattern"]


def _server_takes_host(value: str) -> bool:
    try:
        normalize_host(value)
    except InvalidReferenceError:
        return False
    return True


def test_a_registry_host_has_a_pattern(spec):
    pattern = _registry_host_pattern(spec)
    assert re.fullmatch(pattern, "registry.example.com:5000")


def test_every_host_schemathesis_makes_of_the_registry_schema_the_server_takes(spec):
    values = _generated(_body_schema(spec, "post", "/v1/registries")["properties"]["host"])
    assert len(set(values)) > 20
    assert [v for v in values if not _server_takes_host(v)] == []


@pytest.mark.parametrize(
    ("value", "taken"),
    [
        ("ghcr.io", True),
        ("Registry.Example.com:443", True),
        ("localhost:5000", True),
        ("10.0.0.5:65535", True),
        ("docker.io", True),
        ("registry.example.com:0", False),
        ("registry.example.com:65536", False),
        ("https://registry.example.com", False),
        ("registry.example.com/acme", False),
        ("user@registry.example.com", False),
        ("-registry.example.com", False),
        ("registry..example.com", False),
        ("registry.example.com:", False),
        ("[::1]:5000", False),
    ],
)
def test_the_registry_host_pattern_and_the_server_agree(spec, value, taken):
    assert _server_takes_host(value) is taken
    assert bool(re.fullmatch(_registry_host_pattern(spec), value)) is taken


def test_a_registrys_username_and_password_say_no_control_characters(spec):
    props = _body_schema(spec, "post", "/v1/registries")["properties"]
    for field in ("username", "password"):
        body = {"name": "r", "host": "ghcr.io", "username": "u", "password": "p", field: "a\tb"}
        assert not re.fullmatch(props[field]["pattern"], "a\tb")
        assert re.fullmatch(props[field]["pattern"], "ä p@ss")
        with pytest.raises(pydantic.ValidationError):
            RegistryCreate.model_validate(body)


def test_a_projects_description_says_which_characters(spec):
    pattern = _body_schema(spec, "post", "/v1/projects")["properties"]["description"]["pattern"]
    assert re.fullmatch(pattern, "line one\n\tline two")
    assert not re.fullmatch(pattern, "bell\x07")
    assert pattern == names.DESCRIPTION_PATTERN


# --- services or compose -------------------------------------------------------------------------------

SOURCE = {"kind": "image", "image": "nginx:1.27"}
SERVICES = [{"name": "web", "kind": "web", "port": 80}]
COMPOSE = {"inline": "services:\n  web:\n    image: nginx\n"}
HOSTS = [{"service": "web", "port": 80}]


@pytest.mark.parametrize(
    ("body", "valid"),
    [
        ({"source": SOURCE, "services": SERVICES}, True),
        ({"compose": COMPOSE}, True),
        ({"compose": COMPOSE, "hosts": HOSTS, "services": None}, True),
        (
            {
                "compose": {"path": "deploy/compose.yaml"},
                "source": {"kind": "git", "repository": "https://g.example/a.git"},
            },
            True,
        ),
        ({"source": SOURCE, "services": SERVICES, "compose": COMPOSE}, False),  # both
        ({}, False),  # neither
        ({"services": SERVICES}, False),  # services without a source
        ({"source": SOURCE, "services": SERVICES, "hosts": HOSTS}, False),  # hosts without compose
        ({"compose": {"inline": "services: {}", "path": "compose.yaml"}}, False),  # inline and path
        ({"compose": {}}, False),  # neither inline nor path
    ],
)
def test_an_applications_create_schema_and_model_agree_on_services_or_compose(spec, body, valid):
    full = {"name": "shop", **body}
    assert _validator(spec, "ApplicationCreate").is_valid(full) is valid
    try:
        ApplicationCreate.model_validate(full)
    except pydantic.ValidationError:
        assert not valid
    else:
        assert valid


def test_every_application_schemathesis_makes_is_services_or_compose(spec):
    create = {"$ref": "#/components/schemas/ApplicationCreate"}
    bodies = _generated(create, count=60, components=spec["components"])
    kinds = {"services" if body.get("services") is not None else "compose" for body in bodies}
    assert kinds == {"services", "compose"}
    for body in bodies:
        try:
            ApplicationCreate.model_validate(body)
        except pydantic.ValidationError as exc:  # other rules (a path, a host...): not these
            assert not [e for e in exc.errors() if e["loc"] == ()], (body, exc.errors())


def test_an_applications_update_schema_refuses_services_and_compose_together(spec):
    check = _validator(spec, "ApplicationUpdate")
    assert check.is_valid({"services": SERVICES})
    assert check.is_valid({"compose": COMPOSE, "services": None})
    assert not check.is_valid({"services": SERVICES, "compose": COMPOSE})
    assert ApplicationUpdate.model_json_schema()["anyOf"]


# --- a destination's kind ------------------------------------------------------------------------------


def test_a_destination_is_created_by_kind(spec):
    body = spec["paths"]["/v1/backup-destinations"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["discriminator"]["propertyName"] == "kind"
    directory = spec["components"]["schemas"]["DirectoryDestinationIn"]
    assert directory["additionalProperties"] is False and "endpoint" not in directory["properties"]


@pytest.mark.parametrize(
    ("body", "valid"),
    [
        ({"name": "offsite"}, True),
        ({"endpoint": "https://s3.example.com", "bucket": "bkp", "encrypt": True}, True),
        ({"server_id": "local", "path": "/var/backups/berth"}, True),
        ({"endpoint": "https://s3.example.com", "path": "/var/backups/berth"}, False),
        ({"secret_key": "s", "server_id": "local"}, False),
    ],
)
def test_a_destinations_update_holds_the_fields_of_one_kind(spec, body, valid):
    assert _validator(spec, "DestinationUpdate").is_valid(body) is valid
    DestinationUpdate.model_validate(body)  # the model takes each: the stored kind decides (a 422 names the field)


# --- found by schemathesis' positive_data_acceptance -----------------------------------------------------


def test_every_address_schemathesis_makes_of_a_servers_host_the_server_takes(spec):
    values = _generated(_body_schema(spec, "post", "/v1/servers")["properties"]["host"])
    assert len(set(values)) > 20 and any(":" in v for v in values)  # IPv6 ones too
    refused = []
    for value in values:
        try:
            server_address(value)
        except ValueError:
            refused.append(value)
    assert refused == []
    assert not _validator(spec, "ServerCreate").is_valid({"name": "web-1", "host": "example.com:22"})


def test_a_scale_names_services_only(spec):
    check = _validator(spec, "ScaleIn")
    assert check.is_valid({"services": {"web": 2}})
    assert not check.is_valid({"services": {"": 2}})
    assert not check.is_valid({"services": {"Web!": 2}})


@pytest.mark.parametrize(
    ("policy", "valid"),
    [
        ({"cpu_percent": 70}, True),
        ({"memory_percent": 80, "min": 2}, True),
        ({}, False),
        ({"cpu_percent": 70, "memory_percent": 80}, False),
    ],
)
def test_an_autoscale_policy_has_exactly_one_target_in_the_schema_too(spec, policy, valid):
    assert _validator(spec, "AutoscalePolicy").is_valid(policy) is valid
    try:
        AutoscalePolicy.model_validate(policy)
    except pydantic.ValidationError:
        assert not valid
    else:
        assert valid


@pytest.mark.parametrize(
    ("check", "valid"),
    [
        ({"kind": "row_counts", "tables": [{"table": "orders"}]}, True),
        ({"kind": "query", "sql": "select 1", "equals": "1"}, True),
        ({"kind": "query", "sql": "select 1", "at_least": 1}, True),
        ({"kind": "keys", "at_least": 1}, True),
        ({"kind": "keys", "exist": ["session:1"]}, True),
        ({"tables": [{"table": "orders"}]}, False),  # the kind picks the check: it is required
        ({"kind": "query", "sql": "select 1"}, False),  # equals or at_least
        ({"kind": "query", "sql": "select 1", "equals": "1", "at_least": 1}, False),
        ({"kind": "keys"}, False),
        ({"kind": "keys", "exist": []}, False),
    ],
)
def test_a_drill_check_schema_and_model_agree(spec, check, valid):
    body = {"check": check}
    assert _validator(spec, "DrillCreate").is_valid(body) is valid
    try:
        DrillCreate.model_validate(body)
    except pydantic.ValidationError:
        assert not valid
    else:
        assert valid
