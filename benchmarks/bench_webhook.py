"""Git forge webhooks: signed deliveries to ``berth-api`` as a real separate process.

nats-server and Postgres start from the project's launchers in a temporary directory; the api runs from its
console script with the default debounce (``BERTH_WEBHOOK_DEBOUNCE_S``, 3 s) and without a scheduler, so a
deployment stays queued where it is counted. A git application and its webhook are made through the API.

- ``verify_p99_ms``: signed GitHub pings one at a time (each its own delivery id), sent to the answer
  ``pong``: the body read, the forge identified, the secret opened, the HMAC over the raw body compared,
  the delivery id recorded. Also ``verify_only_p99_us``: the domain's verification alone, in process, over
  a 16 KiB push body.
- A burst: ``PUSHES`` signed pushes of different commits within ``BURST_S`` seconds; after the debounce
  the application has ``deploys`` deployments (goal: exactly one), of the newest commit (``newest``).
- ``push_to_queued_ms_p50``: single pushes (each to its own application), from sending the push to its
  deployment being recorded as queued (the debounce included; ``debounce_s`` says how long it is).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
import uuid
from typing import Any

import httpx

from benchmarks.support.api_server import running_api
from berth_api.domain.forges import identify, sign, verify

NAME = "webhook"
DEBOUNCE_S = 3.0  # the api's default
GOALS = {
    "deploys": ("<=", 1.0),
    "newest": (">=", 1.0),
    "verify_p99_ms": ("<=", 50.0),
    "push_to_queued_ms_p50": ("<=", DEBOUNCE_S * 1000 + 1000),
}
PUSHES = 10
BURST_S = 2.0
PINGS = 300
SINGLES = 5
APP = {
    "source": {"kind": "git", "repository": "https://git.example.com/acme/shop.git", "branch": "main"},
    "services": [{"kind": "web", "name": "web", "port": 8080}],
}


def push_body(sha: str, n: int) -> bytes:
    commit = {"id": sha, "message": f"change {n}", "added": [], "removed": [], "modified": [f"src/f{n}.py"]}
    doc = {
        "ref": "refs/heads/main",
        "before": "0" * 39 + "1",
        "after": sha,
        "commits": [commit],
        "head_commit": commit,
        "repository": {"full_name": "acme/shop", "default_branch": "main"},
    }
    return json.dumps(doc).encode()


def github(secret: str, raw: bytes, event: str = "push") -> dict[str, str]:
    h = {"Content-Type": "application/json", "X-GitHub-Event": event, "X-GitHub-Delivery": str(uuid.uuid4())}
    return h | sign("github", secret, raw)


async def hooked_app(client: httpx.AsyncClient, env_id: str, name: str) -> tuple[str, str, str]:
    """(application id, delivery path, secret) of a new git application with a webhook."""
    r = await client.post(f"/v1/environments/{env_id}/applications", json={"name": name, **APP})
    r.raise_for_status()
    app_id = r.json()["id"]
    r = await client.post(f"/v1/applications/{app_id}/webhook")
    r.raise_for_status()
    return app_id, httpx.URL(r.json()["url"]).path, r.json()["secret"]


async def deployments(client: httpx.AsyncClient, app_id: str) -> list[dict[str, Any]]:
    r = await client.get(f"/v1/applications/{app_id}/deployments")
    r.raise_for_status()
    return list(r.json())


async def first_deployment(client: httpx.AsyncClient, app_id: str, timeout: float = 60.0) -> float:
    """When the application's first deployment was seen (monotonic), polled every 10 ms."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await deployments(client, app_id):
            return time.monotonic()
        await asyncio.sleep(0.01)
    raise TimeoutError(f"no deployment of {app_id} after {timeout}s")


def verify_only_us(secret: str, samples: int = 2000) -> list[float]:
    raw = push_body("a" * 40, 1) + b" " * (16 * 1024)
    headers = {k.lower(): v for k, v in github(secret, raw).items()}
    delivery = identify(headers)
    assert delivery is not None
    out = []
    for _ in range(samples):
        t0 = time.perf_counter()
        assert verify(delivery, headers, secret, raw)
        out.append((time.perf_counter() - t0) * 1e6)
    return out


def p99(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.99) - 1)]


async def measure(url: str, token: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        r = await client.post("/v1/projects", json={"name": "bench-hooks"})
        r.raise_for_status()
        env_id = r.json()["environments"][0]["id"]
        app_id, path, secret = await hooked_app(client, env_id, "burst")
        async with httpx.AsyncClient(base_url=url, timeout=30) as forge:  # no token: the signature is all
            ping = json.dumps({"zen": "Design for failure.", "hook_id": 1}).encode()
            pings = []
            for _ in range(PINGS):
                t0 = time.perf_counter()
                r = await forge.post(path, content=ping, headers=github(secret, ping, "ping"))
                pings.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200 and r.json()["result"] == "pong", r.text
            shas = [f"{n:040x}" for n in range(1, PUSHES + 1)]
            burst_start = time.monotonic()
            for n, sha in enumerate(shas, 1):
                raw = push_body(sha, n)
                r = await forge.post(path, content=raw, headers=github(secret, raw))
                assert r.status_code == 202, r.text
                await asyncio.sleep(max(0.0, burst_start + n * BURST_S / PUSHES - time.monotonic()))
            burst_s = time.monotonic() - burst_start
            await first_deployment(client, app_id)
            await asyncio.sleep(DEBOUNCE_S + 2)  # anything else would have been queued by now
            burst = await deployments(client, app_id)
            singles = []
            for i in range(SINGLES):
                one, one_path, one_secret = await hooked_app(client, env_id, f"single-{i}")
                raw = push_body(f"{i + 100:040x}", i)
                t0 = time.monotonic()
                r = await forge.post(one_path, content=raw, headers=github(one_secret, raw))
                assert r.status_code == 202, r.text
                singles.append((await first_deployment(client, one) - t0) * 1000)
    return {
        "verify_p99_ms": round(p99(pings), 2),
        "verify_p50_ms": round(statistics.median(pings), 2),
        "push_to_queued_ms_p50": round(statistics.median(singles), 1),
        "push_to_queued_ms": [round(v, 1) for v in singles],
        "pushes": PUSHES,
        "burst_s": round(burst_s, 2),
        "deploys": len(burst),
        "newest": 1.0 if [d["commit"] for d in burst] == [shas[-1]] else 0.0,
        "deployed_commit": burst[0]["commit"] if burst else None,
        "debounce_s": DEBOUNCE_S,
        "pings": PINGS,
    }


async def run() -> dict[str, Any]:
    async with running_api("webhook", {"BERTH_WEBHOOK_DEBOUNCE_S": str(DEBOUNCE_S)}) as (_root, _infra, api):
        load_before = os.getloadavg()[0]
        result = await measure(api.url, api.admin_token())
        verify_us = verify_only_us("bwhs_" + uuid.uuid4().hex)
        if not api.alive():
            raise RuntimeError(f"the api died:\n{api.log_tail()}")
        return {
            **result,
            "verify_only_p99_us": round(p99(verify_us), 1),
            "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        }
