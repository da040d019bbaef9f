"""Reading the build stream into log lines: recorded legacy and BuildKit streams, redaction, reasons."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from berth_builder.domain.progress import BuildStream, Redactor, build_failure_reason, decode_status, fields

DATA = Path(__file__).parent / "data"


def _replay(name: str, stream: BuildStream) -> list[str]:
    lines = []
    for raw in (DATA / name).read_text().splitlines():
        lines += stream.feed(json.loads(raw))
    return lines + stream.flush()


def test_recorded_buildkit_stream():
    s = BuildStream()
    assert _replay("buildkit_run_fails.jsonl", s) == [
        "#1 [internal] load remote build context",
        "#1 DONE 0.0s",
        "#2 copy /context /",
        "#2 DONE 0.1s",
        "#3 [internal] load metadata for docker.io/berthexp/busybox:1",
        "#3 DONE 0.0s",
        "#4 [1/3] FROM docker.io/berthexp/busybox:1",
        "#4 CACHED",
        "#5 [2/3] RUN echo hello-from-run; echo line2",
        "#5 hello-from-run",
        "#5 line2",
        "#5 DONE 0.2s",
        "#6 [3/3] RUN exit 3",
        "#6 ERROR: executor failed running [/bin/sh -c exit 3]: exit code: 3",
        "ERROR: executor failed running [/bin/sh -c exit 3]: exit code: 3",
    ]
    assert s.error == "executor failed running [/bin/sh -c exit 3]: exit code: 3"
    assert s.image_id is None


def test_recorded_legacy_stream():
    s = BuildStream()
    assert _replay("legacy_run_fails.jsonl", s) == [
        "Step 1/3 : FROM berthexp/busybox:1",
        " ---> 5207f0dcc849",
        "Step 2/3 : RUN echo hello-from-run; echo line2",
        " ---> Running in f3304727883e",
        "hello-from-run",
        "line2",
        "Removing intermediate container f3304727883e",
        " ---> 83ae442bd69a",
        "Step 3/3 : RUN exit 3",
        " ---> Running in d239de21efbf",
        "Removing intermediate container d239de21efbf",
        "ERROR: The command '/bin/sh -c exit 3' returned a non-zero code: 3",
    ]
    assert s.error == "The command '/bin/sh -c exit 3' returned a non-zero code: 3"


def test_image_id_and_partial_lines():
    s = BuildStream()
    assert s.feed({"stream": "Step 1/1 : FR"}) == []
    assert s.feed({"stream": "OM x\nSucc"}) == ["Step 1/1 : FROM x"]
    assert s.feed({"aux": {"ID": "sha256:abc"}}) == []
    assert s.feed({"id": "moby.image.id", "aux": {"ID": "sha256:def"}}) == []
    assert s.flush() == ["Succ"]
    assert s.image_id == "sha256:def" and s.error is None
    assert s.feed({"status": "Pulling fs layer", "id": "abc"}) == ["abc: Pulling fs layer"]
    assert s.feed({"status": "Downloading", "progressDetail": {"current": 1}}) == []
    assert s.feed({"stream": "\x1b[31mred\x1b[0m \r50%\r100%\n"}) == ["100%"]
    assert s.feed({"id": "moby.buildkit.trace", "aux": "!!!not base64 protobuf"}) == []


def _pb_bytes(number: int, data: bytes) -> bytes:
    assert len(data) < 128
    return bytes([(number << 3) | 2, len(data)]) + data


def test_synthetic_buildkit_logs_partial_lines_and_warnings():
    vertex = _pb_bytes(1, b"sha256:v1") + _pb_bytes(3, b"[1/1] RUN x") + _pb_bytes(5, bytes([8, 100]))
    log1 = _pb_bytes(1, b"sha256:v1") + _pb_bytes(4, b"par")
    log2 = _pb_bytes(1, b"sha256:v1") + _pb_bytes(4, b"tial\nnext")
    warn = _pb_bytes(1, b"sha256:v1") + _pb_bytes(3, b"deprecated")
    status = _pb_bytes(1, vertex) + _pb_bytes(3, log1) + _pb_bytes(3, log2) + _pb_bytes(4, warn)
    decoded = decode_status(status)
    assert [(v.digest, v.name, v.started) for v in decoded.vertexes] == [("sha256:v1", "[1/1] RUN x", 100.0)]
    s = BuildStream()
    aux = base64.b64encode(status).decode()
    assert s.feed({"id": "moby.buildkit.trace", "aux": aux}) == [
        "#1 [1/1] RUN x",
        "#1 partial",
        "#1 WARNING: deprecated",
    ]
    assert s.flush() == ["#1 next"]
    assert list(fields(bytes([8, 0x96, 0x01]))) == [(1, 150)]


def test_secrets_are_redacted_everywhere():
    r = Redactor(["hunter2", "hunter22", ""])
    assert r("pw=hunter22 and hunter2") == "pw=*** and ***"
    s = BuildStream(r)
    assert s.feed({"stream": "token is hunter2\n"}) == ["token is ***"]
    s.feed({"error": "failed with hunter2"})
    assert s.error == "failed with ***"
    assert "hunter2" not in "\n".join(s.tail)
    log = _pb_bytes(1, b"sha256:v") + _pb_bytes(4, b"echo hunter2\n")
    aux = base64.b64encode(_pb_bytes(3, log)).decode()
    assert s.feed({"id": "moby.buildkit.trace", "aux": aux}) == ["#1 echo ***"]


def test_failure_reasons():
    tail = [f"line {i}" for i in range(30)]
    reason = build_failure_reason("executor failed running [/bin/sh -c exit 3]: exit code: 3", tail, ["busybox:1"])
    assert reason.startswith("a build step failed: fix it and deploy again. Docker said: executor failed")
    assert reason.endswith("Last lines:\n" + "\n".join(tail[-15:]))
    missing = build_failure_reason(
        "failed to solve: failed to resolve source metadata for docker.io/library/node:20-slim: failed to do request",
        [],
        ["node:20-slim"],
    )
    assert missing.startswith("a base image (node:20-slim) is not available on this machine and no registry answered")
    assert "BERTH_IMAGE_MAP" in missing
    assert "dockerfile path" in build_failure_reason("Cannot locate specified Dockerfile: x", [], [])
    assert "does not parse" in build_failure_reason("dockerfile parse error line 1: unknown instruction: FORM", [], [])
    assert len(build_failure_reason("x" * 10000, ["y" * 16000] * 30, [])) == 4000
