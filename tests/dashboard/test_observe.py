"""The observing pages in a real browser (Debian's chromium through Playwright) against one in-process api
per module, the scheduler and the metrics service played on the bus: an application's runtime logs (the last
lines, then followed live as the scheduler publishes them), its metrics charts per service and per server
over a picked range, a server's charts, alerts (firing and resolved, rules created and deleted from the
page); a viewer sees no rule form and the REST API refuses a forged one; no secret and no console error on
any page."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from berth_common.bus import Bus
from berth_common.catalogue import (
    AlertListReply,
    AlertRuleDeleteReply,
    AlertRuleListReply,
    AlertRuleReply,
    AlertRuleView,
    AlertView,
    FollowedLines,
    FollowLogsReply,
    MetricsReply,
    RuntimeLogLine,
    RuntimeLogsReply,
    SeriesData,
)
from tests.api.conftest import bearer
from tests.dashboard.test_dashboard import sign_in
from tests.support.browser import chromium, screenshot

pytestmark = [pytest.mark.slow]

SECRET = "s3cr3t-observe-value"
SERVERS = {"web": ("local", "vm-a"), "worker": ("b" * 32, "edge-1")}


class MetricsDouble:
    """The metrics service on the bus: series of two containers (one per service, on two servers), a
    server's series, the team's rules kept in memory, one firing and one resolved alert."""

    def __init__(self, url: str) -> None:
        self.bus = Bus("metrics", url)
        self.queries: list[dict[str, Any]] = []
        self.rules: dict[str, AlertRuleView] = {}
        self.created: list[dict[str, Any]] = []

    async def start(self, app_id: str) -> MetricsDouble:
        await self.bus.connect()
        self.app_id = app_id
        for name, handler in (
            ("query", self.query),
            ("alert_rule.list", self.list_rules),
            ("alert_rule.create", self.create_rule),
            ("alert_rule.delete", self.delete_rule),
            ("alert.list", self.alerts),
        ):
            await self.bus.serve(name, handler)
        return self

    async def query(self, data: dict[str, Any]) -> MetricsReply:
        self.queries.append(data)
        start = datetime.fromisoformat(data["start"])
        end = datetime.fromisoformat(data["end"]) if data.get("end") else datetime.now(UTC)
        times = [start + (end - start) * i / 20 for i in range(21)]
        series = []
        for metric in data["metrics"]:
            if data["target_kind"] == "server":
                points = [(t, 10.0 + i) for i, t in enumerate(times)]
                unit = "percent" if metric == "cpu_pct" else "bytes"
                series.append(
                    SeriesData(
                        key="vm-a", kind="server", name="vm-a", server="vm-a", metric=metric, unit=unit, points=points
                    )
                )
                continue
            for n, (service, (server_id, server)) in enumerate(SERVERS.items()):
                grow = 1000.0 * (n + 1) if metric.startswith("net") else 0.0
                points = [(t, (20.0 * (n + 1) + i) if not grow else grow * i) for i, t in enumerate(times)]
                series.append(
                    SeriesData(
                        key=f"c{n}",
                        kind="container",
                        name=f"x-{service}-1",
                        server=server,
                        server_id=server_id,
                        labels={"app": self.app_id, "service": service},
                        metric=metric,
                        unit="percent" if metric == "cpu_pct" else "bytes",
                        points=points,
                    )
                )
        return MetricsReply(resolution="raw", step_s=60, start=start, end=end, series=series)

    async def list_rules(self, data: dict[str, Any]) -> AlertRuleListReply:
        return AlertRuleListReply(rules=[r for r in self.rules.values() if r.team_id == data["team_id"]])

    async def create_rule(self, data: dict[str, Any]) -> AlertRuleReply:
        self.created.append(data)
        now = datetime.now(UTC)
        rule = AlertRuleView(
            **data["rule"], id=f"{len(self.created):032x}", team_id=data["team_id"], created_at=now, updated_at=now
        )
        self.rules[rule.id] = rule
        return AlertRuleReply(rule=rule)

    async def delete_rule(self, data: dict[str, Any]) -> AlertRuleDeleteReply:
        return AlertRuleDeleteReply(deleted=self.rules.pop(data["rule_id"], None) is not None)

    async def alerts(self, data: dict[str, Any]) -> AlertListReply:
        now = datetime.now(UTC)

        def alert(n: int, status: str) -> AlertView:
            return AlertView(
                alert_id=str(n) * 32,
                rule_id="r" * 32,
                team_id=data["team_id"],
                target_kind="app",
                target_id=self.app_id,
                metric="mem_pct",
                status=status,  # type: ignore[arg-type]
                value=93.5,
                peak=97.25,
                threshold=90,
                since=now - timedelta(minutes=5),
                raised_at=now - timedelta(minutes=4),
                resolved_at=None if status == "firing" else now,
            )

        return AlertListReply(alerts=[alert(1, "firing"), alert(2, "resolved")])


@pytest.fixture(scope="module")
async def observed(dashboard):
    """An application with a secret, its replicas' log lines served by the played scheduler, and the
    metrics service played."""
    async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(dashboard.admin)) as admin:
        project = (await admin.post("/v1/projects", json={"name": "watch"})).json()
        body = {
            "name": "watched",
            "source": {"kind": "image", "image": "nginx:1.27"},
            "services": [{"kind": "web", "name": "web", "port": 80}, {"kind": "worker", "name": "worker"}],
            "env": [{"name": "API_KEY", "value": SECRET, "secret": True}],
        }
        r = await admin.post(f"/v1/environments/{project['environments'][0]['id']}/applications", json=body)
        assert r.status_code == 201, r.text
        app = r.json()
    follows: list[dict[str, Any]] = []
    now = datetime.now(UTC)

    def line(n: int, service: str) -> RuntimeLogLine:
        return RuntimeLogLine(
            service=service,
            replica=f"x-{service}-1",
            server_id="local",
            stream="stdout",
            time=now,
            line=f"{service} line {n}",
        )

    async def tail(data: dict[str, Any]) -> RuntimeLogsReply:
        lines = [line(n, s) for n in range(3) for s in ("web", "worker") if data.get("service") in ("", None, s)]
        return RuntimeLogsReply(lines=lines)

    async def follow(data: dict[str, Any]) -> FollowLogsReply:
        follows.append(data)
        return FollowLogsReply(found=data.get("service") != "worker", containers=1)  # the worker has none

    await dashboard.scheduler.bus.serve("runtime_logs", tail)
    await dashboard.scheduler.bus.serve("follow_logs", follow)
    metrics = await MetricsDouble(dashboard.scheduler.url).start(app["id"])
    try:
        yield app, follows, metrics
    finally:
        await metrics.bus.close()


async def test_logs_metrics_and_alerts_in_the_browser(dashboard, observed):
    app, follows, metrics = observed
    pages: dict[str, str] = {}
    async with chromium() as browser:
        ctx = await browser.context(viewport={"width": 1280, "height": 900})
        page = await sign_in(ctx, dashboard.url, dashboard.developer)

        # Runtime logs: the last lines of every replica, then one service's, then followed live.
        await page.goto(f"{dashboard.url}applications/{app['id']}")
        await page.get_by_role("link", name="Logs", exact=True).click()
        await page.locator("#runtime-log", has_text="worker line 2").wait_for()
        assert "web line 0" in await page.locator("#runtime-log").text_content()
        pages["logs"] = page.url
        await page.get_by_label("Service").select_option("web")
        await page.get_by_label("Follow live").check()
        await page.get_by_role("button", name="Show").click()
        await page.wait_for_url(re.compile(r"/logs\?service=web&follow=1$"))
        await page.wait_for_function("document.getElementById('runtime-log').dataset.open === '1'")
        for _ in range(100):  # the page's stream is open; the api asks the scheduler to follow right after
            if follows:
                break
            await asyncio.sleep(0.05)
        asked = follows[-1]
        assert asked["service"] == "web"
        batch = FollowedLines(
            lines=[
                RuntimeLogLine(
                    service="web", replica="x-web-1", server_id="local", stream="stderr", line="live and well"
                )
            ]
        )
        await dashboard.scheduler.bus.nc.publish(asked["inbox"], batch.model_dump_json().encode())
        await page.locator("#runtime-log", has_text="web/x-web-1 live and well").wait_for()
        await screenshot(page, "observe-logs-follow")

        # Metrics: the application's CPU, memory and network per service, then per server, over 6 hours.
        await page.get_by_role("link", name="Metrics", exact=True).click()
        await page.get_by_role("link", name="watched", exact=True).click()
        await page.locator("svg.chart").first.wait_for()
        pages["app-metrics"] = page.url
        titles = await page.locator("figcaption h2").all_text_contents()
        assert titles == ["CPU by service", "Memory by service", "Network in by service", "Network out by service"]
        assert await page.locator("svg.chart").count() == 4
        assert set(await page.locator("svg.chart polyline").evaluate_all("ls => ls.map(l => l.dataset.line)")) == {
            "web",
            "worker",
        }
        cpu = await page.locator("#chart-0 title").text_content()
        assert "web 40.0 %" in cpu and "worker 60.0 %" in cpu  # the latest values, in words
        net = await page.locator("#chart-2 title").text_content()
        assert "/s" in net  # a counter is charted as a rate
        await screenshot(page, "observe-app-metrics")
        await page.get_by_role("link", name="server", exact=True).click()
        await page.get_by_role("link", name="6h", exact=True).click()
        await page.wait_for_url(re.compile(r"range=6h&by=server$"))
        assert set(await page.locator("svg.chart polyline").evaluate_all("ls => ls.map(l => l.dataset.line)")) == {
            "vm-a",
            "edge-1",
        }
        asked = metrics.queries[-1]
        span = datetime.fromisoformat(asked["end"]) - datetime.fromisoformat(asked["start"])
        assert span == timedelta(hours=6) and asked["target_id"] == app["id"]
        assert await page.locator('[aria-current="true"]', has_text="6h").count() == 1

        # A server's charts.
        await page.goto(f"{dashboard.url}metrics")
        await page.get_by_role("link", name="local", exact=True).click()
        await page.locator("svg.chart").first.wait_for()
        assert await page.locator("figcaption h2").all_text_contents() == [
            "CPU by server",
            "Memory by server",
            "Load (1 min) by server",
        ]
        assert metrics.queries[-1]["target_kind"] == "server"
        pages["server-metrics"] = page.url
        await screenshot(page, "observe-server-metrics")

        # Alerts: what fires and what resolved; a rule created and deleted from the page.
        await page.get_by_role("link", name="Alerts", exact=True).click()
        await page.get_by_role("heading", name="Firing").wait_for()
        firing = page.locator("tr.alert-firing")
        assert await firing.count() == 1 and "application watched" in await firing.text_content()
        await page.get_by_label("Rule name").fill("hot cpu")
        await page.get_by_label("Metric").select_option("cpu_pct")
        await page.get_by_label("Threshold").fill("not a number")
        await page.get_by_role("button", name="Create rule").click()
        await page.get_by_role("alert").wait_for()  # the REST API names the field
        assert "threshold" in (await page.get_by_role("alert").text_content() or "")
        await page.get_by_label("Rule name").fill("hot cpu")
        await page.get_by_label("Metric").select_option("cpu_pct")
        await page.get_by_label("Threshold").fill("85")
        await page.get_by_role("button", name="Create rule").click()
        await page.get_by_role("cell", name="hot cpu", exact=True).wait_for()
        assert metrics.created[-1]["rule"]["target_id"] == app["id"] and metrics.created[-1]["rule"]["threshold"] == 85
        pages["alerts"] = page.url
        await screenshot(page, "observe-alerts")
        assert await page.get_by_role("button", name=re.compile("^Delete rule")).count() == 0  # admins delete
        admin = await sign_in(await browser.context(), dashboard.url, dashboard.admin)
        await admin.goto(pages["alerts"])
        admin.once("dialog", lambda d: asyncio.ensure_future(d.accept()))
        await admin.get_by_role("button", name="Delete rule hot cpu").click()
        await admin.get_by_role("cell", name="No rules yet.").wait_for()
        assert metrics.rules == {}

        # At phone width: the charts, the log and the alert tables fit.
        phone = await browser.context(viewport={"width": 390, "height": 844}, is_mobile=True)
        await phone.add_cookies(await ctx.cookies())
        small = await phone.new_page()
        for name in ("app-metrics", "logs", "alerts"):
            await small.goto(pages[name])
            await small.locator("h1").wait_for()
            assert await small.evaluate("document.documentElement.scrollWidth") <= 390, name
        await screenshot(small, "observe-alerts-phone")
        await phone.close()

        # No secret on any of these pages.
        cookie = next(c for c in await ctx.cookies() if c["name"] == "berth_session")
        async with httpx.AsyncClient(cookies={"berth_session": cookie["value"]}) as http:
            for url in (*pages.values(), f"{dashboard.url}metrics"):
                r = await http.get(url)
                assert r.status_code == 200 and SECRET not in r.text, url
        await ctx.close()
    assert browser.errors == []


async def test_a_viewer_reads_but_cannot_make_rules(dashboard, observed):
    app, _, metrics = observed
    before = len(metrics.created)
    async with chromium() as browser:
        ctx = await browser.context()
        page = await sign_in(ctx, dashboard.url, dashboard.viewer)
        await page.goto(f"{dashboard.url}alerts")
        await page.get_by_role("heading", name="Rules").wait_for()
        assert await page.get_by_role("button", name="Create rule").count() == 0
        assert await page.locator("form").count() == 1  # sign out only
        await page.goto(f"{dashboard.url}applications/{app['id']}/logs")
        await page.locator("#runtime-log", has_text="web line 1").wait_for()
        csrf = await page.locator('input[name="csrf"]').first.input_value()
        form = {
            "csrf": csrf,
            "name": "forged",
            "target_kind": "app",
            "app_id": app["id"],
            "metric": "cpu_pct",
            "threshold": "1",
        }
        r = await page.request.post(f"{dashboard.url}alerts/rules", form=form, max_redirects=0)
        assert r.status == 403  # refused by the REST API
        # Nothing to follow (the REST API answers 404): 204, so the browser's EventSource does not reconnect.
        r = await page.request.get(f"{dashboard.url}applications/{app['id']}/logs/follow?service=worker")
        assert r.status == 204
        await page.goto(f"{dashboard.url}applications/{app['id']}/logs?service=worker&follow=1")
        await page.get_by_text("Not following").wait_for()
        await ctx.close()
    assert len(metrics.created) == before
    assert browser.errors == []
