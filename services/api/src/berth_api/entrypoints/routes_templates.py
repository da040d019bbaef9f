"""Routes of templates: the catalogue (viewers list and read it), importing a Coolify template or a Dokploy
blueprint into a Berth template (answered, not stored: the user reads and edits it), and deploying a
catalogue template or such a template document into an environment (developers). Thin: role, input, use case, answer. The use case
(the catalogue, the grammar, the importers) is imported by the first request that needs it, so a process
that serves none carries none of it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Path, Query, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from berth_api.domain import names
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError, field_errors
from berth_api.entrypoints.auth import require_role
from berth_api.entrypoints.resources import PathId, V1Router
from berth_api.entrypoints.routes_applications import create_application
from berth_api.entrypoints.schemas_apps import ApplicationCreate, Host, Slug
from berth_api.entrypoints.state import deps
from berth_api.entrypoints.v1 import problem_doc

if TYPE_CHECKING:
    from berth_api.domain.templates.model import Template

router = V1Router("templates")
SlugPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
LogoName = Annotated[str, Path(pattern=r"^[a-z0-9-]+\.(svg|png|webp)$")]
MAX_FILE = 1_000_000


class TemplateSummary(BaseModel):
    slug: str
    name: str
    description: str
    tags: list[str]
    logo: str | None = Field(description="The logo's path under /v1/templates/logos/ (a file of the catalogue)")
    docs: str | None
    version: str | None


class TemplateDetail(TemplateSummary):
    variables: dict[str, dict[str, Any]] = Field(description="Each variable's kind and options")
    files: list[dict[str, str]] = Field(description="Files the compose mounts as ./files/<path>")
    compose: str
    document: str = Field(description="The whole template as the YAML a user reads and edits")


class TemplateImport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["coolify", "dokploy"]
    files: dict[Annotated[str, Field(min_length=1, max_length=255)], Annotated[str, Field(max_length=MAX_FILE)]] = (
        Field(
            min_length=1,
            max_length=8,
            description="coolify: {'<name>.yaml': text}; dokploy: {'template.toml', 'docker-compose.yml', "
            "optionally 'meta.json'}",
            examples=[{"hello.yaml": "# slogan: Hello\nservices:\n  web:\n    image: nginx:1.27\n"}],
        )
    )
    name: Annotated[str, AfterValidator(names.display_name)] | None = Field(
        default=None,
        min_length=1,
        max_length=63,
        description="The template's name (default: from the files)",
        json_schema_extra={"pattern": names.DISPLAY_NAME_PATTERN},
    )


class ImportOut(BaseModel):
    template: TemplateDetail
    not_carried: list[str] = Field(description="What the import could not carry over, by name")
    notes: list[str] = Field(description="What was carried over differently")


class TemplateDeploy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    environment_id: PathId
    name: Slug | None = Field(default=None, description="The application's name; default the template's slug")
    domain: Host | None = Field(
        default=None, examples=["analytics.example.com"], description="Host of the first domain; default generated"
    )
    variables: dict[Annotated[str, Field(max_length=128)], Annotated[str, Field(max_length=65536)]] = Field(
        default_factory=dict, description="Values for the template's variables (inputs, or to replace a generated one)"
    )


class TemplateDocumentDeploy(TemplateDeploy):
    document: str = Field(
        min_length=1,
        max_length=MAX_FILE,
        description="A Berth template as YAML: the `document` of an imported template, edited or not",
    )


def summary(t: Template) -> TemplateSummary:
    return TemplateSummary(
        slug=t.slug,
        name=t.name,
        description=t.description,
        tags=list(t.tags),
        logo=t.logo,
        docs=t.docs,
        version=t.version,
    )


def detail(t: Template) -> TemplateDetail:
    doc = t.to_document()
    return TemplateDetail(
        **summary(t).model_dump(),
        variables=doc["variables"],
        files=doc.get("files", []),
        compose=t.compose,
        document=t.to_yaml(),
    )


@router.get("/templates", summary="The template catalogue; search by text (name, description, tags) and tag")
async def list_templates(
    q: Annotated[str | None, Query(max_length=100)] = None,
    tag: Annotated[str | None, Query(max_length=63)] = None,
    _: Principal = require_role("viewer"),
) -> list[TemplateSummary]:
    from berth_api.usecases import templates as uc

    return [summary(t) for t in uc.list_templates(q, tag)]


@router.get(
    "/templates/logos/{logo_file}",
    operation_id="get_template_logo",
    summary="A logo of the catalogue",
    response_class=Response,
)
async def template_logo(logo_file: LogoName, _: Principal = require_role("viewer")) -> Response:
    from berth_api.adapters import template_files

    data = template_files.logo(f"logos/{logo_file}")
    if data is None:
        raise ProblemError(404, "No such logo.")
    kind = {"svg": "image/svg+xml", "png": "image/png", "webp": "image/webp"}[logo_file.rsplit(".", 1)[1]]
    return Response(data, media_type=kind)


@router.get("/templates/{slug}", summary="A template: metadata, variables and compose")
async def get_template(slug: SlugPath, _: Principal = require_role("viewer")) -> TemplateDetail:
    from berth_api.usecases import templates as uc

    return detail(uc.get_template(slug))


@router.post("/templates/import", summary="A Berth template from a Coolify template or a Dokploy blueprint")
async def import_template(body: TemplateImport, _: Principal = require_role("developer")) -> ImportOut:
    from berth_api.usecases import templates as uc

    result = uc.import_template(body.format, body.files, body.name)
    return ImportOut(template=detail(result.template), not_carried=result.not_carried, notes=result.notes)


@router.create(
    "/templates/{slug}/deploy",
    summary="Create an application from a template, with generated secrets and hosts",
    responses={501: problem_doc("The template needs what compose applications do not take yet")},
)
async def deploy_template(
    slug: SlugPath, body: TemplateDeploy, request: Request, principal: Principal = require_role("developer")
) -> Any:
    from berth_api.usecases import templates as uc

    plan = await uc.deploy_plan(
        deps(request), principal, body.environment_id, slug, body.name, body.domain, body.variables
    )
    return await _create(plan, body.environment_id, request, principal)


@router.create(
    "/templates/deploy",
    operation_id="deploy_template_document",
    summary="Create an application from a template document (an imported template, edited or not)",
    responses={501: problem_doc("The template needs what compose applications do not take yet")},
)
async def deploy_template_document(
    body: TemplateDocumentDeploy, request: Request, principal: Principal = require_role("developer")
) -> Any:
    from berth_api.usecases import templates as uc

    plan = await uc.deploy_plan(
        deps(request), principal, body.environment_id, None, body.name, body.domain, body.variables, body.document
    )
    return await _create(plan, body.environment_id, request, principal)


async def _create(plan: Any, environment_id: str, request: Request, principal: Principal) -> Any:
    """The application of a deploy plan, through the one create path (validation, records, first deploy)."""
    if plan.unsupported:
        raise ProblemError(501, "Compose applications do not take these yet: " + "; ".join(plan.unsupported) + ".")
    try:
        create = ApplicationCreate.model_validate(plan.request)
    except ValidationError as exc:  # what the template gives an application (a host, a name) is not valid
        errors = [{**e, "loc": "/body" + e["loc"]} for e in field_errors(exc.errors())]
        fields = ", ".join(e["loc"] for e in errors[:5])
        raise ProblemError(
            422, f"The template gives the application invalid fields: {fields}.", errors=errors
        ) from None
    return await create_application(create, request, environment_id, principal)
