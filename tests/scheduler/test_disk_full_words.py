"""A deployment the engine refuses for a full disk says so in words (``adapters/docker.explained``)."""

from __future__ import annotations

from berth_scheduler.adapters.docker import explained

CREATE = "docker create berth-shop-web-1: mkdir /var/lib/docker/overlay2/abc-init: no space left on device"


def test_a_full_disk_is_named_with_the_server_and_the_engine_words_kept():
    assert explained(CREATE, "6292e648") == ("the disk of server 6292e648 is full (Docker's data root): " + CREATE)
    assert explained(CREATE, "local") == (
        "the disk of the control plane's server is full (Docker's data root): " + CREATE
    )


def test_other_refusals_are_kept_as_they_are():
    other = "docker start berth-shop-web-1: port is already allocated"
    assert explained(other, "6292e648") == other
