"""Traefik's API answers proxy-sync only: the static configuration (every Traefik Berth runs: the local
one, docker-compose's, each server's) serves it on no entry point by itself (no ``api.insecure``), the
API entry point is on loopback locally and unpublished on a server, and the sentinel's API router asks for
proxy-sync's password. Exact comparisons of the static data, and a real Traefik asked without, with a
wrong and with the right password."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

from berth_cli import components
from berth_common import traefik as tr
from tests.proxy.support import API_PASSWORD, api_request

# every entry point shares its port with a replacing Traefik and drains gracefully (``berth_cli.handoff``)
SHARED = {
    "reusePort": True,
    "transport": {"keepAliveMaxTime": "10s", "lifeCycle": {"requestAcceptGraceTimeout": "1s", "graceTimeOut": "10s"}},
}
STATIC = {
    "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
    "entryPoints": {
        "web": {
            "address": "127.0.0.1:18080",
            **SHARED,
            "http": {"aliasHeadersStrategy": "delete", "middlewares": ["berth-body-read@file"]},
        },
        "traefik": {"address": "127.0.0.1:18081", **SHARED, "http": {"aliasHeadersStrategy": "delete"}},
    },
    "experimental": {"localPlugins": {"berthbodyread": {"moduleName": "github.com/berth/bodyread"}}},
    "providers": {"providersThrottleDuration": "50ms", "file": {"directory": "/d", "watch": True}},
    "serversTransport": {"forwardingTimeouts": {"idleConnTimeout": "1s"}},
    "api": {"dashboard": False},
    "ping": {"entryPoint": "traefik"},
    "log": {"level": "WARN"},
}


def test_the_static_configurations_serve_the_api_on_no_entry_point_by_themselves(tmp_path):
    assert tr.static_config("/d", "127.0.0.1", 18080, "127.0.0.1", 18081) == STATIC
    # the local platform: the API entry point on loopback whatever the proxy's host
    components.traefik_launch(tmp_path, "0.0.0.0", 18080, 18081)
    local = json.loads((tmp_path / "traefik" / "static.yml").read_text())
    assert local["entryPoints"]["traefik"] == {
        "address": "127.0.0.1:18081",
        **SHARED,
        "http": {"aliasHeadersStrategy": "delete"},
    }
    assert local["api"] == {"dashboard": False}
    # a server's: the entry point inside the container, which publishes the web port only
    server = json.loads(tr.server_static_config())
    assert server["api"] == {"dashboard": False} and server["entryPoints"]["traefik"]["address"] == f":{tr.API_PORT}"
    _, body = tr.server_container("img", "berth", "/srv/berth")
    assert body["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "80"}]}


def status(req: urllib.request.Request | str) -> int:
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_api_answers_proxy_sync_s_password_only(traefik):
    rawdata = f"{traefik.api_url}/api/rawdata"
    assert status(rawdata) == 404  # no sentinel yet: no API at all
    traefik.open_api()
    assert status(rawdata) == 401
    assert status(api_request(rawdata, "wrong")) == 401
    for path in ("/api/http/routers", "/api/overview", "/api/http/routers/berth-sentinel@file", "/dashboard/"):
        assert status(f"{traefik.api_url}{path}") in (401, 404), path
    other_user = urllib.request.Request(
        rawdata, headers={"Authorization": "Basic " + base64.b64encode(f"admin:{API_PASSWORD}".encode()).decode()}
    )
    assert status(other_user) == 401
    assert status(api_request(rawdata)) == 200
    assert status(f"{traefik.api_url}/ping") == 200  # the readiness probe needs no password
    # the API is not on the web entry point either
    assert status(f"http://127.0.0.1:{traefik.web_port}/api/rawdata") == 404
