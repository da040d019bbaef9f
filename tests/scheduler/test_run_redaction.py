"""A secret a run's command echoes leaves the scheduler redacted, on the real scheduler, bus, Postgres and
Docker: a one-off run's ``evt.run.finished``, a cron job run's ``evt.job.failed`` and the alert the notifier
writes from it, and a pre-deploy job's lines in the deployment's log and its failure's reason hold
``[redacted]`` where the command wrote the value."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from berth_common.catalogue import RUN_MAX_LINE_CHARS
from berth_notifier.domain import chat
from berth_notifier.domain.notice import render
from berth_scheduler.domain import runs
from tests.scheduler.platform import worker_app
from tests.scheduler.test_cron_jobs import Seen, job_run, send
from tests.scheduler.test_runs import start_run

pytestmark = [pytest.mark.slow, pytest.mark.docker]
ECHO = "echo token=$TOKEN; sleep 0.2; echo done >&2"


def with_secret(busybox: str, secret: str, job: list[str]) -> dict:
    spec = worker_app(busybox, "v1")
    spec["env"] = [{"name": "TOKEN", "value": secret, "secret": True}]
    spec["pre_deploy"] = {"command": job}
    return spec


def deploy_log(platform, dep: str) -> list[str]:
    return [line["data"]["line"] for line in platform.logs if line["data"]["deployment_id"] == dep]


async def test_a_secret_a_run_echoes_reaches_no_event_log_line_or_alert(platform, busybox, app_id):
    secret = f"s3cret-{uuid.uuid4().hex[:12]}"
    dep = await platform.deploy(app_id, with_secret(busybox, secret, ["sh", "-c", ECHO]))
    assert (await platform.wait(dep))["type"] == "evt.deployment.succeeded"
    assert [line for line in deploy_log(platform, dep) if line.startswith("[pre-deploy] ")][1:3] == [
        "[pre-deploy] token=[redacted]",
        "[pre-deploy] done",
    ]
    seen = await Seen().subscribe(platform.nc)

    run_id = await start_run(platform, app_id, dep, ["sh", "-c", ECHO + "; exit 2"])
    [done] = await seen.wait("evt.run.finished", run_id)
    assert (done["status"], done["exit_code"]) == ("failed", 2)
    assert sorted(done["last_lines"]) == ["done", "token=[redacted]"]

    job = await send(platform, job_run(app_id, dep, "j1", ["sh", "-c", ECHO + "; exit 4"]))
    [failed] = await seen.wait("evt.job.failed", job)
    assert sorted(failed["last_lines"]) == ["done", "token=[redacted]"]
    notice = render("evt.job.failed", failed, event_id="e1", time=datetime.now(UTC), public_url="https://b.example")
    alert = [notice.model_dump_json(), chat.fallback_text(notice), json.dumps(chat.slack(notice))]

    texts = [json.dumps(e) for e in [*platform.events, *platform.logs, *seen.events]] + alert
    assert seen.of("evt.run.finished", job) and all(secret not in text for text in texts)


async def test_a_failing_pre_deploy_job_leaves_the_secret_out_of_the_deployment(platform, busybox, app_id):
    secret = f"s3cret-{uuid.uuid4().hex[:12]}"
    dep = await platform.deploy(app_id, with_secret(busybox, secret, ["sh", "-c", ECHO + "; exit 3"]))
    failed = await platform.wait(dep)
    assert failed["type"] == "evt.deployment.failed", failed
    reason = failed["data"]["reason"]
    assert reason.startswith("the pre-deploy job exited with code 3") and "token=[redacted]" in reason, reason
    assert "[pre-deploy] token=[redacted]" in deploy_log(platform, dep)
    texts = [json.dumps(e) for e in [*platform.events, *platform.logs]]
    assert all(secret not in text for text in texts)


def test_an_outcome_is_redacted_within_the_limits_of_its_event() -> None:
    long = "x" * (RUN_MAX_LINE_CHARS - 2) + "ab"
    result = runs.Outcome("failed", 1, "exited with code 1: ab", ("ab", long))
    out = runs.redacted(result, ["ab", ""])
    assert (out.reason, out.last_lines[0]) == ("exited with code 1: [redacted]", "[redacted]")
    assert len(out.last_lines[1]) == RUN_MAX_LINE_CHARS and "ab" not in out.last_lines[1][-10:]
    assert runs.redacted(result, []) is result
