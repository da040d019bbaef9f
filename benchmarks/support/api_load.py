"""Closed-loop HTTP load on one URL, for the api benchmark: ``wrk`` when it is installed (Debian's ``wrk``,
installed on demand), else a bounded asyncio client in its own process.

Both keep ``concurrency`` keep-alive connections busy for ``duration_s`` (each sends its next request as
soon as the previous answer is read) with an ``Authorization`` header, and report requests per second and
latency percentiles in milliseconds: ``{"tool", "requests", "duration_s", "rps", "p50_ms", "p99_ms",
"errors"}`` (``errors``: answers other than 2xx, and broken connections).

``python -m benchmarks.support.api_load PORT PATH TOKEN CONCURRENCY DURATION_S`` runs the asyncio client
and prints that JSON object.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.support.http import HttpError, read_answer

REPO = Path(__file__).resolve().parents[2]
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def ensure_wrk() -> str | None:
    """The path of ``wrk``, installing Debian's package when it is missing (as root); None if impossible."""
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None:
        return None
    for argv in ([apt, "install", "-y", "-q", "wrk"], [apt, "update", "-q"], [apt, "install", "-y", "-q", "wrk"]):
        subprocess.run(
            argv,
            capture_output=True,
            timeout=300,
            check=False,
            env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )
        if shutil.which("wrk"):
            return shutil.which("wrk")
    return None


def _ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value.strip())
    if not m:
        raise ValueError(f"not a wrk duration: {value!r}")
    return float(m.group(1)) * UNITS_MS[m.group(2)]


def parse_wrk(output: str) -> dict[str, Any]:
    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", output, re.M))
    total = re.search(r"^\s+(\d+) requests in ([\d.]+)(\w+),", output, re.M)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    if not (pct.get("50") and pct.get("99") and total and rps):
        raise ValueError(f"unexpected wrk output:\n{output}")
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if socket:
        errors += sum(int(g) for g in socket.groups())
    return {
        "tool": "wrk",
        "requests": int(total.group(1)),
        "duration_s": _ms(total.group(2) + total.group(3)) / 1000,
        "rps": float(rps.group(1)),
        "p50_ms": _ms(pct["50"]),
        "p99_ms": _ms(pct["99"]),
        "errors": errors,
    }


def run_wrk(
    wrk: str,
    url: str,
    token: str,
    concurrency: int,
    duration_s: int,
    threads: int = 2,
    headers: dict[str, str] | None = None,
    script: Path | None = None,
) -> dict[str, Any]:
    """wrk's numbers; ``headers``: more request headers (``If-None-Match``); ``script``: a wrk Lua script
    (``rotating_tokens``). wrk counts 4xx/5xx answers as errors."""
    extra = [arg for name, value in (headers or {}).items() for arg in ("-H", f"{name}: {value}")]
    if script is not None:
        extra += ["-s", str(script)]
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{concurrency}",
        f"-d{duration_s}s",
        "--latency",
        "--timeout",
        "10s",
        "-H",
        f"Authorization: Bearer {token}",
        *extra,
        url,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 60, check=True)
    return parse_wrk(done.stdout)


def rotating_tokens(path: Path, tokens: list[str]) -> Path:
    """A wrk script that sends each request with the next of ``tokens`` (per wrk thread), so that the requests
    in flight at one time carry different tokens."""
    listed = ", ".join(json.dumps(f"Bearer {t}") for t in tokens)
    path.write_text(
        f"local tokens = {{{listed}}}\n"
        "local n = 0\n"
        "request = function()\n"
        "  n = n + 1\n"
        "  return wrk.format(nil, nil, {Authorization = tokens[n % #tokens + 1]})\n"
        "end\n"
    )
    return path


def run_python(port: int, path: str, token: str, concurrency: int, duration_s: int) -> dict[str, Any]:
    argv = [
        sys.executable,
        "-m",
        "benchmarks.support.api_load",
        str(port),
        path,
        token,
        str(concurrency),
        str(duration_s),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 60, check=True, cwd=REPO)
    return dict(json.loads(done.stdout))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else float("nan")


async def _client(port: int, request: bytes, deadline: float, latencies: list[float], errors: list[int]) -> None:
    reader = writer = None
    while time.monotonic() < deadline:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert reader is not None
            start = time.perf_counter()
            writer.write(request)
            await writer.drain()
            answer = await asyncio.wait_for(read_answer(reader), 10)
            latencies.append((time.perf_counter() - start) * 1000)
            if not 200 <= answer.status < 300:
                errors.append(answer.status)
            if answer.close:
                writer.close()
                writer = None
        except (OSError, HttpError, TimeoutError, asyncio.IncompleteReadError):
            errors.append(-1)
            if writer is not None:
                writer.close()
            writer = None
            await asyncio.sleep(0.01)
    if writer is not None:
        writer.close()


async def generate(port: int, path: str, token: str, concurrency: int, duration_s: float) -> dict[str, Any]:
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        "User-Agent: berth-bench\r\nConnection: keep-alive\r\n\r\n"
    ).encode()
    latencies: list[float] = []
    errors: list[int] = []
    start = time.monotonic()
    deadline = start + duration_s
    await asyncio.gather(*(_client(port, request, deadline, latencies, errors) for _ in range(concurrency)))
    elapsed = time.monotonic() - start
    return {
        "tool": "python-asyncio",
        "requests": len(latencies),
        "duration_s": round(elapsed, 3),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(_pct(latencies, 50), 2),
        "p99_ms": round(_pct(latencies, 99), 2),
        "errors": len(errors),
    }


def main(argv: list[str]) -> None:
    port, path, token, concurrency, duration_s = argv
    result = asyncio.run(generate(int(port), path, token, int(concurrency), float(duration_s)))
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
