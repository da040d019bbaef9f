"""The catalogue's family bases: what every message of a family shares (its first fields, its sender and
receiver) is declared once, on a base that is not a message by itself; the shared value rules (``Id``,
``BuildId``) and the refusal of a query (``Problem``) are written once."""

from __future__ import annotations

import inspect

import pytest
from pydantic import ValidationError

from berth_common import catalogue
from berth_common.catalogue import REGISTRY, Command, Event, Message, Problem, Query

KINDS = {Message, Command, Event, Query}


def family_bases() -> dict[str, type[Message]]:
    registered = set(REGISTRY.values())
    return {
        name: obj
        for name, obj in vars(catalogue).items()
        if inspect.isclass(obj) and issubclass(obj, Message) and obj not in KINDS and obj not in registered
    }


def test_a_family_base_is_not_a_message():
    bases = family_bases()
    assert {"TeamQuery", "NotifierQuery", "AlertQuery", "BuildCommand", "BuildEvent", "DeploymentOutcome"} <= set(bases)
    for name, base in bases.items():
        assert base.TYPE == "", name
        assert "(not a message by itself)" in " ".join((base.__doc__ or "").split()), name


def test_every_message_names_its_sender_and_receiver():
    for type_, model in REGISTRY.items():
        assert model.PRODUCERS and model.CONSUMERS, type_
    assert catalogue.BuildCancelled.PRODUCERS == ("builder",) and catalogue.BuildCancelled.CONSUMERS == ("scheduler",)
    assert catalogue.DeploymentQueued.PRODUCERS == ("api",)
    assert catalogue.DeploymentFailed.CONSUMERS == ("api", "notifier")
    assert catalogue.ChannelGet.CONSUMERS == ("notifier",) and catalogue.AlertList.CONSUMERS == ("metrics",)


@pytest.mark.parametrize(
    ("model", "first"),
    [
        (catalogue.BuildFailed, ["build_id", "deployment_id", "application_id", "reason"]),
        (catalogue.StartBuild, ["build_id", "deployment_id", "application_id", "source"]),
        (catalogue.DeploymentSucceeded, ["deployment_id", "application_id", "team_id", "image"]),
        (catalogue.RouteFailed, ["route_id", "generation", "server_id", "operation"]),
        (catalogue.ChannelTest, ["team_id", "channel_id", "wait_s"]),
        (catalogue.AlertRuleUpdate, ["team_id", "rule_id", "rule"]),
    ],
)
def test_the_shared_fields_come_first_on_the_wire(model, first):
    assert list(model.model_fields)[: len(first)] == first


def test_an_id_has_1_to_64_characters():
    assert catalogue.ChannelList(team_id="t" * 64).team_id == "t" * 64
    for bad in ("", "t" * 65):
        with pytest.raises(ValidationError):
            catalogue.ChannelList(team_id=bad)
    assert catalogue.SubscriptionList(team_id="t").channel_id is None
    with pytest.raises(ValidationError):
        catalogue.SubscriptionList(team_id="t", channel_id="")


def test_a_build_id_starts_with_a_letter_or_digit():
    assert catalogue.CancelBuild(build_id="b1.x_y-z", deployment_id="d").build_id == "b1.x_y-z"
    for bad in ("", "-b", "b/1", "b" * 65):
        with pytest.raises(ValidationError):
            catalogue.CancelBuild(build_id=bad, deployment_id="d")


def test_every_refusal_is_a_problem():
    for model in (catalogue.NotifyProblem, catalogue.MetricsProblem):
        assert issubclass(model, Problem) and list(model.model_fields) == list(Problem.model_fields)
    problem = catalogue.MetricsProblem(status=404, type="not-found", title="no such rule", field="rule_id")
    assert problem.model_dump() == {
        "status": 404,
        "type": "not-found",
        "title": "no such rule",
        "field": "rule_id",
        "detail": "",
    }


def test_a_value_type_used_as_a_default_is_refused():
    class Wrong(catalogue.Event):
        TYPE = "evt.test.wrong"
        team_id: str = catalogue.Id  # the mistake: the type as the default value

    with pytest.raises(TypeError, match="team_id: Id"):
        catalogue.register(Wrong)
    assert "evt.test.wrong" not in REGISTRY
