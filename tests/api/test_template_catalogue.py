"""The template catalogue: at least 30 widely used apps, each of which parses and renders with every
variable known, every service an image, its secrets generated and its domain filled."""

from __future__ import annotations

import re
from xml.etree import ElementTree

import yaml

from berth_api.adapters import template_files
from berth_api.domain.templates.model import SECRET_KINDS, compose_services
from berth_api.domain.templates.render import SystemSource, render
from berth_api.usecases.templates import list_templates, plan_deploy
from tests.api.template_support import CountingSource

APPS = {
    "plausible", "umami", "uptime-kuma", "n8n", "ghost", "wordpress", "strapi", "gitea", "forgejo", "minio",
    "vaultwarden", "metabase", "pgadmin", "adminer", "phpmyadmin", "redis-commander", "nocodb", "appsmith",
    "directus", "mattermost", "nextcloud", "grafana", "prometheus", "listmonk", "outline", "hedgedoc",
    "immich-lite", "excalidraw", "code-server", "jellyfin", "freshrss", "paperless-ngx", "changedetection",
}  # fmt: skip
CATEGORIES = ["analytics", "monitoring", "automation", "cms", "blog", "git", "storage", "password-manager", "bi"]


def _inputs(template) -> dict[str, str]:
    return {v.name: "db" for v in template.variables if v.kind == "input" and v.options.get("required")}


def test_the_catalogue_has_the_widely_used_apps_and_every_category():
    templates = template_files.catalogue()
    slugs = [t.slug for t in templates]
    assert len(templates) >= 30 and len(set(slugs)) == len(slugs)
    assert APPS <= set(slugs), APPS - set(slugs)
    tags = {tag for t in templates for tag in t.tags}
    assert set(CATEGORIES) <= tags and "database" in tags and "admin" in tags
    for t in templates:
        assert t.name and t.description and t.tags and t.docs and t.docs.startswith("https://"), t.slug
        assert t.version, t.slug
        assert t.logo, f"{t.slug} has no logo"
        data = template_files.logo(t.logo)
        assert data, f"{t.slug}: its logo {t.logo} is not a file of the package"
        svg = ElementTree.fromstring(data)
        assert svg.tag == "{http://www.w3.org/2000/svg}svg" and svg.get("viewBox") == "0 0 64 64", t.slug
        for el in svg.iter():  # a logo is served as image/svg+xml: nothing in it may run
            assert el.tag.rsplit("}", 1)[-1] not in {"script", "foreignObject"}, t.slug
            assert not any(name.lower().startswith("on") for name in el.attrib), t.slug


def test_every_template_renders_with_its_secrets_generated_and_its_domain_filled():
    for t in template_files.catalogue():
        first = render(
            t, SystemSource(), app=t.slug, overrides=_inputs(t), generate_host=lambda v: f"{v.name}.apps.test"
        )
        second = render(t, SystemSource(), app=t.slug, overrides=_inputs(t), generate_host=lambda v: "x.apps.test")
        assert "${var." not in first.compose and "${domain}" not in first.compose, t.slug
        services = compose_services(first.compose, f"/{t.slug}")
        assert all(isinstance(s.get("image"), str) and s["image"] for s in services.values()), t.slug
        yaml.safe_load(first.compose)
        domains = [v for v in t.variables if v.kind == "domain"]
        assert domains and all(v.routes for v in domains), f"{t.slug}: no routed domain"
        for v in domains:
            assert first.values[v.name] == f"{v.name}.apps.test"
        generated = [v for v in t.variables if v.kind in SECRET_KINDS]
        for v in generated:
            assert first.values[v.name] and first.values[v.name] != second.values[v.name], f"{t.slug}: {v.name}"
            assert v.name in first.secret


def test_every_template_deploys_as_a_plan_whose_compose_holds_no_value():
    for t in template_files.catalogue():
        plan = plan_deploy(
            t,
            app=t.slug[:32],
            environment="production",
            base_domain="apps.test",
            overrides=_inputs(t),
            source=CountingSource(),
        )
        req = plan.request
        assert req["name"] == t.slug[:32]
        secrets = {e["value"] for e in req["env"] if e["secret"]}
        assert not any(value in req["compose"]["inline"] for value in secrets if len(value) >= 4), t.slug
        assert not re.search(r"\$\{var\.|\$\{domain\}", req["compose"]["inline"]), t.slug
        assert req["hosts"] and all(h.get("host", ".apps.test").endswith(".apps.test") for h in req["hosts"])
        assert plan.unsupported == (), t.slug
        values = {e["name"]: e["value"] for e in req["env"]}
        assert {e["name"] for e in req["env"] if e["secret"]} == plan.rendered.secret & set(values), t.slug


def test_a_deploy_plan_is_the_application_create_request():
    umami = next(t for t in template_files.catalogue() if t.slug == "umami")
    plan = plan_deploy(umami, app="umami", environment="production", base_domain="apps.test", source=CountingSource())
    assert plan.request == {
        "name": "umami",
        "compose": {
            "inline": "services:\n"
            "  umami:\n"
            "    image: ghcr.io/umami-software/umami:postgresql-latest\n"
            "    environment:\n"
            "      DATABASE_URL: postgresql://umami:${db_password}@db:5432/umami\n"
            "      DATABASE_TYPE: postgresql\n"
            "      APP_SECRET: ${app_secret}\n"
            "    depends_on: [db]\n"
            "  db:\n"
            "    image: postgres:16-alpine\n"
            "    environment:\n"
            "      POSTGRES_DB: umami\n"
            "      POSTGRES_USER: umami\n"
            "      POSTGRES_PASSWORD: ${db_password}\n"
            "    volumes: [umami-db:/var/lib/postgresql/data]\n"
            "volumes:\n"
            "  umami-db: {}\n"
        },
        "hosts": [{"service": "umami", "port": 3000}],  # the generated host: Berth makes it
        "env": [
            {"name": "db_password", "value": "ghijklmnopqrstuvwxyz0123456789AB", "secret": True},
            {"name": "app_secret", "value": bytes(range(32)).hex(), "secret": True},
        ],
    }
    minio = next(t for t in template_files.catalogue() if t.slug == "minio")
    plan = plan_deploy(
        minio, app="s3", environment="production", base_domain="apps.test", domain="s3.example.com",
        source=CountingSource(),
    )  # fmt: skip
    # one service, two routed ports: the console's port gets a generated host of its own, which Berth makes
    assert plan.request["hosts"] == [
        {"service": "minio", "port": 9000, "host": "s3.example.com"},
        {"service": "minio", "port": 9001},
    ]
    assert {e["name"]: e["value"] for e in plan.request["env"] if not e["secret"]} == {
        "api": "s3.example.com",
        "console": "minio-9001-s3-production.apps.test",
    }
    assert "console:" not in plan.request["compose"]["inline"]  # no forwarder service
    generated = plan_deploy(minio, app="s3", environment="production", base_domain="apps.test")
    assert generated.request["hosts"] == [{"service": "minio", "port": 9000}, {"service": "minio", "port": 9001}]
    assert {e["name"]: e["value"] for e in generated.request["env"] if not e["secret"]} == {
        "api": "minio-s3-production.apps.test",
        "console": "minio-9001-s3-production.apps.test",
    }


def test_search_by_text_and_tag():
    assert {t.slug for t in list_templates(tag="analytics")} == {"plausible", "umami", "metabase"}
    assert {t.slug for t in list_templates(tag="ANALYTICS ")} == {"plausible", "umami", "metabase"}
    assert {t.slug for t in list_templates("git")} >= {"gitea", "forgejo"}
    assert [t.slug for t in list_templates("Password Manager")] == ["vaultwarden"]
    assert list_templates("nothing-like-this") == []
    assert {t.slug for t in list_templates("analytics", tag="privacy")} == {"plausible", "umami"}
    assert len(list_templates()) == len(template_files.catalogue())
