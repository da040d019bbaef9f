"""The dashboard with 1,000 applications, in Chromium: how long the overview takes to render on the server,
how much JS and CSS an application's page loads, and how soon the overview paints.

nats-server, Postgres and ``berth-api`` run as real processes (``benchmarks/support/api_server.py``, logs at
WARNING); the team's 1,000 applications are created through the API (``bench_api.seed``) and a tenth of them
deployed once (no scheduler runs, so those deployments stay queued: each application of the list still
carries its newest one). A person signs in with the admin token through the sign-in form.

- ``app_list_1000_ms_p50``: ``GET /ui/`` (the overview: every project, environment and application with
  its last deployment) with the session cookie, one request at a time, median of ``SAMPLES`` after a
  warm-up: the server-side render, on loopback. ``app_list_1000_cold_ms_p50`` is the same right after a
  change to an application (the REST API's list page rebuilt, not from its cache), and
  ``rest_list_1000_cold_ms_p50`` that rebuild alone (``GET /v1/applications?limit=1000`` after a change).
- ``app_list_1000_cold_ratio``: the overview right after a change to an application over the overview
  again at once (medians of ``PAIRS`` pairs, interleaved): what a change costs the next overview, measured
  against a baseline of the same run, so a busy shared machine moves both alike.
- ``app_page_kb``: the JS and CSS an application's page loads in Chromium, each gzip-compressed (level 6,
  what a compressing proxy sends), summed, in KB.
- ``first_paint_ms``: Chromium's ``first-contentful-paint`` of the overview of 1,000 applications (median of
  ``PAINTS`` loads, the session already open).
"""

from __future__ import annotations

import gzip
import os
import statistics
import time
from typing import Any

import httpx

from benchmarks.bench_api import seed
from benchmarks.support.api_server import running_api

NAME = "dashboard"
GOALS = {"app_list_1000_ms_p50": ("<=", 300.0), "app_page_kb": ("<=", 150.0), "app_list_1000_cold_ratio": ("<=", 2.0)}
APPLICATIONS = 1000
DEPLOYED = 100
SAMPLES = 15
COLD = 5
PAIRS = 20  # cold and warm overviews interleaved, for their ratio
PAINTS = 5
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


async def sign_in(url: str, token: str) -> str:
    """The session cookie, from the sign-in form as a browser sends it."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        csrf = (await http.get("/ui/signin")).cookies["berth_csrf"]
        r = await http.post("/ui/signin", data={"csrf": csrf, "token": token}, headers={"Cookie": f"berth_csrf={csrf}"})
        if r.status_code != 303:
            raise RuntimeError(f"sign-in answered {r.status_code}: {r.text[:300]}")
        return str(r.cookies["berth_session"])


async def deploy_some(url: str, token: str, count: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as c:
        apps = (await c.get("/v1/applications", params={"limit": count})).json()
        for app in apps:
            (await c.post(f"/v1/applications/{app['id']}/deployments", json={})).raise_for_status()


async def overview_times(url: str, session: str, token: str, n: int, cold: bool) -> tuple[list[float], int]:
    """Milliseconds per ``GET /ui/`` (after a change to an application when ``cold``), and the links to
    applications the last one held."""
    times: list[float] = []
    links = 0
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, cookies={"berth_session": session}, timeout=60) as http:
        first = (await http.get("/v1/applications", params={"limit": 1}, headers=headers)).json()[0]["id"]
        for i in range(n):
            if cold:
                body = {"stop_timeout_s": 10 + i % 2}
                (await http.patch(f"/v1/applications/{first}", json=body, headers=headers)).raise_for_status()
            start = time.perf_counter()
            r = await http.get("/ui/")
            times.append((time.perf_counter() - start) * 1000)
            if r.status_code != 200:
                raise RuntimeError(f"/ui/ answered {r.status_code}")
            links = r.text.count('href="/ui/applications/')
    return times, links


async def cold_and_warm(url: str, session: str, token: str, n: int) -> tuple[list[float], list[float]]:
    """Milliseconds per ``GET /ui/`` right after a change to an application (cold) and again at once (warm),
    ``n`` pairs interleaved, so both meet the same load on a shared machine: their ratio is what a change
    costs the next overview, whatever the machine's speed at the time."""
    cold: list[float] = []
    warm: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, cookies={"berth_session": session}, timeout=60) as http:
        first = (await http.get("/v1/applications", params={"limit": 1}, headers=headers)).json()[0]["id"]
        for i in range(n):
            body = {"stop_timeout_s": 20 + i % 2}
            (await http.patch(f"/v1/applications/{first}", json=body, headers=headers)).raise_for_status()
            for times in (cold, warm):
                start = time.perf_counter()
                r = await http.get("/ui/")
                times.append((time.perf_counter() - start) * 1000)
                if r.status_code != 200:
                    raise RuntimeError(f"/ui/ answered {r.status_code}")
    return cold, warm


async def rest_list_cold(url: str, token: str, n: int) -> list[float]:
    """Milliseconds per ``GET /v1/applications?limit=1000`` right after a change to an application: the part
    of a cold overview that is the REST API rebuilding its page."""
    times: list[float] = []
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
        first = (await c.get("/v1/applications", params={"limit": 1})).json()[0]["id"]
        for i in range(n):
            (await c.patch(f"/v1/applications/{first}", json={"stop_timeout_s": 11 + i % 2})).raise_for_status()
            start = time.perf_counter()
            (await c.get("/v1/applications", params={"limit": APPLICATIONS})).raise_for_status()
            times.append((time.perf_counter() - start) * 1000)
    return times


async def in_chromium(url: str, session: str, app_id: str) -> dict[str, Any]:
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
            host = url.split("://", 1)[1].split(":")[0]
            await ctx.add_cookies([{"name": "berth_session", "value": session, "domain": host, "path": "/"}])
            page = await ctx.new_page()
            assets: dict[str, int] = {}

            async def kept(response: Any) -> None:
                if response.request.resource_type in ("script", "stylesheet") and response.ok:
                    assets[response.url] = len(gzip.compress(await response.body(), 6))

            page.on("response", kept)
            await page.goto(f"{url}/ui/applications/{app_id}", wait_until="load")
            await page.wait_for_timeout(200)  # the last response bodies read
            paints = []
            for _ in range(PAINTS):
                await page.goto(f"{url}/ui/", wait_until="load")
                fcp = await page.evaluate(
                    "() => (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || null"
                )
                if fcp is not None:
                    paints.append(float(fcp))
            return {"assets": assets, "paints": paints}
        finally:
            await browser.close()


async def run() -> dict[str, Any]:
    async with running_api("dashboard") as (_root, _infra, api):
        token = api.admin_token()
        started = time.monotonic()
        await seed(api.url, token, APPLICATIONS)
        await deploy_some(api.url, token, DEPLOYED)
        seed_s = time.monotonic() - started
        session = await sign_in(api.url, token)
        await overview_times(api.url, session, token, 2, cold=False)  # warm-up: templates, caches, pools
        warm, links = await overview_times(api.url, session, token, SAMPLES, cold=False)
        cold, _ = await overview_times(api.url, session, token, COLD, cold=True)
        rest_cold = await rest_list_cold(api.url, token, COLD)
        pair_cold, pair_warm = await cold_and_warm(api.url, session, token, PAIRS)
        async with httpx.AsyncClient(base_url=api.url, headers={"Authorization": f"Bearer {token}"}) as c:
            app_id = (await c.get("/v1/applications", params={"limit": 1})).json()[0]["id"]
            html = await c.get("/ui/", cookies={"berth_session": session})
        browser = await in_chromium(api.url, session, app_id)
        if not api.alive():
            raise RuntimeError(f"the api died:\n{api.log_tail()}")
        assets = browser["assets"]
        return {
            "app_list_1000_ms_p50": round(statistics.median(warm), 1),
            "app_list_1000_ms_max": round(max(warm), 1),
            "app_list_1000_cold_ms_p50": round(statistics.median(cold), 1),
            "rest_list_1000_cold_ms_p50": round(statistics.median(rest_cold), 1),
            "app_list_1000_cold_ratio": round(statistics.median(pair_cold) / statistics.median(pair_warm), 2),
            "app_page_kb": round(sum(assets.values()) / 1024, 1),
            "app_page_assets": {u.rsplit("/ui/", 1)[-1]: round(b / 1024, 1) for u, b in sorted(assets.items())},
            "first_paint_ms": round(statistics.median(browser["paints"]), 1) if browser["paints"] else None,
            "overview_links": links,
            "overview_html_kb": round(len(html.content) / 1024, 1),
            "overview_html_gzip_kb": round(len(gzip.compress(html.content, 6)) / 1024, 1),
            "applications": APPLICATIONS,
            "deployed": DEPLOYED,
            "seed_s": round(seed_s, 1),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }
