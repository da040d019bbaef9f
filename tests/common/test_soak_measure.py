"""The soak's reading of a memory course: the growth of the mean of its second half over its first's."""

from __future__ import annotations

from benchmarks.bench_soak import mean_growth


def _series(values: list[float]) -> list[dict[str, float]]:
    return [{"t_s": 60.0 * i, "nats": v, "api": 100.0 + i} for i, v in enumerate(values)]


def test_a_bounded_saw_tooth_reads_as_no_growth_and_a_leak_as_growth():
    # nats-server's course after the warm-up (benchmarks/README.md, soak): a buffer let go and filled again
    saw = [47.2, 49.8, 49.9, 50.0, 51.2, 46.5, 47.6, 48.7, 49.9, 50.2]
    growth = mean_growth(_series(saw))
    assert growth["nats"] == -2.1  # means 49.62 and 48.58 MB
    assert (saw[-1] - saw[0]) / saw[0] * 100 > 6  # where two moments fall on it reads as growth
    assert growth["api"] == 4.9  # 1 MB a minute from 100 MB: means 102 and 107
    assert set(growth) == {"nats", "api"}


def test_too_short_a_course_gives_nothing():
    assert mean_growth([]) == {}
    assert mean_growth(_series([40.0])) == {}
    assert mean_growth(_series([40.0, 44.0])) == {"api": 1.0, "nats": 10.0}


def test_nats_heap_reads_growth_from_a_start_over_a_span():
    from benchmarks.nats_heap import growth

    samples = [{"t_s": t, "rss_mb": mb} for t, mb in [(0, 25.4), (121, 44.7), (211, 47.2), (441, 46.5), (591, 50.2)]]
    assert growth(samples, 211, 480) == {"from_s": 211, "to_s": 591, "rss_mb": [47.2, 50.2], "growth_pct": 6.4}
    assert growth(samples, 121, 300)["rss_mb"] == [44.7, 47.2]  # the last sample within the span
    assert growth(samples, None, 480) is None  # the rule never met
    assert growth(samples, 591, 480) is None  # one sample: no growth to read
