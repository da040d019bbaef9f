"""A DNS provider for the DNS-01 tests: the HTTP API a lego ``httpreq`` provider talks to, in front of
pebble-challtestsrv's management API.

Traefik's ``berth-dns`` resolver is configured as Berth configures it for any lego provider: the provider's
name (``BERTH_ACME_DNS_PROVIDER=httpreq``) and its credentials (``BERTH_ACME_DNS_ENV``: the endpoint, a user
name and a password) in Traefik's environment. lego then POSTs ``{"fqdn", "value"}`` to ``/present`` and
``/cleanup`` with HTTP basic authentication; this server checks the credentials and the body and sets or
clears the TXT record in challtestsrv (``/set-txt``, ``/clear-txt`` taking ``{"host", "value"}``), the DNS
server pebble asks. It stands for a real DNS provider's API (Cloudflare's, Route 53's): test-only.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from berth_cli import components

# lego's httpreq body (default mode): the record's name, absolute, and the key authorization's digest
FQDN = re.compile(r"_acme-challenge\.(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+")
VALUE = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass
class HttpreqDns:
    """lego's ``httpreq`` endpoint over challtestsrv's management API on ``chall_mgmt_port``."""

    chall_mgmt_port: int
    port: int = field(default_factory=components.free_port)
    username: str = "berth-dns"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (present | cleanup, fqdn, value)
    refused: list[str] = field(default_factory=list)  # why a request was refused
    _server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """What the platform is configured with: ``BERTH_ACME_DNS_PROVIDER`` and ``BERTH_ACME_DNS_ENV``."""
        creds = f"HTTPREQ_ENDPOINT={self.endpoint},HTTPREQ_USERNAME={self.username},HTTPREQ_PASSWORD={self.password}"
        return {"BERTH_ACME_DNS_PROVIDER": "httpreq", "BERTH_ACME_DNS_ENV": creds}

    def presented(self, fqdn: str) -> list[str]:
        return [value for kind, name, value in self.calls if kind == "present" and name == fqdn]

    def start(self) -> HttpreqDns:
        owner = self
        expected = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                kind = self.path.strip("/")
                try:
                    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                except ValueError:
                    body = None
                if self.headers.get("Authorization") != expected:
                    return self._refuse(401, "bad credentials")
                if kind not in ("present", "cleanup") or not isinstance(body, dict):
                    return self._refuse(404, f"unknown request {self.path}")
                fqdn, value = str(body.get("fqdn", "")), str(body.get("value", ""))
                if not FQDN.fullmatch(fqdn) or not VALUE.fullmatch(value):
                    return self._refuse(400, f"bad record {fqdn!r} {value!r}")
                owner.calls.append((kind, fqdn, value))
                if kind == "present":
                    owner._challtestsrv("/set-txt", {"host": fqdn, "value": value})
                else:
                    owner._challtestsrv("/clear-txt", {"host": fqdn})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _refuse(self, status: int, why: str) -> None:
                owner.refused.append(why)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def _challtestsrv(self, path: str, body: dict[str, str]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.chall_mgmt_port, timeout=5)
        try:
            conn.request("POST", path, body=json.dumps(body).encode())
            status = conn.getresponse().status
            if status != 200:
                raise RuntimeError(f"challtestsrv {path}: {status}")
        finally:
            conn.close()
