"""``berth deploy`` and ``berth rollback`` follow the deployment's event stream: every build and rollout line
in order, then the end; exit 0 only when the deployment succeeded (a failed or cancelled one: 1)."""

from __future__ import annotations

import json

from tests.api.conftest import bearer


async def _app(berth) -> dict:
    assert (await berth("projects", "create", "acme")).code == 0
    r = await berth("apps", "create", "shop", "--project", "acme", "--image", "nginx:1.27", "--port", "80", "--json")
    assert r.code == 0, r
    return json.loads(r.out)


async def _play(scheduler, start, lines: list[tuple[str, str]]) -> tuple[str, str, str]:
    d = start.data
    for stream, line in lines:
        await scheduler.log(d["deployment_id"], line, stream=stream)
    return d["deployment_id"], d["application_id"], d["team_id"]


ROLLOUT = [
    ("build", "Step 1/2 : FROM nginx:1.27"),
    ("build", "Successfully built 0123abcd"),
    ("deploy", "[starting] starting replicas"),
    ("deploy", "[verifying] replicas started"),
    ("deploy", "[routing] replicas ready"),
]


async def test_deploy_shows_the_rollout_and_exits_0_on_success(logged_in, scheduler):
    berth = logged_in
    app = await _app(berth)
    task = berth.start("deploy", "shop")
    start = (await scheduler.wait_for("cmd.deployment.start"))[0]
    dep, a, _ = await _play(scheduler, start, [*ROLLOUT, ("deploy", "[succeeded] succeeded")])
    await scheduler.run_to_success(start)
    r = await task
    assert (r.code, r.err) == (0, "")
    assert r.out == (
        f"Deployment #1 of shop started ({dep})\n"
        "Step 1/2 : FROM nginx:1.27\n"
        "Successfully built 0123abcd\n"
        "[starting] starting replicas\n"
        "[verifying] replicas started\n"
        "[routing] replicas ready\n"
        "[succeeded] succeeded\n"
        "Deployment #1 of shop succeeded\n"
    )
    assert a == app["id"]

    # The deployment's log afterwards: as text, and followed (it ended: the lines, then how).
    r = await berth("logs", "shop", "--deployment", "1")
    lines = [line for _, line in ROLLOUT] + ["[succeeded] succeeded"]
    assert (r.code, r.out) == (0, "".join(f"{line}\n" for line in lines))
    r = await berth("logs", "shop", "--deployment", dep, "-f")
    assert (r.code, r.out) == (0, "".join(f"{line}\n" for line in lines) + "Deployment #1 of shop succeeded\n")


async def test_a_failed_deployment_exits_1_with_its_reason(logged_in, scheduler):
    berth = logged_in
    await _app(berth)
    task = berth.start("deploy", "acme/shop")
    start = (await scheduler.wait_for("cmd.deployment.start"))[0]
    reason = "web replica 1 did not become ready in 60 s"
    dep, a, team = await _play(scheduler, start, [*ROLLOUT[2:4], ("deploy", f"[failed] {reason}")])
    await scheduler.progressed(dep, a, "failed", reason)
    await scheduler.failed(dep, a, team, reason)
    r = await task
    assert r.code == 1
    assert r.out == (
        f"Deployment #1 of shop started ({dep})\n"
        "[starting] starting replicas\n"
        "[verifying] replicas started\n"
        f"[failed] {reason}\n"
        f"Deployment #1 of shop failed: {reason}\n"
    )


async def test_a_cancelled_deployment_exits_1_and_json_prints_the_deployment(logged_in, scheduler):
    berth = logged_in
    await _app(berth)
    task = berth.start("deploy", "shop", "--json")
    start = (await scheduler.wait_for("cmd.deployment.start"))[0]
    dep, a, team = await _play(scheduler, start, ROLLOUT[:1])
    await scheduler.cancelled(dep, a, team, "cancelled by user")
    r = await task
    assert r.code == 1
    got = json.loads(r.out)
    assert (got["id"], got["status"], got["reason"]) == (dep, "cancelled", "cancelled by user")


async def test_rollback_to_a_number_follows_it(logged_in, scheduler, client, api):
    berth = logged_in
    await _app(berth)
    for n in (1, 2):
        task = berth.start("deploy", "shop")
        start = (await scheduler.wait_for("cmd.deployment.start", count=n))[-1]
        await scheduler.run_to_success(start)
        assert (await task).code == 0
    first = scheduler.of("cmd.deployment.start")[0].data["deployment_id"]
    task = berth.start("rollback", "shop", "--to", "1")
    start = (await scheduler.wait_for("cmd.deployment.start", count=3))[-1]
    dep, *_ = await _play(scheduler, start, [("deploy", "[starting] starting replicas")])
    await scheduler.run_to_success(start)
    r = await task
    assert r.code == 0, r
    assert r.out == (
        f"Rollback #3 of shop started ({dep})\n[starting] starting replicas\nRollback #3 of shop succeeded\n"
    )
    got = (await client.get(f"/v1/deployments/{dep}", headers=bearer(api.admin_token()))).json()
    assert (got["kind"], got["rollback_of"]) == ("rollback", first)

    r = await berth("rollback", "shop", "--to", "#9")
    assert (r.code, r.err) == (1, "berth: Not found: no deployment #9\n")


async def test_deploy_of_a_named_commit_builds_it_and_an_image_app_refuses_one(logged_in, scheduler):
    berth = logged_in
    await _app(berth)
    commit = "0123456789abcdef0123456789abcdef01234567"
    r = await berth("deploy", "shop", "--commit", commit)
    assert r.code == 1 and "/body/commit" in r.err and "built from image, not from git" in r.err, r
    r = await berth("deploy", "shop", "--commit", "main")  # not a full commit id: the API's own refusal
    assert r.code == 1 and "/body/commit" in r.err, r
    args = ("apps", "create", "blog", "--project", "acme", "--git", "https://git.example.com/acme/blog.git")
    assert (await berth(*args, "--branch", "main", "--port", "80")).code == 0
    r = await berth("deploy", "blog", "--commit", commit, "--detach", "--json")
    assert r.code == 0, r
    assert json.loads(r.out)["commit"] == commit
    start = (await scheduler.wait_for("cmd.deployment.start"))[0]
    assert start.data["spec"]["source"]["ref"] == commit
