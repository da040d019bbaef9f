"""schemathesis against the live api (a separate ``berth-api`` process, an admin's token).

Every operation of the OpenAPI gets generated requests: valid ones with the ids of real resources, valid
ones with random ids, and invalid ones (negative mode) with real ids; each answer must be no 5xx, a
documented status code, a documented content type, a body and headers that match the documented schema,
and invalid input refused. Then the stateful run chains operations along the links schemathesis infers
(a created project's id into its environments, ...). At least ``MIN_CASES`` requests in total, bounded
by ``EXAMPLES`` per operation with Hypothesis' deadline off and no shrinking (a failure reports the
request that failed, with a curl line).

(schemathesis' own pytest integration, ``schema.parametrize()``, does not run under pytest 9 with the
installed 4.x: it sets ``_nodeid`` on the test item, which pytest 9 no longer has. The operations are
parametrized here instead, from the same OpenAPI the api serves.)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from berth_api.entrypoints.http import create_app
from berth_api.settings import ApiSettings
from tests.security.conftest import LiveApi
from tests.security.spec import Ids, Spec, reached_absent_scheduler


@schemathesis.check
def no_server_error_but_the_absent_scheduler(ctx: Any, response: Any, case: Any) -> bool | None:
    """``not_a_server_error``, except the documented 503 of an operation that asks the scheduler, which this
    live api runs without (deployments stay queued): that answer is the right one here, and its problem
    document names the scheduler."""
    documented = "503" in case.operation.definition.raw.get("responses", {})
    if documented and response.status_code == 503 and reached_absent_scheduler(503, response.json()):
        return None
    return not_a_server_error(ctx, response, case)


CHECKS = [
    no_server_error_but_the_absent_scheduler,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Not negative_data_rejection: the token header is added to every request (so a "negative" case without
# it is not one), and unknown query parameters are ignored by design; the injection sweep covers refusals.
MIN_CASES = 1000
# Generate only: a replay (shrinking) of a scenario meets a different api state, which Hypothesis reports as
# a flaky strategy rather than the failure; the failing check is recorded as it ran.
STATEFUL = settings(
    max_examples=25,
    stateful_step_count=6,
    deadline=None,
    database=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)
PHASE_DELETE_LAST = {"DELETE": 1}


def _labels() -> list[str]:
    """The operations, from the api's own OpenAPI (deletions last: they remove what others read)."""
    doc = create_app(ApiSettings(http_port=0)).openapi()
    labels = [f"{m.upper()} {p}" for p, item in doc["paths"].items() for m in item if m != "parameters"]
    return sorted(labels, key=lambda label: PHASE_DELETE_LAST.get(label.split()[0], 0))


OPERATIONS = _labels()
# Per operation: a quarter over the minimum spread over them (operations with few inputs run fewer).
EXAMPLES = max(15, math.ceil(MIN_CASES * 1.25 / len(OPERATIONS)))
COUNTS: Counter[str] = Counter()
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fuzz_target(live_api: LiveApi) -> Iterator[tuple[Any, dict[str, str]]]:
    """The schema as schemathesis loads it from the running api, and real ids for its path parameters."""
    schema = schemathesis.openapi.from_url(f"{live_api.url}/openapi.json")
    with live_api.client() as client:
        spec = Spec(client.get("/openapi.json").json())
        ids = Ids(spec, client, live_api.admin, ids=dict(live_api.seeds))
        for op in spec.operations():
            ids.fill(op)
    yield schema, dict(ids.ids)


def _prepare(case: Any) -> None:
    if isinstance(case.body, dict) and isinstance(case.body.get("wait_s"), int | float) and case.body["wait_s"] > 0.5:
        case.body = {**case.body, "wait_s": 0.5}  # a channel test waits that long for its outcome: keep it short
    if case.operation.path.endswith("/logs"):
        # a log stream of a deployment that never ends would be read forever: ask for the text form
        case.query = {**(case.query or {}), "follow": False}
        if case.headers:
            case.headers = {k: v for k, v in case.headers.items() if k.lower() != "accept"}


@pytest.mark.parametrize("label", OPERATIONS)
def test_operation(label: str, fuzz_target, live_api: LiveApi):
    schema, ids = fuzz_target
    method, path = label.split(" ", 1)
    operation = schema[path][method]
    real = {name: ids[name] for name in ids if "{" + name + "}" in path} or None
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=real),
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=real),
    )

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def run(case: Any) -> None:
        _prepare(case)
        COUNTS[label] += 1
        case.call_and_validate(headers=live_api.admin, checks=CHECKS, timeout=20)

    run()
    assert COUNTS[label] > 0


def test_stateful_links(fuzz_target, live_api: LiveApi):
    """Sequences along the links schemathesis infers from the OpenAPI (ids from one answer into the next)."""
    schema, _ = fuzz_target
    machine = schema.as_state_machine()
    steps = Counter[str]()
    failures: list[str] = []

    class Workflow(machine):  # type: ignore[misc,valid-type]
        def before_call(self, case: Any) -> None:
            _prepare(case)
            steps[case.operation.label] += 1

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": live_api.admin, "timeout": 20}

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            try:
                case.validate_response(response, checks=CHECKS, headers=live_api.admin)
            except FailureGroup as exc:
                failures.append(f"{case.operation.label}: {exc}")
                raise

    try:
        Workflow.run(settings=STATEFUL)
    except Flaky:
        # The api's state moved on between scenarios, so Hypothesis saw a rule's availability change (an
        # empty bundle); schemathesis' own runner counts that as a pass too. A check failure was recorded.
        pass
    COUNTS["stateful"] += sum(steps.values())
    print(f"\nstateful: {sum(steps.values())} calls over {len(steps)} operations")
    assert not failures, "\n\n".join(failures)
    assert len(steps) > 1, "no links were followed"


def test_at_least_min_cases_were_generated():
    if set(OPERATIONS) - set(COUNTS):
        pytest.skip("only part of the operations ran (selected with -k)")
    total = sum(COUNTS.values())
    print(f"\nschemathesis: {total} requests over {len(COUNTS)} operations: {dict(COUNTS)}")
    assert total >= MIN_CASES


def test_the_checks_can_fail(fuzz_target):
    """A body that breaks the documented schema, an undocumented status, a 5xx and an undocumented content
    type are each reported; a conforming answer is not."""
    schema, _ = fuzz_target
    case = schema["/v1/me"]["GET"].Case()
    request = httpx.Request("GET", "http://127.0.0.1/v1/me")
    wrong = [
        httpx.Response(200, json={"user": "nobody"}, request=request),  # not a Me
        httpx.Response(418, json={}, request=request),  # not documented
        httpx.Response(500, text="Internal Server Error", request=request),
        httpx.Response(200, text="<html>", headers={"content-type": "text/html"}, request=request),
    ]
    for response in wrong:
        response.elapsed = timedelta(milliseconds=5)  # set by a real transport
        with pytest.raises(FailureGroup):
            case.validate_response(response, checks=CHECKS)
    me = {
        "user": {"id": "u", "email": "a@example.com", "name": "a"},
        "team": {"id": "t", "name": "default"},
        "role": "admin",
        "token": {"id": "k", "name": "bootstrap"},
    }
    right = httpx.Response(200, json=me, request=request)
    right.elapsed = timedelta(milliseconds=5)
    case.validate_response(right, checks=CHECKS)  # and a conforming answer passes
