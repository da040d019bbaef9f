"""Coolify templates that deploy on day one: excerpts of the real templates (coollabsio/coolify 379abb25,
templates/compose) whose keys Berth once refused or misread, each read as Coolify and compose read it."""

from __future__ import annotations

import yaml

from berth_api.domain.compose import precheck
from berth_api.domain.templates.coolify import import_coolify
from berth_api.domain.templates.format import parse_text
from berth_api.domain.templates.model import dump_yaml

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
