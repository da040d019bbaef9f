"""The checks an application's configuration passes before it is stored (each refusal a 422 naming the field):
its volumes and host paths, its pre-deploy job's service, its git source, and its HTTPS options."""

from __future__ import annotations

from typing import Any

from berth_api.adapters.applications import HostRow
from berth_api.domain import mounts, names, outbound_checks, tls
from berth_api.domain.problems import invalid_field
from berth_api.usecases import Deps, compose_apps


def check_mounts(deps: Deps, config: dict[str, Any], team_id: str) -> None:
    """Single-writer volumes need one replica and ``recreate``; binds only under the paths allowed for the
    team (422)."""
    found = mounts.refusal(config["services"], deps.settings.bind_roots(team_id))
    if found is not None:
        raise invalid_field(*found)


def check_pre_deploy(config: dict[str, Any]) -> None:
    """The pre-deploy job's service is one of the application's (422 naming the field)."""
    job, names = config.get("pre_deploy") or {}, [s["name"] for s in config.get("services") or []]
    if job.get("service") and not compose_apps.untranslated(config) and job["service"] not in names:
        raise invalid_field("/body/pre_deploy/service", f"the application has no service {job['service']!r}")


def check_source(deps: Deps, config: dict[str, Any], team_id: str | None) -> None:
    """A git source is remote unless local repositories are allowed; the host a git source or an image
    names passes the team's outbound rule (a 422 naming the field and the rule)."""
    source = config["source"]
    if source["kind"] == "git" and not deps.settings.allow_local_git:
        try:
            names.git_url(source["repository"], allow_local=False)
        except ValueError as exc:
            raise invalid_field("/body/source/repository", str(exc)) from None
    policy = deps.settings.outbound_policy_for(team_id)
    if source["kind"] == "git":
        found = outbound_checks.git_refusal(policy, source["repository"])
        if found is not None:
            raise invalid_field("/body/source/repository", found)
    elif source["kind"] == "image":
        found = outbound_checks.image_refusal(policy, source["image"], deps.settings.image_map)
        if found is not None:
            raise invalid_field("/body/source/image", found)


def check_tls(deps: Deps, config: dict[str, Any], hosts: list[HostRow]) -> None:
    """The application's HTTPS options against its hosts and the platform (422 naming the field)."""
    try:
        tls.check(
            config.get("tls"),
            [h.host for h in hosts],
            platform_acme=deps.settings.acme_enabled,
            dns_provider=deps.settings.acme_dns_provider,
            loc="/body/tls",
        )
    except tls.TlsRefused as exc:
        raise invalid_field(exc.field, exc.reason) from None
