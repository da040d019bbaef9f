"""A container's own environment takes the names Docker and Compose take, dots and dashes included
(Elasticsearch is configured with ``discovery.type``; Coolify's huly template sets it), while names Berth
interpolates or hands to a shell (application variables, build args) stay shell names. A healthcheck never
reads a secret through a dotted name: ``$discovery.type`` is not that variable in a shell."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from berth_api.adapters.compose_parser import normalise
from berth_api.domain.compose import ComposeRefusal, precheck, secret_refs, translate
from berth_common.catalogue.specs import BuildArg, EnvVar
from tests.api.conftest import WEB_APP, make_project
from tests.api.test_projects import problem

HULY = Path(__file__).parent / "data" / "coolify_huly.yaml"  # Coolify's templates/compose/huly.yaml


def _translated(text: str, holders: dict[str, str] | None = None) -> dict:
    found = asyncio.run(normalise(text, holders or {}))
    return translate(found.model, precheck(text), secrets_nonce="n0nce")


def test_a_dotted_name_is_carried_and_a_name_docker_cannot_take_is_refused_naming_it() -> None:
    text = "services:\n  es:\n    image: elasticsearch:7\n    environment:\n"
    (es,) = _translated(text + "      discovery.type: single-node\n      http.cors-enabled: 'true'\n")["services"]
    assert es["environment"] == [
        {"name": "discovery.type", "value": "single-node"},
        {"name": "http.cors-enabled", "value": "true"},
    ]
    for bad in ("1st", ".hidden", "-x", "a b", "a=b"):
        with pytest.raises(ComposeRefusal) as refused:
            _translated(text + f"      '{bad}': v\n")
        assert refused.value.spot == f"services/es/environment/{bad}", bad


def test_the_catalogue_carries_dotted_runtime_names_but_not_dotted_build_args() -> None:
    assert EnvVar(name="discovery.type", value=SecretStr("single-node")).name == "discovery.type"
    with pytest.raises(ValidationError):
        BuildArg(name="discovery.type", value=SecretStr("x"))
    with pytest.raises(ValidationError):
        EnvVar(name="9lives", value=SecretStr("x"))


def test_a_healthcheck_reads_a_secret_through_a_shell_name_never_a_dotted_one() -> None:
    holders = secret_refs.placeholders(["PW"], "n0nce")
    text = (
        "services:\n  es:\n    image: elasticsearch:7\n    environment: {elastic.password: '${PW}'}\n"
        "    healthcheck:\n      test: [CMD, check, '${PW}']\n"
    )
    (es,) = _translated(text, holders)["services"]
    assert es["health_command"] == ["/bin/sh", "-c", 'check "${BERTH_HEALTH_PW}"']
    assert [e["name"] for e in es["environment"]] == ["BERTH_HEALTH_PW", "elastic.password"]
    # a real shell reads the dotted form as another variable followed by text: the value would not arrive
    run = subprocess.run(
        ["/usr/bin/env", "elastic.password=s3cret", "/bin/sh", "-c", 'printf %s "${elastic.password}"'],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.stdout != "s3cret"


async def test_an_application_variable_stays_a_shell_name(client, members) -> None:
    env = (await make_project(client, members.developer))["environments"][0]["id"]
    body = {**WEB_APP, "env": [{"name": "discovery.type", "value": "single-node"}]}
    r = await client.post(f"/v1/environments/{env}/applications", headers=members.developer, json=body)
    assert [e["loc"] for e in problem(r, 422)["errors"]] == ["/body/env/0/name"]


async def test_coolifys_huly_imports_and_deploys_with_elasticsearchs_dotted_names(client, members) -> None:
    project = await make_project(client, members.developer)
    body = {"format": "coolify", "files": {"huly.yaml": HULY.read_text()}}
    imported = await client.post("/v1/templates/import", headers=members.developer, json=body)
    assert imported.status_code == 200, imported.text
    document = imported.json()["template"]["document"]
    env = project["environments"][0]["id"]
    r = await client.post(
        "/v1/templates/deploy", headers=members.developer, json={"environment_id": env, "document": document}
    )
    assert r.status_code == 201, r.text
    deployed = await client.post(f"/v1/applications/{r.json()['id']}/deployments", headers=members.developer)
    assert deployed.status_code == 202, deployed.text
    (elastic,) = [s for s in deployed.json()["spec"]["services"] if s["name"] == "elastic"]
    names = {e["name"]: e["value"] for e in elastic["env"]}
    assert (names["discovery.type"], names["http.cors.enabled"]) == ("single-node", "true")
