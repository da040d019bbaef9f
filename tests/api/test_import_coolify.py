"""Importing Coolify templates: the header comments, the SERVICE_* magic variables (command by underscore
count, generators including BASE64 that is not base64, FQDN/URL with ports and paths), ordinary
variables with defaults and requirements, Coolify's own compose keys, and what cannot be carried over,
listed by name (rules: shared/formats/coolify-templates.md)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
import yaml

from berth_api.domain.templates.coolify import command, headers, import_coolify, url_parts
from berth_api.domain.templates.model import ALPHABETS, TemplateError
from berth_api.domain.templates.render import SystemSource, render
from tests.api.template_support import FIXTURES, CountingSource, coolify_files

DIR = FIXTURES / "coolify"


def _import(name: str):
    return import_coolify(name, (DIR / name).read_text())


def _spec(result, name: str) -> dict:
    v = result.template.variable(name)
    assert v is not None, name
    return {"kind": v.kind, **v.options}


def _render(result, source=None, **overrides):
    required = {v.name: "given" for v in result.template.variables if v.options.get("required")}
    return render(
        result.template,
        source or CountingSource(),
        app="app",
        overrides={**required, **overrides},
        generate_host=lambda v: f"{v.name.lower().replace('_', '-')}.apps.test",
    )


def test_every_fixture_imports_and_renders():
    assert len(coolify_files()) >= 4
    for path in coolify_files():
        result = import_coolify(path.name, path.read_text())
        out = _render(result, SystemSource())
        assert "${var." not in out.compose
        # values inlined may hold YAML's own characters (Coolify's symbols); a deploy references them by name
        deployed = render(
            result.template,
            SystemSource(),
            app="app",
            overrides={v.name: "given" for v in result.template.variables if v.options.get("required")},
            generate_host=lambda v: "h.test",
            by_reference=lambda v: True,
        )
        yaml.safe_load(deployed.compose)


def test_headers_are_read_from_every_line_up_to_the_first_colon():
    text = "# documentation: https://x.org/a:b\n#slogan:one\nservices: {}\n# tags: late, TAGS\n  # port: 1\n# slogan: two\n"
    assert headers(text) == {"documentation": "https://x.org/a:b", "slogan": "two", "tags": "late, TAGS"}


@pytest.mark.parametrize(
    ("name", "cmd"),
    [
        ("SERVICE_PASSWORD_DB", "PASSWORD"),
        ("SERVICE_PASSWORD_64_DB", "PASSWORD_64"),
        ("SERVICE_BASE64_64_X", "BASE64_64"),
        ("SERVICE_FQDN_UMAMI", "FQDN"),
        ("SERVICE_URL_UMAMI_3000", "URL"),
        ("SERVICE_PASSWORD_MY_DB", "PASSWORD_MY"),  # an identifier with '_' is not supported by Coolify
        ("SERVICE_PASSWORD_64_MY_DB", None),
        ("SERVICE_X", None),
    ],
)
def test_the_command_is_found_by_counting_underscores(name, cmd):
    assert command(name) == cmd


def test_url_names_carry_a_service_and_a_port():
    assert url_parts("SERVICE_URL_MY_API_8080") == ("URL", "my_api", 8080)
    assert url_parts("SERVICE_FQDN_API") == ("FQDN", "api", None)
    assert url_parts("SERVICE_PASSWORD_X") is None


def test_metadata_from_the_headers():
    result = _import("analytics-kit.yaml")
    t = result.template
    assert (t.name, t.slug) == ("Analytics Kit", "analytics-kit")
    assert t.description == '"Web analytics, the kit"'  # quotes kept verbatim, as Coolify does
    assert t.tags == ("analytics", "privacy", "web")  # lower-cased, trimmed, empty dropped; category folded in
    assert t.docs == "https://example.org/analytics-kit/docs"
    assert "logo: 'svgs/analytics-kit.svg' is a file of Coolify's repository" in result.not_carried
    other = _import("every-generator.yaml")
    assert other.template.tags == ("devtools", "test") and "category 'devtools': carried as a tag" in other.notes
    for key in ("ignore: true", "env_file: .env.example", "arm_only: false"):
        assert f"header '{key}': no Berth equivalent" in other.not_carried
    assert "header 'maintainer': not a Coolify template key" in other.not_carried
    multi = _import("multi-route.yaml")
    assert "header 'minversion: 4.0.0-beta.228': no Berth equivalent" in multi.not_carried
    assert "header 'amd_only: true': no Berth equivalent" in multi.not_carried
    bare = import_coolify("my_app.yml", "services:\n  a:\n    image: x\n")
    assert (bare.template.description, bare.template.docs, bare.template.slug) == (
        "My App",
        "https://coolify.io/docs",
        "my-app",
    )


GENERATED = {
    "SERVICE_PASSWORD_APP": {"kind": "password", "length": 32, "alphabet": "alnum"},
    "SERVICE_PASSWORD_64_APP": {"kind": "password", "length": 64, "alphabet": "alnum"},
    "SERVICE_PASSWORDWITHSYMBOLS_APP": {"kind": "password", "length": 32, "alphabet": "symbols"},
    "SERVICE_PASSWORDWITHSYMBOLS_64_APP": {"kind": "password", "length": 64, "alphabet": "symbols"},
    "SERVICE_BASE64_APP": {"kind": "password", "length": 32, "alphabet": "alnum"},
    "SERVICE_BASE64_32_APP": {"kind": "password", "length": 32, "alphabet": "alnum"},
    "SERVICE_BASE64_64_APP": {"kind": "password", "length": 64, "alphabet": "alnum"},
    "SERVICE_BASE64_128_APP": {"kind": "password", "length": 128, "alphabet": "alnum"},
    "SERVICE_REALBASE64_APP": {"kind": "base64", "bytes": 32},
    "SERVICE_REALBASE64_32_APP": {"kind": "base64", "bytes": 32},
    "SERVICE_REALBASE64_64_APP": {"kind": "base64", "bytes": 64},
    "SERVICE_REALBASE64_128_APP": {"kind": "base64", "bytes": 128},
    "SERVICE_HEX_32_APP": {"kind": "hex", "length": 32},
    "SERVICE_HEX_64_APP": {"kind": "hex", "length": 64},
    "SERVICE_HEX_128_APP": {"kind": "hex", "length": 128},
    "SERVICE_HEX_64_BUILD": {"kind": "hex", "length": 64},  # from build.args
    "SERVICE_USER_APP": {"kind": "password", "length": 16, "alphabet": "alnum"},
    "SERVICE_LOWERCASEUSER_APP": {"kind": "password", "length": 16, "alphabet": "lower_alnum"},
}


def test_every_generator_maps_to_a_berth_variable():
    result = _import("every-generator.yaml")
    for name, spec in GENERATED.items():
        assert _spec(result, name) == spec, name
    out = _render(result, SystemSource())
    for name in ("SERVICE_BASE64_APP", "SERVICE_BASE64_64_APP", "SERVICE_BASE64_128_APP"):
        # Coolify's BASE64 is Str::random(n): letters and digits of that length, NOT base64
        assert set(out.values[name]) <= set(ALPHABETS["alnum"]) and len(out.values[name]) == GENERATED[name]["length"]
        assert f"{name}: Coolify's BASE64 is {GENERATED[name]['length']} random letters and digits, not base64" in (
            result.notes
        )
    assert len(base64.b64decode(out.values["SERVICE_REALBASE64_64_APP"], validate=True)) == 64
    assert len(out.values["SERVICE_HEX_32_APP"]) == 32 and int(out.values["SERVICE_HEX_32_APP"], 16) >= 0
    assert out.values["SERVICE_LOWERCASEUSER_APP"] == out.values["SERVICE_LOWERCASEUSER_APP"].lower()
    assert out.values["SERVICE_PASSWORD_APP"] in out.compose  # shared by app and my-db
    assert out.compose.count(out.values["SERVICE_PASSWORD_APP"]) == 2


def test_supabase_keys_are_jwts_signed_with_the_jwt_password():
    result = _import("every-generator.yaml")
    assert _spec(result, "SERVICE_SUPABASEANON_KEY") == {
        "kind": "jwt",
        "key": "${var.SERVICE_PASSWORD_JWT}",
        "payload": {"role": "anon", "iss": "supabase"},
        "expires_in_days": 36500,
    }
    out = _render(result)
    for name, role in (("SERVICE_SUPABASEANON_KEY", "anon"), ("SERVICE_SUPABASESERVICE_KEY", "service_role")):
        header, body, sig = out.values[name].split(".")
        assert json.loads(base64.urlsafe_b64decode(body + "=="))["role"] == role
        key = out.values["SERVICE_PASSWORD_JWT"].encode()
        assert (
            base64.urlsafe_b64decode(sig + "==") == hmac.new(key, f"{header}.{body}".encode(), hashlib.sha256).digest()
        )
    alone = import_coolify(
        "s.yaml", "services:\n  k:\n    image: x\n    environment:\n      A: ${SERVICE_SUPABASEANON_KEY}\n"
    )
    assert alone.template.variable("SERVICE_PASSWORD_JWT") is not None
    assert "SERVICE_SUPABASEANON_KEY: signed with SERVICE_PASSWORD_JWT, which Berth generates" in alone.notes


def test_unknown_commands_are_kept_as_values_to_fill_in_and_listed():
    result = _import("every-generator.yaml")
    assert _spec(result, "SERVICE_PASSWORD_MY_DB") == {"kind": "input"}
    assert _spec(result, "SERVICE_ROLE_KEY_ASYMMETRIC") == {"kind": "input"}
    assert _spec(result, "SERVICE_ENCRYPTION_SALT_KEYS") == {
        "kind": "input",
        "default": "00beef00beef00beef00beef00beef00",
    }
    assert _spec(result, "SERVICE_SOMETHING") == {"kind": "input"}
    for line in (
        "SERVICE_PASSWORD_MY_DB: Coolify makes no value for command 'PASSWORD_MY'; kept as a value to fill in",
        "SERVICE_ROLE_KEY_ASYMMETRIC: Coolify makes no value for command 'ROLE_KEY'; kept as a value to fill in",
        "SERVICE_ENCRYPTION_SALT_KEYS: Coolify makes no value for command 'ENCRYPTION_SALT'; kept as a value to "
        "fill in (with its default)",
        "SERVICE_SOMETHING: not a Coolify generator; kept as a value to fill in",
        "COOLIFY_CONTAINER_NAME: injected by Coolify; kept as a value to fill in",
    ):
        assert line in result.not_carried


def test_ordinary_variables_defaults_requirements_and_nesting():
    result = _import("every-generator.yaml")
    assert _spec(result, "PUSH_SERVICE_ID") == {"kind": "input"}  # contains SERVICE_ but is not magic
    assert _spec(result, "PDS_DID") == {"kind": "input", "default": "did:plc:abc123:xyz"}  # colons in a default
    assert _spec(result, "OUTER") == {"kind": "input", "default": "${var.INNER}"}
    assert _spec(result, "INNER") == {"kind": "input", "default": "fallback"}
    assert _spec(result, "MUST_SET") == {"kind": "input", "required": True}
    assert result.template.variable("MUST_SET").description == "set MUST_SET to your licence key"
    assert _spec(result, "ALSO_REQUIRED") == {"kind": "input", "required": True}
    assert _spec(result, "PLAIN_DEFAULT") == {"kind": "input", "default": "plain"}
    out = _render(result)
    assert "NESTED: fallback" in out.compose and "LITERAL: plain-value" in out.compose
    assert "REQUIRED: given" in out.compose
    kit = _import("analytics-kit.yaml")
    assert kit.template.variable("TRACKER_SCRIPT_NAME").description == "the tracker's file name"  # inline comment


def test_coolify_injected_names():
    result = _import("every-generator.yaml")
    assert _spec(result, "SERVICE_NAME_MY_DB") == {"kind": "value", "value": "my-db"}
    assert _spec(result, "COOLIFY_RESOURCE_UUID") == {"kind": "uuid"}
    assert _spec(result, "COOLIFY_URL") == {"kind": "value", "value": "https://${var.SERVICE_FQDN_API}"}


def test_fqdn_and_url_with_ports():
    result = _import("analytics-kit.yaml")
    assert _spec(result, "SERVICE_FQDN_ANALYTICS") == {
        "kind": "domain",
        "routes": [{"service": "analytics-kit", "port": 3000}],
    }
    assert _spec(result, "SERVICE_URL_ANALYTICS") == {"kind": "value", "value": "https://${var.SERVICE_FQDN_ANALYTICS}"}
    assert _spec(result, "SERVICE_URL_ANALYTICS_3000") == {
        "kind": "value",
        "value": "https://${var.SERVICE_FQDN_ANALYTICS}:3000",
    }
    out = _render(result)
    assert "- HOSTNAME=service-fqdn-analytics.apps.test" in out.compose  # FQDN: host only
    assert "- PUBLIC_URL=https://service-fqdn-analytics.apps.test" in out.compose
    assert "- SERVICE_URL_ANALYTICS_3000=https://service-fqdn-analytics.apps.test:3000" in out.compose
    assert [(h.service, h.port) for h in out.hosts] == [("analytics-kit", 3000)]
    every = _import("every-generator.yaml")
    assert _spec(every, "SERVICE_FQDN_API") == {
        "kind": "domain",
        "routes": [{"service": "api", "path": "/api", "port": 2000}],
    }
    assert _spec(every, "SERVICE_FQDN_MY_API") == {"kind": "domain", "routes": [{"service": "api", "port": 8080}]}
    # service `plausible` is routed to 8000 whatever the # port: header says
    assert _spec(every, "SERVICE_FQDN_PLAUSIBLE") == {
        "kind": "domain",
        "routes": [{"service": "plausible", "port": 8000}],
    }


PAIRS = """services:
  app:
    image: x
    environment:
      - SERVICE_URL_APP_3000
      - A=${SERVICE_URL_APP}
      - B=${SERVICE_FQDN_APP}
      - C=${SERVICE_URL_APP_3000}
      - D=${SERVICE_FQDN_APP_3000}
  api:
    image: x
    environment:
      - SERVICE_FQDN_API_2000=/api
      - A=${SERVICE_URL_API}
      - B=${SERVICE_FQDN_API}
      - C=${SERVICE_URL_API_2000}
      - D=${SERVICE_FQDN_API_2000}
  root:
    image: x
    environment:
      - SERVICE_URL_ROOT_80=/
      - A=${SERVICE_URL_ROOT}
"""


def test_url_and_fqdn_values_with_and_without_port_are_coolifys():
    """Coolify's serviceParser (parsers.php at 379abb25, L1774-1906) writes, for a declared name, the pair
    without port (``SERVICE_FQDN_<NAME>`` = host, ``SERVICE_URL_<NAME>`` = URL) and, when the name has a port,
    the pair with it: the same values plus ``:<port>`` (L1846 ``$urlWithPort = "$url:$port"``; its own test
    ServiceDomainPortCorruptionTest expects ``http://git.example.com:80``). The port also routes the host to
    that container port. A declaration's path is part of both URLs of its pair, even one declared as FQDN
    (L1824-1837); ``/`` adds nothing."""
    result = import_coolify("pairs.yaml", PAIRS)
    values = {v.name: v.options.get("value") for v in result.template.variables if v.kind == "value"}
    assert values == {
        "SERVICE_URL_APP": "https://${var.SERVICE_FQDN_APP}",
        "SERVICE_URL_APP_3000": "https://${var.SERVICE_FQDN_APP}:3000",
        "SERVICE_FQDN_APP_3000": "${var.SERVICE_FQDN_APP}:3000",
        "SERVICE_URL_API": "https://${var.SERVICE_FQDN_API}/api",
        "SERVICE_URL_API_2000": "https://${var.SERVICE_FQDN_API}:2000/api",
        "SERVICE_FQDN_API_2000": "${var.SERVICE_FQDN_API}:2000",
        "SERVICE_URL_ROOT": "https://${var.SERVICE_FQDN_ROOT}",
        "SERVICE_URL_ROOT_80": "https://${var.SERVICE_FQDN_ROOT}:80",  # Coolify's test: http://git.example.com:80
    }
    routes = {v.name: [(r.service, r.path, r.port) for r in v.routes] for v in result.template.variables}
    assert {k: v for k, v in routes.items() if v} == {
        "SERVICE_FQDN_APP": [("app", None, 3000)],
        "SERVICE_FQDN_API": [("api", "/api", 2000)],
        "SERVICE_FQDN_ROOT": [("root", "/", 80)],
    }
    out = _render(result)
    api = yaml.safe_load(out.compose)["services"]["api"]["environment"]
    assert [e for e in api if e[0] in "ABCD"] == [
        "A=https://service-fqdn-api.apps.test/api",
        "B=service-fqdn-api.apps.test",
        "C=https://service-fqdn-api.apps.test:2000/api",
        "D=service-fqdn-api.apps.test:2000",
    ]


def test_one_host_with_a_path_per_service_and_bare_references():
    result = _import("multi-route.yaml")
    assert _spec(result, "SERVICE_FQDN_APPWRITE") == {
        "kind": "domain",
        "routes": [
            {"service": "appwrite", "path": "/", "port": 80},
            {"service": "appwrite-console", "path": "/console", "port": 80},
            {"service": "appwrite-realtime", "path": "/v1/realtime", "port": 80},
        ],
    }
    out = _render(result)
    password = out.values["SERVICE_PASSWORD_64_APPWRITE"]
    assert len(password) == 64 and out.compose.count(f"_APP_OPENSSL_KEY_V1={password}") == 2  # bare $NAME
    assert len({h.host for h in out.hosts}) == 1 and len(out.hosts) == 3
    # $$ in commands is compose's: left as it is
    assert """bash -c 'eval "echo \\"$$(cat ~/temp.yml)\\"" > ~/kong.yml""" in out.compose
    assert '--init-connect="SET NAMES $$utf8"' in out.compose  # \$ is compose's $$ (a literal $)
    assert "services.mariadb.command: \\$ is compose's $$ (a literal $)" in result.notes
    assert "services.mariadb.exclude_from_hc: Berth has no aggregate health exclusion" in result.not_carried
    assert "exclude_from_hc" not in out.compose


def test_files_written_by_coolify_become_template_files():
    result = _import("files-and-dirs.yaml")
    (file,) = result.template.files
    assert file.path == "nginx/default.conf" and 'set $$upstream "x";' in file.content  # verbatim
    out = _render(result)
    doc = yaml.safe_load(out.compose)
    volumes = doc["services"]["web"]["volumes"]
    assert volumes[0] == {
        "type": "bind",
        "source": "./files/nginx/default.conf",
        "target": "/etc/nginx/conf.d/default.conf",
    }
    # a directory of the service's folder on Coolify's host is a named volume here (no host path)
    assert volumes[1] == {"type": "volume", "source": "html", "target": "/usr/share/nginx/html"}
    assert volumes[2] == {"type": "volume", "source": "cache", "target": "/var/cache/nginx"}
    assert doc["volumes"] == {"web-logs": None, "html": None, "cache": None}
    assert out.files == {"nginx/default.conf": file.content}
    assert result.notes == [
        "services.web.volumes[0].content: carried as the template file files/nginx/default.conf",
        "services.web.volumes[1].is_directory: dropped; a bind without content is a directory",
        "services.web.volumes[1]: the directory ./html is the named volume html",
        "services.web.volumes[2].isDirectory: dropped; a bind without content is a directory",
        "services.web.volumes[2]: the directory ./cache is the named volume cache",
        "volumes: html, cache declared at the top level, as Coolify does",
    ]


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("services:\n  a:\n    image: x\n  a:\n    image: y\n", "'a' is given twice"),
        ("services: [\n", "malformed YAML at line"),
        ("version: '3'\n", "a compose file needs a non-empty 'services' mapping"),
        ("services:\n  a:\n    environment: {X: 1}\n", "a service needs an 'image'"),
    ],
)
def test_bad_files_are_refused_naming_the_file(text, detail):
    with pytest.raises(TemplateError) as caught:
        import_coolify("bad.yaml", text)
    assert caught.value.loc.startswith("/body/files/bad.yaml") and detail in caught.value.detail


def test_merge_keys_of_lists_read_as_coolify_reads_them():
    text = """services:
  app:
    image: x
    environment:
      <<: *env
      EXTRA: ${SERVICE_PASSWORD_EXTRA}
    volumes: &vols
      - data:/data
  worker:
    image: x
    volumes:
      <<: *vols
""".replace("services:", "x-env: &env\n  - A=${SERVICE_USER_A}\n  - B=plain\nservices:", 1)
    result = import_coolify("merge.yaml", text)
    doc = yaml.safe_load(_render(result).compose)
    assert doc["services"]["worker"]["volumes"] == ["data:/data"]
    env = doc["services"]["app"]["environment"]
    assert set(env) == {"A", "B", "EXTRA"} and env["B"] == "plain" and len(env["A"]) == 16


def test_named_volumes_are_declared_as_coolify_declares_them():
    text = """services:
  app:
    image: x
    volumes:
      - app-data:/data
      - ./conf:/etc/app
      - /var/run/docker.sock:/var/run/docker.sock:ro
      - type: volume
        source: cache
        target: /cache
  db:
    image: postgres:16
    volumes: [db-data:/var/lib/postgresql/data, app-data:/shared]
volumes:
  db-data: {driver: local}
"""
    result = import_coolify("vols.yaml", text)
    doc = yaml.safe_load(result.template.compose)
    assert doc["services"]["app"]["volumes"][1] == "conf:/etc/app"  # a relative directory: a named volume
    assert doc["volumes"] == {"db-data": {"driver": "local"}, "app-data": None, "conf": None, "cache": None}
    assert "volumes: app-data, conf, cache declared at the top level, as Coolify does" in result.notes
    assert "volumes" not in yaml.safe_load(
        import_coolify("one.yaml", "services:\n  a:\n    image: x\n").template.compose
    )


def test_numbers_are_read_as_compose_reads_them_yaml_1_2():
    text = "services:\n  git:\n    image: x\n    ports:\n      - 22222:22\n    environment:\n      - N=1_000\n"
    doc = yaml.safe_load(import_coolify("git.yaml", text).template.compose)
    assert doc["services"]["git"]["ports"] == ["22222:22"]  # YAML 1.1 would read base 60: 1333342
