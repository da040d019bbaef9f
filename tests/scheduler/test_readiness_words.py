"""What readiness saw, in words (pure): the listening sockets of /proc/net/tcp{,6}, the port mismatch told
from them and from EXPOSE, an error answer's first bytes, the sockets helper's create body."""

from __future__ import annotations

import httpx

from berth_scheduler.adapters.readiness_diagnosis import describe_error
from berth_scheduler.domain.readiness import (
    Listener,
    Seen,
    answer_text,
    closed_text,
    exposed_ports,
    parse_listeners,
    port_mismatch,
    sockets_helper_body,
)

# busybox httpd on :8080 (IPv6 wildcard), nc on :7000, httpd on 127.0.0.1:9000, one established connection,
# and one on ::ffff:127.0.0.1 (read from a real container, the established lines added)
PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2328 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 65947 1 0 100 0 0 10 0
   1: 020011AC:1F90 010011AC:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 65950 1 0 20 4 30 10 -1
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000
   1: 00000000000000000000000000000000:1B58 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000
   2: 0000000000000000FFFF00000100007F:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000
   3: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000
"""


def test_listening_sockets_are_parsed_from_proc_net_tcp_and_tcp6():
    assert parse_listeners(PROC_NET_TCP) == [
        Listener(80, "127.0.0.1"),
        Listener(7000, "::"),
        Listener(8080, "::"),
        Listener(9000, "127.0.0.1"),
    ]
    assert parse_listeners("") == []
    assert [x.loopback_only for x in parse_listeners(PROC_NET_TCP)] == [True, False, False, True]


def test_a_listener_elsewhere_is_a_mismatch_and_one_on_the_port_is_not():
    on_8080 = [Listener(8080, "0.0.0.0")]
    assert port_mismatch(80, on_8080, [], 0.5, 5.0) == (
        "the app listens on 8080, not on 80; set the service port to 8080 (or make the app listen on $PORT, "
        "which is 80)"
    )
    assert port_mismatch(8080, on_8080, [], 0.5, 5.0) is None
    both = [Listener(9000, "::"), Listener(8080, "0.0.0.0")]
    assert port_mismatch(80, sorted(both), [], 0.5, 5.0) == (
        "the app listens on 8080 and 9000, not on 80; set the service port to 8080 (or make the app listen on "
        "$PORT, which is 80)"
    )
    # a loopback-only side listener (an admin port) is no mismatch: the app may still be starting
    assert port_mismatch(80, [Listener(6060, "127.0.0.1")], [], 0.5, 5.0) is None
    assert port_mismatch(80, [], [], 60.0, 5.0) is None  # still starting: nothing wrong seen


def test_an_app_bound_to_loopback_on_the_port_is_unreachable():
    assert port_mismatch(80, [Listener(80, "127.0.0.1")], [], 0.5, 5.0) == (
        "the app listens on 127.0.0.1:80, inside its container only; make it listen on 0.0.0.0:80 (all interfaces)"
    )


def test_expose_of_other_ports_counts_after_the_grace_with_nothing_on_the_port():
    assert port_mismatch(80, [], [8080], 4.9, 5.0) is None
    assert port_mismatch(80, [], [8080], 5.2, 5.0) == (
        "nothing listens on port 80 after 5 s and the image exposes 8080; set the service port to 8080 "
        "(or make the app listen on $PORT, which is 80)"
    )
    assert port_mismatch(80, None, [3000, 8080], 6.0, 5.0) == (
        "nothing listens on port 80 after 6 s and the image exposes 3000 and 8080; set the service port to 3000 "
        "(or make the app listen on $PORT, which is 80)"
    )
    assert port_mismatch(80, [], [80, 443], 60.0, 5.0) is None
    assert port_mismatch(80, [Listener(80, "::")], [8080], 60.0, 5.0) is None


def test_exposed_ports_of_an_image_config():
    assert exposed_ports({"ExposedPorts": {"8080/tcp": {}, "53/udp": {}, "3000": {}}}) == [3000, 8080]
    assert exposed_ports({"ExposedPorts": None}) == []
    assert exposed_ports(None) == []


def test_an_error_answer_is_told_with_its_first_bytes():
    assert answer_text("/", 500, b"Traceback (most recent call last):\n  File x\n") == (
        "GET / answered 500: Traceback (most recent call last): File x"
    )
    assert answer_text("/h", 404, b"") == "GET /h answered 404 with an empty body"
    assert answer_text("/", 500, b"x" * 200) == "GET / answered 500: " + "x" * 120 + "..."


def test_connections_closed_without_an_answer_are_told_with_the_sockets():
    assert closed_text("/", 80, [Listener(80, "0.0.0.0")]) == (
        "GET /: connection reset, the app listens on port 80 but closes connections with no HTTP answer "
        "(is it an HTTP server, without TLS?)"
    )
    assert closed_text("/", 80, [Listener(8080, "0.0.0.0")]) == (
        "GET /: connection refused, nothing listens on port 80 in the container yet"
    )
    assert closed_text("/", 80, None) == (
        "GET /: the connection was closed with no HTTP answer (connection refused or reset)"
    )


def test_transport_errors_in_words():
    refused = httpx.ConnectError("All connection attempts failed")
    refused.__cause__ = ConnectionRefusedError(111, "Connection refused")
    assert describe_error("/", refused, 2.0) == Seen(False, "GET /: connection refused", "refused")
    reset = httpx.ReadError("")
    reset.__context__ = ConnectionResetError(104, "Connection reset by peer")
    assert describe_error("/", reset, 2.0) == Seen(False, "GET /: connection reset", "reset")
    assert describe_error("/", httpx.ReadTimeout(""), 2.0) == Seen(False, "GET / timed out after 2 s", "timeout")
    closed = httpx.RemoteProtocolError("Server disconnected without sending a response.")
    assert describe_error("/", closed, 2.0) == Seen(
        False, "GET /: the connection was closed with no HTTP answer", "closed"
    )


def test_which_answers_are_stuck():
    assert [Seen(False, "", "status", s).stuck for s in (500, 404, 502, 503, 504)] == [True, True, False, False, False]
    assert [Seen(False, "", k).stuck for k in ("closed", "reset", "refused", "timeout", "down")] == [
        True,
        True,
        False,
        False,
        False,
    ]


def test_the_sockets_helper_shares_only_the_replicas_network_namespace():
    assert sockets_helper_body("abc123") == {
        "Image": "berth/busybox:1",
        "Cmd": ["cat", "/proc/net/tcp", "/proc/net/tcp6"],
        "Entrypoint": [],
        "User": "0:0",
        "AttachStdout": True,
        "AttachStderr": True,
        "Tty": False,
        "Labels": {"berth.managed": "true", "berth.sockets-helper": "abc123"},
        "HostConfig": {"NetworkMode": "container:abc123", "AutoRemove": False},
    }
