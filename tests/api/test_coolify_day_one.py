"""Coolify templates that deploy on day one: excerpts of the real templates (coollabsio/coolify 379abb25,
templates/compose) whose keys Berth once refused or misread, each read as Coolify and compose read it."""

from __future__ import annotations

import asyncio

import pytest
import yaml

from berth_api.adapters.compose_parser import normalise
from berth_api.domain.compose import precheck, translate
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


HEYFORM = """services:
  keydb:
    image: eqalpha/keydb:latest
    environment:
      - KEYDB_PASSWORD=${SERVICE_PASSWORD_KEYDB}
    healthcheck:
      test: ["CMD-SHELL", "keydb-cli", "--pass", "${SERVICE_PASSWORD_KEYDB}", "ping"]
      interval: 5s
"""


def test_a_shell_checks_words_given_as_items_are_its_one_command():
    """heyform's keydb check: Docker would run ``sh -c keydb-cli`` with the rest as the shell's arguments,
    and Berth refuses a CMD-SHELL of several items; the import joins them as the author meant."""
    result = import_coolify("heyform.yaml", HEYFORM.replace('"ping"]', '"ping", "a b"]'))
    check = yaml.safe_load(result.template.compose)["services"]["keydb"]["healthcheck"]
    assert check == {
        "test": ["CMD-SHELL", 'keydb-cli --pass ${var.SERVICE_PASSWORD_KEYDB} ping "a b"'],
        "interval": "5s",
    }
    assert any(n.startswith("services.keydb.healthcheck.test: CMD-SHELL takes one command") for n in result.notes)
    one = import_coolify("one.yaml", HEYFORM.replace('"keydb-cli", "--pass", "${SERVICE_PASSWORD_KEYDB}", ', ""))
    assert yaml.safe_load(one.template.compose)["services"]["keydb"]["healthcheck"]["test"] == ["CMD-SHELL", "ping"]


def test_sources_coolify_reads_as_volume_names_are_named_volumes():
    """mautic5's ``mautic_data/config``, memos' ``memos/`` and denoKV's ``${COOLIFY_VOLUME_APP}`` (a variable
    nothing sets) are neither paths nor volume names: compose refuses them, Coolify slugs them into volumes."""
    text = """services:
  mautic_web:
    image: mautic/mautic:5
    volumes:
      - 'mautic_data/config:/var/www/html/config:z'
      - memos/:/var/opt/memos
      - '${COOLIFY_VOLUME_APP}:/data'
      - ./conf:/etc/conf:ro,z
      - /var/run/docker.sock:/var/run/docker.sock:ro
      - ~/x:/x
      - data:/d
"""
    result = import_coolify("mautic5.yaml", text)
    doc = yaml.safe_load(result.template.compose)
    assert doc["services"]["mautic_web"]["volumes"] == [
        "mautic-data-config:/var/www/html/config",  # z: SELinux relabelling, which compose reads as a bind's
        "memos:/var/opt/memos",
        "coolify-volume-app:/data",
        "conf:/etc/conf:ro",
        "/var/run/docker.sock:/var/run/docker.sock:ro",
        "x:/x",  # Coolify's ~ is the service's folder (booklore's ~/booklore), as ./ is
        "data:/d",
    ]
    assert list(doc["volumes"]) == ["mautic-data-config", "memos", "coolify-volume-app", "conf", "x", "data"]
    assert (
        "services.mautic_web.volumes[0]: mautic_data/config is, as Coolify reads it, the named volume "
        "mautic-data-config"
    ) in result.notes


def test_a_health_url_inside_escaped_quotes_gives_the_health_path():
    """argilla's check is Python asking ``\\"http://localhost:6900/api/_status\\"``: the path ends at the
    escaped quote (a backslash in it is no path a deployment accepts)."""
    text = r"""services:
  argilla:
    image: argilla/argilla-server:v2.2.0
    ports: ['6900']
    healthcheck:
      test:
        - CMD-SHELL
        - 'python -c "import requests as r;r.get(\"http://localhost:6900/api/_status\").raise_for_status()"'
"""
    found = asyncio.run(normalise(text, {}))
    (web,) = translate(found.model, precheck(text))["services"]
    assert (web["kind"], web["health_path"]) == ("web", "/api/_status")


def test_an_environment_given_as_one_string_is_named_broken_in_coolify_too():
    text = "services:\n  dind:\n    image: docker:dind\n    environment:\n      A=1\n      B=2\n"
    result = import_coolify("forgejo-with-runner.yaml", text)
    assert any(n.startswith("services.dind.environment: one string") for n in result.notes)


def test_volume_names_of_one_slug_are_one_volume_as_in_coolify():
    """hatchet's setup service writes ``hatchet_certs``, its engine reads ``hatchet-certs``: one volume in
    Coolify (it names volumes by their slug), two in compose, refused in Berth (one name for both)."""
    text = """services:
  setup-config:
    image: hatchet-admin
    volumes: [hatchet_certs:/hatchet/certs]
  engine:
    image: hatchet-engine
    volumes:
      - hatchet-certs:/hatchet/certs
      - {type: volume, source: hatchet_certs, target: /certs}
      - other_data:/data
volumes:
  hatchet_certs: {}
"""
    result = import_coolify("hatchet.yaml", text)
    doc = yaml.safe_load(result.template.compose)
    assert doc["services"]["setup-config"]["volumes"] == ["hatchet-certs:/hatchet/certs"]
    assert doc["services"]["engine"]["volumes"] == [
        "hatchet-certs:/hatchet/certs",
        {"type": "volume", "source": "hatchet-certs", "target": "/certs"},
        "other_data:/data",  # no twin: kept
    ]
    assert doc["volumes"] == {"hatchet-certs": {}, "other_data": None}
    assert "volumes: hatchet_certs and hatchet-certs are one volume hatchet-certs, as Coolify names volumes" in (
        result.notes
    )
