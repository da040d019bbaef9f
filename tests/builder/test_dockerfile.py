"""The image map and the rewriting of FROM lines (pure)."""

from __future__ import annotations

import pytest

from berth_builder.domain.dockerfile import (
    DEFAULT_IMAGE_MAP,
    ImageMapError,
    base_images,
    image_map,
    parse_image_map,
    resolve_image,
    rewrite_from_lines,
)

MAP = {"python:3.12-slim": "berth/python:3-bookworm", "busybox": "berth/busybox:1", "node:20-slim": "local/node:20"}


def test_parse_image_map_formats():
    assert parse_image_map("") == {}
    assert parse_image_map('{"python:3.12-slim": "berth/python:3-bookworm"}') == {
        "python:3.12-slim": "berth/python:3-bookworm"
    }
    assert parse_image_map(" a:1=b:1 , c=d ,") == {"a:1": "b:1", "c": "d"}
    for bad in ("{nope", '["a"]', '{"a": 1}', "a", "a=-b", "a b=c", "=x"):
        with pytest.raises(ImageMapError):
            parse_image_map(bad)


def test_image_map_extends_defaults():
    got = image_map("busybox=my/busybox:2")
    assert got["busybox"] == "my/busybox:2"
    assert got["python:3.12-slim"] == DEFAULT_IMAGE_MAP["python:3.12-slim"] == "berth/python:3-bookworm"


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("python:3.12-slim", "berth/python:3-bookworm"),
        ("docker.io/library/python:3.12-slim", "berth/python:3-bookworm"),
        ("busybox:1.36", "berth/busybox:1"),
        ("busybox", "berth/busybox:1"),
        ("busybox@sha256:" + "a" * 64, "berth/busybox:1"),
        ("python:3.13", "python:3.13"),
        ("golang:1.22", "golang:1.22"),
        ("myregistry:5000/busybox:1", "myregistry:5000/busybox:1"),
    ],
)
def test_resolve_image(ref, expected):
    assert resolve_image(ref, MAP) == expected


def test_rewrite_from_lines():
    src = (
        "# syntax comment\n"
        "FROM --platform=linux/amd64 python:3.12-slim AS build\n"
        "RUN echo FROM busybox\n"
        "from busybox:1.36\r\n"
        "COPY --from=build /x /x\n"
        "FROM build AS again\n"
        "FROM scratch\n"
        "ARG BASE=busybox\n"
        "FROM ${BASE}\n"
        "  FROM node:20-slim\n"
        "FROM golang:1.22"
    )
    text, changes = rewrite_from_lines(src, MAP)
    assert text == (
        "# syntax comment\n"
        "FROM --platform=linux/amd64 berth/python:3-bookworm AS build\n"
        "RUN echo FROM busybox\n"
        "from berth/busybox:1\r\n"
        "COPY --from=build /x /x\n"
        "FROM build AS again\n"
        "FROM scratch\n"
        "ARG BASE=busybox\n"
        "FROM ${BASE}\n"
        "  FROM local/node:20\n"
        "FROM golang:1.22"
    )
    assert changes == [
        ("python:3.12-slim", "berth/python:3-bookworm"),
        ("busybox:1.36", "berth/busybox:1"),
        ("node:20-slim", "local/node:20"),
    ]
    assert base_images(src) == ["python:3.12-slim", "busybox:1.36", "node:20-slim", "golang:1.22"]


def test_a_stage_named_like_a_mapped_image_is_not_rewritten():
    text, changes = rewrite_from_lines("FROM busybox:1 AS busybox\nFROM busybox\n", MAP)
    assert text == "FROM berth/busybox:1 AS busybox\nFROM busybox\n"
    assert changes == [("busybox:1", "berth/busybox:1")]
