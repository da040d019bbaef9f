"""The Engine API build request and the cache key, by exact comparison."""

from __future__ import annotations

import pytest

from berth_builder.domain.request import Arg, SecretsNeedBuildKit, build_request, cache_key, image_labels
from berth_common.background import BackgroundLimits

LABELS = image_labels(build_id="b1", deployment_id="d1", application_id="a1", commit="c" * 40, cache_key="k" * 64)


def test_labels():
    assert LABELS == {
        "berth.build": "b1",
        "berth.deployment": "d1",
        "berth.application": "a1",
        "berth.commit": "c" * 40,
        "berth.cache-key": "k" * 64,
    }


def test_legacy_request_query():
    req = build_request(
        tag="berth/app:d1",
        dockerfile="Dockerfile",
        args=[Arg("Z_LAST", "1"), Arg("A_FIRST", "x y")],
        labels={"berth.deployment": "d1"},
        engine="legacy",
    )
    assert req.query() == {
        "t": "berth/app:d1",
        "dockerfile": "Dockerfile",
        "buildargs": '{"A_FIRST":"x y","Z_LAST":"1"}',
        "labels": '{"berth.deployment":"d1"}',
        "rm": "1",
        "forcerm": "1",
        "pull": "0",
        "nocache": "0",
        "version": "1",
        "cpushares": "256",
        "memory": "2147483648",
        "memswap": "2147483648",
    }


def test_buildkit_request_keeps_secret_values_out_of_buildargs():
    req = build_request(
        tag="berth/app:d2",
        dockerfile=".berth/Dockerfile",
        args=[Arg("TOKEN", "hunter2", secret=True), Arg("MODE", "prod"), Arg("API_KEY", "k", secret=True)],
        labels=LABELS,
        engine="buildkit",
        nocache=True,
        session="s1",
    )
    assert req.secret_names == ("API_KEY", "TOKEN")
    assert req.query() == {
        "t": "berth/app:d2",
        "dockerfile": ".berth/Dockerfile",
        "buildargs": '{"MODE":"prod"}',
        "labels": '{"berth.application":"a1","berth.build":"b1","berth.cache-key":"'
        + "k" * 64
        + '","berth.commit":"'
        + "c" * 40
        + '","berth.deployment":"d1"}',
        "rm": "1",
        "forcerm": "1",
        "pull": "0",
        "nocache": "1",
        "version": "2",
        "cpushares": "256",
        "memory": "2147483648",
        "memswap": "2147483648",
        "session": "s1",
    }
    assert "hunter2" not in repr(req) and "hunter2" not in str(req.query())


def test_the_build_runs_with_the_configured_background_limits():
    limits = BackgroundLimits(cpu_shares=128, blkio_weight=0, memory_mb=512)
    req = build_request(tag="a", dockerfile="D", args=[], labels={}, engine="legacy", limits=limits)
    query = req.query()
    assert {k: query[k] for k in ("cpushares", "memory", "memswap")} == {
        "cpushares": "128",
        "memory": str(512 * 1024 * 1024),
        "memswap": str(512 * 1024 * 1024),
    }
    unlimited = build_request(
        tag="a", dockerfile="D", args=[], labels={}, engine="legacy", limits=BackgroundLimits(memory_mb=0)
    )
    assert "memory" not in unlimited.query() and "memswap" not in unlimited.query()


def test_no_session_without_secrets_and_no_secrets_with_legacy():
    req = build_request(tag="a", dockerfile="D", args=[Arg("A", "1")], labels={}, engine="buildkit", session="s1")
    assert "session" not in req.query()
    with pytest.raises(SecretsNeedBuildKit, match="TOKEN"):
        build_request(tag="a", dockerfile="D", args=[Arg("TOKEN", "x", True)], labels={}, engine="legacy")
    assert "hunter2" not in repr(Arg("TOKEN", "hunter2", True))


def _key(**overrides):
    base = dict(
        key=b"k1",
        repository="https://x/y.git",
        commit="c" * 40,
        subdirectory="",
        dockerfile="Dockerfile",
        args=[Arg("A", "1"), Arg("S", "secret", True)],
        image_map={"busybox": "berth/busybox:1"},
        engine="buildkit",
    )
    base.update(overrides)
    return cache_key(**base)


def test_cache_key_changes_with_every_input_and_not_with_arg_order():
    k = _key()
    assert len(k) == 64 and k == _key()
    assert k == _key(args=[Arg("S", "secret", True), Arg("A", "1")])
    for change in (
        {"key": b"k2"},
        {"repository": "https://x/z.git"},
        {"commit": "d" * 40},
        {"subdirectory": "web"},
        {"dockerfile": None},
        {"args": [Arg("A", "2"), Arg("S", "secret", True)]},
        {"args": [Arg("A", "1"), Arg("S", "other", True)]},
        {"args": [Arg("A", "1"), Arg("S", "secret", False)]},
        {"image_map": {}},
        {"engine": "legacy"},
    ):
        assert _key(**change) != k, change
