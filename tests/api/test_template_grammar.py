"""Berth's template format and variable grammar: generated passwords, base64/hex secrets by byte count,
UUIDs, domains, references between variables, defaults and user values; rendering is deterministic given
the random source; bad templates are refused naming the spot."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid

import pytest

from berth_api.domain.templates.format import parse_text
from berth_api.domain.templates.model import ALPHABETS, TemplateError
from berth_api.domain.templates.render import SystemSource, jwt_hs256, render
from tests.api.template_support import NOW, CountingSource

TEMPLATE = """
name: Demo
slug: demo
description: A demo
tags: [Demo, test]
version: "1"
variables:
  host: {kind: domain, service: web, port: 8080}
  db_password: {kind: password, length: 6, alphabet: hex}
  key: {kind: base64, bytes: 4}
  token: {kind: hex, bytes: 3}
  id: {kind: uuid}
  db_url: "postgres://app:${var.db_password}@db/app"
  greeting: {kind: input, default: "hello ${var.who}"}
  who: {kind: input, default: world}
  port: {kind: port}
compose: |
  services:
    web:
      image: example/web:1
      command: echo $$HOME ${NOT_OURS:-x}
      environment:
        URL: https://${domain}/
        DB: ${var.db_url}
        KEY: ${var.key}
        TOKEN: ${var.token}
        ID: ${var.id}
        HELLO: ${var.greeting}
        APP: ${app}
        PORT: ${var.port}
    db:
      image: postgres:16
      environment:
        POSTGRES_PASSWORD: ${var.db_password}
"""


def _render(text: str = TEMPLATE, **kw):
    kw.setdefault("generate_host", lambda v: f"{v.name}.apps.test")
    return render(parse_text(text), CountingSource(), app="demo", **kw)


def test_rendering_is_exact_given_the_source():
    out = _render()
    assert dict(out.values) == {
        "host": "host.apps.test",
        "db_password": "012345",
        "key": base64.b64encode(bytes([6, 7, 8, 9])).decode(),
        "token": "0a0b0c",
        "id": str(uuid.UUID(bytes=bytes([13, 14, 15, 16, 17, 18, 0x43, 20, 0x95, 22, 23, 24, 25, 26, 27, 28]))),
        "db_url": "postgres://app:012345@db/app",
        "who": "world",
        "greeting": "hello world",
        "port": "10007",
    }
    assert out.compose == TEMPLATE.split("compose: |\n")[1].replace("\n  ", "\n").lstrip(" ").replace(
        "${domain}", "host.apps.test"
    ).replace("${var.db_url}", out.values["db_url"]).replace("${var.key}", out.values["key"]).replace(
        "${var.token}", "0a0b0c"
    ).replace("${var.id}", out.values["id"]).replace("${var.greeting}", "hello world").replace(
        "${app}", "demo"
    ).replace("${var.port}", "10007").replace("${var.db_password}", "012345")
    assert "$$HOME ${NOT_OURS:-x}" in out.compose  # compose's own syntax is left alone
    assert out.secret == {"db_password", "key", "token", "id", "db_url"}  # db_url derives from a secret
    assert [(h.variable, h.host, h.service, h.port) for h in out.hosts] == [("host", "host.apps.test", "web", 8080)]
    assert _render().compose == out.compose  # deterministic


def test_generated_values_have_their_grammar():
    text = TEMPLATE.replace("length: 6, alphabet: hex", "length: 40").replace("bytes: 4", "bytes: 48")
    text = text.replace("{kind: hex, bytes: 3}", "{kind: hex, bytes: 32}")
    for source in (CountingSource(), SystemSource()):
        out = render(parse_text(text), source, app="demo", generate_host=lambda v: "h.test")
        assert len(out.values["db_password"]) == 40 and set(out.values["db_password"]) <= set(ALPHABETS["alnum"])
        assert len(base64.b64decode(out.values["key"], validate=True)) == 48  # truly base64, by byte count
        assert len(bytes.fromhex(out.values["token"])) == 32  # truly hex
        assert uuid.UUID(out.values["id"]).version == 4
        assert 10000 <= int(out.values["port"]) <= 60999


def test_the_system_source_draws_from_secrets(monkeypatch):
    calls = []
    monkeypatch.setattr(secrets, "token_bytes", lambda n: calls.append(n) or b"\x01" * n)
    monkeypatch.setattr(secrets, "choice", lambda a: calls.append(a) or a[0])
    out = render(parse_text(TEMPLATE), SystemSource(), app="demo", generate_host=lambda v: "h.test")
    assert out.values["db_password"] == "000000" and out.values["token"] == "010101"
    assert 4 in calls and 3 in calls and 16 in calls


def test_user_values_replace_defaults_and_generated_ones_and_a_domain_can_be_given():
    out = _render(overrides={"who": "Berth", "db_password": "mine", "host": "shop.example.com"})
    assert out.values["greeting"] == "hello Berth"
    assert out.values["db_url"] == "postgres://app:mine@db/app"
    assert "URL: https://shop.example.com/" in out.compose


def test_by_reference_the_compose_holds_names_and_the_values_travel_as_variables():
    out = _render(by_reference=True)
    assert "POSTGRES_PASSWORD: ${db_password}" in out.compose and "012345" not in out.compose
    assert "DB: ${db_url}" in out.compose and "HELLO: hello world" in out.compose
    assert ("db_password", "012345", True) in out.env() and ("db_url", out.values["db_url"], True) in out.env()
    everything = _render(by_reference=lambda v: True)
    assert "URL: https://${host}/" in everything.compose and "HELLO: ${greeting}" in everything.compose
    assert ("greeting", "hello world", False) in everything.env()
    assert ("host", "host.apps.test", False) in everything.env()


def test_a_jwt_is_signed_with_another_variable():
    text = TEMPLATE.replace(
        "  port: {kind: port}",
        "  port: {kind: port}\n  anon: {kind: jwt, key: '${var.db_password}', payload: {role: anon}, expires_in_days: 1}",
    )
    out = _render(text)
    header, body, signature = out.values["anon"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    assert claims == {"iat": int(NOW.timestamp()), "exp": int(NOW.timestamp()) + 86400, "role": "anon"}
    expected = hmac.new(b"012345", f"{header}.{body}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "==") == expected
    assert out.values["anon"] == jwt_hs256("012345", claims)


def test_a_timestamp_is_now_or_a_fixed_date():
    text = TEMPLATE.replace(
        "  port: {kind: port}",
        "  port: {kind: port}\n  t: {kind: timestamp, unit: ms}\n  f: {kind: timestamp, at: '2030-01-01T00:00:00Z'}",
    )
    out = _render(text)
    assert out.values["t"] == str(int(NOW.timestamp() * 1000)) and out.values["f"] == "1893456000"


BAD = [
    (
        TEMPLATE.replace("${var.db_password}@db", "${var.x}@db"),
        "/body/variables/db_url",
        "references unknown variable 'x'",
    ),
    (
        TEMPLATE.replace("${var.who}", "${var.greeting}"),
        "/body/variables/greeting",
        "cycle between variables: greeting -> greeting",
    ),
    (
        TEMPLATE.replace("who: {kind: input, default: world}", "who: {kind: input, default: '${var.greeting}'}"),
        "/body/variables/greeting",
        "cycle between variables: greeting -> who -> greeting",
    ),
    (TEMPLATE.replace("ID: ${var.id}", "ID: ${var.nope}"), "/body/compose", "references unknown variable 'nope'"),
    (TEMPLATE.replace("    db:\n", "    web:\n"), "/body/compose", "'web' is given twice"),
    (TEMPLATE.replace("  db_password:", "  host:"), "/body", "'host' is given twice"),
    (TEMPLATE.replace("tags: [Demo, test]", "tags: [Demo, test"), "/body", "malformed YAML at line"),
    (TEMPLATE.replace("{kind: uuid}", "{kind: guid}"), "/body/variables/id/kind", "unknown kind 'guid'"),
    (TEMPLATE.replace("{kind: uuid}", "{kind: uuid, length: 3}"), "/body/variables/id/length", "not an option"),
    (TEMPLATE.replace("service: web, port", "service: api, port"), "/body/variables/host", "unknown service 'api'"),
    (TEMPLATE.replace("      image: postgres:16\n", ""), "/body/compose/services/db", "needs an 'image'"),
    (TEMPLATE.replace("length: 6", "length: 0"), "/body/variables/db_password/length", "an integer from 1"),
    (TEMPLATE.replace("slug: demo", "slug: Demo!"), "/body/slug", "a slug is"),
    (TEMPLATE.replace("  host: {kind: domain, service: web, port: 8080}\n", ""), "/body/compose", "no domain variable"),
]


@pytest.mark.parametrize(("text", "loc", "detail"), BAD)
def test_bad_templates_are_refused_naming_the_spot(text, loc, detail):
    with pytest.raises(TemplateError) as caught:
        parse_text(text)
    assert caught.value.loc == loc
    assert detail in caught.value.detail, caught.value.detail


def test_render_refuses_unknown_overrides_and_missing_required_values():
    with pytest.raises(TemplateError) as caught:
        _render(overrides={"nope": "1"})
    assert (caught.value.loc, caught.value.detail) == ("/body/variables/nope", "not a variable of this template")
    text = TEMPLATE.replace("who: {kind: input, default: world}", "who: {kind: input, required: true}")
    with pytest.raises(TemplateError) as caught:
        _render(text)
    assert (caught.value.loc, caught.value.detail) == ("/body/variables/who", "a value is required")
    assert _render(text, overrides={"who": "you"}).values["greeting"] == "hello you"


def test_a_template_reads_back_from_its_own_document():
    template = parse_text(TEMPLATE)
    again = parse_text(template.to_yaml())
    assert again == template
    assert template.tags == ("demo", "test")


def test_files_are_rendered_with_their_values():
    text = TEMPLATE.replace(
        "compose: |", "files:\n  - path: /conf/app.ini\n    content: 'db=${var.db_url} $$x ${KEEP}'\ncompose: |"
    )
    template = parse_text(text)
    assert template.files[0].path == "conf/app.ini"
    assert _render(text).files == {"conf/app.ini": "db=postgres://app:012345@db/app $$x ${KEEP}"}
    with pytest.raises(TemplateError) as caught:
        parse_text(text.replace("/conf/app.ini", "../etc/passwd"))
    assert caught.value.loc == "/body/files/0/path"
    with pytest.raises(TemplateError) as caught:
        parse_text(text.replace("db=${var.db_url}", "db=${var.gone}"))
    assert (caught.value.loc, caught.value.detail) == ("/body/files/0/content", "references unknown variable 'gone'")
