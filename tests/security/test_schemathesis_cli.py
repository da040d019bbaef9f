"""schemathesis' own CLI, as an outside tester runs it, over the whole live api with an admin's token:
``st run --checks all`` with its examples, fuzzing and stateful phases. Its answer must be no failure,
every operation of the OpenAPI reached (at least one answer that is neither 401, 403 nor 429: the request
got past authentication and every limiter), and links of the stateful phase followed.

Bounded: few examples per operation, the stateful phase by time. ``test_fuzz`` runs many more cases
through schemathesis' Python API with real ids.

Checks left out, each for a reason:
- ``not_a_server_error``: replaced by ``st_hooks.no_server_error_but_the_absent_scheduler`` (this api runs
  without the scheduler; its documented 503 is the right answer here).
- ``positive_data_acceptance`` (a body the schema allows is one the server takes): replaced by
  ``st_hooks.schema_valid_data_accepted``, the same check but for the operations of ``st_hooks.UNCHECKED``,
  where the api checks what a JSON Schema cannot say (a referenced backup, destination, server or
  invitation of the team, a cron expression, a compose file, a rule spanning two fields, the outbound rule
  of the configuration). The rest the OpenAPI says (``tests/api/test_schema_rules.py``). It runs in the
  seeded examples and fuzzing phases; the stateful phase is bounded by time, so its requests differ from
  run to run, and it is left out there.
- ``negative_data_rejection``: unknown query parameters are ignored by design, and a request without the
  token is no negative case here (the token header is added to every request). Booleans and date-time
  queries are strict now (``tests/api/test_strict_booleans.py``, ``test_query_timestamps.py``).
- The coverage phase: its deterministic boundary cases are mostly negative ones (the check above), and it
  alone takes minutes over 185 operations.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.security.conftest import LiveApi
from tests.security.st_unchecked import UNCHECKED

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
ST = Path(sys.executable).parent / "st"
EXCLUDED = ("not_a_server_error", "positive_data_acceptance", "negative_data_rejection")
NOT_REACHED = (401, 403, 429)
METHODS = ("get", "put", "post", "patch", "delete")


def _st(
    live_api: LiveApi, own: list[str], report: Path, *args: str, exclude: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.security.st_hooks", "BERTH_FUZZ_OWN_IDS": ",".join(own)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))  # the hooks' package
    env.pop("PYTEST_CURRENT_TEST", None)
    cmd = [
        str(ST),
        "run",
        f"{live_api.url}/openapi.json",
        "--checks",
        "all",
        "--exclude-checks",
        ",".join((*EXCLUDED, *exclude)),
        "--header",
        f"Authorization: {live_api.admin['Authorization']}",
        "--no-shrink",
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--seed",
        "1",
        "--report",
        "har",
        "--report-har-path",
        str(report),
        *args,
    ]
    # in the run's directory: st keeps files of its own there (.schemathesis/)
    return subprocess.run(cmd, cwd=report.parent, env=env, capture_output=True, text=True, timeout=300, check=False)


def _operation_of(method: str, url: str, templates: list[tuple[str, re.Pattern[str]]]) -> str | None:
    """The OpenAPI operation a request went to (a concrete path before a templated one)."""
    path = "/" + url.split("/", 3)[3].split("?", 1)[0]
    found = sorted((p.count("{"), p) for p, rx in templates if rx.fullmatch(path))
    return f"{method} {found[0][1]}" if found else None


def test_st_run_checks_all_reaches_every_operation_without_a_failure(live_api: LiveApi, tmp_path: Path):
    with live_api.client() as client:
        doc = client.get("/openapi.json").json()
        me = client.get("/v1/me", headers=live_api.admin).json()
    own = [me["token"]["id"], me["user"]["id"], me["team"]["id"]]
    operations = {f"{m.upper()} {p}" for p, item in doc["paths"].items() for m in item if m in METHODS}
    templates = [(p, re.compile(re.sub(r"\{[^}]+\}", "[^/]+", p))) for p in doc["paths"]]
    assert sorted(set(UNCHECKED) - operations) == []  # each name is an operation of the OpenAPI

    unit = _st(live_api, own, tmp_path / "unit.har", "--phases", "examples,fuzzing", "--max-examples", "2")
    # The stateful phase is bounded by time, so what it sends differs from run to run: valid data's acceptance
    # is checked in the seeded examples and fuzzing (the same requests every run), not there.
    stateful = _st(
        live_api,
        own,
        tmp_path / "stateful.har",
        "--phases",
        "stateful",
        "--max-time",
        "25",
        exclude=("schema_valid_data_accepted",),
    )

    for run in (unit, stateful):  # st exits non-zero on any failure (and on an error of its own)
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    links = re.search(r"API Links:\s+(\d+) covered", stateful.stdout)
    assert links and int(links.group(1)) >= 3, stateful.stdout[-3000:]

    reached: Counter[str] = Counter()
    answered: Counter[str] = Counter()
    for har in (tmp_path / "unit.har", tmp_path / "stateful.har"):
        for entry in json.loads(har.read_text())["log"]["entries"]:
            label = _operation_of(entry["request"]["method"], entry["request"]["url"], templates)
            if label in operations:
                answered[label] += 1
                reached[label] += entry["response"]["status"] not in NOT_REACHED
    missing = sorted(op for op in operations if not reached[op])
    print(
        f"\nst run: {len(operations)} operations, {len(operations) - len(missing)} reached, "
        f"{sum(answered.values())} requests, {links.group(1)} links followed"
    )
    assert not missing, f"answered only 401/403/429 (or not at all): {missing}"
    me_after = live_api.client().get("/v1/me", headers=live_api.admin)
    assert me_after.status_code == 200  # the run's own token survived it
