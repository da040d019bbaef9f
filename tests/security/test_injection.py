"""Hostile strings in every string field of every POST/PUT/PATCH body the OpenAPI describes.

For each operation, each valid base body (``tests.security.payloads``) is sent once as a control (it must
be accepted), then once per string field x payload with only that field replaced. Every answer must be:

- a 422 problem+json (rejected), or
- a 2xx that returns the payload exactly as given (stored inert; write-only fields excepted), or
- the same refusal the control got (e.g. 409 for a rollback with nothing to roll back to);

never a 5xx, never a stack trace, never the content of a file outside the data dir. Afterwards no file
was created by a payload (``/tmp/pwn``), and the canary file outside the data dir is untouched.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from berth_api.domain.problems import MEDIA_TYPE
from tests.security.conftest import KEEP_ALIVE, LiveApi
from tests.security.payloads import (
    PATH_IDS,
    PWN,
    Context,
    base_for,
    bases_for,
    generic,
    payloads,
    secret_variable,
    string_leaves,
    string_paths,
    with_value,
    write_only,
)
from tests.security.spec import Ids, Operation, Spec, leaves

CONCURRENCY = 4
pytestmark = pytest.mark.slow
LEAKS = ("Traceback (most recent call last)", 'File "/', "root:x:0:0")


@dataclass
class Outcome:
    label: str  # "METHOD path #base field payload"
    status: int
    verdict: str  # rejected | inert | as-control | VIOLATION: ...


@dataclass
class Sweep:
    outcomes: list[Outcome] = field(default_factory=list)
    exercised: dict[str, set[tuple[Any, ...]]] = field(default_factory=dict)  # op -> generic field paths
    declared: dict[str, set[tuple[Any, ...]]] = field(default_factory=dict)  # op -> string paths in the schema
    unusable: list[str] = field(default_factory=list)  # base bodies the api refused (their fields untested)
    texts: list[str] = field(default_factory=list)  # every answer, for the leak checks

    @property
    def violations(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.verdict.startswith("VIOLATION")]

    def summary(self) -> str:
        counts = Counter(o.verdict if not o.verdict.startswith("VIOLATION") else "VIOLATION" for o in self.outcomes)
        lines = [f"{len(self.outcomes)} injected requests: {dict(counts)}"]
        for op, declared in self.declared.items():
            missed = sorted(map(str, declared - self.exercised.get(op, set())))
            lines.append(f"  {op}: {len(declared & self.exercised.get(op, set()))}/{len(declared)} string fields")
            if missed:
                lines.append(f"    not exercised: {', '.join(missed)}")
        lines += [f"  unusable base: {u}" for u in self.unusable]
        lines += [f"VIOLATION {o.label} -> {o.status}: {o.verdict}" for o in self.violations[:60]]
        return "\n".join(lines)


def _names_field(r: httpx.Response, path: tuple[Any, ...]) -> bool:
    """A problem+json refusal whose ``errors`` point at the injected field (a 404 for an unknown code)."""
    if r.headers.get("content-type", "").split(";")[0] != MEDIA_TYPE:
        return False
    pointer = "/body/" + "/".join(map(str, path))
    return any(e.get("loc") == pointer for e in (r.json().get("errors") or []))


def judge(r: httpx.Response, payload: str, path: tuple[Any, ...], control: int, *, hidden: bool) -> str:
    """rejected | inert | not-echoed | as-control, or VIOLATION: why."""
    if r.status_code >= 500:
        return f"VIOLATION: server error {r.text[:200]}"
    if r.status_code == 422:
        ctype = r.headers.get("content-type", "").split(";")[0]
        return "rejected" if ctype == MEDIA_TYPE else f"VIOLATION: 422 as {ctype}"
    if 400 <= r.status_code < 500 and _names_field(r, path):
        return "rejected"
    if 200 <= r.status_code < 300:
        if hidden:
            return "inert"
        try:
            answer = leaves(r.json())
        except ValueError:
            return "VIOLATION: accepted, answer is not JSON"
        if any(v == payload for _, v in answer):
            return "inert"
        same_key = [v for p, v in answer if p and p[-1] == path[-1] and isinstance(v, str)]
        if not same_key:
            return "not-echoed"  # the answer has no such field (a cancel reason, a .env file's text)
        where = "/".join(map(str, path))
        return f"VIOLATION: accepted but returned changed (field {where}: {payload!r:.60} -> {same_key!r:.120})"
    if r.status_code == control:
        return "as-control"
    return f"VIOLATION: {r.status_code} (control got {control}): {r.text[:200]}"


async def run_sweep(api: LiveApi, canary: Path) -> Sweep:
    sweep = Sweep()
    hostile = payloads(str(canary))
    sem = asyncio.Semaphore(CONCURRENCY)
    with api.client(timeout=30) as sync:
        spec = Spec(sync.get("/openapi.json").json())
        ids = Ids(spec, sync, api.admin, ids=dict(api.seeds))
        targets = [op for op in spec.operations() if op.method in ("POST", "PUT", "PATCH") and op.body_schema()]
        for op in targets:
            ids.fill(op)  # make what the paths name
        ctx = Context(sync, api.admin, ids.ids)

        async with httpx.AsyncClient(base_url=api.url, timeout=30, headers=api.admin, limits=KEEP_ALIVE) as client:

            async def send(op: Operation, base: dict[str, Any], body: Any) -> httpx.Response:
                url = op.fill({**ids.ids, **base.get(PATH_IDS, {})})
                async with sem:
                    r = await client.request(op.method, url, json=body)
                sweep.texts.append(r.text)
                return r

            async def one(op: Operation, index: int, path: tuple[Any, ...], name: str, control: int) -> None:
                schema = op.body_schema() or {}
                # fresh names, and fresh resources made for this body only: an accepted body is no conflict
                # (made in a thread over the blocking client: the other jobs' requests go on meanwhile)
                async with sem:
                    base = await asyncio.to_thread(base_for, spec, schema, ctx, index)
                body = {k: v for k, v in base.items() if k != PATH_IDS}
                payload = hostile[name]
                r = await send(op, base, with_value(body, path, payload))
                hidden = write_only(spec, schema, path) or secret_variable(body, path)
                label = f"{op.label} #{index} {'/'.join(map(str, path))} {name}"
                sweep.outcomes.append(Outcome(label, r.status_code, judge(r, payload, path, control, hidden=hidden)))

            for op in targets:
                schema = op.body_schema() or {}
                sweep.declared[op.label] = string_paths(spec, schema)
                if not sweep.declared[op.label]:
                    continue
                jobs, done = [], sweep.exercised.setdefault(op.label, set())
                bases = bases_for(spec, schema, ctx)
                bodies = [{k: v for k, v in base.items() if k != PATH_IDS} for base in bases]
                # the controls of the bases that bring a field the ones before do not, sent at once: what the
                # loop below sends when every control is usable (one that is not sends its own then)
                ahead, seen = [], set()
                for index, body in enumerate(bodies):
                    if new := {generic(p) for p in string_leaves(body)} - seen:
                        ahead.append(index)
                        seen |= new
                sent = dict(zip(ahead, await asyncio.gather(*(send(op, bases[i], bodies[i]) for i in ahead))))
                for index, (base, body) in enumerate(zip(bases, bodies, strict=True)):
                    fields = [p for p in string_leaves(body) if generic(p) not in done]
                    if not fields:
                        continue
                    control = sent[index] if index in sent else await send(op, base, body)
                    if control.status_code >= 300 and control.status_code != 409:
                        sweep.unusable.append(f"{op.label} #{index}: {control.status_code} {control.text[:300]}")
                        continue
                    for path in fields:  # each field once per operation (env/0/value, not env/1/value too)
                        done.add(generic(path))
                        jobs += [one(op, index, path, name, control.status_code) for name in hostile]
                await asyncio.gather(*jobs)
    return sweep


def _pwn_state() -> tuple[float, int] | None:
    try:
        st = os.stat(PWN)
    except FileNotFoundError:
        return None
    return (st.st_mtime, st.st_size)


@pytest.fixture(scope="module")
async def swept(live_api: LiveApi):
    canary_dir = Path(tempfile.mkdtemp(prefix="berth-canary-"))
    canary = canary_dir / "canary.txt"
    secret = f"canary-{uuid.uuid4().hex}"
    canary.write_text(secret + "\n")
    digest = hashlib.sha256(canary.read_bytes()).hexdigest()
    pwn_before = _pwn_state()
    try:
        sweep = await run_sweep(live_api, canary)
        print("\n" + sweep.summary())
        yield sweep, canary_dir, secret, digest, pwn_before
    finally:
        shutil.rmtree(canary_dir, ignore_errors=True)


def test_every_answer_is_a_rejection_or_stored_inert(swept):
    sweep = swept[0]
    assert sweep.outcomes, "nothing was injected"
    assert not sweep.violations, sweep.summary()


def test_every_string_field_of_every_body_was_exercised(swept):
    sweep = swept[0]
    assert not sweep.unusable, sweep.summary()
    missed = {op: declared - sweep.exercised.get(op, set()) for op, declared in sweep.declared.items()}
    assert not {op: m for op, m in missed.items() if m}, sweep.summary()
    # the fields the issue names are among them
    app = sweep.exercised["POST /v1/environments/{environment_id}/applications"]
    for wanted in [
        ("name",),
        ("source", "repository"),
        ("source", "branch"),
        ("source", "subdirectory"),
        ("source", "dockerfile"),
        ("source", "image"),
        ("services", "*", "domains", "*"),
        ("services", "*", "command", "*"),
        ("env", "*", "name"),
        ("env", "*", "value"),
        ("source", "build_args", "*", "value"),
    ]:
        assert wanted in app, wanted


def test_nothing_ran_and_nothing_outside_the_data_dir_was_read_or_written(swept, live_api: LiveApi):
    sweep, canary_dir, secret, digest, pwn_before = swept
    assert _pwn_state() == pwn_before, f"{PWN} was created or changed by the sweep"
    assert [p.name for p in canary_dir.iterdir()] == ["canary.txt"]
    assert hashlib.sha256((canary_dir / "canary.txt").read_bytes()).hexdigest() == digest
    leaked = [t[:200] for t in sweep.texts if secret in t or any(leak in t for leak in LEAKS)]
    assert not leaked, leaked
    # the services wrote only inside their own directories of this run
    run = live_api.data_dir.parent
    strays = [p for p in run.rglob("*") if "pwn" in p.name or "canary" in p.name]
    assert not strays, strays


def test_the_judge_can_fail():
    ok = httpx.Response(201, json={"env": [{"name": "A", "value": "x; touch /tmp/pwn"}]})
    assert judge(ok, "x; touch /tmp/pwn", ("env", 0, "value"), 201, hidden=False) == "inert"
    changed = httpx.Response(201, json={"env": [{"name": "A", "value": "x"}]})
    assert "returned changed" in judge(changed, "x; touch /tmp/pwn", ("env", 0, "value"), 201, hidden=False)
    assert "server error" in judge(httpx.Response(500, text="boom"), "p", ("x",), 201, hidden=False)
    assert judge(httpx.Response(202, json={"id": "1"}), "p", ("reason",), 202, hidden=False) == "not-echoed"
    refused = httpx.Response(
        404, headers={"content-type": MEDIA_TYPE}, json={"errors": [{"loc": "/body/code", "detail": "no such code"}]}
    )
    assert judge(refused, "p", ("code",), 201, hidden=False) == "rejected"
    assert "control got 201" in judge(refused, "p", ("name",), 201, hidden=False)
    plain = httpx.Response(422, json={"detail": []})
    assert "422 as application/json" in judge(plain, "p", ("x",), 201, hidden=False)
    conflict = httpx.Response(409, headers={"content-type": MEDIA_TYPE}, content=b"{}")
    assert judge(conflict, "p", ("x",), 409, hidden=False) == "as-control"
    assert "control got 201" in judge(httpx.Response(404, text=json.dumps({})), "p", ("x",), 201, hidden=False)
