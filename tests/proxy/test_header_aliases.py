"""Header aliases through the platform's Traefik: a client cannot smuggle an alias of a header Traefik sets
(``X.Forwarded.For``, ``X_Forwarded_Host``: one name to WSGI, CGI, PHP or NGINX backends, which read every
character but letters and digits as ``_``) past it to an application (``aliasHeadersStrategy: delete`` on
both entry points, locally and in docker-compose's Traefik)."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from berth_cli import components

ROOT = Path(__file__).resolve().parents[2]


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps([[k, v] for k, v in self.headers.items()]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def echo() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_aliases_of_the_headers_traefik_sets_never_reach_the_application(
    traefik, echo, proxy_sync, routes, unique
):
    host = f"web-{unique}.localhost"
    await routes.apply(f"web-{unique}", [host], [echo], generation=1)
    assert (await routes.wait(f"web-{unique}", 1))["type"] == "evt.route.applied"

    conn = http.client.HTTPConnection("127.0.0.1", traefik.web_port, timeout=5)
    spoofed = {"X.Forwarded.For": "6.6.6.6", "X_Forwarded_Host": "evil.example", "X~Real~Ip": "6.6.6.6"}
    conn.request("GET", "/", headers={"Host": host, "X-Request-Note": "kept", **spoofed})
    resp = conn.getresponse()
    seen = json.loads(resp.read())
    conn.close()
    assert resp.status == 200
    names = {k.lower(): v for k, v in seen}
    assert names["x-request-note"] == "kept"  # an ordinary header passes
    assert names["x-forwarded-for"] == "127.0.0.1"  # as Traefik set it
    assert names["x-forwarded-host"] == host
    assert not [k for k, _ in seen if any(c in k for c in "._~")], seen  # no alias reached the application


def test_both_traefik_configurations_delete_header_aliases(tmp_path):
    local = components.traefik_static_config(tmp_path, "127.0.0.1", 8080, "127.0.0.1", 8081)
    compose = yaml.safe_load((ROOT / "deploy" / "compose" / "traefik.yml").read_text())
    for cfg in (local, compose):
        entry_points = cfg["entryPoints"]
        assert set(entry_points) <= {"web", "websecure", "traefik"} and {"web", "traefik"} <= set(entry_points)
        assert {name: ep["http"]["aliasHeadersStrategy"] for name, ep in entry_points.items()} == {
            name: "delete" for name in entry_points
        }
    assert set(compose["entryPoints"]) == {"web", "websecure", "traefik"}  # HTTPS deletes them too
