"""Pushes to Docker Hub style references are pruned: Berth records what it pushed as written
(``docker.io/library/x``, ``index.docker.io/user/x``, ``x``, ``user/x``), the engine lists and filters
them in their familiar form (``x``, ``user/x``); both meet in ``retention.familiar``."""

from __future__ import annotations

import pytest

from berth_scheduler.domain.retention import PulledImage, familiar, pulled_to_remove, repository_of

OLD, NEW = "sha256:" + "a" * 64, "sha256:" + "b" * 64


@pytest.mark.parametrize(
    ("given", "listed"),
    [
        ("docker.io/library/shop@" + OLD, "shop@" + OLD),
        ("index.docker.io/library/shop:1", "shop:1"),
        ("registry-1.docker.io/acme/shop@" + OLD, "acme/shop@" + OLD),
        ("docker.io/acme/shop:2", "acme/shop:2"),
        ("library/shop", "shop"),
        ("shop@" + OLD, "shop@" + OLD),
        ("acme/shop:2", "acme/shop:2"),
        ("acme/library/shop", "acme/library/shop"),  # only an official image drops library/
        ("registry.example.com:5000/library/shop@" + OLD, "registry.example.com:5000/library/shop@" + OLD),
        ("not a reference", "not a reference"),
    ],
)
def test_references_meet_in_the_form_the_engine_lists(given, listed):
    assert familiar(given) == listed


@pytest.mark.parametrize(
    ("pushed_repo", "engine_repo"),
    [
        ("docker.io/library/shop", "shop"),
        ("shop", "shop"),
        ("docker.io/acme/shop", "acme/shop"),
        ("acme/shop", "acme/shop"),
        ("index.docker.io/acme/shop", "acme/shop"),
    ],
)
def test_hub_pushes_are_pruned_and_the_kept_one_stays(pushed_repo, engine_repo):
    pushed = {f"{pushed_repo}@{OLD}", f"{pushed_repo}@{NEW}"}
    assert {repository_of(p) for p in pushed} == {engine_repo}  # what the engine's reference filter is given
    images = [
        PulledImage("old", (f"{engine_repo}:d1",), (f"{engine_repo}@{OLD}",), "d1"),
        PulledImage("new", (f"{engine_repo}:d2",), (f"{engine_repo}@{NEW}",), "d2"),
        PulledImage("theirs", ("postgres:16",), ("postgres@sha256:" + "c" * 64,), None),  # never pushed by Berth
    ]
    keep = {f"{pushed_repo}@{NEW}"}  # the kept deployment runs the newer push, recorded as pushed
    gone = pulled_to_remove(images, pushed, keep, finished={"d1", "d2"})
    assert gone == [f"{engine_repo}:d1", f"{engine_repo}@{OLD}"]


def test_an_unfinished_deployment_keeps_its_hub_image():
    pushed = {f"docker.io/library/shop@{OLD}"}
    images = [PulledImage("old", (), (f"shop@{OLD}",), "d1")]
    assert pulled_to_remove(images, pushed, set(), finished=set()) == []
    assert pulled_to_remove(images, pushed, set(), finished={"d1"}) == [f"shop@{OLD}"]
