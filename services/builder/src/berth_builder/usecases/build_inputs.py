"""What a ``cmd.build.start`` asks for, checked before anything runs: the repository, ref, paths and build
args (``validate``, pure: it raises ``InvalidInput`` naming the field), and the secret values a build's log
lines and reasons are redacted of (``secrets_of``)."""

from __future__ import annotations

from dataclasses import dataclass

from berth_builder.domain import git_credentials
from berth_builder.domain.request import Arg
from berth_builder.domain.source import (
    GitRef,
    GitUrl,
    InvalidInput,
    url_secrets,
    validate_build_arg,
    validate_build_id,
    validate_git_url,
    validate_image_tag,
    validate_ref,
    validate_relpath,
)
from berth_builder.settings import BuilderSettings
from berth_common import sealing
from berth_common.catalogue import StartBuild
from berth_common.catalogue.deployments import registry_auths, revealed

MAX_SECRET_BYTES = 60000


@dataclass(frozen=True)
class Inputs:
    url: GitUrl
    ref: GitRef
    subdirectory: str
    dockerfile: str | None
    args: tuple[Arg, ...]


def secrets_of(cmd: StartBuild) -> list[str]:
    """The plaintext secret values of a build (in memory only), to redact from its log lines and reasons."""
    found = revealed([a for a in cmd.source.build_args if a.secret]) + url_secrets(cmd.source.repository)
    if cmd.source.auth is not None and cmd.source.auth.kind == "https":
        try:
            found.append(cmd.source.auth.token_text())
        except sealing.UnsealError:
            pass
    for auth in registry_auths(cmd.source):
        try:
            found += [p for p in [auth.reveal()] if p]
        except sealing.UnsealError:
            continue
    return found


def validate(cmd: StartBuild, settings: BuilderSettings) -> Inputs:
    """Every check of the command, pure; raises InvalidInput naming the field."""
    validate_build_id(cmd.build_id)
    for name, value in (("deployment_id", cmd.deployment_id), ("application_id", cmd.application_id)):
        if not value.replace("-", "").replace("_", "").isalnum() or not value.isascii():
            raise InvalidInput(name, "letters, digits, '-' and '_' only")
    validate_image_tag(cmd.image_tag)
    src = cmd.source
    url = validate_git_url(src.repository, allow_local=settings.allow_local_git)
    ref = validate_ref(src.ref)
    git_credentials.check(src.auth, url)
    subdir = validate_relpath(src.subdirectory, "source.subdirectory")
    dockerfile = (
        None if src.dockerfile is None else validate_relpath(src.dockerfile, "source.dockerfile", allow_empty=False)
    )
    args = []
    seen = set()
    for a in src.build_args:
        try:
            value = a.reveal()  # a secret arrives sealed: opened here, served only through the secret mount
        except sealing.UnsealError as exc:
            raise InvalidInput(f"source.build_args.{a.name}", f"the secret value cannot be read: {exc}") from None
        validate_build_arg(a.name, value)
        if a.name in seen:
            raise InvalidInput(f"source.build_args.{a.name}", "given twice")
        if a.secret and len(value.encode()) > MAX_SECRET_BYTES:
            raise InvalidInput(f"source.build_args.{a.name}", f"a secret value is limited to {MAX_SECRET_BYTES} bytes")
        seen.add(a.name)
        args.append(Arg(a.name, value, a.secret))
    return Inputs(url, ref, subdir, dockerfile, tuple(args))
