"""The metrics service end to end: a real Docker engine, nats-server and Postgres, busybox containers."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from berth_common import scrape as scrape_tokens
from berth_common.catalogue import (
    AlertList,
    AlertListReply,
    AlertRuleCreate,
    AlertRuleReply,
    AlertRuleSpec,
    MetricsQuery,
    MetricsReply,
)
from tests.metrics.service import containers, eventually, metrics_service, run_busybox
from tests.support.images import DOCKER

pytestmark = [pytest.mark.slow, pytest.mark.docker]
SCRAPE = "platform-scrape-token"
BURN = ["sh", "-c", "while [ ! -f /tmp/stop ]; do :; done; exec sleep 3600"]
# A burning container gets a third of a core: well over the rules' 10 %, without taking a core from the tests
# that run beside it.
BURN_CPUS = ("--cpus", "0.35")


async def create_rule(running, team: str, **spec) -> str:
    reply = await running.bus.request(
        "metrics", "alert_rule.create", AlertRuleCreate(team_id=team, rule=AlertRuleSpec(**spec)), AlertRuleReply
    )
    assert reply.problem is None and reply.rule is not None
    return reply.rule.id


async def test_busy_container_raises_a_cpu_alert_that_resolves_when_it_stops(nats_server, database, unique):
    app = f"burn-{unique}"
    async with metrics_service(nats_server.url, database) as running, containers() as made:
        rule_id = await create_rule(running, "team-1", name="cpu hot", target_kind="app", target_id=app, metric="cpu_pct",
                                    threshold=10.0, margin=7.0, for_s=3.0, resolve_for_s=2.0)  # fmt: skip
        cid = run_busybox(*BURN_CPUS, labels={"berth.app": app, "berth.team": "team-1"}, command=BURN)
        made.append(cid)
        raised = (await eventually(lambda: running.of_type("evt.alert.raised", rule_id=rule_id), 60))[0]
        assert raised["target_kind"] == "app" and raised["target_id"] == app and raised["metric"] == "cpu_pct"
        # 10% of a core: a busy loop gets far more even on a loaded machine; an idle container stays under 3%
        assert raised["value"] > 10.0 and raised["threshold"] == 10.0 and raised["resolve_below"] == 3.0
        assert raised["team_id"] == "team-1" and raised["server"] == "test-vm" and raised["labels"]["app"] == app
        since, at = datetime.fromisoformat(raised["since"]), datetime.fromisoformat(raised["raised_at"])
        assert at - since >= timedelta(seconds=3)
        assert running.of_type("evt.alert.resolved", rule_id=rule_id) == []

        subprocess.run([DOCKER, "exec", cid, "touch", "/tmp/stop"], check=True, timeout=30)
        resolved = (await eventually(lambda: running.of_type("evt.alert.resolved", rule_id=rule_id), 60))[0]
        assert resolved["alert_id"] == raised["alert_id"]
        assert resolved["value"] <= 3.0 and resolved["peak"] >= raised["value"]
        assert resolved["duration_s"] > 0 and resolved["reason"].startswith(f"cpu_pct of app {app} is")
        assert len(running.of_type("evt.alert.raised", rule_id=rule_id)) == 1

        alerts = await running.bus.request("metrics", "alert.list", AlertList(team_id="team-1"), AlertListReply)
        assert [(a.alert_id, a.status) for a in alerts.alerts] == [(raised["alert_id"], "resolved")]
        other = await running.bus.request("metrics", "alert.list", AlertList(team_id="team-2"), AlertListReply)
        assert other.alerts == []


def _bytes(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)\s*([KMGT]?i?B)", text.strip()).groups()
    return (
        float(number)
        * {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4, "kB": 1e3, "MB": 1e6, "GB": 1e9}[unit]
    )


def docker_stats(cid: str) -> dict:
    out = subprocess.run(
        [DOCKER, "stats", "--no-stream", "--format", "{{json .}}", cid],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    row = json.loads(out.stdout)
    used, limit = row["MemUsage"].split(" / ")
    return {"cpu": float(row["CPUPerc"].rstrip("%")), "mem": _bytes(used), "limit": _bytes(limit)}


def scrape(port: int, token: str | None = None) -> tuple[int, str]:
    """(status, body) of ``/metrics`` for a bearer of ``token`` (no header without one)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def test_query_matches_docker_stats_and_prometheus_exposes_it(nats_server, database, unique):
    async with metrics_service(nats_server.url, database, metrics_token=SCRAPE) as running, containers() as made:
        cid = run_busybox(
            "-m", "256m", *BURN_CPUS, labels={"berth.app": f"q-{unique}", "berth.team": "team-1"}, command=BURN
        )
        made.append(cid)
        await asyncio.sleep(2.5)  # the service has a first reading to take CPU deltas against
        started = datetime.now(UTC)
        expected = []
        for _ in range(6):  # each call measures about a second; together they span the window compared
            expected.append(await asyncio.to_thread(docker_stats, cid))
        ended = datetime.now(UTC)
        await asyncio.sleep(1.5)
        query = MetricsQuery(target_kind="container", target_id=cid[:12], team_id="team-1", start=started - timedelta(seconds=5), step_s=1,
                             metrics=["cpu_pct", "mem_used", "mem_limit", "mem_pct", "net_rx", "restarts"])  # fmt: skip
        reply = await running.bus.request("metrics", "query", query, MetricsReply)
        assert reply.problem is None and reply.resolution == "raw" and reply.step_s == 1.0
        series = {s.metric: s for s in reply.series}
        assert set(series) == {"cpu_pct", "mem_used", "mem_limit", "mem_pct", "net_rx", "restarts"}
        assert series["cpu_pct"].key == cid and series["cpu_pct"].labels["app"] == f"q-{unique}"
        # a point's CPU % covers the interval that ends at its time: take those inside the docker stats window
        cpu = [v for t, v in series["cpu_pct"].points if v is not None and started + timedelta(seconds=1) <= t <= ended]
        mem = [v for t, v in series["mem_used"].points if v is not None and started <= t <= ended]
        assert len(cpu) >= 3
        ours, theirs = sum(cpu) / len(cpu), sum(e["cpu"] for e in expected) / len(expected)
        # a busy loop gets what the other load on the machine leaves it: over the same seconds both agree
        assert abs(ours - theirs) <= max(10.0, 0.2 * theirs), (cpu, expected)
        assert ours > 5.0  # it is busy (the share it gets depends on the rest of the machine)
        their_mem = sum(e["mem"] for e in expected) / len(expected)
        assert abs(sum(mem) / len(mem) - their_mem) <= max(256 * 1024, 0.1 * their_mem), (mem, expected)
        assert [v for _, v in series["mem_limit"].points][-1] == 256 * 1024**2 == expected[0]["limit"]
        assert [v for _, v in series["restarts"].points][-1] == 0.0

        # the other team sees nothing of it
        hidden = await running.bus.request(
            "metrics", "query", query.model_copy(update={"team_id": "team-2"}), MetricsReply
        )
        assert hidden.problem is not None and hidden.problem.status == 404 and hidden.problem.field == "target_id"
        bad = await running.bus.request(
            "metrics", "query", query.model_copy(update={"metrics": ["nope"]}), MetricsReply
        )
        assert bad.problem is not None and bad.problem.status == 422 and bad.problem.field == "metrics"
        server = await running.bus.request(
            "metrics",
            "query",
            MetricsQuery(target_kind="server", target_id="test-vm", start=started, step_s=1),
            MetricsReply,
        )
        kinds = {(s.kind, s.metric) for s in server.series}
        assert ("server", "cpu_pct") in kinds and ("server", "load1") in kinds and ("mount", "disk_pct") in kinds

        # the team's scrape token: its containers with their Berth labels
        status, text = await asyncio.to_thread(scrape, running.port, scrape_tokens.team_token(SCRAPE, "team-1"))
        assert status == 200, text
        line = next(
            line
            for line in text.splitlines()
            if line.startswith("berth_container_cpu_percent{") and f'container_id="{cid[:12]}"' in line
        )
        assert f'app="q-{unique}"' in line and 'server="test-vm"' in line and float(line.rsplit(" ", 1)[1]) > 0
        # another team's token: nothing of it; no token or a wrong one: refused
        status, other = await asyncio.to_thread(scrape, running.port, scrape_tokens.team_token(SCRAPE, "team-2"))
        assert status == 200 and cid[:12] not in other and f"q-{unique}" not in other
        assert (await asyncio.to_thread(scrape, running.port))[0] == 401
        assert (await asyncio.to_thread(scrape, running.port, "not-the-token"))[0] == 401
        # the platform's token: every container and the server, no team's metadata
        status, text = await asyncio.to_thread(scrape, running.port, SCRAPE)
        assert status == 200
        line = next(
            line
            for line in text.splitlines()
            if line.startswith("berth_container_cpu_percent{") and f'container_id="{cid[:12]}"' in line
        )
        assert line.startswith(f'berth_container_cpu_percent{{container_id="{cid[:12]}",server="test-vm"}} ')
        assert f"q-{unique}" not in text and "team-1" not in text
        assert "berth_container_memory_limit_bytes{" in text and re.search(
            r"^berth_server_memory_total_bytes\{server=\"test-vm\"\} \d", text, re.M
        )
        assert re.search(r'^berth_server_disk_total_bytes\{.*mount="/"', text, re.M)


async def test_crash_loop_raises_crash_events_and_one_grouped_alert(nats_server, database, unique):
    app = f"loop-{unique}"
    async with (
        metrics_service(
            nats_server.url, database, metrics_restart_loop_count=3, metrics_restart_loop_window_s=60
        ) as running,
        containers() as made,
    ):
        rule_id = await create_rule(running, "team-1", name="crash loop", target_kind="app", target_id=app, metric="restarts",
                                    threshold=2, window_s=20, for_s=0)  # fmt: skip
        cid = run_busybox("--restart", "on-failure", labels={"berth.app": app, "berth.service": "worker", "berth.team": "team-1"},
                          command=["sh", "-c", "sleep 0.2; exit 1"])  # fmt: skip
        made.append(cid)
        await eventually(lambda: len(running.of_type("evt.container.crashed", container_id=cid)) >= 4, 60)
        raised = await eventually(lambda: running.of_type("evt.alert.raised", rule_id=rule_id), 30)
        crash = running.of_type("evt.container.crashed", container_id=cid)[0]
        assert crash["exit_code"] == 1 and crash["oom_killed"] is False and crash["reason"] == "exited with code 1"
        assert (crash["application_id"], crash["service"], crash["team_id"]) == (app, "worker", "team-1")
        assert crash["server"] == "test-vm" and crash["container_name"].startswith("berth-mt-")
        restarts = running.of_type("evt.container.restarted", container_id=cid)
        assert [r["restarts_in_window"] for r in restarts[:3]] == [1, 2, 3]
        assert restarts[2]["looping"] is True and restarts[0]["looping"] is False
        assert raised[0]["metric"] == "restarts" and raised[0]["value"] > 2 and raised[0]["window_s"] == 20

        # the loop goes on: still the one alert (grouped), however many crashes follow
        n = len(running.of_type("evt.container.crashed", container_id=cid))
        await eventually(lambda: len(running.of_type("evt.container.crashed", container_id=cid)) > n, 30)
        assert len(running.of_type("evt.alert.raised", rule_id=rule_id)) == 1

        # fixed (here: removed): once the window holds no restart the alert resolves
        subprocess.run([DOCKER, "rm", "-f", cid], capture_output=True, check=True, timeout=60)
        resolved = await eventually(lambda: running.of_type("evt.alert.resolved", rule_id=rule_id), 60)
        assert resolved[0]["alert_id"] == raised[0]["alert_id"] and resolved[0]["value"] == 0.0
        assert len(running.of_type("evt.alert.raised", rule_id=rule_id)) == 1
