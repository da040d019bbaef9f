"""A CIFS share's password in a compose volume's ``o:``: a literal one is refused naming ``o`` (the file and
its translation are shown); ``password=${CIFS_PASSWORD}`` naming a secret variable leaves ``o`` for the
volume's ``secret``, which the deployment's snapshot carries sealed. The password is in no API response
(the application, its deployment), not in the command on the bus, and the engine's create call alone gets it
in its mount options."""

from __future__ import annotations

import json

import pytest

from berth_api.domain.applications import mask_spec
from berth_api.domain.compose import secret_refs
from berth_api.usecases.compose_snapshot import compose_spec
from berth_common import sealing
from berth_common.catalogue import ApplicationSpec, VolumeOptions
from tests.api.conftest import make_app
from tests.api.test_compose_translate import _refusal, _translated
from tests.api.test_projects import problem

PASSWORD = "pa55-w0rd-never-shown"
TEXT = (
    "services:\n  app:\n    image: busybox\n    volumes: [files:/files]\nvolumes:\n  files:\n    driver_opts:\n"
    "      {type: cifs, o: 'username=app,password=${CIFS_PASSWORD},vers=3.0', device: //files.example.com/share}\n"
)
ENV = [{"name": "CIFS_PASSWORD", "value": PASSWORD, "secret": True}]


@pytest.mark.parametrize("option", ["password", "pass"])
def test_a_literal_password_is_refused_naming_o(option: str) -> None:
    err = _refusal(TEXT.replace("${CIFS_PASSWORD}", PASSWORD).replace("password=", f"{option}="))
    assert err.spot == "volumes/files/driver_opts/o"
    assert err.why.startswith(f"a share's {option} is a secret: write {option}=${{NAME}}")
    assert PASSWORD not in err.why


def test_a_secret_variable_leaves_o_for_the_volumes_secret() -> None:
    holders = secret_refs.placeholders(["CIFS_PASSWORD"], "n0nce")
    got = _translated(TEXT, variables=holders, secrets_nonce="n0nce")
    assert got["volume_options"] == {
        "files": {
            "type": "cifs",
            "device": "//files.example.com/share",
            "o": "username=app,vers=3.0",
            "secret": {"option": "password", "secret": "CIFS_PASSWORD"},
        }
    }
    spec = ApplicationSpec.model_validate(
        {
            "name": "s",
            "source": {"kind": "image", "image": "x"},
            "env": ENV,
            "services": [{"kind": "worker", "name": "app", "volumes": [{"name": "files", "path": "/files"}]}],
        }
    )
    snap = compose_spec(spec, {"compose": {"inline": TEXT}, "compose_translated": got}, files=[])
    assert snap.volume_options["files"].driver_opts() == {
        "type": "cifs",
        "device": "//files.example.com/share",
        "o": "username=app,vers=3.0,password=" + PASSWORD,
    }
    wire = snap.model_dump_json()
    assert PASSWORD not in wire
    sealed = json.loads(wire)["volume_options"]["files"]["secret"]
    assert (sealed["option"], sealing.unseal(sealed["value"], "berth/volume-password/password")) == (
        "password",
        PASSWORD,
    )
    assert mask_spec(json.loads(wire))["volume_options"]["files"]["secret"] == {"option": "password", "value": None}
    # a variable the application has not as a secret does not carry it
    plain = spec.model_copy(update={"env": []})
    with pytest.raises(Exception, match="CIFS_PASSWORD"):
        compose_spec(plain, {"compose": {"inline": TEXT}, "compose_translated": got}, files=[])


def test_the_catalogue_refuses_a_password_written_in_o() -> None:
    with pytest.raises(ValueError, match="never written in o"):
        VolumeOptions(type="cifs", device="//f.example.com/s", o=f"username=u,pass={PASSWORD}")


async def test_the_password_is_in_no_response_and_sealed_on_the_bus(client, members, scheduler) -> None:
    app = await make_app(client, members.developer, {"name": "share", "compose": {"inline": TEXT}, "env": ENV})
    assert PASSWORD not in json.dumps(app)
    got = await client.get(f"/v1/applications/{app['id']}", headers=members.developer)
    assert got.status_code == 200 and PASSWORD not in got.text
    assert app["compose"]["translated"]["volume_options"]["files"]["secret"] == {
        "option": "password",
        "secret": "CIFS_PASSWORD",
    }
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    assert PASSWORD not in r.text
    assert r.json()["spec"]["volume_options"]["files"]["secret"] == {"option": "password", "value": None}
    shown = await client.get(f"/v1/deployments/{r.json()['id']}", headers=members.developer)
    assert shown.status_code == 200 and PASSWORD not in shown.text
    (cmd,) = await scheduler.wait_for("cmd.deployment.start", 1)
    assert PASSWORD not in json.dumps(cmd.data)
    sealed = cmd.data["spec"]["volume_options"]["files"]["secret"]["value"]
    assert sealing.unseal(sealed, "berth/volume-password/password") == PASSWORD


async def test_a_literal_password_is_a_422_that_does_not_echo_it(client, members) -> None:
    probe = {"name": "probe", "compose": {"inline": "services:\n  probe:\n    image: busybox\n"}}
    env_id = (await make_app(client, members.developer, probe))["environment_id"]
    text = TEXT.replace("${CIFS_PASSWORD}", PASSWORD)
    r = await client.post(
        f"/v1/environments/{env_id}/applications",
        headers=members.developer,
        json={"name": "lit", "compose": {"inline": text}},
    )
    (err,) = problem(r, 422)["errors"]
    assert err["loc"] == "/body/compose/volumes/files/driver_opts/o" and PASSWORD not in r.text
