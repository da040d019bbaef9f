"""The HTTPS a route command carries: the application's TLS options with only the certificates of the route's
hosts, and the route's owner; compared exactly, as data and as the JSON sent on the bus."""

from __future__ import annotations

from pydantic import SecretStr

from berth_common import sealing
from berth_common.catalogue import ApplicationSpec, ApplyRoutes, CustomCertificate, RemoveRoute, TlsOptions
from berth_scheduler.domain.route_tls import RouteTls, apply_routes, for_hosts, of_spec
from berth_scheduler.domain.routing import RouteOp
from berth_scheduler.usecases.rollout.routing import command_for

TEAM = "a" * 32
APP = "b" * 32
KEY = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIB0wCpVq1RwM\n-----END PRIVATE KEY-----\n"
CHAIN = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
SHOP = CustomCertificate(
    certificate_id="c" * 32, hosts=["shop.example.com", "www.shop.example.com"], chain_pem=CHAIN, key=SecretStr(KEY)
)
API = CustomCertificate(certificate_id="d" * 32, hosts=["api.example.com"], chain_pem=CHAIN, key=SecretStr(KEY))
TLS = TlsOptions(
    acme=True,
    redirect="always",
    www="to_apex",
    hsts_max_age_s=31_536_000,
    hsts_subdomains=True,
    certificates=[SHOP, API],
)
OP = RouteOp("apply", "app-web", ("shop.example.com", "web-shop.localhost"), ("http://10.0.0.5:8080",), "server1")


def _spec(tls: TlsOptions | None = None) -> ApplicationSpec:
    data = {
        "name": "shop",
        "source": {"kind": "image", "image": "nginx:1.27"},
        "services": [{"kind": "web", "name": "web", "port": 8080, "hosts": ["shop.example.com"]}],
    }
    return ApplicationSpec.model_validate({**data, **({"tls": tls} if tls is not None else {})})


def test_an_application_without_https_sends_its_routes_as_before():
    assert of_spec(_spec(), TEAM, APP) is None
    command = command_for(OP, 7, of_spec(_spec(), TEAM, APP))
    assert command == ApplyRoutes(
        route_id="app-web",
        hosts=["shop.example.com", "web-shop.localhost"],
        upstreams=["http://10.0.0.5:8080"],
        generation=7,
        server_id="server1",
    )
    assert command.model_dump(mode="json") == {
        "route_id": "app-web",
        "server_id": "server1",
        "hosts": ["shop.example.com", "web-shop.localhost"],
        "upstreams": ["http://10.0.0.5:8080"],
        "generation": 7,
        "entry_point": "web",
    }


def test_a_route_carries_the_options_its_owner_and_only_its_hosts_certificates():
    route_tls = of_spec(_spec(TLS), TEAM, APP)
    assert route_tls == RouteTls(TLS, TEAM, APP)
    command = apply_routes(OP, 3, route_tls)
    only_shop = CustomCertificate(
        certificate_id="c" * 32, hosts=["shop.example.com"], chain_pem=CHAIN, key=SecretStr(KEY)
    )
    assert command == ApplyRoutes(
        route_id="app-web",
        hosts=["shop.example.com", "web-shop.localhost"],
        upstreams=["http://10.0.0.5:8080"],
        generation=3,
        server_id="server1",
        tls=TlsOptions(
            acme=True,
            redirect="always",
            www="to_apex",
            hsts_max_age_s=31_536_000,
            hsts_subdomains=True,
            certificates=[only_shop],
        ),
        team_id=TEAM,
        application_id=APP,
    )
    assert command_for(OP, 3, route_tls) == command


def test_the_certificate_key_travels_sealed_and_opens_at_the_consumer():
    command = apply_routes(OP, 1, RouteTls(TLS, TEAM, APP))
    wire = command.model_dump(mode="json")
    sent = wire["tls"]["certificates"][0]["key"]
    assert sealing.is_sealed(sent) and KEY not in command.model_dump_json()
    assert {k: v for k, v in wire["tls"].items() if k != "certificates"} == {
        "acme": True,
        "challenge": "http-01",
        "redirect": "always",
        "www": "to_apex",
        "hsts_max_age_s": 31_536_000,
        "hsts_subdomains": True,
        "hsts_preload": False,
    }
    assert (wire["team_id"], wire["application_id"]) == (TEAM, APP)
    received = ApplyRoutes.model_validate(wire)
    assert received.tls is not None and received.tls.certificates[0].reveal() == KEY
    assert received.tls.certificates[0].hosts == ["shop.example.com"]


def test_certificates_are_narrowed_to_the_hosts_and_the_others_left_out():
    assert for_hosts(TLS, ["api.example.com"]).certificates == [API]
    assert for_hosts(TLS, ["WWW.shop.example.com", "shop.example.com"]).certificates == [SHOP]
    assert for_hosts(TLS, ["other.example.com"]) == TLS.model_copy(update={"certificates": []})


def test_options_without_acme_but_with_a_certificate_still_go_to_the_route():
    tls = TlsOptions(certificates=[API])
    route_tls = of_spec(_spec(tls), TEAM, APP)
    assert route_tls == RouteTls(tls, TEAM, APP)
    op = RouteOp("apply", "app-api", ("api.example.com",), ("http://127.0.0.1:9000",))
    assert apply_routes(op, 1, route_tls) == ApplyRoutes(
        route_id="app-api",
        hosts=["api.example.com"],
        upstreams=["http://127.0.0.1:9000"],
        generation=1,
        tls=TlsOptions(certificates=[API]),
        team_id=TEAM,
        application_id=APP,
    )


def test_a_removal_is_the_same_with_or_without_https():
    op = RouteOp("remove", "app-web", server_id="server1")
    expected = RemoveRoute(route_id="app-web", generation=4, server_id="server1")
    assert command_for(op, 4, RouteTls(TLS, TEAM, APP)) == expected == command_for(op, 4)
