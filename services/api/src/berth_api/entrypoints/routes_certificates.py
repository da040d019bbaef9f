"""Routes of HTTPS certificates: a team's uploaded certificates (the key write-only: no answer carries it)
and the certificate state of an application's hosts. Thin: role, input, use case, answer. Like every
deletion, forgetting a certificate is for admins."""

from __future__ import annotations

from fastapi import Request

from berth_api.domain.identity import Principal
from berth_api.entrypoints.auth import require_role
from berth_api.entrypoints.resources import PathId, Resource, V1Router
from berth_api.entrypoints.schemas_tls import PEM_RULES, CertificateCreate, CertificateOut, CertificateStateOut
from berth_api.entrypoints.state import deps
from berth_api.entrypoints.v1 import problem_doc
from berth_api.usecases import certificate_state
from berth_api.usecases import certificates as uc

router = V1Router("certificates")
UPLOAD = f"""A PEM certificate, its chain and its key, for some hosts of the team (or of one application).
{PEM_RULES}; each refusal is a 422 naming the part at fault. The key is sealed at rest and never shown again.
The hosts of the team's applications it lists are served with it at once, without a deployment."""


@router.create(
    "/certificates",
    summary="Upload a certificate and its key (the key is never shown again)",
    description=UPLOAD,
    responses={409: problem_doc("The name is taken")},
)
async def create_certificate(
    body: CertificateCreate, request: Request, principal: Principal = require_role("developer")
) -> CertificateOut:
    given = uc.CertificateInput(
        body.name, body.certificate, body.chain, body.key.get_secret_value(), list(body.hosts), body.application_id
    )
    return CertificateOut.model_validate(await uc.upload(deps(request), principal, given))


certificates = Resource(router, CertificateOut)
certificates.listing("/certificates", "list_certificates", uc.list_all, "The team's uploaded certificates")
certificates.get("/certificates/{certificate_id}", "get_certificate", uc.get, "An uploaded certificate")
certificates.delete(
    "/certificates/{certificate_id}", "delete_certificate", uc.delete, "Forget an uploaded certificate and its key"
)


@router.get(
    "/applications/{application_id}/certificates",
    operation_id="list_application_certificates",
    summary="The certificate state of each host of an application (issuer, validity, last error)",
)
async def application_certificates(
    request: Request, application_id: PathId, principal: Principal = require_role("viewer")
) -> list[CertificateStateOut]:
    rows = await certificate_state.of_application(deps(request), principal, application_id)
    return [CertificateStateOut.model_validate(r) for r in rows]
