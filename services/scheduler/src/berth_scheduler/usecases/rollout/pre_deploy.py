"""starting, before any new replica: the application's pre-deploy job (``ApplicationSpec.pre_deploy``).

The job is a one-off container from the deployment's NEW image with the chosen service's environment,
volumes and networks (the body of a run: ``domain/runs.job_spec``), on the first server that service runs
on, prepared first as for its replicas. Its name follows from the deployment (``berth-predeploy-<id>``),
and what to do is read from the engine each time the step runs (``domain/runs.next_step``): made and
started when there is none, started when it was only made, waited for while it runs (its timeout counts
from the engine's start time), read when it exited. A scheduler that restarts mid-job therefore waits for
the same container, and one that restarts after it ended reads its outcome: the job never runs twice.

A compose application whose job takes a service that depends on others runs it just before that
service's start layer, once the services it depends on run (a database the migration needs, say): the
replicas of the earlier layers are then already started (and removed again by the undo when the job
fails).

Its output goes to the deployment's log (``[pre-deploy]`` lines), redacted of the deployment's secret values
as every text the scheduler emits (the failure's reason too). Exit 0 records ``PreDeploySucceeded``
(the readiness deadline starts then) and the replicas start; any other end fails the deployment with the
exit code (or the timeout) and the last lines, before anything of the new version started, so the live
version keeps serving. Its container is removed once the deployment has left ``starting``: after the
replicas started, or by the undo of a failed or cancelled deployment, which stops it first when it still
runs (a cancel).

An engine's crash during the job's start may leave its process running unknown to the engine (a lost task:
``domain/lost_tasks.py``), as for a replica. The job's container has no container record, so a start call of
it that breaks with its engine is marked on its deployment's record (``deployments.job_start_broke``: the
container is the deployment's one, named after it), and its removal runs the helper first when the mark is
there and the engine does not report it running, or when the engine refuses the removal for the task it
still holds (``lost_task.remove``: the replicas' rule and helper). The mark, not the engine's report, tells
such a start: the engine keeps no trace of it (the container is ``created`` as if never started, like one
whose start was never called, which a rule on the report would give the helper too; and once a retried
start is refused for the task the engine holds, the container carries that refusal as an error like any
other), and a mark on the deployment's record needs no row of its own to clean up. A start the engine refuses
for the task it holds has that task's processes ended by the helper and the container made again once
(``lost_task.clear_lost_task``, which clears the mark): the job runs again from its start, said in the
deployment's log, rather than failing a deployment for the engine's crash.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from berth_common.catalogue import ApplicationSpec, WebService, WorkerService
from berth_common.docker import DockerUnavailable
from berth_common.logging import get_logger
from berth_common.redaction import redact, redact_all
from berth_scheduler.adapters import store
from berth_scheduler.adapters.container_exit import wait_exit, written_lines
from berth_scheduler.adapters.docker import DockerExecutor, DockerOperationError
from berth_scheduler.adapters.fleet import ServerRefusedError
from berth_scheduler.domain import app_files, compose, machine, placement
from berth_scheduler.domain import lost_tasks as lost_dom
from berth_scheduler.domain import runs as domain
from berth_scheduler.domain.containers import ContainerSpec
from berth_scheduler.domain.machine import Rollout
from berth_scheduler.domain.routing import LOCAL
from berth_scheduler.usecases import swarm_images
from berth_scheduler.usecases.read_only_files import with_read_only_files
from berth_scheduler.usecases.rollout import lost_task
from berth_scheduler.usecases.rollout.apply import secrets_of
from berth_scheduler.usecases.rollout.context import RolloutContext
from berth_scheduler.usecases.rollout.image_pull import log_lines
from berth_scheduler.usecases.rollout.lost_task import clear_lost_task, remove, start_job
from berth_scheduler.usecases.rollout.steps import prepare_server, read, transit
from berth_scheduler.usecases.volume_dumps import VolumeError

log = get_logger(__name__)
POLL_S = 0.5
PREFIX = "[pre-deploy] "
RESTARTED = (
    "its engine had lost the task of the job's container (an engine crash during its start): what still ran of "
    "it was ended, and the job runs again in a container made again"
)


async def run_job(rt: RolloutContext, r: Rollout, row: Any, network: str | None = None) -> Rollout | None:
    """Run the deployment's pre-deploy job to its end (or find its end): the rollout to go on with (as it
    was when there is no job), None when the deployment failed. ``network``: the only network it joins (a
    Swarm's overlay network, the job running on its manager)."""
    spec = rt.sealer.open(row.spec)
    job = spec.pre_deploy
    if job is None:
        return r
    secrets = secrets_of(rt.sealer, row)
    service = domain.job_service(spec, job.service)
    if service is None:
        reason = f"the pre-deploy job's service {job.service!r} is not a service of the application"
        await transit(rt, r.deployment_id, machine.Fail(reason))
        return None
    server = next((s.server_id for s in placement.slots(spec) if s.service.name == service.name), LOCAL)
    await prepare_server(rt, r, spec, server)
    cs = domain.job_spec(
        r.deployment_id, r.application_id, r.team_id, spec, service, r.run_image, list(job.command), server
    )
    if network is not None:
        cs = domain.on_network(cs, network)
    docker = await rt.fleet.docker(server)
    broke = bool(row.job_start_broke)
    try:
        for attempt in range(2):  # a start refused for a lost task: that task ended, the job made again once
            step = domain.next_step("queued", await docker.inspect(cs.name))
            if step is domain.Step.CREATE and network is not None:  # on a Swarm's manager: the image may be missing
                missing = await swarm_images.on_manager(docker, r.run_image, spec.source)
                if missing is not None:
                    await _fail(rt, r, domain.redacted(domain.lost(missing), secrets), job.timeout_s)
                    return None
            if step is domain.Step.CREATE:
                await _create(rt, r, docker, spec, service, cs, server, secrets)
                step = domain.Step.START
            if step is domain.Step.START:  # a start call the engine's going away breaks is marked on the deployment
                try:
                    await start_job(rt, docker, r.deployment_id, cs.name, broke=broke)
                except DockerOperationError as exc:
                    if attempt or not lost_task.lost(exc):
                        raise
                    await clear_lost_task(rt, server, docker, cs.name, job_of=r.deployment_id)
                    await log_lines(rt, r.deployment_id, [PREFIX + RESTARTED])
                    broke = False
                    continue
            break
    except DockerOperationError as exc:
        if exc.status not in (400, 404, 409, 500):
            raise
        lost = domain.redacted(domain.lost(str(exc)), secrets)
        await _fail(rt, r, lost, job.timeout_s)  # a command it cannot run, say
        return None
    info = await docker.inspect(cs.name)
    began = (domain.started_at(info) if info is not None else None) or rt.clock()
    timed_out = await wait_exit(docker, cs.name, began + job.timeout_s, rt.clock, POLL_S)
    info = await docker.inspect(cs.name)
    if info is None:
        await _fail(rt, r, domain.lost("its container is gone (removed outside Berth)"), job.timeout_s)
        return None
    lines = await written_lines(docker, cs.name, info, domain.JOB_LOG_LINES)
    lines = redact_all(lines, secrets)
    result = domain.outcome(info, lines, timed_out_after=job.timeout_s if timed_out else None)
    result = domain.redacted(result, secrets)  # the engine's error text too
    await log_lines(rt, r.deployment_id, [PREFIX + line for line in lines])
    if result.status != "succeeded":
        await _fail(rt, r, result, job.timeout_s)
        return None
    await log_lines(rt, r.deployment_id, [f"{PREFIX}exited with code 0"])
    after = await transit(
        rt, r.deployment_id, machine.PreDeploySucceeded(f"{' '.join(job.command)}: exited with code 0")
    )
    log.info("pre-deploy job succeeded", deployment_id=r.deployment_id, container=cs.name)
    return after


async def _create(
    rt: RolloutContext,
    r: Rollout,
    docker: DockerExecutor,
    spec: ApplicationSpec,
    service: WebService | WorkerService,
    cs: ContainerSpec,
    server: str,
    secrets: list[str],
) -> None:
    """Make the job's container (its read-only files, networks and files in place) and log its command."""
    job = spec.pre_deploy
    assert job is not None
    made = await with_read_only_files(docker, r.application_id, r.team_id, spec, service, cs)
    await docker.create_or_find(made)
    for network, aliases in made.connects:
        await docker.connect_network(network, compose.connect_body(made.name, aliases))
    files = app_files.archive(spec, service, read_only=False)
    if files is not None:  # the files its service mounts
        await docker.put_archive(made.name, "/", files)
    shown = redact(" ".join(job.command), secrets)
    await log_lines(rt, r.deployment_id, [f"{PREFIX}running {shown} (service {service.name}, {server})"])


def runs_first(spec: ApplicationSpec) -> bool:
    """Whether the job runs before any replica starts: its service is in the first start layer (every
    application of services, and a compose service that depends on none). Otherwise it runs just before
    its service's layer, once the services it depends on run (``before_layer``)."""
    job = spec.pre_deploy
    service = domain.job_service(spec, job.service) if job is not None else None
    return service is None or service.name in compose.layers(spec)[0]


class PreDeployFailedError(Exception):
    """The job failed (the deployment was failed with its reason): no more replicas start."""


def before_layer(rt: RolloutContext, r: Rollout, row: Any) -> Callable[[list[str]], Awaitable[float | None]]:
    """The job as the step before its service's start layer: the readiness deadline it restarted (None
    for another layer); raises ``PreDeployFailedError`` when it failed."""
    spec = rt.sealer.open(row.spec)
    job = spec.pre_deploy
    service = domain.job_service(spec, job.service) if job is not None else None

    async def before(layer: list[str]) -> float | None:
        if service is None or service.name not in layer:
            return None
        after = await run_job(rt, r, row)
        if after is None:
            raise PreDeployFailedError(r.deployment_id)
        return after.deadline_at

    return before


async def _fail(rt: RolloutContext, r: Rollout, result: domain.Outcome, timeout_s: int) -> None:
    reason = domain.job_failure(result, timeout_s)
    await log_lines(rt, r.deployment_id, [PREFIX + reason.splitlines()[0]])
    log.info("pre-deploy job failed", deployment_id=r.deployment_id, reason=reason.splitlines()[0])
    await transit(rt, r.deployment_id, machine.Fail(reason[:3500]))


async def remove_job(rt: RolloutContext, deployment_id: str, servers: Sequence[str]) -> bool:
    """Stop (a job still running: a cancel) and remove the deployment's job container wherever it is, the
    helper first where its start may have left a lost task (``lost_task.remove``, the state the engine
    reported before the stop); a server that does not answer keeps it, and so does one where the helper
    could not run (best effort: never fails a deployment; logged). True: one was removed."""
    name = domain.job_container_name(deployment_id)
    removed = False
    for server in dict.fromkeys([LOCAL, *servers]):
        with contextlib.suppress(DockerUnavailable, DockerOperationError, ServerRefusedError, VolumeError):
            docker = await rt.fleet.docker(server)
            info = await docker.inspect(name)
            if info is None:
                continue
            broke = deployment_id in await read(rt, store.broken_jobs, [deployment_id])
            job = lost_dom.inspected(name, info, broke)
            if (info.get("State") or {}).get("Running"):
                await docker.stop(name, domain.STOP_GRACE_S)
            try:
                await remove(rt, server, docker, [job])
            except (DockerOperationError, VolumeError) as exc:
                log.warning(
                    "a pre-deploy job's container not removed", container=name, server_id=server, error=str(exc)
                )
                raise
            removed = True
    return removed
