"""HTTPS as pure data, by exact comparison: Traefik's static configuration (websecure, ACME resolvers),
a server's Traefik container, a route's file with TLS options (ACME, uploaded certificates, the HTTP to
HTTPS redirect, www <-> apex, HSTS), the DNS judgement and the certificate facts."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import SecretStr

from berth_cli import components
from berth_common import traefik as tr
from berth_common.catalogue.tls import CustomCertificate, TlsOptions
from berth_proxy_sync.adapters import dns
from berth_proxy_sync.domain import proxy_handover as ph
from berth_proxy_sync.domain import served
from berth_proxy_sync.domain.routes import Route, full_config, render, route_config
from berth_proxy_sync.domain.tls import REDIRECT_PRIORITY, HostStates, TlsSite, certificate_file, plan
from berth_proxy_sync.settings import ProxySyncSettings
from tests.proxy.acme_support import cert_pair

LE = "https://acme-v02.api.letsencrypt.org/directory"
SITE = TlsSite(certs_dir="/etc/traefik/certs")
UP = "http://10.0.0.5:8080"


def route(hosts: list[str], tls: TlsOptions | None) -> Route:
    return Route.create("app", hosts, [UP], tls=tls)


def base(hosts: str) -> dict:
    """The route's own router and service (as without TLS)."""
    return {
        "routers": {"route-app": {"rule": hosts, "service": "route-app", "entryPoints": ["web"]}},
        "services": {"route-app": {"loadBalancer": {"passHostHeader": True, "servers": [{"url": UP}]}}},
    }


# --- static configuration ------------------------------------------------------------------------------


BODY_READ = "berth-body-read@file"  # the web entry points' body reader (berth_common.traefik_body)
TRANSPORT = {"keepAliveMaxTime": "10s", "lifeCycle": {"requestAcceptGraceTimeout": "1s", "graceTimeOut": "10s"}}


def test_the_static_configuration_gains_websecure_and_one_acme_resolver_per_challenge():
    acme = tr.Acme(storage="/data/acme.json", email="ops@example.com")
    cfg = tr.static_config("/dyn", "", 80, "127.0.0.1", 8081, websecure_port=443, acme=acme)
    web = {"aliasHeadersStrategy": "delete", "middlewares": [BODY_READ]}
    shared = {"reusePort": True, "transport": TRANSPORT}  # a replacing Traefik shares the ports (berth_cli.handoff)
    assert cfg["entryPoints"] == {
        "web": {"address": ":80", **shared, "http": web},
        "websecure": {"address": ":443", **shared, "http": web},
        "traefik": {"address": "127.0.0.1:8081", **shared, "http": {"aliasHeadersStrategy": "delete"}},
    }
    common = {
        "caServer": LE,
        "storage": "/data/acme.json",
        "keyType": "EC256",
        "certificatesDuration": 2160,
        "email": "ops@example.com",
    }
    assert cfg["certificatesResolvers"] == {
        "berth-http": {"acme": {**common, "httpChallenge": {"entryPoint": "web"}}},
        "berth-tls": {"acme": {**common, "tlsChallenge": {}}},
    }
    # without websecure: exactly the HTTP-only configuration of before
    plain = tr.static_config("/dyn", "", 80, "127.0.0.1", 8081)
    assert set(plain["entryPoints"]) == {"web", "traefik"} and "certificatesResolvers" not in plain


def test_acme_settings_come_from_the_environment_with_a_dns_provider_and_a_ca_bundle():
    env = {
        "BERTH_ACME_DIRECTORY_URL": "https://127.0.0.1:14000/dir",
        "BERTH_ACME_CA_BUNDLE": "/etc/berth/pebble.pem",
        "BERTH_ACME_DNS_PROVIDER": "cloudflare",
        "BERTH_ACME_DNS_RESOLVERS": "1.1.1.1:53, 8.8.8.8:53",
        "BERTH_ACME_DNS_ENV": "CF_DNS_API_TOKEN=abc, CF_ZONE_API_TOKEN=def",
    }
    acme = tr.acme_from_env(env, storage="/d/acme.json")
    assert acme.resolvers()["berth-dns"] == {
        "acme": {
            "caServer": "https://127.0.0.1:14000/dir",
            "storage": "/d/acme.json",
            "keyType": "EC256",
            "certificatesDuration": 2160,
            "dnsChallenge": {"provider": "cloudflare", "resolvers": ["1.1.1.1:53", "8.8.8.8:53"]},
        }
    }
    assert acme.env() == {
        "CF_DNS_API_TOKEN": "abc",
        "CF_ZONE_API_TOKEN": "def",
        "LEGO_CA_CERTIFICATES": "/etc/berth/pebble.pem",
    }
    for bad in (
        {"BERTH_ACME_DIRECTORY_URL": "ftp://x"},
        {"BERTH_ACME_KEY_TYPE": "DSA"},
        {"BERTH_ACME_DNS_PROVIDER": "Cloud Flare"},
        {"BERTH_ACME_DNS_ENV": "lower=1"},
        {"BERTH_ACME_DNS_ENV": "NOVALUE"},
    ):
        with pytest.raises(ValueError):
            tr.acme_from_env(bad, storage="/d/acme.json")


def test_the_certificates_lifetime_goes_into_every_resolver_so_traefik_renews_short_lived_ones_in_time():
    env = {
        "BERTH_ACME_DNS_PROVIDER": "httpreq",
        "BERTH_ACME_CERTIFICATE_HOURS": "160",  # Let's Encrypt's 6-day (160-hour) profile
    }
    acme = tr.acme_from_env(env, storage="/d/acme.json")
    common = {"caServer": LE, "storage": "/d/acme.json", "keyType": "EC256", "certificatesDuration": 160}
    assert tr.static_config("/dyn", "", 80, "", 8081, websecure_port=443, acme=acme)["certificatesResolvers"] == {
        "berth-http": {"acme": {**common, "httpChallenge": {"entryPoint": "web"}}},
        "berth-tls": {"acme": {**common, "tlsChallenge": {}}},
        "berth-dns": {"acme": {**common, "dnsChallenge": {"provider": "httpreq"}}},
    }
    assert tr.acme_from_env({}, storage="/d/acme.json").certificate_hours == tr.DEFAULT_CERTIFICATE_HOURS == 2160
    for bad in ("0", "-5", "1.5", "six days", str(24 * 398 + 1)):
        with pytest.raises(ValueError, match="BERTH_ACME_CERTIFICATE_HOURS must be a whole number of hours"):
            tr.acme_from_env({"BERTH_ACME_CERTIFICATE_HOURS": bad}, storage="/d/acme.json")
    # a server's Traefik container gets the same from proxy-sync's settings
    settings = ProxySyncSettings(acme_certificate_hours=160)
    static = json.loads(tr.server_static_config(websecure_port=443, acme=tr.server_acme(settings.acme())))
    assert {r["acme"]["certificatesDuration"] for r in static["certificatesResolvers"].values()} == {160}
    with pytest.raises(ValueError):
        ProxySyncSettings(acme_certificate_hours=0)


def test_a_short_lived_acme_certificate_is_told_as_expiring_only_once_its_renewal_is_late():
    """Traefik renews a 6-day certificate 2 days before its end: it is always within 14 days of its end,
    so an ACME one is told within a sixth of its lifetime (1 day) instead; an uploaded one as before."""
    now = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)
    six_days = served.Served("AA", "CN=E7", "a.example.com", now, now + dt.timedelta(days=6), ("a.example.com",))
    assert served.expiring(six_days, now + dt.timedelta(days=4), 14, acme=True) is None  # renewal window: on time
    assert served.expiring(six_days, now + dt.timedelta(days=5, hours=12), 14, acme=True) == 0.5
    assert served.expiring(six_days, now + dt.timedelta(days=4), 14) == 2.0  # an upload: told 14 days ahead
    assert served.expiring(six_days, now + dt.timedelta(days=5, hours=12), 0.25, acme=True) is None  # the lower


def test_dns_01_propagation_is_checked_at_the_authoritative_nameservers_or_at_every_resolver_given():
    env = {"BERTH_ACME_DNS_PROVIDER": "httpreq", "BERTH_ACME_DNS_ENV": "HTTPREQ_PASSWORD=s3cret"}
    default = tr.acme_from_env(env, storage="/d/acme.json")
    assert default.dns_propagation == "authoritative"
    assert default.resolvers()["berth-dns"]["acme"]["dnsChallenge"] == {"provider": "httpreq"}  # lego's default
    env |= {"BERTH_ACME_DNS_RESOLVERS": "127.0.0.1:8053", "BERTH_ACME_DNS_PROPAGATION": "resolvers"}
    acme = tr.acme_from_env(env, storage="/d/acme.json")
    assert acme.resolvers()["berth-dns"]["acme"]["dnsChallenge"] == {
        "provider": "httpreq",
        "resolvers": ["127.0.0.1:8053"],
        "propagation": {"disableANSChecks": True, "requireAllRNS": True},
    }
    assert acme.env() == {"HTTPREQ_PASSWORD": "s3cret"}
    assert "s3cret" not in repr(acme)  # the credentials are in no repr (nor a log line made of one)
    with pytest.raises(ValueError, match="BERTH_ACME_DNS_PROPAGATION must be one of authoritative, resolvers"):
        tr.acme_from_env({**env, "BERTH_ACME_DNS_PROPAGATION": "none"}, storage="/d/acme.json")
    with pytest.raises(ValueError, match="needs BERTH_ACME_DNS_RESOLVERS"):
        tr.acme_from_env({**env, "BERTH_ACME_DNS_RESOLVERS": ""}, storage="/d/acme.json")


def test_proxy_sync_keeps_the_dns_providers_credentials_out_of_its_settings_repr():
    settings = ProxySyncSettings(
        acme_dns_provider="httpreq",
        acme_dns_env="HTTPREQ_ENDPOINT=http://dns.internal,HTTPREQ_PASSWORD=s3cret",
        acme_dns_resolvers="127.0.0.1:8053",
        acme_dns_propagation="resolvers",
    )
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.model_dump())
    acme = settings.acme()
    assert acme.env()["HTTPREQ_PASSWORD"] == "s3cret" and acme.dns_propagation == "resolvers"


def test_a_servers_traefik_gets_dns_01_from_proxy_syncs_settings_and_the_credentials_in_its_environment_only():
    settings = ProxySyncSettings(
        acme_dns_provider="httpreq",
        acme_dns_env="HTTPREQ_ENDPOINT=http://dns.internal:8080,HTTPREQ_PASSWORD=s3cret",
        acme_dns_resolvers="10.0.0.53:53",
        acme_dns_propagation="resolvers",
    )
    static = json.loads(tr.server_static_config(websecure_port=443, acme=tr.server_acme(settings.acme())))
    assert static["certificatesResolvers"]["berth-dns"]["acme"]["dnsChallenge"] == {
        "provider": "httpreq",
        "resolvers": ["10.0.0.53:53"],
        "propagation": {"disableANSChecks": True, "requireAllRNS": True},
    }
    assert "s3cret" not in json.dumps(static)
    body = ph.traefik_body("berth/traefik:3.7.15", "/srv/t/s1", websecure_port=443, acme=settings.acme())
    assert "HTTPREQ_PASSWORD=s3cret" in body["Env"]


def test_the_cli_runs_traefik_with_https_its_acme_storage_and_the_ca_bundle_in_its_environment(tmp_path):
    env = {"BERTH_ACME_DIRECTORY_URL": "https://127.0.0.1:14000/dir", "BERTH_ACME_CA_BUNDLE": "/ca.pem"}
    launch = components.traefik_launch(tmp_path, "127.0.0.1", 18080, 18081, websecure_port=18443, env=env)
    static = json.loads((tmp_path / "traefik" / "static.yml").read_text())
    assert static["entryPoints"]["websecure"]["address"] == "127.0.0.1:18443"
    assert static["certificatesResolvers"]["berth-http"]["acme"]["storage"] == str(tmp_path / "traefik" / "acme.json")
    assert static["certificatesResolvers"]["berth-tls"]["acme"]["caServer"] == "https://127.0.0.1:14000/dir"
    assert launch.env == {"LEGO_CA_CERTIFICATES": "/ca.pem"}


def test_the_cli_picks_the_https_port():
    from berth_cli.layout import PORT_SPAN, proxy_tls_port, resolve_ports

    assert proxy_tls_port({}, resolve_ports({})) == 8443
    assert proxy_tls_port({"BERTH_PROXY_TLS_PORT": "9443"}, resolve_ports({})) == 9443
    env = {"BERTH_PORT_BASE": "30000"}
    ports = resolve_ports(env)
    assert proxy_tls_port(env, ports) == 30000 + PORT_SPAN  # the port after the platform's others
    with pytest.raises(ValueError, match="both proxy and the HTTPS entry point"):
        proxy_tls_port({"BERTH_PROXY_TLS_PORT": "8080"}, resolve_ports({}))


def test_a_servers_traefik_publishes_443_and_keeps_its_acme_storage_on_the_host():
    acme = tr.Acme(storage="acme.json", ca_bundle="/etc/berth/ca.pem", dns_env=(("DO_AUTH_TOKEN", "x"),))
    holder = ph.holder_create("berth/traefik:3.7.15", 80, websecure_port=443).body
    assert holder is not None
    assert holder["ExposedPorts"] == {"80/tcp": {}, "443/tcp": {}}
    assert holder["HostConfig"]["PortBindings"] == {
        "80/tcp": [{"HostIp": "", "HostPort": "80"}],
        "443/tcp": [{"HostIp": "", "HostPort": "443"}],
    }
    body = ph.traefik_body("berth/traefik:3.7.15", "/srv/t/s1", websecure_port=443, acme=acme, instance="ab")
    assert body["HostConfig"]["Binds"] == [
        "/srv/t/s1/traefik.yml:/etc/traefik/traefik.yml:ro",
        "/srv/t/s1/dynamic:/etc/traefik/dynamic:ro",
        "/srv/t/s1/acme:/etc/traefik/acme",
        "/srv/t/s1/certs:/etc/traefik/certs:ro",
        "/srv/t/s1/acme-ca.pem:/etc/traefik/acme-ca.pem:ro",
    ]
    assert body["Env"] == [
        "BERTH_TRAEFIK_INSTANCE=ab",
        "DO_AUTH_TOKEN=x",
        "LEGO_CA_CERTIFICATES=/etc/traefik/acme-ca.pem",
    ]
    static = json.loads(tr.server_static_config(websecure_port=443, acme=tr.server_acme(acme)))
    assert static["entryPoints"]["websecure"]["address"] == ":443"
    assert static["certificatesResolvers"]["berth-http"]["acme"]["storage"] == "/etc/traefik/acme/acme.json"
    held = {"Id": "h1", "State": {"StartedAt": "2026-12-06T20:00:00Z"}}
    info = {
        "Config": {"Image": "berth/traefik:3.7.15", "Env": ["PATH=/bin", *body["Env"]]},
        "HostConfig": {**body["HostConfig"], "NetworkMode": "container:h1"},
        "State": {"StartedAt": "2026-12-06T20:00:01Z"},
    }
    wanted = {"websecure_port": 443, "acme": acme}
    assert ph.traefik_problem(info, held, "berth/traefik:3.7.15", "/srv/t/s1", **wanted) is None  # type: ignore[arg-type]
    # the container of before (HTTP only) is replaced
    assert (
        ph.traefik_problem(info, held, "berth/traefik:3.7.15", "/srv/t/s1")
        == "its folders are not the server's Berth folders"
    )


# --- a route's file with TLS options -----------------------------------------------------------------


def test_without_tls_options_the_route_file_is_the_http_only_one():
    r = route(["a.example.com"], None)
    assert full_config(r, SITE, HostStates()) == route_config(r) == {"http": base("Host(`a.example.com`)")}
    # TLS options that enable nothing are no TLS options
    assert route(["a.example.com"], TlsOptions()).tls is None
    assert render(route(["a.example.com"], TlsOptions())) == render(r)


def test_acme_hosts_get_a_websecure_router_with_the_challenges_resolver_once_cleared():
    tls = TlsOptions(acme=True, challenge="tls-alpn-01", redirect="never")
    r = route(["a.example.com", "b.example.com"], tls)
    rule = "Host(`a.example.com`) || Host(`b.example.com`)"
    cleared = HostStates(acme_ok=frozenset({"a.example.com"}))
    http = base(rule)
    http["routers"]["route-app-acme"] = {
        "rule": "Host(`a.example.com`)",
        "service": "route-app",
        "entryPoints": ["websecure"],
        "tls": {"certResolver": "berth-tls"},
    }
    assert full_config(r, SITE, cleared) == {"http": http}
    # nothing cleared (the DNS check refused them, or it did not run yet): HTTP only, the CA is not asked
    assert full_config(r, SITE, HostStates()) == {"http": base(rule)}
    # a site without HTTPS: HTTP only
    assert full_config(r, None, cleared) == {"http": base(rule)}


def test_redirect_auto_waits_for_the_certificate_and_always_does_not():
    host = "a.example.com"
    r = route([host], TlsOptions(acme=True, redirect="auto"))
    cleared = HostStates(acme_ok=frozenset({host}))
    acme_router = {
        "rule": f"Host(`{host}`)",
        "service": "route-app",
        "entryPoints": ["websecure"],
        "tls": {"certResolver": "berth-http"},
    }
    redirect = {
        "routers": {
            "route-app-to-https": {
                "rule": f"Host(`{host}`)",
                "service": "route-app",
                "entryPoints": ["web"],
                "middlewares": ["route-app-to-https"],
                "priority": REDIRECT_PRIORITY,
            }
        },
        "middlewares": {"route-app-to-https": {"redirectScheme": {"scheme": "https", "permanent": True}}},
    }
    waiting = {"http": {**base(f"Host(`{host}`)")}}
    waiting["http"]["routers"]["route-app-acme"] = acme_router
    assert full_config(r, SITE, cleared) == waiting
    certified = HostStates(acme_ok=frozenset({host}), certified=frozenset({host}))
    done = full_config(r, SITE, certified)
    assert done["http"]["routers"] == {**waiting["http"]["routers"], **redirect["routers"]}
    assert done["http"]["middlewares"] == redirect["middlewares"]
    always = route([host], TlsOptions(acme=True, redirect="always"))
    assert full_config(always, SITE, cleared) == done
    # a public HTTPS port other than 443 is named in the redirect
    port = full_config(always, TlsSite("/c", https_port=8443), cleared)
    assert port["http"]["middlewares"]["route-app-to-https"] == {
        "redirectScheme": {"scheme": "https", "permanent": True, "port": "8443"}
    }


def test_www_to_apex_and_apex_to_www_and_hsts():
    apex, www = "example.com", "www.example.com"
    tls = TlsOptions(acme=True, redirect="never", www="to_apex", hsts_max_age_s=31536000, hsts_subdomains=True)
    r = route([apex, www], tls)
    both = HostStates(acme_ok=frozenset({apex, www}))
    cfg = full_config(r, SITE, both)
    resolver = {"certResolver": "berth-http"}
    assert cfg["http"]["routers"] == {
        **base(f"Host(`{apex}`) || Host(`{www}`)")["routers"],
        "route-app-acme": {
            "rule": f"Host(`{apex}`)",
            "service": "route-app",
            "entryPoints": ["websecure"],
            "tls": resolver,
            "middlewares": ["route-app-hsts"],
        },
        "route-app-acme-www": {
            "rule": f"Host(`{www}`)",
            "service": "route-app",
            "entryPoints": ["websecure"],
            "tls": resolver,
            "middlewares": ["route-app-hsts", "route-app-www"],
        },
        "route-app-www": {
            "rule": f"Host(`{www}`)",
            "service": "route-app",
            "entryPoints": ["web"],
            "middlewares": ["route-app-www"],
            "priority": REDIRECT_PRIORITY,
        },
    }
    assert cfg["http"]["middlewares"] == {
        "route-app-hsts": {"headers": {"stsSeconds": 31536000, "stsIncludeSubdomains": True}},
        "route-app-www": {
            "redirectRegex": {
                "regex": "^(https?)://www\\.(example\\.com)(:[0-9]+)?(/.*)?$",
                "replacement": "${1}://${2}${3}${4}",
                "permanent": True,
            }
        },
    }
    to_www = full_config(route([apex, www], TlsOptions(acme=True, www="to_www", hsts_preload=True)), SITE, both)
    assert to_www["http"]["middlewares"] == {
        "route-app-www": {
            "redirectRegex": {
                "regex": "^(https?)://(example\\.com)(:[0-9]+)?(/.*)?$",
                "replacement": "${1}://www.${2}${3}${4}",
                "permanent": True,
            }
        }
    }  # hsts_max_age_s 0: no HSTS header, whatever the other HSTS options
    assert to_www["http"]["routers"]["route-app-acme-www"]["rule"] == f"Host(`{apex}`)"
    # www redirect without both names among the hosts: nothing to redirect
    assert plan([apex], TlsOptions(acme=True, www="to_www"), both).www == {}


def test_an_uploaded_certificate_is_named_by_file_and_its_hosts_redirect_at_once():
    _, chain, key = cert_pair(["shop.example.com"])
    cert = CustomCertificate(certificate_id="cert-1", hosts=["shop.example.com"], chain_pem=chain, key=SecretStr(key))
    r = route(["shop.example.com", "api.example.com"], TlsOptions(acme=True, certificates=[cert]))
    cfg = full_config(r, SITE, HostStates(acme_ok=frozenset({"api.example.com"})))
    name = certificate_file("cert-1")
    assert name == "cert-" + __import__("hashlib").sha256(b"cert-1").hexdigest()[:32]
    assert cfg["tls"] == {
        "certificates": [{"certFile": f"/etc/traefik/certs/{name}.crt", "keyFile": f"/etc/traefik/certs/{name}.key"}]
    }
    routers = cfg["http"]["routers"]
    assert routers["route-app-custom"] == {
        "rule": "Host(`shop.example.com`)",
        "service": "route-app",
        "entryPoints": ["websecure"],
        "tls": {},
    }
    assert routers["route-app-acme"]["rule"] == "Host(`api.example.com`)"  # the ACME resolver gets the rest
    assert routers["route-app-to-https"]["rule"] == "Host(`shop.example.com`)"  # auto: it has its certificate
    assert key.splitlines()[1] not in render(r, SITE, HostStates())  # never a key in a file Traefik watches


def test_dns01_without_a_provider_names_no_resolver():
    r = route(["a.example.com"], TlsOptions(acme=True, challenge="dns-01", redirect="never"))
    states = HostStates(acme_ok=frozenset({"a.example.com"}))
    assert full_config(r, SITE, states)["http"]["routers"]["route-app-acme"]["tls"] == {}
    with_dns = TlsSite("/c", dns_resolver=True)
    assert full_config(r, with_dns, states)["http"]["routers"]["route-app-acme"]["tls"] == {"certResolver": "berth-dns"}


# --- DNS, certificates --------------------------------------------------------------------------------


def test_a_host_must_resolve_to_the_server_and_nothing_else():
    assert served.dns_problem("a.example.com", ["203.0.113.5"], ["203.0.113.5"]) is None
    assert served.dns_problem("a.example.com", ["203.0.113.5", "2001:db8::5"], ["2001:db8::5", "203.0.113.5"]) is None
    assert served.dns_problem("a.example.com", ["203.0.113.5"], []) == (
        "a.example.com does not resolve (no A or AAAA record): point it at 203.0.113.5 before a certificate is asked for"
    )
    assert served.dns_problem("a.example.com", ["203.0.113.5"], ["198.51.100.7", "203.0.113.5"]) == (
        "a.example.com resolves to 198.51.100.7, 203.0.113.5, not to the server that serves it (203.0.113.5): "
        "fix its DNS records; no certificate was asked for"
    )


def test_the_dns_wire_format():
    q = dns.query("a.example.com", 1, 0x1234)
    assert q == bytes.fromhex("123401000001000000000000") + b"\x01a\x07example\x03com\x00" + b"\x00\x01\x00\x01"
    answer = (
        bytes.fromhex("123481800001000200000000")
        + q[12:]
        + b"\xc0\x0c\x00\x05\x00\x01\x00\x00\x00\x3c\x00\x02\xc0\x0c"  # a CNAME (skipped)
        + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xcb\x00\x71\x05"  # A 203.0.113.5
    )
    assert dns.parse(answer, 0x1234) == ["203.0.113.5"]
    assert dns.parse(bytes.fromhex("123481830001000000000000") + q[12:], 0x1234) == []  # NXDOMAIN
    with pytest.raises(dns.DnsError):
        dns.parse(answer, 0x9999)
    assert dns.parse_server("127.0.0.1:8053") == ("127.0.0.1", 8053)
    assert dns.parse_server("[::1]:53") == ("::1", 53)
    assert dns.parse_server("1.1.1.1") == ("1.1.1.1", 53)


def test_what_a_served_certificate_says():
    _, chain, _ = cert_pair(["a.example.com", "*.b.example.com"])
    leaf = x509.load_pem_x509_certificate(chain.encode())
    der = leaf.public_bytes(serialization.Encoding.DER)
    s = served.read(der)
    assert s.fingerprint_sha256 == served.fingerprint(der) and len(s.fingerprint_sha256) == 95
    assert s.issuer == "CN=berth test CA" and s.domains == ("a.example.com", "*.b.example.com")
    now = dt.datetime.now(dt.UTC)
    assert s.serves("a.example.com", now) and s.serves("x.b.example.com", now)
    assert not s.serves("b.example.com", now) and not s.serves("y.x.b.example.com", now)
    assert not s.serves("a.example.com", s.not_after)  # ended
    assert served.expiring(s, now, 14) is None
    assert served.expiring(s, s.not_after - dt.timedelta(days=10), 14) == 10.0
    assert served.expiring(s, s.not_after - dt.timedelta(days=10), 14, acme=True) == 10.0  # 90 days: as before
    from berth_proxy_sync.domain.certificate import self_signed

    default = served.read(
        x509.load_pem_x509_certificate(self_signed()[0].encode()).public_bytes(serialization.Encoding.DER)
    )
    assert default.is_default and not default.serves("a.example.com", now)


async def test_a_route_with_https_is_live_only_when_its_other_routers_are_enabled():
    from berth_proxy_sync.adapters.traefik_api import observe_live, snapshot_lookup

    r = route(["a.example.com"], TlsOptions(acme=True))
    raw = {
        "services": {
            "route-app@file": {"loadBalancer": {"servers": [{"url": UP}], "passHostHeader": True}, "status": "enabled"}
        },
        "routers": {
            "route-app@file": {"rule": "Host(`a.example.com`)", "entryPoints": ["web"], "status": "enabled"},
            "route-app-acme@file": {"status": "disabled", "error": ['entryPoint "websecure" doesn\'t exist']},
        },
    }
    assert (await observe_live(r, snapshot_lookup(raw))).ok  # the route's own router and service
    seen = await observe_live(r, snapshot_lookup(raw), ("route-app-acme",))
    assert (
        not seen.ok
        and seen.detail == "router route-app-acme status 'disabled': ['entryPoint \"websecure\" doesn\\'t exist']"
    )
    raw["routers"]["route-app-acme@file"] = {"status": "enabled"}
    assert (await observe_live(r, snapshot_lookup(raw), ("route-app-acme",))).ok
    assert (await observe_live(r, snapshot_lookup(raw), ("route-app-to-https",))).detail == (
        "router route-app-to-https@file: HTTP 404"
    )


def test_the_cas_answer_is_read_from_traefiks_log():
    line = (
        "\x1b[90m2026-12-05T08:50:01Z\x1b[0m \x1b[31mERR\x1b[0m provider.go:457 > Unable to obtain ACME certificate "
        'for domains \x1b[36merror=\x1b[0m"unable to generate a certificate for the domains [a.example.com]: '
        'acme: error: 400 :: urn:ietf:params:acme:error:connection :: \\"dial tcp: refused\\"" '
        '\x1b[36mACME CA=\x1b[0mhttps://ca/dir domains=["a.example.com"] providerName=berth-http.acme'
    )
    log = "\n".join(["other line", line, "2026-12-05 INF a.example.com served"])
    assert served.acme_reason(log, "a.example.com") == (
        "unable to generate a certificate for the domains [a.example.com]: acme: error: 400 :: "
        'urn:ietf:params:acme:error:connection :: "dial tcp: refused"'
    )
    assert served.acme_reason(log, "b.example.com") is None


async def test_dns01_without_a_provider_is_refused_before_the_ca_and_unknown_addresses_skip_the_check():
    from berth_common.catalogue import ApplyRoutes
    from berth_proxy_sync.usecases.https import HostCheck, Https

    msg = ApplyRoutes(
        route_id="app", hosts=["a.example.com"], upstreams=[UP], tls=TlsOptions(acme=True, challenge="dns-01")
    )
    why = "a.example.com: DNS-01 needs a DNS provider: set BERTH_ACME_DNS_PROVIDER (and its credentials in BERTH_ACME_DNS_ENV)"
    assert await Https(["203.0.113.5"]).check(None, msg) == {  # type: ignore[arg-type]
        "a.example.com": HostCheck("a.example.com", False, reason=why, stage="acme")
    }
    http01 = msg.model_copy(update={"tls": TlsOptions(acme=True)})
    assert await Https([]).check(None, http01) == {"a.example.com": HostCheck("a.example.com", True)}  # type: ignore[arg-type]
    assert await Https([]).check(None, msg.model_copy(update={"tls": TlsOptions()})) == {}  # type: ignore[arg-type]


async def test_uploaded_certificates_are_written_0600_and_one_whose_key_does_not_open_is_refused(tmp_path):
    import os

    from berth_common import sealing
    from berth_proxy_sync.adapters.cert_files import LocalCertFiles
    from berth_proxy_sync.usecases.https import CertificateUnusable, sync_certificates, write_certificates

    _, chain, key = cert_pair(["a.example.com"])
    good = CustomCertificate(certificate_id="c1", hosts=["a.example.com"], chain_pem=chain, key=SecretStr(key))
    certs = LocalCertFiles(tmp_path / "certs")
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / f"{certificate_file('gone')}.key").write_text("old")  # of a route that is gone
    r = route(["a.example.com"], TlsOptions(certificates=[good]))
    assert await sync_certificates(certs, [r]) == 1
    name = certificate_file("c1")
    assert sorted(os.listdir(tmp_path / "certs")) == [f"{name}.crt", f"{name}.key"]
    assert os.stat(tmp_path / "certs" / f"{name}.key").st_mode & 0o777 == 0o600
    assert os.stat(tmp_path / "certs").st_mode & 0o777 == 0o700
    assert (tmp_path / "certs" / f"{name}.key").read_text() == key
    # a key sealed for another certificate does not open here: the change is refused, the key never shown
    moved = sealing.seal(key, "berth/certificate/other")
    bad = CustomCertificate(certificate_id="c2", hosts=["a.example.com"], chain_pem=chain, key=SecretStr(moved))
    with pytest.raises(CertificateUnusable, match=r"^the key of certificate c2 does not open: UnsealError$"):
        await write_certificates(certs, route(["a.example.com"], TlsOptions(certificates=[bad])))
    assert not (tmp_path / "certs" / f"{certificate_file('c2')}.key").exists()


def test_an_uploaded_certificate_that_has_ended_is_left_out():
    host = "shop.example.com"
    _, old_chain, old_key = cert_pair([host], days=1)
    _, new_chain, new_key = cert_pair([host], days=90)
    ending = CustomCertificate(certificate_id="old", hosts=[host], chain_pem=old_chain, key=SecretStr(old_key))
    lasting = CustomCertificate(certificate_id="new", hosts=[host], chain_pem=new_chain, key=SecretStr(new_key))
    tls = TlsOptions(acme=True, certificates=[ending, lasting])
    now = dt.datetime.now(dt.UTC)
    assert served.ended_uploads(tls, now) == () and served.without_ended(tls, now) is tls
    later = now + dt.timedelta(days=2)
    assert served.ended_uploads(tls, later) == ("old",)
    assert [c.certificate_id for c in served.without_ended(tls, later).certificates] == ["new"]
    gone = now + dt.timedelta(days=91)
    assert served.without_ended(tls, gone).certificates == [] and served.without_ended(tls, gone).acme
    assert served.ended_uploads(None, gone) == ()
