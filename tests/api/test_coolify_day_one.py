"""Coolify templates that deploy on day one: excerpts of the real templates (coollabsio/coolify 379abb25,
templates/compose) whose keys Berth once refused or misread, each read as Coolify and compose read it."""

from __future__ import annotations

import pytest
import yaml

from berth_api.domain.compose import precheck
from berth_api.domain.templates.coolify import import_coolify
from berth_api.domain.templates.format import parse_text
from berth_api.domain.templates.model import TemplateError, dump_yaml
from tests.api.conftest import make_project

AZIMUTT = """services:
  createbuckets:
    image: minio/mc:latest
    restart: no
    environment:
      - SKIP=yes
      FLAG: on
    healthcheck:
      disable: true
"""


def test_no_yes_on_off_are_strings_as_compose_reads_yaml_1_2():
    text = AZIMUTT.replace("      - SKIP=yes\n", "")
    result = import_coolify("azimutt.yaml", text)
    service = yaml.safe_load(result.template.compose)["services"]["createbuckets"]
    assert service["restart"] == "no"  # YAML 1.1 reads the boolean false: "restart must be a string"
    assert service["environment"] == {"FLAG": "on"}
    assert service["healthcheck"] == {"disable": True}  # true stays a boolean
    again = parse_text(dump_yaml(result.template.to_document()))  # the template as stored and edited
    assert yaml.safe_load(again.compose)["services"]["createbuckets"]["restart"] == "no"


def test_the_compose_precheck_reads_names_as_compose_does():
    # YAML 1.1 would list the service "on" as True (the first service with a port gets the default host)
    assert precheck("services:\n  on:\n    image: x\n  off:\n    image: y\n") == ["on", "off"]


REGISTRY = """# port: 5000
services:
  registry:
    image: registry:3
    environment:
      - SERVICE_URL_REGISTRY_5000
    command: ["/entrypoint.sh"]
    volumes:
      - registry-data:/var/lib/registry
      - type: bind
        source: ./etc/entrypoint.sh
        target: /entrypoint.sh
        mode: "0755"
        content: |
          #!/usr/bin/env sh
          exec registry serve /etc/docker/registry/config.yml
"""


def test_a_mounted_files_mode_is_the_template_files_mode():
    """Coolify's docker-registry and pterodactyl-panel give their entrypoint script ``mode: "0755"``: not a
    compose key (compose refuses it on a mount, Coolify drops it); in Berth it is the template file's mode."""
    result = import_coolify("docker-registry.yaml", REGISTRY)
    (file,) = result.template.files
    assert (file.path, file.mode) == ("etc/entrypoint.sh", 0o755)
    mount = yaml.safe_load(result.template.compose)["services"]["registry"]["volumes"][1]
    assert mount == {"type": "bind", "source": "./files/etc/entrypoint.sh", "target": "/entrypoint.sh"}
    assert "services.registry.volumes[1].mode: the mode 0755 of the template file files/etc/entrypoint.sh" in (
        result.notes
    )
    document = dump_yaml(result.template.to_document())
    assert "mode: '0755'" in document and parse_text(document).files == result.template.files


@pytest.mark.parametrize("mode", ["'4755'", "rwx", "'01777'", "-1", "true"])
def test_a_bad_mode_is_refused_naming_the_mount(mode):
    with pytest.raises(TemplateError) as caught:
        import_coolify("docker-registry.yaml", REGISTRY.replace('mode: "0755"', f"mode: {mode}"))
    assert caught.value.loc == "/body/files/docker-registry.yaml/services/registry/volumes/1/mode"


async def test_a_template_files_mode_goes_with_the_application(client, members):
    project = await make_project(client, members.developer)
    body = {"format": "coolify", "files": {"docker-registry.yaml": REGISTRY}}
    imported = await client.post("/v1/templates/import", headers=members.developer, json=body)
    assert imported.status_code == 200, imported.text
    document = imported.json()["template"]["document"]
    deploy = {"environment_id": project["environments"][0]["id"], "document": document}
    r = await client.post("/v1/templates/deploy", headers=members.developer, json=deploy)
    assert r.status_code == 201, r.text
    (shown,) = r.json()["compose"]["files"]
    assert (shown["path"], shown["mode"]) == ("etc/entrypoint.sh", 0o755)
