"""The chaos suite, bounded for CI: deploys (image and git) while Berth services, NATS, Postgres and Traefik
are killed -9 at random moments and the local Docker engine is killed -9 and started again (an engine of the
run's own, ``tests/support/private_engine.py``, which the platform's local server is pointed at: the
machine's engine is shared with other work); afterwards every deployment ended (with a reason when it failed), no
application runs two versions, nothing runs, routes or is kept that no record explains, every deployment
ended exactly once on the bus, and the API's view equals what runs (``benchmarks/chaos.py``; ``make chaos``
is the full run). Then, with no deployment running, the engine is killed -9 and started again once more: the
applications serve their live version again (the scheduler's revival pass starts the replicas the crashed
engine left exited) and every invariant holds again. The seed is printed, and ``BERTH_CHAOS_SEED`` replays
a failing run."""

from __future__ import annotations

import os
import random

import pytest

from benchmarks.chaos import run_chaos
from benchmarks.support.chaos_storm import ENGINE, INFRA

pytestmark = pytest.mark.slow

# Bounded for CI (``make chaos`` keeps the long run): two services killed, which the plan makes the scheduler
# and the builder (they hold deployments in flight), and NATS, Postgres, Traefik and the engine once each, while six
# deployments are requested. The storm lasts about as long as the requests (``GAP_S`` apart) and every build
# must end before the checks: a third, random service and two more deployments lengthened both and added no
# check.
DEPLOYS = 6
KILLS = 2
APPS = 4


async def test_deploys_survive_a_storm_of_kills():
    seed = int(os.environ.get("BERTH_CHAOS_SEED") or random.SystemRandom().randrange(2**31))
    print(f"chaos seed {seed} (replay: BERTH_CHAOS_SEED={seed})")
    r = await run_chaos(DEPLOYS, KILLS, seed, APPS)
    shown = ("up_s", "wall_s", "storm_s", "settle_s", "local_back_after_s", "succeeded", "failed", "load_avg_1m")
    print({k: r[k] for k in shown})
    context = f"seed {seed}: {r['problems']} blows {r['blows']}"
    # the storm happened: every blow struck a running process, which the supervisor (the engine: the run)
    # started again
    assert r["kills"] == KILLS and r["restarts"] == len(INFRA), context  # none found its target down
    assert all(b["back_after_s"] is not None for b in r["blows"]), context
    assert [b["target"] for b in r["blows"]].count(ENGINE) == 1, context
    # it ran replicas, in the storm and after it (each live replica: none replaced by a deployment since)
    assert len(r["engine_crashes_met"]) == 2 and r["engine_crashes_met"][0] >= 1, context
    assert r["engine_crashes_met"][1] == r["checked"]["served"] >= 1, context
    assert r["local_back_after_s"] is not None, context
    # every command accounted for: each request accepted or (answer lost) found in the listing, none lost
    assert r["accepted"] + r["ambiguous"] == DEPLOYS and r["refused"] == 0, context
    assert r["accepted"] <= r["recorded"] <= DEPLOYS, context
    assert r["succeeded"] + r["failed"] == r["recorded"], context
    assert r["stuck"] == 0 and r["no_reason"] == 0, context
    assert r["commands_pending"] == 0 and r["dead_letters"] == 0, context  # no command left or given up on
    assert r["duplicates"] == 0 and r["orphans"] == 0 and r["api_mismatches"] == 0, context
    assert r["succeeded"] >= 1, context
    # the checks looked at something: every deployment's end, each application's route and live content
    checked = r["checked"]
    assert checked["deployments"] == r["recorded"] and checked["bus_ends"] >= r["recorded"], context
    assert checked["routes"] >= 1 and checked["served"] >= 1 and checked["images"] >= 1, context
