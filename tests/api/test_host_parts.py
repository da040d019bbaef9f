"""The rule (pure) that a name under the base domain is an application's: one whose label right under the base
domain ends with ``-<app>-<env>``, at any depth (Dokploy's ``habitica.${domain}``), or one under its own
generated host; any other name under the base domain is a 422 naming the field where it was given."""

from __future__ import annotations

from typing import Any

import pytest

from berth_api.domain import host_claims
from berth_api.domain.hosts import generated_host, namespace_of, own_namespace
from berth_api.domain.problems import ProblemError

BASE, APP, ENV = "apps.test", "tasks", "production"


def _claimed(*domains: str, app: str = APP, env: str = ENV) -> dict[str, bool]:
    services: list[dict[str, Any]] = [{"kind": "web", "name": "client", "domains": list(domains)}]
    return {c.host: c.generated for c in host_claims.claims(services, app, env, BASE)}


@pytest.mark.parametrize(
    "host",
    [
        "habitica.main-domain-tasks-production.apps.test",  # depth 1 under the part (habitica)
        "web-ui.webui-domain-tasks-production.apps.test",  # garage-with-ui
        "a.b.main-domain-tasks-production.apps.test",  # depth 2
        "*.main-domain-tasks-production.apps.test",
        "search-web-tasks-production.apps.test",  # the part itself (wanderer's search-${domain})
        "db.client-tasks-production.apps.test",  # under its own generated host
    ],
)
def test_a_name_in_the_applications_own_part_is_claimed_as_a_custom_host(host: str) -> None:
    assert _claimed(host) == {"client-tasks-production.apps.test": True, host: False}


@pytest.mark.parametrize(
    ("host", "whose"),
    [
        ("habitica.main-domain-blog-production.apps.test", "another application's"),
        ("a.b.main-domain-blog-production.apps.test", "another application's, at depth 2"),
        ("habitica.main-domain-tasks-staging.apps.test", "another environment's"),
        ("x.y.main-domain-tasks-staging.apps.test", "another environment's, at depth 2"),
        ("habitica.main-domain-tasks-production-2.apps.test", "a label that only starts alike"),
        ("habitica.tasks-production.apps.test", "no service label in front"),
        ("apps.test", "the base domain"),
        ("*.apps.test", "every name of the base domain"),
    ],
)
def test_a_name_in_another_part_of_the_base_domain_is_a_422_naming_the_field(host: str, whose: str) -> None:
    with pytest.raises(ProblemError) as caught:
        _claimed("shop.example.com", host)
    assert caught.value.status == 422, whose
    assert caught.value.errors == [
        {
            "loc": "/body/services/0/domains/1",
            "detail": "host names under apps.test are reserved for generated hosts",
            "type": "value_error",
        }
    ], whose


def test_a_hashed_generated_host_keeps_the_names_under_it() -> None:
    """A generated label too long for DNS is cut and hashed (it no longer ends with -<app>-<env>): names
    under it are still the application's, as its own generated host; the label alone does not make them."""
    app = "a-very-long-application-name-that-fills-most-of-the-label"
    own = generated_host("client", app, ENV, BASE)
    assert not own.split(".")[0].endswith(f"-{app}-{ENV}")
    assert own_namespace(f"db.{own}", app, ENV, BASE, {own})
    assert not own_namespace(f"db.{own}", app, ENV, BASE, set())
    assert _claimed(f"db.x.{own}", app=app)[f"db.x.{own}"] is False


def test_the_part_of_the_base_domain_a_host_is_in() -> None:
    assert namespace_of("habitica.main-tasks-production.apps.test", BASE) == "main-tasks-production.apps.test"
    assert namespace_of("a.b.main-tasks-production.apps.test", BASE) == "main-tasks-production.apps.test"
    assert namespace_of("main-tasks-production.apps.test", BASE) == "main-tasks-production.apps.test"
    assert namespace_of("*.main-tasks-production.apps.test", BASE) == "main-tasks-production.apps.test"
    assert namespace_of("apps.test", BASE) is None
    assert namespace_of("shop.example.com", BASE) is None
    assert namespace_of("xapps.test", BASE) is None
