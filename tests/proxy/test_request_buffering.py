"""An application that answers a POST before reading its body gets every answer to the client whole when
its route buffers requests (``buffer_requests``), through a real Traefik; a body above the limit is 413.

The application here sends its answer's headers as soon as it has the request's headers, the rest of the
answer 0.3 s later, and reads the body only then (a CGI script does the like). The client sends the body
0.1 s after the headers, so Traefik is still writing the request body when the answer starts. Without
buffering, Go's reverse proxy may close the connection to the application while copying the answer and
the client gets it cut (the measured rate is reported, not asserted: it depends on timing); with
buffering, Traefik reads the whole body first and every answer is whole."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from berth_common.catalogue import RequestBuffering
from berth_proxy_sync.domain.routes import SENTINEL_FILE, Route, render, render_sentinel
from tests.proxy.support import API_PASSWORD

ANSWER = b"early answer\n"
BODY = b"name=berth&value=0123456789abcdef"
REQUESTS = 40


class _Early(socketserver.BaseRequestHandler):
    """Answers on the request's headers, before reading its body; counts the requests it saw."""

    seen = 0

    def handle(self) -> None:
        c: socket.socket = self.request
        data = b""
        while b"\r\n\r\n" not in data:
            if not (chunk := c.recv(4096)):
                return
            data += chunk
        type(self).seen += 1
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")  # close-delimited answer
        time.sleep(0.3)
        c.sendall(ANSWER)
        c.settimeout(0.5)
        try:
            while c.recv(65536):  # the body, read after answering (no reset at close)
                pass
        except OSError:
            pass


@pytest.fixture
def application() -> Iterator[type[_Early]]:
    handler = type("Early", (_Early,), {"seen": 0})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler, bind_and_activate=False)
    server.request_queue_size = 128  # every concurrent request queued, none refused
    server.server_bind()
    server.server_activate()
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    handler.port = server.server_address[1]  # type: ignore[attr-defined]
    yield handler
    server.shutdown()
    server.server_close()


def _decoded(raw: bytes) -> tuple[int, bytes | None]:
    """The status and the body of a whole answer (None: the answer was cut)."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        return 0, None
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    if "content-length" in headers:
        n = int(headers["content-length"])
        return status, rest[:n] if len(rest) >= n else None
    if headers.get("transfer-encoding") != "chunked":
        return status, None  # Traefik frames every answer: an unframed one is not known to be whole
    body = b""
    while True:
        size_line, sep, rest = rest.partition(b"\r\n")
        if not sep:
            return status, None
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return status, body if rest.startswith(b"\r\n") else None
        if len(rest) < size + 2:
            return status, None
        body, rest = body + rest[:size], rest[size + 2 :]


def _post(port: int, host: str, body: bytes = BODY, pause_s: float = 0.1) -> tuple[int, bytes | None]:
    """A POST whose body follows its headers after ``pause_s``; the answer read until it is whole or Traefik
    closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        head = f"POST / HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n\r\n"
        c.sendall(head.encode())
        time.sleep(pause_s)
        try:
            c.sendall(body)
        except OSError:
            pass  # answered (413) and closed before the whole body went
        raw = b""
        try:
            while (chunk := c.recv(65536)) and _decoded(raw := raw + chunk)[1] is None:
                pass
        except OSError:
            pass
    return _decoded(raw)


def _route(traefik, route_id: str, host: str, port: int, buffering: RequestBuffering | None) -> None:
    route = Route.create(route_id, [host], [f"http://127.0.0.1:{port}"], buffering=buffering)
    (traefik.dynamic_dir / route.file_name).write_text(render(route))


def _wait_served(traefik, host: str) -> None:
    deadline = time.monotonic() + 10
    while _post(traefik.web_port, host, pause_s=0)[0] != 200:
        assert time.monotonic() < deadline, f"{host} was not served within 10 s"
        time.sleep(0.05)


def test_an_application_answering_before_the_body_gets_every_answer_whole_when_buffered(traefik, application, unique):
    plain, buffered = f"plain-{unique}.localhost", f"buffered-{unique}.localhost"
    (traefik.dynamic_dir / SENTINEL_FILE).write_text(render_sentinel(API_PASSWORD))
    _route(traefik, f"plain-{unique}", plain, application.port, None)
    _route(traefik, f"buffered-{unique}", buffered, application.port, RequestBuffering(max_body_mb=1))
    _wait_served(traefik, plain)
    _wait_served(traefik, buffered)

    with ThreadPoolExecutor(REQUESTS) as pool:
        answers = {
            host: list(pool.map(lambda _, h=host: _post(traefik.web_port, h), range(REQUESTS)))
            for host in (plain, buffered)
        }
    cut = sum(1 for a in answers[plain] if a != (200, ANSWER))
    whole = sum(1 for a in answers[buffered] if a == (200, ANSWER))
    print(f"\nwithout buffering: {cut}/{REQUESTS} answers cut; with buffering: {whole}/{REQUESTS} whole")
    assert answers[buffered] == [(200, ANSWER)] * REQUESTS


def test_a_body_above_the_limit_is_refused_413_and_never_reaches_the_application(traefik, application, unique):
    host = f"limit-{unique}.localhost"
    (traefik.dynamic_dir / SENTINEL_FILE).write_text(render_sentinel(API_PASSWORD))
    _route(traefik, f"limit-{unique}", host, application.port, RequestBuffering(max_body_mb=1))
    _wait_served(traefik, host)
    seen = application.seen
    assert _post(traefik.web_port, host, body=b"x" * (1 << 20), pause_s=0) == (200, ANSWER)  # at the limit
    assert _post(traefik.web_port, host, body=b"x" * ((1 << 20) + 1), pause_s=0)[0] == 413
    assert application.seen == seen + 1
