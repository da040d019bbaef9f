"""Container lifecycle from events captured from this machine's engine: crash loop, OOM, stop, restart,
health flapping, exactly as the tracker must read them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from berth_metrics.domain.lifecycle import LifecycleTracker

EVENTS = [json.loads(line) for line in (Path(__file__).parent / "data" / "events.jsonl").read_text().splitlines()]


def feed_all(tracker: LifecycleTracker, events=EVENTS):
    return [s for e in events for s in tracker.feed(e)]


def test_captured_sequence():
    signals = feed_all(LifecycleTracker(loop_count=3, loop_window_s=300))
    summary = [(s.container_name, s.kind, s.exit_code, s.oom_killed, s.restarts_in_window, s.looping) for s in signals]
    assert summary == [
        ("cap-loop", "crashed", 3, False, 0, False),
        ("cap-loop", "restarted", None, False, 1, False),
        ("cap-loop", "crashed", 3, False, 0, False),
        ("cap-oom", "crashed", 137, True, 0, False),
        ("cap-loop", "restarted", None, False, 2, False),
        ("cap-loop", "crashed", 3, False, 0, False),
        ("cap-health", "unhealthy", None, False, 0, False),
        ("cap-loop", "restarted", None, False, 3, True),
        ("cap-loop", "crashed", 3, False, 0, False),
        ("cap-health", "healthy", None, False, 0, False),
        ("cap-health", "unhealthy", None, False, 0, False),
        ("cap-health", "healthy", None, False, 0, False),
    ]
    # docker stop (kill, kill, die 137), docker restart and docker rm -f are asked for: no crash, no restart
    assert not [s for s in signals if s.container_name == "cap-stop"]
    loop = signals[0]
    assert loop.labels == {"app": "app-1", "service": "web", "team": "team-1"}
    assert loop.image == "berth/busybox:1"
    assert loop.reason == "exited with code 3"
    assert signals[7].reason.endswith("3 restarts in 300s (restart loop)")
    assert signals[3].reason == "killed by the kernel OOM killer (out of memory)"
    # every signal has its own key (message ids derive from it)
    assert len({s.key for s in signals}) == len(signals)


def test_restart_counting_windows_and_labels():
    tracker = LifecycleTracker(loop_count=2, loop_window_s=60)
    feed_all(tracker)
    last = max(s.at for s in feed_all(LifecycleTracker()))
    assert len(tracker.restarts_where(last - timedelta(hours=1), app="app-1")) == 3
    assert tracker.restarts_where(last - timedelta(hours=1), app="other") == []
    assert tracker.restarts_of("cap-loop", last - timedelta(hours=1)) == 3
    assert tracker.restarts_of("cap-loop", last + timedelta(seconds=1)) == 0
    tracker.prune(last + timedelta(days=2))
    assert tracker.restarts_since(datetime(2000, 1, 1, tzinfo=UTC)) == []


def test_replayed_event_after_reconnect_is_harmless_for_crash_detection():
    tracker = LifecycleTracker()
    die = next(e for e in EVENTS if e["Action"] == "die" and e["Actor"]["Attributes"]["name"] == "cap-loop")
    first, second = tracker.feed(die), tracker.feed(die)
    # the tracker reports it twice, but both carry the same key: the outbox/JetStream id drops the second
    assert first[0].key == second[0].key


def test_kill_long_before_a_die_does_not_hide_a_crash():
    tracker = LifecycleTracker(kill_grace_s=10)
    base = {"Type": "container", "Actor": {"ID": "c1", "Attributes": {"name": "x"}}}
    t0 = 1_800_000_000_000_000_000
    tracker.feed(base | {"Action": "kill", "timeNano": t0})
    out = tracker.feed(
        base
        | {"Action": "die", "timeNano": t0 + 60 * 10**9}
        | {"Actor": {"ID": "c1", "Attributes": {"name": "x", "exitCode": "1"}}}
    )
    assert [s.kind for s in out] == ["crashed"]
    assert tracker.feed({"Type": "network", "Action": "connect", "Actor": {"ID": "n"}}) == []
