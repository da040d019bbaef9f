"""Tiny test applications for the busybox image: argv lists (sh scripts), no image build needed.

The web app serves ``/`` (its content), ``/cgi-bin/health`` (503 while warming up, then 200),
``/cgi-bin/echo`` (POST: content and the body length) and ``/cgi-bin/slow`` (content after 1 s). While it
warms up, ``/`` does not exist yet (404), so a request routed to it too early is an error the load sees.
"""

from __future__ import annotations


def _cgi(lines: list[str]) -> str:
    return "#!/bin/sh\n" + "\n".join(lines) + "\n"


def _ok(body: str) -> str:
    """A complete response with Content-Length (without it a proxy reads to EOF, which a reset cuts short)."""
    return (
        f'b="{body}"; '
        'printf "HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: %d\\r\\n\\r\\n%s" "${#b}" "$b"'
    )


def _health(warmup_s: int) -> str:
    return _cgi(
        [
            f"if [ $(( $(date +%s) - $(cat /tmp/t0) )) -lt {warmup_s} ]; then",
            '  printf "HTTP/1.0 503 Service Unavailable\\r\\nContent-Type: text/plain\\r\\n\\r\\nwarming up\\n"',
            "else",
            "  " + _ok("ok"),
            "fi",
        ]
    )


def web(content: str, *, warmup_s: int = 0, port: int = 8080, never_healthy: bool = False) -> list[str]:
    health = _health(10**6 if never_healthy else warmup_s)
    echo = _cgi(['n=$(head -c "${CONTENT_LENGTH:-0}" | wc -c)', _ok("$BERTH_TEST_CONTENT posted $n")])
    slow = _cgi(["sleep 1", _ok("$BERTH_TEST_CONTENT slow")])
    index_delay = max(warmup_s - 1, 0)
    script = (
        "set -e; mkdir -p /www/cgi-bin; date +%s > /tmp/t0; "
        'printf "%s" "$H" > /www/cgi-bin/health; printf "%s" "$E" > /www/cgi-bin/echo; '
        'printf "%s" "$S" > /www/cgi-bin/slow; chmod +x /www/cgi-bin/*; '
        f'(sleep {index_delay}; printf "%s\\n" "$BERTH_TEST_CONTENT" > /www/index.html) & '
        f"exec httpd -f -p {port} -h /www"
    )
    return ["env", f"BERTH_TEST_CONTENT={content}", f"H={health}", f"E={echo}", f"S={slow}", "sh", "-c", script]


def crash(code: int = 3) -> list[str]:
    return ["sh", "-c", f"echo 'fatal: cannot connect to the database' >&2; exit {code}"]


def worker(*, ready_after_s: float = 0, honour_term: bool = True) -> list[str]:
    """A worker loop; ready when /tmp/ready exists; on SIGTERM it says so and exits (or ignores it)."""
    trap = "trap 'echo got SIGTERM; exit 0' TERM" if honour_term else "trap '' TERM"
    script = f"{trap}; (sleep {ready_after_s}; touch /tmp/ready) & while true; do sleep 0.2; done"
    return ["sh", "-c", script]


WORKER_HEALTH = ["test", "-f", "/tmp/ready"]
