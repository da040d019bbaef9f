"""The RBAC matrix, generated from the live OpenAPI: every /v1 operation x every identity.

Expected, from the operation's declared role (``x-berth-role``) and the api's conventions (README: the
role is checked before the resource is looked up; another team's resource is a 404 exactly like a
missing one):

- no token, an expired or a revoked token: 401 (problem+json, ``WWW-Authenticate: Bearer``);
- a role below the declared one, in the resource's own team: 403 (problem+json);
- another team's admin on a path naming this team's resources: 404 (problem+json), the very answer ids
  that exist nowhere get (ids aside); on a collection: an answer that names none of this team's ids;
- a role at or above the declared one: neither 401 nor 403 nor a 5xx, and not 404 (the ids are real);
- a public operation (``anonymous``, e.g. accepting an invitation): neither 401 nor 403 for anyone.

Path parameters are real ids of resources made for the test (``tests.security.spec.Ids``). Mutations run
after reads and deletions last (the deepest resource first), each identity with a valid body so that a
refusal can only come from who is asking.
"""

from __future__ import annotations

import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from berth_api.domain.problems import MEDIA_TYPE
from tests.security.conftest import IDENTITIES, ROLE_OF, UNAUTHENTICATED, LiveApi
from tests.security.spec import PLATFORM_PARAMS, Ids, Operation, Spec, reached_absent_scheduler

RANK = {"viewer": 0, "developer": 1, "admin": 2}
# Requests that change nothing (the matrix's reads, requests refused for who asks) go this many at a time;
# the matrix's mutations after its reads go one at a time, in order.
READERS = 6
PHASE = {"GET": 0, "POST": 1, "PUT": 1, "PATCH": 1, "DELETE": 2}


@dataclass
class Cell:
    op: Operation
    identity: str
    status: int
    problem: str = ""  # empty: as expected


def _problem_json(r: httpx.Response) -> str:
    if r.headers.get("content-type", "").split(";")[0] != MEDIA_TYPE:
        return f"content-type {r.headers.get('content-type')!r}, not {MEDIA_TYPE}"
    body = r.json()
    if body.get("status") != r.status_code or not body.get("type") or not body.get("title"):
        return f"problem body {body!r}"
    return ""


def judge(
    op: Operation,
    identity: str,
    r: httpx.Response,
    *,
    names_team_ids: bool,
    ids_unknown: bool,
    team_ids: set[str],
    gone: bool = False,
) -> str:
    """'' when the answer is the expected one, else what is wrong (the absent scheduler's 503 is judged as an
    answer: the request got that far)."""
    status = r.status_code
    if status == 503 and reached_absent_scheduler(status, _json(r)):
        status = 200
    if status >= 500:
        return f"server error {status}"
    if op.role == "anonymous":  # public (accepting an invitation): whoever asks is not refused for who they are
        return f"public route refused with {status}" if status in (401, 403) else ""
    if op.role not in RANK:
        return f"declares no role (x-berth-role={op.role!r})"
    if identity in UNAUTHENTICATED:
        if status != 401:
            return f"expected 401, got {status}"
        if not r.headers.get("www-authenticate", "").startswith("Bearer"):
            return "401 without WWW-Authenticate: Bearer"
        return _problem_json(r)
    if identity == "other_team" and names_team_ids:
        return _problem_json(r) if status == 404 else f"expected 404 (another team's resource), got {status}"
    if RANK[ROLE_OF[identity]] < RANK[op.role]:
        return (
            _problem_json(r) if status == 403 else f"expected 403 (role {ROLE_OF[identity]} < {op.role}), got {status}"
        )
    if status in (401, 403):
        return f"allowed role {ROLE_OF[identity]} refused with {status}"
    if status == 404 and op.path.startswith("/v1/me/") and identity not in OWNERS:
        return _problem_json(r)  # a person's own resource (a token of the admin's): anyone else's is missing
    if status == 404 and names_team_ids and not ids_unknown and not gone:
        return "allowed role got 404 for an existing resource"
    if identity == "other_team" and status < 300:
        leaked = sorted(i for i in team_ids if i in r.text)
        if leaked:
            return f"another team's answer names this team's ids {leaked}"
    return ""


HEX_ID = re.compile(r"[0-9a-f]{32}")
# Who owns the resources the matrix names under /v1/me/... (the admin's own tokens).
OWNERS = frozenset({"admin"})


def _json(r: httpx.Response) -> object:
    try:
        return r.json()
    except ValueError:
        return None


def same_as_missing(
    client: httpx.Client,
    spec: Spec,
    op: Operation,
    headers: dict[str, str],
    r: httpx.Response,
    shared: dict[str, str] | None = None,
) -> str:
    """'' when another team's resource is answered exactly like ids that exist nowhere (ids aside); path
    parameters naming what every team shares (``shared``: a server, a catalogue template) stay as they were."""
    keep = {p: v for p, v in (shared or {}).items() if p in PLATFORM_PARAMS}
    missing = client.request(
        op.method,
        op.fill({p: keep.get(p) or uuid.uuid4().hex for p in op.path_params}),
        headers=headers,
        params=op.query(spec),
        json=spec.body(op),
    )
    if (missing.status_code, missing.headers.get("content-type")) != (r.status_code, r.headers.get("content-type")):
        return f"another team's resource: {r.status_code}, a missing one: {missing.status_code}"
    if HEX_ID.sub("<id>", missing.text) != HEX_ID.sub("<id>", r.text):
        return f"another team's resource is told from a missing one: {r.text[:160]} vs {missing.text[:160]}"
    return ""


def excuse_invalid_bodies(cells: list[Cell]) -> None:
    """Another team's 422 is no leak when this team's admin got 422 for the same request: the body the
    matrix could make is invalid whoever sends it (validated before the resource is looked up)."""
    admin_422 = {c.op.label for c in cells if c.identity == "admin" and c.status == 422}
    for c in cells:
        if c.identity == "other_team" and c.status == 422 and c.op.label in admin_422:
            c.problem = ""


def order(ops: list[Operation], ids: Ids) -> list[Operation]:
    """Reads, then mutations, then deletions of the most recently made (deepest) resources first."""
    made = list(ids.ids)

    def depth(op: Operation) -> int:
        return max((made.index(p) for p in op.path_params if p in made), default=-1)

    return sorted(ops, key=lambda op: (PHASE.get(op.method, 1), -depth(op) if op.method == "DELETE" else 0))


def summary(cells: list[Cell]) -> str:
    ops = list(dict.fromkeys(c.op.label for c in cells))
    width = max(len(o) for o in ops) + 12
    head = "operation".ljust(width) + "".join(i[:10].rjust(11) for i in IDENTITIES)
    lines = [head, "-" * len(head)]
    grid = {(c.op.label, c.identity): c for c in cells}
    for label in ops:
        role = next(c.op.role for c in cells if c.op.label == label)
        row = f"{label} [{role}]".ljust(width)
        for identity in IDENTITIES:
            cell = grid.get((label, identity))
            row += ("-" if cell is None else f"{cell.status}{'!' if cell.problem else ''}").rjust(11)
        lines.append(row)
    bad = [c for c in cells if c.problem]
    lines.append(f"{len(ops)} operations x {len(IDENTITIES)} identities = {len(cells)} requests, {len(bad)} violations")
    lines += [f"VIOLATION {c.op.label} as {c.identity}: {c.problem}" for c in bad]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def matrix(live_api: LiveApi) -> tuple[list[Cell], Ids]:
    with live_api.client() as client:
        spec = Spec(client.get("/openapi.json").json())
        ids = Ids(spec, client, live_api.admin, ids=dict(live_api.seeds))
        ops = spec.operations()
        paths = {op.label: ids.fill(op) for op in ops}
        team_ids = ids.team_ids() | live_api.team_user_ids

        def ask(op: Operation, identity: str, gone: bool = False) -> Cell:
            r = client.request(
                op.method,
                paths[op.label],
                headers=live_api.headers[identity],
                params=op.query(spec),
                json=spec.body(op),
            )
            problem = judge(
                op,
                identity,
                r,
                names_team_ids=any(p not in PLATFORM_PARAMS for p in op.path_params),
                ids_unknown=any(p in ids.missing for p in op.path_params),
                team_ids=team_ids,
                gone=gone,
            )
            if not problem and identity == "other_team" and r.status_code == 404:
                problem = same_as_missing(client, spec, op, live_api.headers[identity], r, ids.ids)
            return Cell(op, identity, r.status_code, problem)

        ordered = order(ops, ids)
        reads = [op for op in ordered if op.method == "GET"]  # first in the order: they change nothing
        with ThreadPoolExecutor(READERS) as pool:
            cells = list(pool.map(lambda cell: ask(*cell), [(op, who) for op in reads for who in IDENTITIES]))
        for op in ordered[len(reads) :]:  # one at a time: what one changes the next may meet
            gone = False  # a DELETE that succeeded for one identity leaves a 404 for the next
            for identity in IDENTITIES:
                cells.append(ask(op, identity, gone))
                gone = gone or (op.method == "DELETE" and 200 <= cells[-1].status < 300)
    excuse_invalid_bodies(cells)
    text = summary(cells)
    for param, why in ids.missing.items():
        text += f"\n{param}: an unknown id (allowed roles may get 404): {why}"
    print("\n" + text)
    return cells, ids


def test_matrix_has_zero_violations(matrix):
    cells, _ = matrix
    bad = [c for c in cells if c.problem]
    assert not bad, summary(cells)


def test_matrix_covers_every_operation_and_identity(matrix, live_api: LiveApi):
    cells, ids = matrix
    with live_api.client() as client:
        every = {op.label for op in Spec(client.get("/openapi.json").json()).operations()}
    assert {c.op.label for c in cells} == every
    assert len(cells) == len(every) * len(IDENTITIES)
    # the ids are real: nothing the matrix needed is unknown to the api today
    assert {"project_id", "environment_id", "application_id", "deployment_id", "token_id"} <= set(ids.ids)
    assert not {"project_id", "environment_id", "application_id", "deployment_id", "token_id"} & set(ids.missing)


def test_the_judge_catches_violations():
    """The matrix can fail: wrong answers for each kind of identity are reported."""
    op = Operation("DELETE", "/v1/projects/{project_id}", "admin", {})
    problem = {"content-type": MEDIA_TYPE, "www-authenticate": 'Bearer realm="berth"'}
    body = {"type": "urn:x", "title": "t"}

    def answer(status: int, headers: dict[str, str] | None = None, text: str | None = None) -> httpx.Response:
        if text is not None:
            return httpx.Response(status, headers=headers or {}, text=text)
        return httpx.Response(status, headers=problem if headers is None else headers, json={**body, "status": status})

    def j(identity: str, r: httpx.Response, team_ids: set[str] = frozenset()) -> str:  # type: ignore[assignment]
        return judge(op, identity, r, names_team_ids=True, ids_unknown=False, team_ids=set(team_ids))

    assert j("revoked", answer(401)) == ""
    assert "expected 401" in j("revoked", answer(204, {}))
    assert "WWW-Authenticate" in j("no_token", answer(401, {"content-type": MEDIA_TYPE}))
    assert "expected 403" in j("developer", answer(204, {}))
    assert j("developer", answer(403)) == ""
    assert "expected 404" in j("other_team", answer(403))
    assert "content-type" in j("viewer", answer(403, {"content-type": "application/json"}))
    assert "404 for an existing" in j("admin", answer(404))
    assert "server error" in j("admin", answer(500))
    listing = Operation("GET", "/v1/projects", "viewer", {})
    leak = judge(
        listing,
        "other_team",
        answer(200, {}, text='[{"id": "abc"}]'),
        names_team_ids=False,
        ids_unknown=False,
        team_ids={"abc"},
    )
    assert "names this team's ids" in leak
    assert "declares no role" in judge(
        Operation("GET", "/v1/x", None, {}),
        "admin",
        answer(200),
        names_team_ids=False,
        ids_unknown=False,
        team_ids=set(),
    )


def test_who_asks_is_checked_before_the_body_is_read(live_api: LiveApi):
    """A body that is not JSON gets the refusal a valid body gets: 401 without a valid token, 403 for a role
    too low. (Otherwise an unauthenticated client learns how each route parses, and gets the server to.)"""
    asks = []
    with live_api.client() as client:
        spec = Spec(client.get("/openapi.json").json())
        for op in spec.operations():
            if op.body_schema() is None or op.role not in RANK:
                continue
            path = op.fill({p: uuid.uuid4().hex for p in op.path_params})
            refused = {"no_token": 401, "revoked": 401}
            if RANK["viewer"] < RANK[op.role]:
                refused["viewer"] = 403
            asks += [(op, path, identity, expected) for identity, expected in refused.items()]

        def ask(op: Operation, path: str, identity: str, expected: int) -> str:
            headers = {**live_api.headers[identity], "content-type": "application/json"}
            r = client.request(op.method, path, headers=headers, content=b'{"name": ')
            return (
                "" if r.status_code == expected else f"{op.label} as {identity}: {r.status_code}, expected {expected}"
            )

        # several at a time: each is refused before anything is read or changed
        with ThreadPoolExecutor(READERS) as pool:
            wrong = [w for w in pool.map(lambda a: ask(*a), asks) if w]
    assert asks and not wrong, "\n".join(wrong)


def test_a_foreign_resource_told_from_a_missing_one_is_caught():
    """same_as_missing fails when the answer for another team's id differs from the one for a missing id."""
    op = Operation("GET", "/v1/projects/{project_id}", "viewer", {})
    spec = Spec({"paths": {}, "components": {"schemas": {}}})

    def answer(body: str) -> httpx.Response:
        return httpx.Response(404, headers={"content-type": MEDIA_TYPE}, text=body)

    foreign = answer('{"detail": "No project 0123456789abcdef0123456789abcdef in team default."}')
    with httpx.Client(
        base_url="http://127.0.0.1", transport=httpx.MockTransport(lambda req: answer('{"detail": "No such project."}'))
    ) as c:
        assert "told from a missing one" in same_as_missing(c, spec, op, {}, foreign)
    same = '{"detail": "No project %s."}'
    with httpx.Client(
        base_url="http://127.0.0.1", transport=httpx.MockTransport(lambda req: answer(same % req.url.path[-32:]))
    ) as c:
        assert same_as_missing(c, spec, op, {}, answer(same % ("a" * 32))) == ""


def test_another_teams_ids_are_refused_wherever_they_go(live_api: LiveApi):
    """Another team's admin, working on its own resources, names one of this team's ids: in a path next to
    its own ids (attach this team's env group to its app), in a body (subscribe to this team's project,
    roll back to this team's deployment), in a query (list by this team's project). Paths and bodies are
    refused (404/422); a query answers nothing of this team."""
    wrong, tried = [], 0
    with live_api.client() as client:
        spec = Spec(client.get("/openapi.json").json())
        ours = Ids(spec, client, live_api.admin, ids=dict(live_api.seeds))
        theirs = Ids(spec, client, live_api.headers["other_team"], ids={"server_id": "local"})
        ops = [op for op in spec.operations() if op.role in RANK]
        for op in ops:
            ours.fill(op)
            theirs.fill(op)
        team_ids = ours.team_ids() | live_api.team_user_ids
        them = live_api.headers["other_team"]

        def ask(op: Operation, path_ids: dict[str, str], body: Any, params: dict[str, str]) -> httpx.Response:
            return client.request(op.method, op.fill(path_ids), headers=them, json=body, params=params)

        for op in order(ops, theirs):
            body, own = spec.body(op), {**theirs.ids}
            for param in op.path_params:  # one of ours among theirs
                if len(op.path_params) > 1 and param in ours.ids and param not in PLATFORM_PARAMS:
                    tried += 1
                    r = ask(op, {**own, param: ours.ids[param]}, body, op.query(spec))
                    if r.status_code != 404:
                        wrong.append(f"{op.label} with our {param}: {r.status_code} {r.text[:120]}")
            schema = spec.resolve(op.body_schema() or {})
            for prop in (spec.alternatives(schema)[0].get("properties") or {}) if isinstance(body, dict) else {}:
                if prop in ours.ids and prop not in PLATFORM_PARAMS:
                    tried += 1
                    r = ask(op, own, {**body, prop: ours.ids[prop]}, op.query(spec))
                    if r.status_code not in (404, 422):
                        wrong.append(f"{op.label} with our {prop} in the body: {r.status_code} {r.text[:120]}")
            if op.method == "GET":
                for p in op.spec.get("parameters", []):
                    if p.get("in") == "query" and p["name"] in ours.ids and p["name"] not in PLATFORM_PARAMS:
                        tried += 1
                        r = ask(op, own, None, {p["name"]: ours.ids[p["name"]]})
                        leaked = sorted(i for i in team_ids if i in r.text) if r.is_success else []
                        # the absent scheduler's 503 is an answer, as in ``judge``: the request got that far
                        status = 200 if reached_absent_scheduler(r.status_code, _json(r)) else r.status_code
                        if status >= 500 or leaked or status in (401, 403):
                            wrong.append(f"{op.label}?{p['name']}=ours: {r.status_code}, names {leaked}")
    print(f"\ncross-team references: {tried} requests, {len(wrong)} wrong")
    assert tried >= 5, "nothing was tried: no operation takes two ids, an id in its body or in its query"
    assert not wrong, "\n".join(wrong)
