"""The ``berth.*`` label keys (their values are on containers and images that exist: they never change) and
the Engine API filter that finds what carries them."""

from __future__ import annotations

from berth_common import labels


def test_the_label_keys():
    assert (labels.APP, labels.SERVICE, labels.DEPLOYMENT, labels.REPLICA, labels.KIND, labels.MANAGED) == (
        "berth.app",
        "berth.service",
        "berth.deployment",
        "berth.replica",
        "berth.kind",
        "berth.managed",
    )
    assert labels.TEAM == "berth.team"
    assert labels.VOLUME == "berth.volume"
    assert (labels.BUILD, labels.APPLICATION, labels.COMMIT, labels.CACHE_KEY) == (
        "berth.build",
        "berth.application",
        "berth.commit",
        "berth.cache-key",
    )
    keys = [v for k, v in vars(labels).items() if k.isupper() and k != "PREFIX"]
    assert all(k.startswith(labels.PREFIX) for k in keys) and len(keys) == len(set(keys)) == 12


def test_a_label_filter_selects_every_label_in_a_stable_order():
    assert labels.label_filter({labels.DEPLOYMENT: "d-1", labels.APP: "a-1"}) == {
        "label": ["berth.app=a-1", "berth.deployment=d-1"]
    }
    assert labels.label_filter({labels.BUILD: "b1"}) == {"label": ["berth.build=b1"]}
    assert labels.label_filter({}) == {"label": []}
