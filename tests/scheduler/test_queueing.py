"""One deployment at a time per application."""

from __future__ import annotations

from berth_scheduler.domain.machine import State
from berth_scheduler.domain.queueing import QueueEntry, next_to_admit, position, replaced_by, running, superseded


def e(dep: str, state: State, seq: int) -> QueueEntry:
    return QueueEntry(dep, state, seq)


def test_the_oldest_queued_runs_when_the_app_is_free():
    entries = [e("d3", State.QUEUED, 3), e("d2", State.QUEUED, 2)]
    assert running(entries) is None
    assert next_to_admit(entries) == e("d2", State.QUEUED, 2)


def test_a_new_one_waits_behind_the_running_one():
    entries = [e("d1", State.VERIFYING, 1), e("d2", State.QUEUED, 2), e("d3", State.QUEUED, 3)]
    assert running(entries) == entries[0]
    assert next_to_admit(entries) is None
    assert position(entries[2], entries) == 2
    assert position(entries[0], entries) == 0


def test_replace_queued_cancels_only_queued_ones_before_it():
    entries = [e("d1", State.ROUTING, 1), e("d2", State.QUEUED, 2), e("d3", State.QUEUED, 3), e("d4", State.QUEUED, 4)]
    assert replaced_by(entries[2], entries) == [entries[1]]
    assert replaced_by(entries[3], entries) == [entries[1], entries[2]]


def test_finished_ones_do_not_count():
    entries = [e("d1", State.FAILED, 1), e("d2", State.SUCCEEDED, 2), e("d3", State.QUEUED, 3)]
    assert next_to_admit(entries) == entries[2]
    assert position(entries[2], entries) == 0


def test_a_deployment_arriving_after_a_newer_one_of_its_application_is_superseded():
    reason = superseded(3, 4)
    assert reason == "superseded: deployment #4 of this application was requested after it and arrived first"
    assert superseded(4, 3) is None  # in order
    assert superseded(3, 3) is None  # itself (a start command sent again is no second deployment anyway)
    assert superseded(3, None) is None  # the first the scheduler knows of its application
    assert superseded(None, 4) is None  # a command without its number (from an older api) runs as before
