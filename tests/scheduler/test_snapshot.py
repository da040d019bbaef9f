"""The deployment snapshot: validated, secret values never shown except on the wire; sealed at rest."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from berth_common.catalogue import ApplicationSpec, StartDeployment
from berth_scheduler.adapters.sealing import PREFIX, Sealer, UnsealError

SPEC = {
    "name": "shop",
    "source": {
        "kind": "git",
        "repository": "https://example.invalid/shop.git",
        "ref": "main",
        "build_args": [{"name": "NPM_TOKEN", "value": "tok-123", "secret": True}],
    },
    "services": [{"kind": "web", "name": "web", "port": 8080}],
    "env": [{"name": "API_KEY", "value": "s3cr3t-value", "secret": True}, {"name": "MODE", "value": "prod"}],
}


def test_secret_values_are_masked_everywhere_and_sealed_on_the_wire():
    cmd = StartDeployment(deployment_id="d1", application_id="a1", team_id="t1", spec=SPEC)
    assert "s3cr3t-value" not in repr(cmd) and "s3cr3t-value" not in str(cmd)
    assert "s3cr3t-value" not in str(cmd.model_dump())
    wire = cmd.model_dump(mode="json")
    assert wire["spec"]["env"][0]["value"].startswith("sealed:v1:")  # tests/common/test_sealing.py: the rest
    assert wire["spec"]["env"][1]["value"] == "prod"
    back = StartDeployment.model_validate(json.loads(json.dumps(wire)))
    assert back.spec.env[0].reveal() == "s3cr3t-value"
    assert sorted(back.spec.secret_values()) == ["s3cr3t-value", "tok-123"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "Shop"}, "name"),
        ({"services": []}, "services"),
        ({"services": [{"kind": "web", "name": "web", "port": 0}]}, "port"),
        ({"services": [{"kind": "web", "name": "web", "port": 80, "health_path": "up"}]}, "health_path"),
        ({"services": [{"kind": "web", "name": "w", "port": 80}, {"kind": "worker", "name": "w"}]}, "unique"),
        ({"env": [{"name": "1BAD", "value": "x"}]}, "name"),
        ({"source": {"kind": "image", "image": "-rm"}}, "image"),
    ],
)
def test_bad_snapshots_name_the_field(change, field):
    with pytest.raises(ValidationError) as err:
        ApplicationSpec.model_validate({**SPEC, **change})
    assert field in str(err.value)


def test_sealed_at_rest_and_opened_back():
    spec = ApplicationSpec.model_validate(SPEC)
    sealer = Sealer("key-one")
    stored = sealer.seal(spec)
    text = json.dumps(stored)
    assert "s3cr3t-value" not in text and "tok-123" not in text
    assert stored["env"][1]["value"] == "prod"  # not secret: readable
    assert stored["env"][0]["value"].startswith(PREFIX)
    assert sealer.open(stored) == spec
    with pytest.raises(UnsealError, match="API_KEY"):
        Sealer("key-two").open(stored)
