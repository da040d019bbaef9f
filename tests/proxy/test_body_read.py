"""The web entry points' body reader (``berth_common.traefik_body``), through real Traefik.

A body of known length up to 1 MiB is read whole before the request goes to the application, so Go's
transport sends it from memory and the race that cut answers (golang/go#40747) has nothing to race on.
What the application sees tells it apart: the client sends the headers and half the body, waits, then sends
the rest; the application gets the request's first byte only after the client's last (read whole), or
before it (forwarded as it comes). Bodies of unknown length (chunked) and over the limit stream on
unread, and answers are not held back either: an application's first chunk reaches the client before it
writes its second.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from berth_common import traefik_body
from berth_proxy_sync.domain.routes import SENTINEL_FILE, Route, render, render_sentinel
from tests.proxy.support import API_PASSWORD

PAUSE_S = 0.6  # between the two halves of a body, and between the two chunks of an answer


@dataclass
class Seen:
    """What the application saw of one request: when its first byte came, and the whole request."""

    first_at: float = 0.0
    data: bytes = b""
    done: threading.Event = field(default_factory=threading.Event)


class _App(socketserver.StreamRequestHandler):
    """Reads one request (Content-Length or chunked body) and answers it in two chunks, ``PAUSE_S`` apart."""

    seen: list[Seen]

    def handle(self) -> None:
        seen = Seen()
        self.seen.append(seen)
        line = self.rfile.readline()
        seen.first_at = time.monotonic()
        data, length, chunked = line, 0, False
        while (header := self.rfile.readline()) not in (b"\r\n", b""):
            data += header
            name, _, value = header.decode("latin-1").partition(":")
            length = int(value) if name.strip().lower() == "content-length" else length
            chunked = chunked or (name.strip().lower() == "transfer-encoding" and "chunked" in value)
        body = b""
        if chunked:
            while (size := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
        else:
            body = self.rfile.read(length)
        seen.data = data + b"\r\n" + body
        seen.done.set()
        self.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        self.wfile.write(b"6\r\nfirst\n\r\n")
        self.wfile.flush()
        time.sleep(PAUSE_S)
        self.wfile.write(b"7\r\nsecond\n\r\n0\r\n\r\n")


@pytest.fixture
def app() -> Iterator[tuple[int, list[Seen]]]:
    seen: list[Seen] = []
    handler = type("App", (_App,), {"seen": seen})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()


@pytest.fixture
def routed(traefik, app, unique) -> tuple[str, list[Seen]]:
    port, seen = app
    host = f"body-{unique}.localhost"
    (traefik.dynamic_dir / SENTINEL_FILE).write_text(render_sentinel(API_PASSWORD))
    route = Route.create(f"body-{unique}", [host], [f"http://127.0.0.1:{port}"])
    (traefik.dynamic_dir / route.file_name).write_text(render(route))
    deadline = time.monotonic() + 15
    while traefik.get(host, "/")[0] != 200:
        assert time.monotonic() < deadline, "the route was not served within 15 s"
        time.sleep(0.05)
    seen.clear()
    return host, seen


def _send(port: int, host: str, head: str, first: bytes, rest: bytes) -> tuple[float, float, list[tuple[float, bytes]]]:
    """Send ``head`` and ``first``, wait ``PAUSE_S``, send ``rest``; read the answer. (when the rest was
    sent, when the answer's head arrived, [(when, bytes)] of what arrived)."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(f"{head}Host: {host}\r\nConnection: close\r\n\r\n".encode() + first)
        time.sleep(PAUSE_S)
        rest_at = time.monotonic()
        s.sendall(rest)
        got: list[tuple[float, bytes]] = []
        while data := s.recv(65536):
            got.append((time.monotonic(), data))
    return rest_at, got[0][0], got


def _answer(got: list[tuple[float, bytes]]) -> bytes:
    return b"".join(d for _, d in got)


def test_a_small_body_reaches_the_application_whole_and_the_answer_streams(traefik, routed):
    host, seen = routed
    body = b"name=berth&" + b"x" * 2000
    head = f"POST /form HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
    rest_at, _, got = _send(traefik.web_port, host, head, body[:1000], body[1000:])
    assert seen[0].done.wait(5)
    assert seen[0].first_at >= rest_at  # not forwarded before the client's last byte
    assert seen[0].data.endswith(b"\r\n\r\n" + body)
    answer = _answer(got)
    assert answer.startswith(b"HTTP/1.1 200 OK") and b"first\n" in answer and b"second\n" in answer
    first = next(t for t, d in got if b"first" in d)
    assert first < seen[0].first_at + PAUSE_S  # the answer's first chunk came before the app wrote its second


def test_bodies_of_unknown_length_or_over_the_limit_stream_on_unread(traefik, routed):
    host, seen = routed
    chunked = "POST /stream HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
    rest_at, _, got = _send(traefik.web_port, host, chunked, b"5\r\nhello\r\n", b"6\r\n world\r\n0\r\n\r\n")
    assert seen[0].done.wait(5) and seen[0].first_at < rest_at  # forwarded as it came
    assert seen[0].data.endswith(b"hello world") and _answer(got).startswith(b"HTTP/1.1 200 OK")

    big = b"y" * (traefik_body.MAX_BYTES + 1)
    head = f"POST /upload HTTP/1.1\r\nContent-Length: {len(big)}\r\n"
    rest_at, _, got = _send(traefik.web_port, host, head, big[:1000], big[1000:])
    assert seen[1].done.wait(10) and seen[1].first_at < rest_at
    assert seen[1].data.endswith(b"\r\n\r\n" + big) and _answer(got).startswith(b"HTTP/1.1 200 OK")


def test_a_client_that_sends_less_than_it_announced_reaches_no_application(traefik, routed):
    host, seen = routed
    with socket.create_connection(("127.0.0.1", traefik.web_port), timeout=15) as s:
        s.sendall(f"POST /x HTTP/1.1\r\nHost: {host}\r\nContent-Length: 100\r\n\r\nonly-this".encode())
        s.shutdown(socket.SHUT_WR)
        answer = b""
        while data := s.recv(65536):
            answer += data
    assert answer.startswith(b"HTTP/1.1 400 ")
    time.sleep(0.3)
    assert seen == []
