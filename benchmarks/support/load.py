"""A steady, bounded HTTP load through Traefik, in its own process (so it never competes with the
benchmark's own event loop): ``python -m benchmarks.support.load PORT HOST[,HOST...] RATE MAX_S``.

Open loop: request *i* is due at ``start + i / RATE`` whatever happened to the earlier ones, on a pool of
keep-alive connections (at most ``MAX_IN_FLIGHT`` at once; a request due while all are busy is recorded
as ``skipped``, never silently dropped). Latency runs from the due time to the last byte, so a stall
anywhere (proxy, server, this client) shows. It stops at ``MAX_S`` or when a line arrives on stdin, lets
the requests in flight finish (10 s at most), and prints one JSON object:
``{"rate", "start_monotonic", "duration_s", "samples": [[due_s, latency_ms, status, body, host, kind], ...]}``
(``due_s`` from ``start_monotonic``, which is ``time.monotonic()`` of this machine: comparable across processes) (status -1: connection
error, the body then says what happened).

A ``MIX`` (fifth argument, ``get`` by default) says which requests go out, in turn: ``get`` is ``GET /``
only; ``cgi`` is, per 20 requests, 16 ``GET /``, 3 small ``POST /cgi-bin/echo`` and one
``GET /cgi-bin/slow`` (an application that answers those, such as ``CGI_APP``, must serve them). ``kind``
names which one a sample is.

``LoadProcess`` runs it from a benchmark: ``start()``, ``stop()`` -> the samples.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.support.http import Conn, HttpError

MAX_IN_FLIGHT = 256
POST_BODY = b"name=berth&value=0123456789abcdef"
_GET = ("GET", "/", None)
MIXES: dict[str, list[tuple[str, str, bytes | None]]] = {
    "get": [_GET],
    "cgi": [_GET] * 5
    + [("POST", "/cgi-bin/echo", POST_BODY)]
    + [_GET] * 5
    + [("POST", "/cgi-bin/echo", POST_BODY)]
    + [_GET] * 3
    + [("GET", "/cgi-bin/slow", None)]
    + [_GET] * 3
    + [("POST", "/cgi-bin/echo", POST_BODY)],
}
# busybox httpd with the CGI scripts the ``cgi`` mix asks for (``sh -c`` this in a busybox image, port 8080):
# ``echo`` reads its body and answers it with its length, ``slow`` answers after 2 s
CGI_APP = (
    "mkdir -p /www/cgi-bin && printf 'ok\\n' > /www/index.html"
    ' && printf \'#!/bin/sh\\nbody=$(head -c "$CONTENT_LENGTH")\\n'
    'printf "Content-Type: text/plain\\\\r\\\\n\\\\r\\\\n%%s %%s\\\\n" "${#body}" "$body"\\n\''
    " > /www/cgi-bin/echo"
    " && printf '#!/bin/sh\\nsleep 2\\nprintf \"Content-Type: text/plain\\\\r\\\\n\\\\r\\\\nslow\\\\n\"\\n'"
    " > /www/cgi-bin/slow"
    " && chmod +x /www/cgi-bin/echo /www/cgi-bin/slow && exec httpd -f -p 8080 -h /www"
)
REPO = Path(__file__).resolve().parents[2]
DRAIN_S = 10.0


async def generate(
    port: int, hosts: list[str], rate: float, max_s: float, stop: asyncio.Event, mix: str = "get"
) -> dict[str, Any]:
    """Requests round-robin over ``hosts`` (each sample records which one) and over ``MIXES[mix]``."""
    kinds = MIXES[mix]
    idle: list[Conn] = []
    busy = 0
    samples: list[list[Any]] = []
    tasks: set[asyncio.Task[None]] = set()

    async def one(due: float, start: float, host: str, kind: tuple[str, str, bytes | None]) -> None:
        nonlocal busy
        conn = idle.pop() if idle else Conn(port)
        method, path, body = kind
        label = f"{method} {path}"
        try:
            answer = await asyncio.wait_for(conn.request(host, path, method=method, body=body), 30)
            samples.append(
                [
                    round(due - start, 4),
                    round((time.monotonic() - due) * 1000, 3),
                    answer.status,
                    answer.body[:40].decode(errors="replace").strip(),
                    host,
                    label,
                ]
            )
            if conn.usable:
                idle.append(conn)
        except (HttpError, TimeoutError) as exc:
            conn.close()
            samples.append(
                [round(due - start, 4), round((time.monotonic() - due) * 1000, 3), -1, str(exc)[:200], host, label]
            )
        finally:
            busy -= 1

    start = time.monotonic()
    i = 0
    while not stop.is_set():
        due = start + i / rate
        if due - start > max_s:
            break
        delay = due - time.monotonic()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                break
        if busy >= MAX_IN_FLIGHT:
            kind = kinds[i % len(kinds)]
            skipped = [round(due - start, 4), 0.0, -2, "skipped: every connection busy", hosts[i % len(hosts)]]
            samples.append([*skipped, f"{kind[0]} {kind[1]}"])
        else:
            busy += 1
            task = asyncio.create_task(one(due, start, hosts[i % len(hosts)], kinds[i % len(kinds)]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        i += 1
    duration = time.monotonic() - start
    if tasks:
        await asyncio.wait(set(tasks), timeout=DRAIN_S)
    for conn in idle:
        conn.close()
    samples.sort(key=lambda s: s[0])
    return {"rate": rate, "start_monotonic": start, "duration_s": round(duration, 3), "samples": samples}


async def _main(port: int, hosts: list[str], rate: float, max_s: float, mix: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(sys.stdin.fileno(), stop.set)
    result = await generate(port, hosts, rate, max_s, stop, mix)
    loop.remove_reader(sys.stdin.fileno())
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()


@dataclass
class LoadProcess:
    port: int
    host: str  # several: comma-separated, asked in turn
    rate: float = 200.0
    max_s: float = 300.0
    mix: str = "get"
    proc: subprocess.Popen[str] | None = None

    def start(self) -> LoadProcess:
        argv = [
            sys.executable,
            "-m",
            "benchmarks.support.load",
            str(self.port),
            self.host,
            str(self.rate),
            str(self.max_s),
            self.mix,
        ]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
        return self

    def stop(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write("stop\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        out, _ = self.proc.communicate(timeout=DRAIN_S + 30)
        if self.proc.returncode != 0:
            raise RuntimeError(f"the load generator exited with {self.proc.returncode}")
        result: dict[str, Any] = json.loads(out)
        return result

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


if __name__ == "__main__":
    mix = sys.argv[5] if len(sys.argv) > 5 else "get"
    asyncio.run(_main(int(sys.argv[1]), sys.argv[2].split(","), float(sys.argv[3]), float(sys.argv[4]), mix))
