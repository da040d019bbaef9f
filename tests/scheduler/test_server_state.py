"""What the scheduler knows of a server's reachability from the server watcher's events, and the reason a
server known to be down is not contacted (``domain/server_state.py``): exact data."""

from __future__ import annotations

from datetime import UTC, datetime

from berth_scheduler.domain.server_state import Down, after_back, after_unreachable, refusal

SINCE = datetime(2026, 12, 6, 7, 0, 5, tzinfo=UTC)


def test_an_unreachable_server_is_down_until_its_outage_ends() -> None:
    down = after_unreachable(None, "srv-b", "outage-1", SINCE, "ssh: timed out")
    assert down == Down("srv-b", "outage-1", SINCE, "ssh: timed out")
    assert after_back(down, "outage-1") is None
    # a late end of an earlier outage does not end the current one
    later = after_unreachable(None, "srv-b", "outage-2", SINCE)
    assert after_back(later, "outage-1") == later
    assert after_back(None, "outage-1") is None


def test_the_local_server_is_never_taken_for_down() -> None:
    assert after_unreachable(None, None, "outage-1", SINCE) is None
    assert after_unreachable(None, "local", "outage-1", SINCE) is None


def test_a_server_known_to_be_down_is_refused_with_the_reason() -> None:
    assert refusal(None) is None
    assert refusal(Down("srv-b", "outage-1", SINCE)) == (
        "server srv-b is unreachable (reported by the server watcher since 2026-12-06 07:00:05 UTC): "
        "not contacted until it is back"
    )
