"""A compose healthcheck naming a secret, against the real engine: the api's translation (the check reads the
secret from the container's environment) as the deployment's snapshot carries it, run by the scheduler's
container bodies. Each service writes the secret it was given another way (its command's argument, its own
variable) to a file at start, and its check compares that file with the secret it names: Docker reports it
healthy and Berth's own health command passes, while the container's healthcheck configuration never holds
the value (a password with spaces and both quotes, in every quoting a check may put it)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest

from berth_api.adapters.compose_parser import normalise
from berth_api.domain.compose import precheck, secret_refs, translate
from berth_api.usecases.compose_snapshot import compose_spec
from berth_common.catalogue import ApplicationSpec
from berth_scheduler.adapters.readiness import NotReadyError, ReadinessChecker
from berth_scheduler.domain import compose, names
from berth_scheduler.domain.containers import container_spec
from berth_scheduler.domain.readiness import ReadinessConfig
from tests.scheduler.test_docker_replicas import run

pytestmark = [pytest.mark.docker]

PASSWORD = 'it\'s a "pa55 w0rd" $HOME'


def _text(image: str) -> str:
    return f"""
services:
  kv:  # redis-server --requirepass ${{PW}} / redis-cli -a ${{PW}} ping
    image: {image}
    command: ["sh", "-c", "printf %s \\"$$1\\" > /tmp/pw && exec sleep 600", "sh", "${{PW}}"]
    healthcheck:
      test: ["CMD", "sh", "-c", "[ \\"$$(cat /tmp/pw)\\" = \\"$$1\\" ]", "sh", "${{PW}}"]
      interval: 200ms
      retries: 3
  db:  # POSTGRES_PASSWORD: ${{PW}} / pg_isready with the password in the check
    image: {image}
    environment: {{POSTGRES_PASSWORD: "${{PW}}"}}
    command: ["sh", "-c", "printf %s \\"$$POSTGRES_PASSWORD\\" > /tmp/pw && exec sleep 600"]
    healthcheck:
      test: ["CMD-SHELL", "[ \\"$$(cat /tmp/pw)\\" = ${{PW}} ] && [ \\"$$(cat /tmp/pw)\\" = \\"${{PW}}\\" ]"]
      interval: 200ms
      retries: 3
"""


async def _snapshot(text: str, image: str) -> ApplicationSpec:
    """The deployment's snapshot of the compose application ``text`` as the api makes it (secret ``PW``)."""
    nonce = uuid.uuid4().hex
    found = await normalise(text, secret_refs.placeholders(["PW"], nonce))
    result = translate(found.model, precheck(text), secrets_nonce=nonce)
    core = [{k: s[k] for k in ("kind", "name", "command", "health_command")} for s in result["services"]]
    spec = ApplicationSpec.model_validate(
        {
            "name": "hcs",
            "source": {"kind": "image", "image": image},
            "services": core,
            "env": [{"name": "PW", "value": PASSWORD, "secret": True}],
        }
    )
    return compose_spec(spec, {"compose": {"inline": text}, "compose_translated": result}, files=[])


async def _health(docker, name: str, deadline: float) -> str:
    while True:
        status = (((await docker.inspect(name)) or {}).get("State") or {}).get("Health", {}).get("Status")
        if status != "starting" or time.time() > deadline:
            return str(status)
        await asyncio.sleep(0.1)


async def test_a_healthcheck_reads_its_secret_from_the_containers_environment(docker, readiness, busybox, app_id):
    spec = await _snapshot(_text(busybox), busybox)
    await docker.ensure_network(compose.network_name(app_id), {"berth.app": app_id})
    deployment = uuid.uuid4().hex
    made = [container_spec(app_id, deployment, spec, svc, 1, busybox) for svc in spec.services]
    for cs in made:
        assert PASSWORD not in json.dumps(cs.body["Healthcheck"])
        await run(docker, cs)
    for cs in made:
        assert await _health(docker, cs.name, time.time() + 15) == "healthy", await docker.inspect(cs.name)
        await readiness.wait_ready(cs, time.time() + 10)  # Berth's own check: the same command, by exec
        config = ((await docker.inspect(cs.name)) or {})["Config"]
        assert PASSWORD not in json.dumps(config["Healthcheck"]), config["Healthcheck"]
        assert config["Healthcheck"]["Test"][:3] == ["CMD", "/bin/sh", "-c"]


async def test_a_failing_check_that_prints_its_secret_is_told_redacted(docker, busybox, app_id):
    """Docker's report of a failing check holds what it printed; the deployment's secret values, which the
    scheduler redacts from every reason and log line it emits, include the variable Berth added for it."""
    text = (
        f"services:\n  kv:\n    image: {busybox}\n    command: ['sleep', '600']\n    healthcheck:\n"
        "      test: ['CMD-SHELL', 'echo \"denied for ${PW}\"; exit 1']\n      interval: 200ms\n      retries: 2\n"
    )
    spec = await _snapshot(text, busybox)
    await docker.ensure_network(compose.network_name(app_id), {"berth.app": app_id})
    (cs,) = [container_spec(app_id, uuid.uuid4().hex, spec, svc, 1, busybox) for svc in spec.services]
    checker = ReadinessChecker(docker, ReadinessConfig(interval_s=0.1, worker_settle_s=30))
    await run(docker, cs)
    try:
        with pytest.raises(NotReadyError) as err:
            await checker.wait_ready(cs, time.time() + 20)
    finally:
        await checker.close()
    reason = str(err.value)
    assert f"denied for {PASSWORD}" in reason, reason  # what Docker recorded, before the scheduler emits it
    told = names.redact(reason, spec.secret_values())
    assert PASSWORD not in told and f"denied for {names.REDACTED}" in told, told
