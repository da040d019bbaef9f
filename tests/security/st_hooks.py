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
from tests.security.st_unchecked import UNCHECKED

OWN_IDS = frozenset(filter(None, os.environ.get("BERTH_FUZZ_OWN_IDS", "").split(",")))
SELF_HARM = ("/v1/tokens/", "/v1/me/tokens/", "/v1/members/", "/v1/me/teams/leave", "/v1/teams/")
NOBODY = "0" * 32


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
