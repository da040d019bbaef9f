"""Scaling an application: the replicas of its live version by command, and the autoscaling of its web services.

``scale`` records the replicas on the application (the next deployment keeps them) and stages
``cmd.application.scale`` in the same transaction; the scheduler changes the live version and answers
with ``evt.application.scaled`` (``on_scaled`` records an autoscaler's change). ``set_autoscale`` records a web service's policy and announces it in
``evt.application.autoscale_changed`` (the metrics service keeps the policies and sends the scale
commands, trigger ``auto``).
"""

from __future__ import annotations

import time
from typing import Any

from berth_api.adapters import applications as repo
from berth_api.adapters import deployments as deployments_repo
from berth_api.domain import mounts
from berth_api.domain.compose import published_ports
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError, invalid_field
from berth_api.usecases import Deps
from berth_api.usecases.applications import application_missing, refuse_if_removing
from berth_api.usecases.deployments import run
from berth_common.catalogue import ApplicationScaled, AutoscaleChanged, AutoscalePolicy, ScaleApplication
from berth_common.db import Unit
from berth_common.envelope import new_id
from berth_common.logging import get_logger

log = get_logger(__name__)


async def _locked_app(unit: Unit, principal: Principal, application_id: str) -> dict[str, Any]:
    row = await repo.get_application(unit.session, principal.team_id, application_id, lock=True)
    if row is None:
        raise application_missing(principal, application_id)
    refuse_if_removing(row)
    return row


async def scale(
    deps: Deps,
    principal: Principal,
    application_id: str,
    services: dict[str, int],
    reason: str,
    drain_grace_s: float | None = None,
) -> dict[str, Any]:
    """Record the replicas and send ``cmd.application.scale``; the command as sent (with its request id)."""

    async def body(unit: Unit) -> dict[str, Any]:
        row = await _locked_app(unit, principal, application_id)
        config = row["config"]
        known = {svc["name"] for svc in config["services"]}
        for name in services:
            if name not in known:
                raise invalid_field(f"/body/services/{name}", f"the application has no service {name!r}")
        refused = mounts.scale_refusal(config["services"], services) or published_ports.scale_refusal(config, services)
        if refused is not None:
            raise invalid_field(*refused)
        if (await deployments_repo.live_of(unit.session, [application_id])).get(application_id) is None:
            raise ProblemError(409, f"Application {application_id} has no live deployment to scale (deploy it first).")
        kept = [{**svc, "replicas": services.get(svc["name"], svc.get("replicas", 1))} for svc in config["services"]]
        await repo.update_application(unit.session, application_id, {**config, "services": kept})
        command = ScaleApplication(
            application_id=application_id,
            team_id=principal.team_id,
            request_id=new_id(),
            services=services,
            trigger="manual",
            reason=reason or f"asked by {principal.user_email}",
            drain_grace_s=drain_grace_s,
        )
        await unit.emit(command, id=f"application-scale-{command.request_id}")
        return command.model_dump(mode="json")

    sent = await run(deps, body)
    log.info("scale requested", application_id=application_id, services=services, request_id=sent["request_id"])
    return sent


def _web_service(config: dict[str, Any], service: str) -> dict[str, Any]:
    for svc in config["services"]:
        if svc["name"] == service:
            if svc["kind"] != "web":
                raise invalid_field("/path/service", f"{service!r} is a worker: only web services autoscale")
            return dict(svc)
    raise ProblemError(404, f"The application has no service {service}.")


async def get_autoscale(deps: Deps, principal: Principal, application_id: str, service: str) -> dict[str, Any] | None:
    async with deps.sessionmaker() as s:
        row = await repo.get_application(s, principal.team_id, application_id)
    if row is None:
        raise application_missing(principal, application_id)
    _web_service(row["config"], service)
    policy: dict[str, Any] | None = (row["config"].get("autoscale") or {}).get(service)
    return policy


async def set_autoscale(
    deps: Deps, principal: Principal, application_id: str, service: str, policy: AutoscalePolicy | None
) -> None:
    """Record the service's policy (None: autoscaling off) and announce it to the metrics service."""

    async def body(unit: Unit) -> None:
        row = await _locked_app(unit, principal, application_id)
        config = row["config"]
        svc = _web_service(config, service)
        refused = None if policy is None else mounts.scale_refusal([svc], {service: policy.max})
        if policy is not None and refused is None:
            refused = published_ports.scale_refusal(config, {service: policy.max})
        if refused is not None:
            raise invalid_field("/body/max", refused[1])
        policies = dict(config.get("autoscale") or {})
        if policy is None:
            policies.pop(service, None)
        else:
            policies[service] = policy.model_dump(mode="json")
        await repo.update_application(unit.session, application_id, {**config, "autoscale": policies})
        revision = time.time_ns() // 1000  # grows with every change (microseconds)
        event = AutoscaleChanged(
            application_id=application_id, team_id=principal.team_id, service=service, policy=policy, revision=revision
        )
        await unit.emit(event, id=f"autoscale-{application_id}-{service}-{revision}")

    await run(deps, body)
    log.info("autoscale set", application_id=application_id, service=service, on=policy is not None)


async def on_scaled(msg: ApplicationScaled, unit: Unit) -> None:
    """Keep the autoscaler's replicas as the application's desired state, so that the next deployment runs
    them: a change by the autoscaler (``trigger`` ``auto``) that ended ``scaled`` is recorded when the service
    still wants ``from_replicas`` (compare and set). A person's scale recorded meanwhile, or an answer seen
    again after a newer change, leaves the recorded replicas as they are."""
    if msg.trigger != "auto" or msg.outcome != "scaled":
        return
    row = await repo.get_application(unit.session, msg.team_id, msg.application_id, lock=True)
    if row is None or row.get("state") == "removing":
        return
    config = row["config"]
    services = [dict(svc) for svc in config["services"]]
    for svc in services:
        if svc["name"] == msg.service:
            if svc.get("replicas", 1) != msg.from_replicas:
                log.info(
                    "autoscaled replicas not recorded: the desired replicas changed meanwhile",
                    application_id=msg.application_id,
                    service=msg.service,
                    desired=svc.get("replicas", 1),
                    from_replicas=msg.from_replicas,
                )
                return
            svc["replicas"] = msg.to_replicas
            await repo.update_application(unit.session, msg.application_id, {**config, "services": services})
            log.info("autoscaled replicas recorded", application_id=msg.application_id, service=msg.service)
            return
