"""schemathesis hooks for the CLI run of ``test_schemathesis_cli`` (loaded with ``SCHEMATHESIS_HOOKS``).

- The run's own identity is kept alive: the fuzzer may revoke tokens, demote or remove members, leave and
  delete teams (an admin may, and the api allows it), but not the token, user and team it runs as
  (``BERTH_FUZZ_OWN_IDS``), or every later request would be a 401 and the api's core never reached. Such a
  request goes to an id that does not exist instead.
- Requests stay short: a channel test waits at most 0.5 s, a log is read as text, never followed.
- ``positive_data_acceptance`` holds for every operation but those of ``UNCHECKED`` (each says why).
- ``not_a_server_error`` accepts one 5xx: the documented 503 of an operation that asks the scheduler, which
  the live api of these tests runs without.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from schemathesis.checks import not_a_server_error, positive_data_acceptance

from tests.security.spec import reached_absent_scheduler

OWN_IDS = frozenset(filter(None, os.environ.get("BERTH_FUZZ_OWN_IDS", "").split(",")))
SELF_HARM = ("/v1/tokens/", "/v1/me/tokens/", "/v1/members/", "/v1/me/teams/leave", "/v1/teams/")
NOBODY = "0" * 32

_STATE = "a referenced object of the team and its state"
_GRAMMAR = "text of a grammar of its own"
_TWO_FIELDS = "a rule spanning two fields"
_OUTBOUND = "the outbound rule (an admin's allowance)"
# Operations the server refuses some schema-valid requests of, each for what the schema cannot say.
UNCHECKED = {
    "POST /v1/servers": f"{_GRAMMAR}: an SSH private key (OpenSSH or PEM)",
    "POST /v1/servers/{server_id}/drain": f"{_STATE}: the servers it drains to",
    "GET /v1/applications/{application_id}/logs": f"{_TWO_FIELDS}: until after since",
    "PATCH /v1/applications/{application_id}": "an image reference and a final newline (st reads '$' as Python does)",
    "POST /v1/environments/{environment_id}/applications": f"{_GRAMMAR}: the compose file",
    "POST /v1/templates/deploy": f"{_GRAMMAR}: the template (YAML)",
    "POST /v1/templates/import": f"{_GRAMMAR}: the compose files",
    "POST /v1/environments/{environment_id}/variables/import": f"{_GRAMMAR}: the .env content",
    "PUT /v1/environments/{environment_id}/variables": f"{_STATE}: a value only a stored variable may omit",
    "POST /v1/env-groups": f"{_STATE}: a value only a stored variable may omit",
    "PUT /v1/env-groups/{group_id}/variables": f"{_STATE}: a value only a stored variable may omit",
    "POST /v1/env-groups/{group_id}/variables/import": f"{_GRAMMAR}: the .env content",
    "POST /v1/applications/{application_id}/variables/import": f"{_GRAMMAR}: the .env content",
    "POST /v1/applications/{application_id}/jobs": f"{_GRAMMAR}: the cron expression",
    "PATCH /v1/applications/{application_id}/jobs/{job_id}": f"{_GRAMMAR}: the cron expression",
    "PUT /v1/applications/{application_id}/volumes/{volume}/backup-schedule": f"{_GRAMMAR}: cron, time zone",
    "PUT /v1/databases/{database_id}/backup-schedule": f"{_STATE}: the destinations; cron, time zone",
    "PUT /v1/databases/{database_id}/drill-schedule": f"{_STATE}: the destination; cron, time zone",
    "POST /v1/databases/{database_id}/backups": f"{_STATE}: the destinations",
    "POST /v1/databases/{database_id}/restore": f"{_STATE}: the backup",
    "POST /v1/databases/{database_id}/drills": f"{_STATE}: the backup",
    "POST /v1/databases/{database_id}/upgrade": f"{_STATE}: the version it runs",
    "POST /v1/databases": f"{_GRAMMAR}: addresses and CIDR blocks of the allow-list",
    "PATCH /v1/backup-destinations/{destination_id}": f"{_STATE}: the destination's kind decides its fields",
    "POST /v1/backup-destinations": _OUTBOUND,
    "PUT /v1/applications/{application_id}/webhook/status": _OUTBOUND,
    "POST /v1/registries": _OUTBOUND,
    "POST /v1/swarms": f"{_STATE}: the manager server",
    "POST /v1/invitations/accept": f"{_STATE}: the invitation (revoked, used, expired)",
    "POST /v1/certificates": f"{_TWO_FIELDS}: a team's certificate (no application) names its hosts",
    "POST /v1/alert-rules": f"{_TWO_FIELDS}: metric and scope (down is built in for databases)",
    "PUT /v1/alert-rules/{rule_id}": f"{_TWO_FIELDS}: metric and scope (down is built in for databases)",
    "PUT /v1/applications/{application_id}/services/{service}/autoscale": f"{_TWO_FIELDS}: min <= max",
    "PUT /v1/applications/{application_id}/previews/settings": f"{_GRAMMAR}: the host pattern with {{number}}",
    "POST /v1/notification-channels": f"{_TWO_FIELDS}: the secrets each kind requires, their formats",
    "POST /v1/notification-channels/{channel_id}/subscriptions": "the event families the notifier delivers",
    "POST /v1/webhooks/{webhook_id}": "a forge's event header and signature",
}


@schemathesis.hook
def before_call(ctx: Any, case: Any, kwargs: Any) -> None:
    path = case.operation.path
    if case.method.upper() != "GET" and path.startswith(SELF_HARM):
        if case.path_parameters:
            case.path_parameters = {k: NOBODY if v in OWN_IDS else v for k, v in case.path_parameters.items()}
        if isinstance(case.body, dict):
            case.body = {k: NOBODY if isinstance(v, str) and v in OWN_IDS else v for k, v in case.body.items()}
    if isinstance(case.body, dict) and isinstance(case.body.get("wait_s"), int | float) and case.body["wait_s"] > 0.5:
        case.body = {**case.body, "wait_s": 0.5}
    if path.endswith("/logs"):
        case.query = {**(case.query or {}), "follow": False}


@schemathesis.check
def no_server_error_but_the_absent_scheduler(ctx: Any, response: Any, case: Any) -> bool | None:
    documented = "503" in case.operation.definition.raw.get("responses", {})
    if documented and response.status_code == 503:
        try:
            if reached_absent_scheduler(503, response.json()):
                return None
        except ValueError:
            pass
    return not_a_server_error(ctx, response, case)


@schemathesis.check
def schema_valid_data_accepted(ctx: Any, response: Any, case: Any) -> bool | None:
    if f"{case.method.upper()} {case.operation.path}" in UNCHECKED:
        return None
    return positive_data_acceptance(ctx, response, case)
