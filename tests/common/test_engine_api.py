"""Berth's Engine API client (``berth_common.docker.api``): against the real local engine (every method, JSON
and raw bodies, a body streamed from an iterator, streamed answers, log frames, the hijacked exec with its
half-close, kept-alive connections), and against a small fake HTTP server for what the engine seldom does
(chunked answers with extensions and trailers, a kept connection closed by the peer, error bodies that are
not JSON, a server too slow to answer, a refused connection)."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from berth_common.docker import DockerEngines, DockerUnavailable, EngineApi, EngineError, local_engine, wire
from tests.support.images import busybox_image

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


# --- pure parts ------------------------------------------------------------------------------------------


def test_query_values_and_the_request_target():
    assert wire.httpize({"all": True, "v": False, "t": 5, "filters": {"label": ["a=b"]}, "name": "x"}) == {
        "all": "1",
        "v": "0",
        "t": "5",
        "filters": '{"label": ["a=b"]}',
        "name": "x",
    }
    assert wire.target("v1.41", "containers/json", {"all": True}) == "/v1.41/containers/json?all=1"
    assert wire.target("v1.41", "/_ping", None, versioned=False) == "/_ping"
    assert wire.target("v1.41", "/v1.41/images/create?fromSrc=-", {"quiet": "1"}, versioned=False) == (
        "/v1.41/images/create?fromSrc=-&quiet=1"
    )
    assert wire.head("POST", "/x", "docker", {"A": "b"}, 0) == (
        b"POST /x HTTP/1.1\r\nHost: docker\r\nA: b\r\nContent-Length: 0\r\n\r\n"
    )
    assert wire.head("POST", "/x", "docker", {}, None).endswith(b"Transfer-Encoding: chunked\r\n\r\n")
    assert b"Content-Length" not in wire.head("GET", "/x", "docker", {}, 0)


def test_an_error_answer_carries_the_status_and_the_engine_s_words():
    error = wire.error_of(404, b'{"message": "No such container: web"}')
    assert (error.status, error.message, str(error)) == (404, "No such container: web", "404: No such container: web")
    plain = wire.error_of(502, b"Bad Gateway")
    assert (plain.status, plain.message) == (502, "Bad Gateway")


# --- a fake engine -----------------------------------------------------------------------------------------


class Fake:
    """A unix-socket HTTP server whose ``handler`` answers each connection; counts the connections."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path, self.handler, self.accepted = path, handler, 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Fake:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            try:
                await self.handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_unix_server(serve, str(self.path))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    def api(self, timeout_s: float | None = 10.0) -> EngineApi:
        return EngineApi.on_unix(str(self.path), "v1.41", timeout_s=timeout_s)


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes] | None:
    """(request line, headers, body) of one request (chunked or with a length); None at the end."""
    line = await reader.readline()
    if not line:
        return None
    headers: dict[str, str] = {}
    while (raw := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = raw.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = b""
    if headers.get("transfer-encoding") == "chunked":
        while size := int((await reader.readline()).strip(), 16):
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        await reader.readline()
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    return line.decode().strip(), headers, body


def answer(status: int, body: bytes = b"", *, content_type: str = "application/json", close: bool = False) -> bytes:
    extra = "Connection: close\r\n" if close else ""
    head = f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


async def test_a_chunked_answer_with_extensions_and_trailers_and_a_kept_connection(tmp_path: Path):
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (request := await read_request(reader)) is not None:
            writer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b'4;ext=1\r\n{"a"\r\n3\r\n: 1\r\n2\r\n}\n\r\n'
                b"0\r\nX-Trailer: yes\r\n\r\n"
            )
            await writer.drain()
            assert request[0].startswith("GET /v1.41/thing")

    async with Fake(tmp_path / "e.sock", handler) as fake:
        api = fake.api()
        assert await api.get("thing") == {"a": 1}
        async with api.stream("GET", "thing") as response:
            assert [line async for line in response.lines()] == [b'{"a": 1}']
        assert await api.json("GET", "thing") == {"a": 1}
        assert fake.accepted == 1  # three requests, one connection
        await api.close()


async def test_a_kept_connection_closed_by_the_peer_is_retried_only_for_an_idempotent_request(tmp_path: Path):
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        assert request is not None
        writer.write(answer(200, b'{"n": 1}'))
        await writer.drain()
        await reader.read(1)  # the next request's first byte: hang up without answering it
        writer.transport.abort()

    async with Fake(tmp_path / "e.sock", handler) as fake:
        api = fake.api()
        assert await api.get("a") == {"n": 1}
        assert await api.get("a") == {"n": 1}  # the kept connection hung up: sent again on a new one
        assert fake.accepted == 2
        with pytest.raises(DockerUnavailable, match="dropped the connection"):
            await api.json("POST", "containers/x/start")  # not idempotent: never sent twice
        assert fake.accepted == 2
        assert await api.json("POST", "containers/x/start") == {"n": 1}  # a new connection answers it
        assert fake.accepted == 3
        await api.close()


async def test_error_bodies_json_or_not_and_the_connection_kept_after_them(tmp_path: Path):
    answers = [
        answer(404, b'{"message":"No such image: x"}'),
        answer(500, b"plain words\n", content_type="text/plain"),
        answer(409, b"", close=True),
    ]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while answers and await read_request(reader) is not None:
            writer.write(answers.pop(0))
            await writer.drain()

    async with Fake(tmp_path / "e.sock", handler) as fake:
        api = fake.api()
        with pytest.raises(EngineError) as first:
            await api.get("images/x/json")
        assert (first.value.status, first.value.message) == (404, "No such image: x")
        with pytest.raises(EngineError) as second:
            await api.request("DELETE", "images/x")
        assert (second.value.status, second.value.message) == (500, "plain words\n")
        with pytest.raises(EngineError) as third:
            await api.request("PUT", "x")
        assert (third.value.status, third.value.message) == (409, "")
        assert fake.accepted == 1 and api._idle == []  # the last answer said close
        await api.close()


async def test_a_body_streamed_from_an_iterator_and_raw_bytes(tmp_path: Path):
    seen: list[tuple[str, dict[str, str], bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (request := await read_request(reader)) is not None:
            seen.append(request)
            writer.write(answer(200, b'{"stream":"ok"}\n'))
            await writer.drain()

    async def pieces() -> AsyncIterator[bytes]:
        for piece in (b"ab", b"", b"cde"):
            yield piece

    async with Fake(tmp_path / "e.sock", handler) as fake:
        api = fake.api()
        await api.request("POST", "images/load", data=pieces(), headers={"Content-Type": "application/x-tar"})
        await api.request("PUT", "containers/c/archive", params={"path": "/etc"}, data=b"tar!")
        await api.request("POST", "build", data=iter([b"x", b"y"]))
        await api.request("POST", "containers/create", params={"name": "w"}, body={"Image": "i"})
        await api.close()
    (load, load_headers, load_body), (put, put_headers, put_body), (_, _, build_body), (create, _, create_body) = seen
    assert load == "POST /v1.41/images/load HTTP/1.1" and load_body == b"abcde"
    assert load_headers["transfer-encoding"] == "chunked" and load_headers["content-type"] == "application/x-tar"
    assert put == "PUT /v1.41/containers/c/archive?path=%2Fetc HTTP/1.1" and put_body == b"tar!"
    assert put_headers["content-length"] == "4" and put_headers["content-type"] == "application/json"
    assert build_body == b"xy"
    assert create == "POST /v1.41/containers/create?name=w HTTP/1.1" and json.loads(create_body) == {"Image": "i"}


async def test_an_engine_too_slow_times_out_and_its_connection_is_not_reused(tmp_path: Path):
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(30)

    async with Fake(tmp_path / "e.sock", handler) as fake:
        api = fake.api(timeout_s=0.3)
        with pytest.raises(TimeoutError):
            await api.get("version")
        with pytest.raises(TimeoutError):
            await api.request("GET", "version", timeout=0.2)
        assert api._idle == [] and fake.accepted == 2
        await api.close()


async def test_no_engine_at_the_socket_is_docker_unavailable(tmp_path: Path):
    api = EngineApi.on_unix(str(tmp_path / "none.sock"), "v1.41")
    with pytest.raises(DockerUnavailable, match="cannot reach the Docker engine"):
        await api.get("version")

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.transport.abort()

    async with Fake(tmp_path / "e.sock", hang_up) as fake:
        with pytest.raises(DockerUnavailable):
            await fake.api().get("version")


async def test_an_answer_cut_short_is_docker_unavailable(tmp_path: Path):
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()

    async with Fake(tmp_path / "e.sock", handler) as fake:
        api = fake.api()
        with pytest.raises(DockerUnavailable, match="dropped the answer"):
            await api.get("version")
        await api.close()


# --- the real engine ---------------------------------------------------------------------------------------


def _tar(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.mark.docker
async def test_the_real_engine_every_method_streams_frames_and_an_exec_with_stdin(unique: str):
    engines = DockerEngines(local_engine(None))
    api = engines.api()
    name = f"berth-test-api-{unique}"
    try:
        assert api is engines.api()
        assert (await api.request("HEAD", "_ping", versioned=False))[0] == 200
        assert (await api.get("version"))["ApiVersion"]
        with pytest.raises(EngineError) as missing:
            await api.get(f"containers/{name}/json")
        assert missing.value.status == 404 and name in missing.value.message
        body = {"Image": busybox_image(), "Cmd": ["sh", "-c", "echo out; echo err >&2; sleep 60"]}
        body["Labels"] = {"berth.test": "1"}
        made = await api.json("POST", "containers/create", params={"name": name}, body=body)
        await api.request("PUT", f"containers/{name}/archive", params={"path": "/tmp"}, data=_tar("f.txt", b"hi\n"))
        await api.request("POST", f"containers/{name}/start")
        listed = await api.get("containers/json", {"filters": {"name": [name]}})
        assert [c["Id"] for c in listed] == [made["Id"]]

        for _ in range(50):  # both lines written
            _, raw = await api.request("GET", f"containers/{name}/logs", params={"stdout": True, "stderr": True})
            if raw.count(b"\n") >= 2:
                break
            await asyncio.sleep(0.1)
        async with api.stream("GET", f"containers/{name}/logs", params={"stdout": True, "stderr": True}) as logs:
            assert sorted([frame async for frame in logs.frames()]) == [(1, b"out\n"), (2, b"err\n")]

        config = {"Cmd": ["sh", "-c", "cat /tmp/f.txt; cat; echo bad >&2; exit 3"], "Tty": False}
        config |= {"AttachStdin": True, "AttachStdout": True, "AttachStderr": True}
        exec_id = (await api.json("POST", f"containers/{name}/exec", body=config))["Id"]
        attached = await api.attach("POST", f"exec/{exec_id}/start", body={"Detach": False, "Tty": False})
        try:
            await attached.write(b"from stdin\n")
            attached.close_stdin()  # the command reads EOF, its output still arrives
            frames = []
            while (frame := await asyncio.wait_for(attached.read_frame(), 20)) is not None:
                frames.append(frame)
        finally:
            await attached.close()
        assert b"".join(d for k, d in frames if k == 1) == b"hi\nfrom stdin\n"
        assert b"".join(d for k, d in frames if k == 2) == b"bad\n"
        for _ in range(50):
            info = await api.get(f"exec/{exec_id}/json")
            if not info["Running"]:
                break
            await asyncio.sleep(0.05)
        assert info["ExitCode"] == 3

        async with api.stream("GET", f"containers/{name}/export") as exported:  # a tar streamed as it comes
            size = 0
            async for chunk in exported.chunks():
                size += len(chunk)
        assert size > 100_000
        await api.request("POST", f"containers/{name}/stop", params={"t": 0}, timeout=None)
        assert len(api._idle) >= 1  # the connections were kept alive and reused
    finally:
        try:
            await api.request("DELETE", f"containers/{name}", params={"force": True, "v": True})
        except EngineError:
            pass
        await engines.close()
    assert api._idle == []


async def test_aiodocker_s_spelling_of_the_raw_calls(tmp_path: Path):
    """``_query`` and ``_query_json`` take aiodocker's arguments, so code written against either client runs."""
    seen: list[str] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (request := await read_request(reader)) is not None:
            seen.append(request[0])
            writer.write(answer(200, b'{"status":"a"}\n{"status":"b"}\n'))
            await writer.drain()

    async with Fake(tmp_path / "e.sock", handler) as fake:
        api = fake.api()
        async with api._query("images/create", "POST", params={"fromImage": "x"}, timeout=None) as response:
            assert response.status == 200
            assert [line async for line in response.content] == [b'{"status":"a"}\n', b'{"status":"b"}\n']
        async with api._query("/v1.41/_ping", versioned_api=False) as response:
            assert (await response.text()).startswith('{"status":"a"}')
        with pytest.raises(ValueError):  # two JSON values: not one answer
            await api._query_json("info")
        await api.close()
    assert seen == [
        "POST /v1.41/images/create?fromImage=x HTTP/1.1",
        "GET /v1.41/_ping HTTP/1.1",
        "GET /v1.41/info HTTP/1.1",
    ]
