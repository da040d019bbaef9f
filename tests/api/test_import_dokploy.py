"""Importing Dokploy blueprints: template.toml read as Dokploy's lenient parser reads it, the ${helper}
grammar, the three env forms, domains, mounts, meta.json, and what cannot be carried over, listed by name
(rules: shared/formats/dokploy-templates.md)."""

from __future__ import annotations

import base64
import json
import tomllib

import pytest
import yaml

from berth_api.domain.templates.dokploy import import_dokploy
from berth_api.domain.templates.lenient_toml import TomlError, drop_shadowed_arrays, escape_unknown, loads
from berth_api.domain.templates.model import TemplateError
from berth_api.domain.templates.render import SystemSource, render
from tests.api.template_support import FIXTURES, NOW, CountingSource, dokploy_dirs, dokploy_files

DIR = FIXTURES / "dokploy"


def _import(name: str):
    return import_dokploy(dokploy_files(DIR / name), name)


def _spec(result, name: str) -> dict:
    v = result.template.variable(name)
    assert v is not None, name
    return {"kind": v.kind, **v.options}


def _render(result, source=None):
    return render(
        result.template,
        source or CountingSource(),
        app="shop-app",
        generate_host=lambda v: f"{v.name.replace('_', '-')}.apps.test",
    )


def test_every_fixture_imports_and_renders():
    assert len(dokploy_dirs()) >= 6
    for folder in dokploy_dirs():
        result = import_dokploy(dokploy_files(folder), folder.name)
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


def test_the_lenient_toml_of_real_blueprints():
    for name, error in (("lenient-escapes", "Unescaped"), ("shadowed-mounts", "Cannot mutate immutable namespace")):
        with pytest.raises(tomllib.TOMLDecodeError, match=error):
            tomllib.loads((DIR / name / "template.toml").read_text())
    escapes = _import("lenient-escapes")
    assert (
        "template.toml: unknown escapes in basic strings kept literally (Dokploy's parser accepts it)" in escapes.notes
    )
    assert _spec(escapes, "SHELL_SNIPPET") == {"kind": "value", "value": "echo \\$(hostname) and \\${HOME}"}
    assert _spec(escapes, "PATTERN") == {"kind": "input", "default": "EXAMPLE\\{user_name}"}
    assert _spec(escapes, "NEWLINE") == {"kind": "input", "default": "a\tb"}  # a known escape stays one
    assert _spec(escapes, "LITERAL") == {"kind": "input", "default": "C:\\path\\$x"}  # literal strings untouched
    assert "  - username: \\$ANON\n" in escapes.template.files[0].content  # multi-line basic string
    shadowed = _import("shadowed-mounts")
    assert "template.toml: an empty array followed by its [[array of tables]] (Dokploy's parser accepts it)" in (
        shadowed.notes
    )
    assert [f.path for f in shadowed.template.files] == ["init.sql"]


def test_lenient_toml_rules():
    assert escape_unknown("a = \"x\\$y\\n\" # c \\$\nb = '\\$'\n") == "a = \"x\\\\$y\\n\" # c \\$\nb = '\\$'\n"
    assert drop_shadowed_arrays("[config]\nmounts = []\nenv = []\n[[config.mounts]]\nx = 1") == (
        "[config]\nenv = []\n[[config.mounts]]\nx = 1"
    )
    assert loads('a = "b"') == ({"a": "b"}, [])
    with pytest.raises(TomlError):
        loads("a = = 1")


def test_helpers():
    result = _import("table-env")
    expected = {
        "main_domain": {"kind": "domain", "routes": [{"service": "web", "port": 3000}]},
        "admin_user": {"kind": "password", "length": 10, "alphabet": "lower"},
        "admin_email": {"kind": "input", "default": "admin@example.com"},
        "short_pass": {"kind": "password", "length": 16, "alphabet": "lower_alnum"},
        "token": {"kind": "hex", "length": 8},
        "long_token": {"kind": "hex", "length": 12},
        "instance_id": {"kind": "uuid"},
        "port": {"kind": "port"},
        "started_ms": {"kind": "timestamp", "unit": "ms"},
        "started_ms2": {"kind": "timestamp", "unit": "ms"},
        "started_s": {"kind": "timestamp", "unit": "s"},
        "fixed_ms": {"kind": "timestamp", "unit": "ms", "at": "2030-01-01T00:00:00+00:00"},
        "fixed_s": {"kind": "timestamp", "unit": "s", "at": "2024-06-01T12:00:00+00:00"},
        "app_label": {"kind": "value", "value": "app-${app}"},
        "plain": {"kind": "input", "default": "just text"},
        "unknown_ref": {"kind": "value", "value": "${NOT_A_HELPER}-x"},
        "api_domain": {"kind": "value", "value": "api.${var.main_domain}"},
        "two_levels": {"kind": "value", "value": "${var.api_domain}/v1"},
    }
    for name, spec in expected.items():
        assert _spec(result, name) == spec, name
    out = _render(result)
    assert out.values["fixed_ms"] == "1893456000000" and out.values["fixed_s"] == "1717243200"
    assert out.values["started_ms"] == str(int(NOW.timestamp() * 1000)) and out.values["started_s"] == str(
        int(NOW.timestamp())
    )
    assert out.values["app_label"] == "app-shop-app" and out.values["APP_NAME_ENV"] == "shop-app"
    assert out.values["unknown_ref"] == "${NOT_A_HELPER}-x"  # neither helper nor variable: verbatim
    assert out.values["two_levels"] == "api.main-domain.apps.test/v1"
    real = _render(result, SystemSource())
    assert real.values["short_pass"] == real.values["short_pass"].lower() and len(real.values["short_pass"]) == 16
    assert len(real.values["token"]) == 8 and int(real.values["token"], 16) >= 0
    for note in (
        "variables.admin_user: username is 10 random lower-case letters (Dokploy: a faker user name)",
        "variables.admin_email: email is a value to fill in, admin@example.com by default (Dokploy: faker)",
        "variables.port: randomPort draws from 10000-60999 in Berth (Dokploy: 0-65534)",
    ):
        assert note in result.notes
    blueprint = _import("analytics-blueprint")
    assert _spec(blueprint, "secret_base") == {"kind": "base64", "bytes": 64}  # N is bytes
    assert _spec(blueprint, "totp_key") == {"kind": "base64", "bytes": 32}
    values = _render(blueprint, SystemSource()).values
    assert len(base64.b64decode(values["secret_base"], validate=True)) == 64


def test_jwt_helpers():
    result = _import("jwt-helpers")
    assert _spec(result, "anon_key") == {
        "kind": "jwt",
        "key": "${var.jwt_secret}",
        "payload": {"iss": "supabase", "exp": 2019686400, "role": "anon", "iat": 1704067200},
        "issued_at": False,
    }
    assert _spec(result, "service_key") == {
        "kind": "jwt",
        "key": "${var.jwt_secret}",
        "payload": {"iss": "dokploy", "exp": 1893456000},
        "issued_at": True,
    }
    assert _spec(result, "plain_jwt")["key"] == "${var.variables_plain_jwt_jwt_key}"
    assert _spec(result, "variables_plain_jwt_jwt_key") == {"kind": "hex", "bytes": 32}
    assert _spec(result, "deprecated") == {"kind": "hex", "bytes": 32}  # ${jwt:32}: not a JWT
    assert _spec(result, "literal_key")["key"] == "not-a-variable"  # no such variable: the literal signs
    out = _render(result)
    claims = json.loads(base64.urlsafe_b64decode(out.values["anon_key"].split(".")[1] + "=="))
    assert claims == {"iss": "supabase", "exp": 2019686400, "role": "anon", "iat": 1704067200}
    assert out.values["INLINE_JWT"].count(".") == 2 and out.values["INLINE_JWT"] != out.values["PLAIN_JWT"]


def test_env_forms():
    blueprint = _import("analytics-blueprint")  # env = ["K=V", {K = "V"}, "EMPTY=", "NO_EQUALS"]
    assert _spec(blueprint, "BASE_URL") == {"kind": "value", "value": "https://${var.main_domain}"}
    assert _spec(blueprint, "DISABLE_REGISTRATION") == {"kind": "input", "default": "invite_only"}
    assert _spec(blueprint, "EMPTY") == {"kind": "input", "default": ""}
    assert _spec(blueprint, "NO_EQUALS") == {"kind": "input", "default": ""}
    table = _import("table-env")  # [config.env] with numbers and booleans
    assert [_spec(table, k)["default"] for k in ("WORKERS", "DEBUG", "RATIO", "EMPTY")] == ["4", "false", "0.5", ""]
    out = _render(table, SystemSource())
    assert out.values["SECRET_ONE"] != out.values["SECRET_TWO"]  # each helper occurrence is its own value
    shadowed = _import("shadowed-mounts")  # [[config.env]]
    assert _spec(shadowed, "DB_PASSWORD") == {"kind": "value", "value": "${var.db_password}"}
    assert _spec(shadowed, "TUNNEL_TOKEN") == {"kind": "input", "default": ""}
    # env_file: .env (the env Dokploy writes) becomes explicit entries
    doc = yaml.safe_load(shadowed.template.compose)
    assert doc["services"]["tunnel"]["environment"] == {
        "DB_PASSWORD": "${var.DB_PASSWORD}",
        "TUNNEL_TOKEN": "${var.TUNNEL_TOKEN}",
    }
    assert "env_file" not in doc["services"]["tunnel"]


def test_compose_references_become_variables_and_the_rest_stays():
    blueprint = _import("analytics-blueprint")
    compose = blueprint.template.compose
    assert compose.startswith("# a comment that survives the import\n")
    assert "- DATABASE_URL=postgres://postgres:${var.DB_PASSWORD}@db:5432/analytics" in compose
    assert "- DISABLE_REGISTRATION=${var.DISABLE_REGISTRATION}" in compose  # the compose default gives way
    assert "- UNRELATED=${NOT_IN_ENV:-kept}" in compose
    assert "./files/clickhouse/logs.xml:/etc/clickhouse-server" in compose and "../files/" not in compose


def test_domains():
    table = _import("table-env")
    assert _spec(table, "api_host") == {
        "kind": "domain",
        "default": "${var.api_domain}",
        "routes": [{"service": "api", "port": 8080, "path": "/api"}],
    }
    assert _spec(table, "web_host") == {"kind": "domain", "routes": [{"service": "web", "port": 3001}]}  # no host
    assert _spec(table, "admin_host") == {
        "kind": "domain",
        "default": "admin.${var.main_domain}",
        "routes": [{"service": "admin", "port": 9000}],
    }
    for key in ("certResolver", "env", "name", "stripPath", "tls"):
        assert f"config.domains[1].{key}: ignored by Dokploy" in table.not_carried
    out = _render(table)
    assert [(h.host, h.service, h.port, h.path) for h in out.hosts] == [
        ("main-domain.apps.test", "web", 3000, None),
        ("api.main-domain.apps.test", "api", 8080, "/api"),
        ("web-host.apps.test", "web", 3001, None),
        ("admin.main-domain.apps.test", "admin", 9000, None),
    ]
    assert _spec(_import("no-env"), "mailpit_host") == {
        "kind": "domain",
        "routes": [{"service": "mailpit", "port": 8025}],
    }


def test_mounts_and_config_keys():
    blueprint = _import("analytics-blueprint")
    (file,) = blueprint.template.files
    assert file.path == "clickhouse/logs.xml"
    out = _render(blueprint)
    assert f"<!-- ${{FOO}} stays for compose, {out.values['db_password']} is the variable -->" in out.files[file.path]
    shadowed = _import("shadowed-mounts")
    assert shadowed.not_carried == [
        "config.mounts[1]: keys mountPath, name, serviceName, volumeName are not read by Dokploy; no filePath/content",
        "config.mounts[2]: keys source, target, type are not read by Dokploy; no filePath/content",
    ]
    assert "config.isolated = false: unused by Dokploy's deploy; Berth always isolates" in shadowed.notes
    assert "config.isolated = true: unused by Dokploy's deploy; Berth always isolates" in _import("table-env").notes


def test_meta_json():
    t = _import("analytics-blueprint").template
    assert (t.name, t.slug, t.version, t.docs) == (
        "Analytics Blueprint",
        "analytics-blueprint",
        "2.1.0",
        "https://example.org/docs",
    )
    assert t.description == "Web analytics with Postgres and ClickHouse." and t.tags == ("analytics", "privacy")
    assert "logo: 'analytics.svg' is a file of the blueprint's folder" in _import("analytics-blueprint").not_carried
    assert _import("no-env").template.name == "No Env"


@pytest.mark.parametrize(
    ("files", "loc", "detail"),
    [
        ({"docker-compose.yml": "services: {a: {image: x}}"}, "/body/files/template.toml", "required"),
        (
            {"template.toml": "a = = 1", "docker-compose.yml": "services: {a: {image: x}}"},
            "/body/files/template.toml",
            "malformed TOML",
        ),
        (
            {"template.toml": "", "docker-compose.yml": "services:\n  a:\n    image: x\n  a:\n    image: y\n"},
            "/body/files/docker-compose.yml",
            "'a' is given twice",
        ),
        (
            {
                "template.toml": '[[config.domains]]\nserviceName = "nope"\nport = 80',
                "docker-compose.yml": "services: {a: {image: x}}",
            },
            "/body/files/template.toml/config/domains/0/serviceName",
            "'nope' is not a service of the compose file",
        ),
        (
            {"template.toml": "", "docker-compose.yml": "services: {a: {image: x}}", "meta.json": "{"},
            "/body/files/meta.json",
            "malformed JSON",
        ),
        (
            {
                "template.toml": '[[config.domains]]\nserviceName = "a"\nport = "web"',
                "docker-compose.yml": "services: {a: {image: x}}",
            },
            "/body/files/template.toml/config/domains/0/port",
            "a port from 1 to 65535",
        ),
    ],
)
def test_bad_blueprints_are_refused_naming_the_spot(files, loc, detail):
    with pytest.raises(TemplateError) as caught:
        import_dokploy(files)
    assert caught.value.loc == loc and detail in caught.value.detail, (caught.value.loc, caught.value.detail)


def test_a_variable_named_like_an_env_key_keeps_both():
    files = {
        "template.toml": '[variables]\nSECRET = "${password:8}"\n\n[config]\nenv = ["SECRET=${SECRET}"]\n',
        "docker-compose.yml": "services:\n  a:\n    image: x\n    environment:\n      S: ${SECRET}\n",
    }
    result = import_dokploy(files, "clash")
    assert _spec(result, "SECRET_var") == {"kind": "password", "length": 8, "alphabet": "lower_alnum"}
    assert _spec(result, "SECRET") == {"kind": "value", "value": "${var.SECRET_var}"}
    out = _render(result)
    assert f"S: {out.values['SECRET_var']}" in out.compose


def test_helpers_come_before_variables_and_env_comments_are_skipped():
    files = {
        "template.toml": (
            '[variables]\nusername = "${username}"\njwt_secret = "${jwt:jwt_secret}"\n\n[config]\n'
            'env = ["# a comment of the .env", "", "USER=${username}", "JWT=${jwt_secret}"]\n'
        ),
        "docker-compose.yml": "services:\n  a:\n    image: x\n    env_file: .env\n",
    }
    result = import_dokploy(files, "flat")
    # ${username} in env is the helper again (a value of its own), as processValue tries helpers first
    assert _spec(result, "USER") == {"kind": "password", "length": 10, "alphabet": "lower"}
    assert _spec(result, "jwt_secret")["key"] == "${jwt:jwt_secret}"  # signed with its own unresolved text
    doc = yaml.safe_load(result.template.compose)
    assert doc["services"]["a"]["environment"] == {"JWT": "${var.JWT}", "USER": "${var.USER}"}


def test_a_bind_of_a_files_directory_with_no_file_in_it_is_a_volume_of_the_application():
    # excerpts of the unifi blueprint (../files/config and ../files/db/data are empty directories Docker makes,
    # init-mongo.sh is a file of config.mounts) and of appflowy (./files/volumes/postgres/, no file in it)
    compose = (
        "services:\n"
        "  unifi-network-application:\n    image: lscr.io/linuxserver/unifi-network-application:latest\n"
        "    volumes: # Volumes to mount in the container\n      - ../files/config:/config\n"
        "  unifi-db:\n    image: mongo:4.4\n    volumes:\n      - ../files/db/data:/data/db\n"
        "      - ../files/init-mongo.sh:/docker-entrypoint-initdb.d/init-mongo.sh:ro\n"
        "      - {type: bind, source: ../files/config/, target: /backup, read_only: true}\n"
        "  postgres:\n    image: postgres:16\n    volumes:\n      - ./files/volumes/postgres/:/docker-entrypoint-initdb.d/\n"
        "volumes:\n  files-config: {}\n"
    )
    toml = 'variables = {}\n\n[config]\ndomains = []\nenv = {}\n\n[[config.mounts]]\nfilePath = "init-mongo.sh"\ncontent = "x"\n'
    result = import_dokploy({"template.toml": toml, "docker-compose.yml": compose}, "unifi")
    doc = yaml.safe_load(result.template.compose)
    assert doc["services"]["unifi-network-application"]["volumes"] == ["files-config-2:/config"]
    assert doc["services"]["unifi-db"]["volumes"] == [
        "files-db-data:/data/db",
        "./files/init-mongo.sh:/docker-entrypoint-initdb.d/init-mongo.sh:ro",
        {"type": "volume", "source": "files-config-2", "target": "/backup", "read_only": True},
    ]
    assert doc["services"]["postgres"]["volumes"] == ["files-volumes-postgres:/docker-entrypoint-initdb.d/"]
    assert doc["volumes"] == {
        "files-config": {},
        "files-config-2": None,
        "files-db-data": None,
        "files-volumes-postgres": None,
    }
    assert [n for n in result.notes if "Docker creates it empty" in n] == [
        "services.unifi-network-application.volumes[0]: ../files/config has no file of config.mounts in it: Docker "
        "creates it empty on the server and Dokploy keeps it across deploys; carried as the application's volume "
        "files-config-2",
        "services.unifi-db.volumes[0]: ../files/db/data has no file of config.mounts in it: Docker creates it empty "
        "on the server and Dokploy keeps it across deploys; carried as the application's volume files-db-data",
        "services.postgres.volumes[0]: ../files/volumes/postgres has no file of config.mounts in it: Docker creates "
        "it empty on the server and Dokploy keeps it across deploys; carried as the application's volume "
        "files-volumes-postgres",
    ]
    # a directory a file of config.mounts is in stays the application's files, and an untouched compose its text
    toml += '\n[[config.mounts]]\nfilePath = "/config/app.yml"\ncontent = "y"\n'
    kept = import_dokploy({"template.toml": toml, "docker-compose.yml": compose.split("  unifi-db:")[0]}, "unifi")
    assert kept.template.compose == compose.split("  unifi-db:")[0].replace("../files/", "./files/")


def test_a_bind_of_a_directory_beside_the_compose_file_is_a_volume_of_the_application():
    # excerpts of seanime (./anime in two services) and focalboard (./postgres_data): Dokploy writes the compose
    # file alone in its directory, so Docker creates these empty
    compose = (
        "services:\n  seanime:\n    image: umagistr/seanime\n    volumes:\n      - ./anime:/mnt/anime\n"
        "  qbittorrent:\n    image: lscr.io/linuxserver/qbittorrent\n    volumes:\n      - ./anime:/anime:rw\n"
        "  db:\n    image: postgres:16\n    volumes:\n      - ./postgres_data:/var/lib/postgresql/data\n"
        "  pg-us:\n    image: postgres:16\n    volumes:\n      - ${VOLUME_US:-./metadata}:/var/lib/postgresql/data\n"
    )
    result = import_dokploy({"template.toml": "[config]\n", "docker-compose.yml": compose}, "seanime")
    doc = yaml.safe_load(result.template.compose)
    assert [s["volumes"] for s in doc["services"].values()] == [
        ["anime:/mnt/anime"],
        ["anime:/anime:rw"],
        ["postgres-data:/var/lib/postgresql/data"],
        ["metadata:/var/lib/postgresql/data"],  # datalens: a compose variable no one gives is its default
    ]
    assert doc["volumes"] == {"anime": None, "postgres-data": None, "metadata": None}
    assert [n for n in result.notes if "beside the compose file" in n] == [
        "services.seanime.volumes[0]: ./anime is a directory beside the compose file, which Dokploy writes alone: "
        "Docker creates it empty on the server; carried as the application's volume anime",
        "services.db.volumes[0]: ./postgres_data is a directory beside the compose file, which Dokploy writes "
        "alone: Docker creates it empty on the server; carried as the application's volume postgres-data",
        "services.pg-us.volumes[0]: ./metadata is a directory beside the compose file, which Dokploy writes "
        "alone: Docker creates it empty on the server; carried as the application's volume metadata",
    ]
    assert "services.pg-us.volumes[0]: ${VOLUME_US:-./metadata} is its default ./metadata" in result.notes


def test_a_variable_that_is_a_compose_default_of_itself_through_the_env_is_that_default():
    # rutorrent: Dokploy writes INCOMING_PORT=${INCOMING_PORT:-50000} into the .env, which compose reads as 50000
    files = {
        "template.toml": (
            '[variables]\nincoming_port = "${INCOMING_PORT:-50000}"\nother = "${SET:-1}"\n\n'
            '[config.env]\nINCOMING_PORT = "${incoming_port}"\nSET = "2"\nOTHER = "${other}"\n'
        ),
        "docker-compose.yml": "services:\n  a:\n    image: x\n    ports:\n      - ${INCOMING_PORT:-50000}:50000/tcp\n",
    }
    result = import_dokploy(files, "rutorrent")
    assert _spec(result, "incoming_port") == {"kind": "input", "default": "50000"}
    assert _spec(result, "other") == {"kind": "value", "value": "${SET:-1}"}  # SET is another value of the env
    assert (
        "variables.incoming_port: ${INCOMING_PORT:-50000} is its default '50000', as the .env Dokploy writes "
        "gives it" in result.notes
    )
    out = _render(result)
    assert out.values["INCOMING_PORT"] == "50000"


def test_a_shell_checks_words_given_as_items_are_its_one_command():
    # vikunja and stack-auth: Docker would run ``sh -c pg_isready`` with the rest as the shell's arguments
    compose = (
        "services:\n  db:\n    image: postgres:16\n    healthcheck:\n"
        '      test: ["CMD-SHELL", "pg_isready", "-U", "${DB_USER}", "-d", "${DB_NAME}"]\n      interval: 10s\n'
    )
    files = {"template.toml": '[config.env]\nDB_USER = "app"\nDB_NAME = "app"\n', "docker-compose.yml": compose}
    result = import_dokploy(files, "vikunja")
    check = yaml.safe_load(result.template.compose)["services"]["db"]["healthcheck"]
    assert check == {"test": ["CMD-SHELL", "pg_isready -U ${var.DB_USER} -d ${var.DB_NAME}"], "interval": "10s"}
    assert any(n.startswith("services.db.healthcheck.test: CMD-SHELL takes one command") for n in result.notes)


def test_dokploys_own_proxy_network_is_dropped_and_said():
    # drizzle-gateway (a list of networks) and emqx (a mapping): Dokploy's Traefik network, declared external
    compose = (
        "services:\n  gw:\n    image: gateway:1\n    networks:\n      - dokploy-network\n"
        "  broker:\n    image: emqx:5\n    networks:\n      dokploy-network:\n      back:\n"
        "networks:\n  dokploy-network:\n    external: true\n  back: {}\n"
    )
    result = import_dokploy({"template.toml": "[config]\n", "docker-compose.yml": compose}, "drizzle-gateway")
    doc = yaml.safe_load(result.template.compose)
    assert "networks" not in doc["services"]["gw"]
    assert doc["services"]["broker"]["networks"] == {"back": None}
    assert doc["networks"] == {"back": {}}
    assert (
        "networks.dokploy-network: Dokploy's proxy network, not carried: Berth's proxy reaches the application's "
        "own network" in result.notes
    )
