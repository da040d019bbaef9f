"""The chaos suite's test server, bounded for CI: a namespace test server (its own dockerd and sshd) added to
a running platform, image applications placed on it and deployed, local applications (image and git) beside
them, while the server's Docker engine is killed -9 and started again and its disk is filled (a deployment
requested meanwhile) and freed. Afterwards the invariants of ``benchmarks/chaos.py`` hold on both engines,
the deployment that met the full disk says "no space left on device", and after one more engine restart,
with no deployment, the applications on the server serve their live version again (Berth starts the
replicas the crashed engine stopped). ``BERTH_CHAOS_SEED`` replays a run."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import pytest

from benchmarks.chaos import REMOTE_APPS, run_chaos

pytestmark = pytest.mark.slow

DEPLOYS = 8  # requested at random intervals over the storm (local and test-server applications)
APPS = 2  # on the local server (one image, one git); REMOTE_APPS more on the test server


# what the scheduler said about replicas, servers and pruning: printed when an invariant does not hold
TOLD = re.compile(
    r"started again|not started again|live replicas|left behind|does not answer|pruning|unreachable|server back|undo|interrupted"
)


def told(logs: Path) -> str:
    """The scheduler's log lines on replicas, servers and pruning (the platform's logs, kept in ``logs``)."""
    lines = [line[:300] for f in logs.glob("chaos-*/scheduler.log") for line in f.read_text().splitlines()]
    return "\n".join(line for line in lines if TOLD.search(line))[-20000:]


async def test_deploys_survive_an_engine_restart_and_a_full_disk_on_a_test_server(tmp_path, monkeypatch):
    seed = int(os.environ.get("BERTH_CHAOS_SEED") or random.SystemRandom().randrange(2**31))
    print(f"chaos seed {seed} (replay: BERTH_CHAOS_SEED={seed})")
    if not os.environ.get("BERTH_CHAOS_KEEP_LOGS"):
        monkeypatch.setenv("BERTH_CHAOS_KEEP_LOGS", str(tmp_path))
    r = await run_chaos(DEPLOYS, 0, seed, APPS, server=True, infra=())
    try:
        check(r, seed)
    except AssertionError:
        print(told(Path(os.environ["BERTH_CHAOS_KEEP_LOGS"])))
        raise


def check(r: dict[str, Any], seed: int) -> None:
    shown = ("up_s", "wall_s", "storm_s", "settle_s", "succeeded", "failed", "server_back_after_s", "server_blows")
    print({k: r[k] for k in shown}, r["failure_reasons"])
    context = f"seed {seed}: {r['problems']} blows {r['server_blows']} reasons {r['failure_reasons']}"
    # the storm happened: the engine restarted twice (once during deploys, once after), the disk filled once
    assert r["engine_restarts"] == 2 and r["disk_fills"] == 1, context
    # a deployment that met the full disk failed, saying so
    assert r["disk_full_failures"] >= 1, context
    assert r["disk_full_said"] == r["disk_full_failures"], context
    # every command accounted for
    requested = DEPLOYS + r["warm_deploys"] + r["server_deploys"]
    assert r["warm_deploys"] == REMOTE_APPS and r["server_deploys"] >= 1, context
    assert r["accepted"] + r["ambiguous"] == requested and r["refused"] == 0, context
    assert r["succeeded"] + r["failed"] == r["recorded"], context
    assert r["stuck"] == 0 and r["no_reason"] == 0, context
    assert r["commands_pending"] == 0 and r["dead_letters"] == 0, context
    assert r["duplicates"] == 0 and r["orphans"] == 0 and r["api_mismatches"] == 0, context
    # after the last engine restart, with no deployment, every invariant held again: the applications on
    # the server serve their live content
    assert r["server_back_after_s"] is not None, context
    checked = r["checked"]
    assert checked["served_on_server"] == REMOTE_APPS, context
    assert checked["deployments"] == r["recorded"] and checked["routes"] >= APPS + REMOTE_APPS - 1, context
