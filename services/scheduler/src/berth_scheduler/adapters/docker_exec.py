"""A command run in a container and a container's last output, read from its engine (the calls behind
``DockerExecutor.exec`` and ``DockerExecutor.logs``, which give them their time limits and error words)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from berth_common.docker import EngineApi
from berth_common.docker.logframes import frames

KEEP_BYTES = 8192  # of an exec's output: enough for a health command's words, bounded in memory


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: str


async def run_exec(api: EngineApi, name: str, argv: list[str], env: dict[str, str] | None, user: str) -> ExecResult:
    """Run ``argv`` in the container (no shell unless the argv names one) with ``env`` as ``user`` (the
    image's when empty); its exit code (-1: none given) and first ``KEEP_BYTES`` of output."""
    config = {"Cmd": argv, "AttachStdout": True, "AttachStderr": True, "AttachStdin": False, "Tty": False}
    config |= {"Env": [f"{k}={v}" for k, v in (env or {}).items()]} if env else {}
    config |= {"User": user} if user else {}
    made = await api.json("POST", f"containers/{name}/exec", body=config)
    exec_id = str(made["Id"])
    chunks: list[bytes] = []
    stream = await api.attach("POST", f"exec/{exec_id}/start", body={"Detach": False, "Tty": False})
    try:
        while (frame := await stream.read_frame()) is not None:
            if sum(len(c) for c in chunks) < KEEP_BYTES:
                chunks.append(frame[1])
    finally:
        await stream.close()
    info = await api.get(f"exec/{exec_id}/json")
    while info.get("Running"):
        await asyncio.sleep(0.02)
        info = await api.get(f"exec/{exec_id}/json")
    code = info.get("ExitCode")
    return ExecResult(int(code) if code is not None else -1, b"".join(chunks).decode(errors="replace"))


async def read_logs(api: EngineApi, name: str, tail: int) -> str:
    """The container's last ``tail`` lines of output, stdout and stderr as they came."""
    info = await api.get(f"containers/{name}/json")
    params = {"stdout": True, "stderr": True, "follow": False, "tail": tail}
    _, data = await api.request("GET", f"containers/{name}/logs", params=params, timeout=None)
    if (info.get("Config") or {}).get("Tty"):
        return data.decode("utf-8", "replace")
    return b"".join(payload for _, payload in frames(data)).decode("utf-8", "replace")
