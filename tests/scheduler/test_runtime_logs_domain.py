"""Runtime logs as data: the engine's parameters, the merge of replicas by time, the reply's size cap and
the rate a follow publishes at."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from berth_common.catalogue import RuntimeLogLine
from berth_scheduler.domain.runtime_logs import RateLimit, capped, log_params, merged, unix

T0 = datetime(2026, 12, 5, 11, 0, 0, 123456, tzinfo=UTC)


def line(replica: str, seconds: float | None, text: str = "x") -> RuntimeLogLine:
    time = None if seconds is None else T0 + timedelta(seconds=seconds)
    return RuntimeLogLine(service="web", replica=replica, server_id="local", stream="stdout", time=time, line=text)


def test_the_engines_parameters():
    assert unix(T0) == "1796468400.123456000"
    assert unix(T0, through=True) == "1796468400.123456999"
    assert unix(T0.replace(tzinfo=None)) == unix(T0)
    assert log_params(200) == {"stdout": "1", "stderr": "1", "timestamps": "1", "tail": "200"}
    assert log_params(5, since=T0)["since"] == "1796468400.123456000"
    # the engine's tail comes before its until: with an until every line is read and the tail kept here
    until = log_params(5, until=T0)
    assert (until["tail"], until["until"]) == ("all", "1796468400.123456999")
    assert log_params(0, T0, follow=True) == {
        "stdout": "1",
        "stderr": "1",
        "timestamps": "1",
        "tail": "0",
        "since": "1796468400.123456000",
        "follow": "1",
    }


def test_replicas_are_merged_by_time_and_the_last_lines_kept():
    a = [line("a", 0, "a0"), line("a", 2, "a2"), line("a", 4, "a4")]
    b = [line("b", 1, "b1"), line("b", 2, "b2"), line("b", 3, "b3")]
    assert [x.line for x in merged([a, b], 100)] == ["a0", "b1", "a2", "b2", "b3", "a4"]
    assert [x.line for x in merged([a, b], 2)] == ["b3", "a4"]
    assert [x.line for x in merged([[line("c", None, "c?")], a], 2)] == ["a2", "a4"]
    assert merged([a, [line("c", None, "c?")]], 100)[0].line == "c?"


def test_a_reply_keeps_the_newest_lines_that_fit():
    lines = [line("a", i, "y" * 1000) for i in range(10)]
    kept, truncated = capped(lines, 3 * 1300)
    assert truncated and kept == lines[-3:]
    assert capped(lines, 10**6) == (lines, False)


def test_the_rate_limit_lets_a_burst_then_the_rate_through_and_counts_the_rest():
    limit = RateLimit(per_s=10, burst=10)
    assert sum(limit.allow(0.0) for _ in range(25)) == 10
    assert limit.take_dropped() == 15 and limit.take_dropped() == 0
    assert sum(limit.allow(0.5) for _ in range(25)) == 5  # half a second later: five more
    assert sum(limit.allow(100.0) for _ in range(25)) == 10  # never more than the burst
