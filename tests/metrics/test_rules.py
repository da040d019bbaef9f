"""Hysteresis of threshold rules: examples, and properties over arbitrary reading sequences (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from berth_metrics.domain.rules import AlertState, Thresholds, default_margin, step

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def run(rule: Thresholds, readings: list[tuple[float, float | None]]):
    """Feed (seconds since T0, value) readings; return [(kind, at, since)] and the final state."""
    state, out = AlertState(), []
    for t, value in readings:
        state, tr = step(rule, state, value, T0 + timedelta(seconds=t))
        if tr is not None:
            out.append((tr.kind, tr.at, tr.since, tr.raised_at))
    return out, state


def test_raise_after_duration_then_resolve_below_margin():
    rule = Thresholds(threshold=80, margin=10, for_s=30, resolve_for_s=20)
    readings = [(0, 50), (10, 85), (20, 90), (30, 95), (40, 99), (50, 75), (60, 71), (70, 70), (80, 65), (90, 60)]
    out, state = run(rule, readings)
    at = lambda s: T0 + timedelta(seconds=s)  # noqa: E731
    assert out == [("raised", at(40), at(10), at(40)), ("resolved", at(90), at(10), at(40))]
    assert state.status == "ok"


def test_a_dip_resets_pending_and_a_bump_keeps_firing():
    rule = Thresholds(threshold=80, margin=10, for_s=20, resolve_for_s=20)
    out, _ = run(rule, [(0, 85), (10, 79), (20, 85), (30, 85), (40, 85)])
    assert [(k, a) for k, a, *_ in out] == [("raised", T0 + timedelta(seconds=40))]
    out, state = run(rule, [(0, 85), (30, 85), (40, 60), (50, 75), (60, 60), (70, 60)])
    assert [k for k, *_ in out] == ["raised"]  # 75 is above the lower line: the resolve clock restarted
    assert state.status == "resolving"


def test_missing_reading_resolves_and_drops_pending():
    rule = Thresholds(threshold=50, margin=5, for_s=0, resolve_for_s=0)
    out, state = run(rule, [(0, 60), (10, None)])
    assert [k for k, *_ in out] == ["raised", "resolved"]
    out, state = run(Thresholds(50, 5, 60, 0), [(0, 60), (10, None)])
    assert out == [] and state.status == "ok"


def test_default_margins():
    assert default_margin("cpu_pct", 80, 0.1) == 8.0
    assert default_margin("restarts", 3, 0.1) == 3.0  # resolves when no restart is left in the window
    assert default_margin("restarts", 0.5, 0.1) == 1.0


rules = st.builds(
    lambda threshold, margin_fraction, for_s, resolve_for_s: Thresholds(
        threshold=threshold, margin=threshold * margin_fraction, for_s=for_s, resolve_for_s=resolve_for_s
    ),
    st.floats(1, 1000),
    st.floats(0.01, 1),
    st.floats(0, 120),
    st.floats(0, 120),
)


@st.composite
def sequences(draw, rule_strategy=rules, values=None):
    rule = draw(rule_strategy)
    if values is None:
        values = st.one_of(st.none(), st.floats(0, rule.threshold * 2, allow_nan=False))
    gaps = draw(st.lists(st.floats(0.5, 60), min_size=1, max_size=80))
    vals = draw(st.lists(values, min_size=len(gaps), max_size=len(gaps)))
    t, readings = 0.0, []
    for gap, value in zip(gaps, vals, strict=True):
        t += gap
        readings.append((t, value))
    return rule, readings


@settings(max_examples=400, deadline=None)
@given(sequences())
def test_raises_and_resolves_alternate_and_respect_their_durations(case):
    rule, readings = case
    out, _ = run(rule, readings)
    kinds = [k for k, *_ in out]
    assert kinds == ["raised", "resolved"] * (len(kinds) // 2) + (["raised"] if len(kinds) % 2 else [])
    times = {T0 + timedelta(seconds=t): v for t, v in readings}
    for kind, at, since, raised_at in out:
        if kind == "raised":
            # every reading from the crossing to the raise was strictly above the threshold, for long enough
            window = [v for t, v in times.items() if since <= t <= at]
            assert window and all(v is not None and v > rule.threshold for v in window)
            assert (at - since).total_seconds() >= rule.for_s
            assert at == raised_at
        else:
            # the readings that completed the resolution were at or below the lower line for long enough
            tail = []
            for t, v in sorted(times.items(), reverse=True):
                if t > at:
                    continue
                if v is not None and v > rule.lower:
                    break
                tail.append(t)
            assert tail and (at - min(tail)).total_seconds() >= rule.resolve_for_s


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_never_flaps_on_the_boundary(data):
    """Readings that never go down to the lower line raise at most once and never resolve, however they
    wander around the threshold."""
    rule = data.draw(rules)
    around = st.floats(rule.lower + rule.margin * 0.001, rule.threshold + rule.margin, allow_nan=False)
    _, readings = data.draw(sequences(st.just(rule), around))
    out, _ = run(rule, readings)
    assert [k for k, *_ in out] in ([], ["raised"])


@settings(max_examples=200, deadline=None)
@given(rules, st.floats(0.5, 30))
def test_a_sustained_breach_raises_once_and_a_sustained_recovery_resolves_once(rule, gap):
    high, low = rule.threshold * 1.5, rule.lower - rule.margin
    n_high = int(rule.for_s / gap) + 2
    n_low = int(rule.resolve_for_s / gap) + 2
    readings = [(i * gap, high) for i in range(n_high)] + [((n_high + i) * gap, low) for i in range(n_low)]
    out, state = run(rule, readings)
    assert [k for k, *_ in out] == ["raised", "resolved"]
    assert state.status == "ok"
