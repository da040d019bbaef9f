"""A POST never lands on a connection the application is closing: Traefik drops an idle connection to an
application (``UPSTREAM_IDLE_S``, 1 s) before the application's own keep-alive timeout ends it.

The application here closes a keep-alive connection idle for longer than 1.5 s without answering the
request that arrives on it: the moment an application server (gunicorn, Node, uvicorn) closes an idle
connection while Traefik writes a request on it, made certain instead of a race. With Traefik's default
(90 s) the second POST below is written on that connection and answered 502 (Go retries a GET, never a
POST); with Berth's static configuration every request gets the application's answer."""

from __future__ import annotations

import http.client
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from berth_common import traefik as tr
from berth_proxy_sync.domain.routes import SENTINEL_FILE, Route, render, render_sentinel
from tests.proxy.support import API_PASSWORD

KEEPALIVE_S = 1.5  # the application's keep-alive timeout: longer than Traefik's idle time, shorter than 90 s


class _KeepAlive(socketserver.StreamRequestHandler):
    """HTTP/1.1 keep-alive; a request on a connection idle past ``KEEPALIVE_S`` closes it unanswered."""

    def handle(self) -> None:
        answered_at: float | None = None
        while line := self.rfile.readline():
            length = 0
            while (header := self.rfile.readline()) not in (b"\r\n", b""):
                name, _, value = header.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            body = self.rfile.read(length) if length else b""
            if answered_at is not None and time.monotonic() - answered_at > KEEPALIVE_S:
                return  # idle too long: closed, this request unanswered
            text = b"%s %d\n" % (line.split()[0], len(body))
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(text), text))
            answered_at = time.monotonic()


@pytest.fixture
def application() -> Iterator[int]:
    """The keep-alive application on a loopback port."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _KeepAlive)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _request(port: int, host: str, method: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, "/", body=b"name=berth" if method == "POST" else None, headers={"Host": host})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_the_application_closes_a_connection_idle_past_its_keepalive(application):
    conn = http.client.HTTPConnection("127.0.0.1", application, timeout=5)
    conn.request("POST", "/", body=b"a")
    assert conn.getresponse().read() == b"POST 1\n"
    time.sleep(KEEPALIVE_S + 0.3)
    conn.request("POST", "/", body=b"a")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        conn.getresponse()
    conn.close()


def test_posts_through_traefik_never_meet_a_closing_connection(traefik, application, unique):
    assert tr.UPSTREAM_IDLE_S == "1s" and float(tr.UPSTREAM_IDLE_S[:-1]) < KEEPALIVE_S
    host = f"keepalive-{unique}.localhost"
    route = Route.create(f"keepalive-{unique}", [host], [f"http://127.0.0.1:{application}"])
    (traefik.dynamic_dir / SENTINEL_FILE).write_text(render_sentinel(API_PASSWORD))
    (traefik.dynamic_dir / route.file_name).write_text(render(route))
    deadline = time.monotonic() + 10
    while _request(traefik.web_port, host, "GET")[0] != 200:
        assert time.monotonic() < deadline, "the route was not served within 10 s"
        time.sleep(0.05)
    answers = [_request(traefik.web_port, host, "POST")]
    for method in ("POST", "GET", "POST"):
        time.sleep(KEEPALIVE_S + 0.5)  # Traefik's connection sat idle past the application's keep-alive
        answers.append(_request(traefik.web_port, host, method))
    assert answers == [(200, b"POST 10\n"), (200, b"POST 10\n"), (200, b"GET 0\n"), (200, b"POST 10\n")]
