"""Templates: listing and searching the catalogue, importing a Coolify template or a Dokploy blueprint, and
deploying a template: its variables rendered (secrets from a CSPRNG, hosts generated unless given) into the
request that creates a compose application, every value travelling in the application's variables (the
generated secrets as secret variables) so the compose text holds none in clear. The template's files are
rendered with their values (secrets in clear: the files are stored sealed, ``compose_files``) and go with
the application as ``compose.files``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from berth_api.adapters import projects as projects_repo
from berth_api.adapters import template_files
from berth_api.domain.compose.translate import short_name
from berth_api.domain.hosts import generated_host, port_host
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError, invalid_field
from berth_api.domain.templates.coolify import import_coolify
from berth_api.domain.templates.dokploy import import_dokploy
from berth_api.domain.templates.format import parse_text
from berth_api.domain.templates.imported import ImportResult
from berth_api.domain.templates.model import Template, TemplateError, Variable
from berth_api.domain.templates.render import Rendered, Source, SystemSource, render
from berth_api.usecases import Deps
from berth_api.usecases.projects import environment_missing

Format = Literal["coolify", "dokploy"]


def refused(exc: TemplateError) -> ProblemError:
    return invalid_field(exc.loc, exc.detail, type_="template")


def list_templates(text: str | None = None, tag: str | None = None) -> list[Template]:
    """The catalogue, narrowed to templates whose name, slug or description contain ``text`` (any case)
    and that carry ``tag``."""
    needle = (text or "").strip().lower()
    found = []
    for t in template_files.catalogue():
        if tag and tag.strip().lower() not in t.tags:
            continue
        if needle and not any(needle in field.lower() for field in (t.name, t.slug, t.description, *t.tags)):
            continue
        found.append(t)
    return found


def get_template(slug: str) -> Template:
    for t in template_files.catalogue():
        if t.slug == slug:
            return t
    raise ProblemError(404, f"No template '{slug}' in the catalogue.")


def import_template(fmt: Format, files: Mapping[str, str], name: str | None = None) -> ImportResult:
    """A Berth template from another catalogue's files; 422 naming the file and spot when they are bad."""
    try:
        if fmt == "coolify":
            if len(files) != 1:
                raise TemplateError("/body/files", "a Coolify template is one file: {'<name>.yaml': text}")
            filename, text = next(iter(files.items()))
            result = import_coolify(filename, text)
        else:
            result = import_dokploy(dict(files), name)
    except TemplateError as exc:
        raise refused(exc) from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # a shape the importer did not expect
        raise invalid_field("/body/files", f"the files could not be imported: {type(exc).__name__}") from None
    if name:
        result = replace(result, template=replace(result.template, name=name))
    return result


@dataclass(frozen=True)
class DeployPlan:
    """What deploying a template creates: the application create request (as data) and the render."""

    request: dict[str, Any]
    rendered: Rendered
    unsupported: tuple[str, ...] = ()  # what a compose application cannot take yet (nothing a template has today)


def _label(text: str) -> str:
    """A compose service's name as Berth names it (``short_name``: at most 32 characters)."""
    return short_name("".join(c if c.isalnum() else "-" for c in text.lower()).strip("-") or "web")


def _whole_host_first(hosts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The hosts entries with each service's first whole-host entry before its entries with a path: a
    service's first entry names its routed port, whose health check is the service's (its GUI's port, not
    its API's under ``/api``)."""
    out = list(hosts)
    for service in dict.fromkeys(h["service"] for h in out):
        mine = [i for i, h in enumerate(out) if h["service"] == service]
        whole = next((i for i in mine if "path" not in out[i]), None)
        if whole is not None and whole != mine[0]:
            out.insert(mine[0], out.pop(whole))
    return out


def _once(hosts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The hosts entries without those a former entry already gives: the same host of the same port of the
    service, on its whole host or under the same path (two domain variables of one port are one route)."""
    out: list[dict[str, Any]] = []
    for h in hosts:
        same = [o for o in out if (o["service"], o["port"], o.get("host")) == (h["service"], h["port"], h.get("host"))]
        if not any("path" not in o or o.get("path") == h.get("path") for o in same):
            out.append(h)
    return out


def plan_deploy(
    template: Template,
    *,
    app: str,
    environment: str,
    base_domain: str,
    domain: str | None = None,
    overrides: Mapping[str, str] | None = None,
    source: Source | None = None,
) -> DeployPlan:
    """Render ``template`` for application ``app`` of ``environment``: ``domain`` is the host of the first
    domain variable; the others (and the first when no domain is given) are the generated host of the
    service they route to, ``<service>-<app>-<env>`` under the base domain (a second domain of the same
    service: at another port, that port's generated host ``<service>-<port>-<app>-<env>``, which Berth makes;
    at the same port, the same host: one route, Coolify's fileflows names its host twice). The request is an application create body: the compose
    text, the hosts (a generated one is left for Berth to make; a route's path prefix with its host: several
    services may share one host under different paths), every variable in ``env``."""
    given = dict(overrides or {})
    domains = [v for v in template.variables if v.kind == "domain"]
    if domain and domains:
        given.setdefault(domains[0].name, domain)
    elif domain:
        raise invalid_field("/body/domain", "this template has no domain variable")
    owner: dict[str, tuple[str, int]] = {}  # service -> its first domain variable (in the template's order), port

    def routed(v: Variable) -> tuple[str, int]:
        return (v.routes[0].service, v.routes[0].port or 80) if v.routes else (_label(v.name), 80)

    for v in sorted(domains, key=lambda v: bool(v.routes and v.routes[0].path not in (None, "/"))):
        owner.setdefault(routed(v)[0], (v.name, routed(v)[1]))  # a whole-host route first (_whole_host_first)

    def host(v: Variable) -> str:
        service, port = routed(v)
        _, first_port = owner.setdefault(service, (v.name, port))
        if port != first_port:  # another routed port of the service: its own generated host, made by Berth
            return port_host(_label(service), port, app, environment, base_domain)
        return generated_host(_label(service), app, environment, base_domain)  # the port's one route

    try:
        rendered = render(
            template,
            source or SystemSource(),
            app=app,
            overrides=given,
            generate_host=host,
            by_reference=lambda v: True,
        )
    except TemplateError as exc:
        raise refused(exc) from None
    hosts: list[dict[str, Any]] = []
    for r in rendered.hosts:
        entry: dict[str, Any] = {"service": r.service, "port": r.port or 80}
        made = (
            generated_host(_label(r.service), app, environment, base_domain),
            port_host(_label(r.service), entry["port"], app, environment, base_domain),
        )
        if r.host not in made:
            entry["host"] = r.host
        if r.path not in (None, "/"):
            entry["path"] = r.path
        hosts.append(entry)
    hosts = _once(_whole_host_first(hosts))
    compose: dict[str, Any] = {"inline": rendered.compose}
    if rendered.files:  # mounted as ./files/<path>: their rendered contents, sealed where they are stored
        compose["files"] = [
            {"path": path, "content": content, **({"mode": rendered.modes[path]} if path in rendered.modes else {})}
            for path, content in rendered.files.items()
        ]
    request: dict[str, Any] = {
        "name": app,
        "compose": compose,
        "hosts": hosts,
        "env": [{"name": n, "value": value, "secret": secret} for n, value, secret in rendered.env()],
    }
    return DeployPlan(request, rendered)


async def deploy_plan(
    deps: Deps,
    principal: Principal,
    environment_id: str,
    slug: str | None,
    app: str | None,
    domain: str | None,
    overrides: Mapping[str, str],
    document: str | None = None,
) -> DeployPlan:
    """The plan for deploying catalogue template ``slug``, or the template ``document`` (an imported or
    edited template's YAML, 422 naming the spot under ``/body/document`` when it is not one), into one of
    the team's environments. The environment is looked up first, so another team's environment is answered
    like a missing one, whatever the template."""
    async with deps.sessionmaker() as s:
        env = await projects_repo.get_environment(s, principal.team_id, environment_id)
    if env is None:
        raise environment_missing(principal, environment_id)
    template = get_template(slug) if slug is not None else parsed(document or "")
    name = app or template.slug[:32].strip("-")
    return plan_deploy(
        template,
        app=name,
        environment=env["name"],
        base_domain=deps.settings.base_domain,
        domain=domain,
        overrides=overrides,
    )


def parsed(document: str) -> Template:
    """A template from a user's YAML document; 422 naming the spot when it is not one."""
    try:
        return parse_text(document, "/body/document")
    except TemplateError as exc:
        raise refused(exc) from None
