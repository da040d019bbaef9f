"""A compose service's restart policy, translated exactly (each file normalised by the real parser first):
``deploy.restart_policy`` takes the place of ``restart`` as ``docker compose up`` reads it (Dokploy's erpnext and
frappe blueprints), its ``max_attempts`` and ``restart: on-failure:<n>`` are the retries of ``on-failure``, and
what Docker has no policy for is refused naming the key. The deployment's snapshot carries the retries."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import make_app
from tests.api.test_compose_translate import _refusal, _translated

ERPNEXT_SHAPED = """
x-custom-image: &custom_image
  image: redis:7-alpine
  deploy:
    restart_policy:
      condition: always

services:
  backend:
    <<: *custom_image
  configurator:
    <<: *custom_image
    command: ["true"]
    deploy:
      restart_policy:
        condition: none
"""


def _service(text: str) -> tuple[dict[str, Any], list[str]]:
    got = _translated(text)
    (svc,) = got["services"]
    return svc, got["notes"]


def _one(policy: str, restart: str | None = None) -> str:
    own = f"    restart: {restart}\n" if restart else ""
    return f"services:\n  job:\n    image: redis:7-alpine\n{own}    deploy:\n      restart_policy:\n{policy}"


def test_an_erpnext_shaped_stack_gets_each_services_condition() -> None:
    got = _translated(ERPNEXT_SHAPED)
    assert [(s["name"], s["restart"]) for s in got["services"]] == [("backend", "always"), ("configurator", "no")]
    assert not any("restart_retries" in s for s in got["services"])
    assert got["restart_policy"] == "unless-stopped"  # two policies: each service keeps its own
    assert got["notes"] == []


@pytest.mark.parametrize(
    ("condition", "policy"),
    [("none", "no"), ("on-failure", "on-failure"), ("any", "always"), ("unless-stopped", "unless-stopped")],
)
def test_each_condition_is_dockers_restart_policy(condition: str, policy: str) -> None:
    svc, notes = _service(_one(f"        condition: {condition}\n"))
    assert svc["restart"] == policy
    assert "restart_retries" not in svc
    assert notes == []


def test_a_policy_without_condition_restarts_as_the_specification_says() -> None:
    svc, notes = _service(_one("        delay: 5s\n        window: 2m\n"))
    assert svc["restart"] == "always"  # the compose specification's default condition: any
    assert notes == [
        "services/job/deploy/restart_policy/delay: not carried: Docker restarts a container with its own back-off",
        "services/job/deploy/restart_policy/window: not carried: Docker restarts a container with its own back-off",
    ]


def test_max_attempts_are_the_retries_of_on_failure() -> None:
    svc, notes = _service(_one("        condition: on-failure\n        max_attempts: 3\n", restart="always"))
    assert (svc["restart"], svc["restart_retries"]) == ("on-failure", 3)
    assert notes == ["services/job/restart: not carried: deploy.restart_policy takes its place, as in compose"]
    unlimited, _ = _service(_one("        condition: on-failure\n        max_attempts: 0\n"))
    assert (unlimited["restart"], unlimited["restart_retries"]) == ("on-failure", 0)


def test_max_attempts_of_another_condition_is_noted() -> None:
    svc, notes = _service(_one("        condition: any\n        max_attempts: 3\n"))
    assert svc["restart"] == "always" and "restart_retries" not in svc
    assert notes == [
        "services/job/deploy/restart_policy/max_attempts: not carried: Docker limits the restarts of the "
        "condition on-failure only"
    ]


def test_restart_on_failure_with_a_count_keeps_it() -> None:
    svc, _ = _service("services:\n  job:\n    image: redis:7-alpine\n    restart: on-failure:4\n")
    assert (svc["restart"], svc["restart_retries"]) == ("on-failure", 4)
    plain, _ = _service("services:\n  job:\n    image: redis:7-alpine\n    restart: on-failure\n")
    assert plain["restart"] == "on-failure" and "restart_retries" not in plain


@pytest.mark.parametrize(
    ("text", "spot", "why"),
    [
        (
            _one("        condition: sometimes\n"),
            "services/job/deploy/restart_policy/condition",
            "one of none, no, on-failure, any, always, unless-stopped",
        ),
        (
            _one("        condition: on-failure\n        max_attempts: 3000000000\n"),
            "services/job/deploy/restart_policy/max_attempts",
            "a whole number from 0 (no limit) to 2147483647",
        ),
        (
            "services:\n  job:\n    image: redis:7-alpine\n    restart: always:3\n",
            "services/job/restart",
            "on-failure:<retries> (a whole number up to 2147483647) or one of no, always, unless-stopped, on-failure",
        ),
    ],
)
def test_what_docker_has_no_policy_for_is_refused_by_name(text: str, spot: str, why: str) -> None:
    refused = _refusal(text)
    assert (refused.spot, refused.why) == (spot, why)


async def test_the_deployments_snapshot_carries_each_services_policy_and_retries(client, members, scheduler) -> None:
    text = ERPNEXT_SHAPED.replace(
        "        condition: none\n", "        condition: on-failure\n        max_attempts: 2\n"
    )
    app = await make_app(client, members.developer, {"name": "erp", "compose": {"inline": text}})
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    (cmd,) = await scheduler.wait_for("cmd.deployment.start", 1)
    sent = cmd.data["spec"]
    assert sent["restart_policy"] == "unless-stopped"
    got = [(s["name"], s.get("restart"), s.get("restart_retries")) for s in sent["services"]]
    assert got == [("backend", "always", None), ("configurator", "on-failure", 2)]
