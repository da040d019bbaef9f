"""Tiny test applications for the busybox image: argv lists (sh scripts), no image build needed."""

from __future__ import annotations

CGI_HEADER = "#!/bin/sh\n"


def _health_cgi(warmup_s: int) -> str:
    """A CGI health check answering 503 for ``warmup_s`` seconds after the container started, then 200."""
    body = (
        CGI_HEADER
        + "if [ $(( $(date +%s) - $(cat /tmp/t0) )) -lt "
        + str(warmup_s)
        + " ]; then\n"
        + '  printf "HTTP/1.0 503 Service Unavailable\\r\\nContent-Type: text/plain\\r\\n\\r\\nwarming up\\n"\n'
        + "else\n"
        + '  printf "HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\nok\\n"\n'
        + "fi\n"
    )
    return body


def web(content: str, *, warmup_s: int = 0, port: int = 8080, never_healthy: bool = False) -> list[str]:
    """busybox httpd serving ``content`` at / and a health check at /cgi-bin/health."""
    health = _health_cgi(10**6 if never_healthy else warmup_s)
    script = (
        "set -e; mkdir -p /www/cgi-bin; date +%s > /tmp/t0; "
        'printf "%s\\n" "$BERTH_TEST_CONTENT" > /www/index.html; '
        'printf "%s" "$BERTH_TEST_HEALTH" > /www/cgi-bin/health; chmod +x /www/cgi-bin/health; '
        f"exec httpd -f -p {port} -h /www"
    )
    return ["env", f"BERTH_TEST_CONTENT={content}", f"BERTH_TEST_HEALTH={health}", "sh", "-c", script]


def crash(code: int = 3) -> list[str]:
    return ["sh", "-c", f"echo 'fatal: cannot connect to the database' >&2; exit {code}"]


def worker(*, ready_after_s: int = 0, honour_term: bool = True) -> list[str]:
    """A worker loop; ready when /tmp/ready exists; on SIGTERM it says so and exits (or ignores it)."""
    trap = "trap 'echo got SIGTERM; exit 0' TERM" if honour_term else "trap '' TERM"
    script = f"{trap}; (sleep {ready_after_s}; touch /tmp/ready) & while true; do sleep 0.2; done"
    return ["sh", "-c", script]


WORKER_HEALTH = ["test", "-f", "/tmp/ready"]
