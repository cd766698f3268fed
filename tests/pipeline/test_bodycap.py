"""pipeline.bodycap on in-memory responses: every encoding undone, the cap checked per piece."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from pipeline.bodycap import _Decoder, read_body
from pipeline.errors import FetchError
from tests.pipeline.conftest import gzip_bomb

TEXT = b"<rss><channel><title>t</title></channel></rss>" * 50


class _Chunks(httpx.AsyncByteStream):
    def __init__(self, data: bytes, size: int) -> None:
        self._data, self._size = data, size

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for at in range(0, len(self._data), self._size):
            yield self._data[at : at + self._size]


def read(data: bytes, max_bytes: int = 1_000_000, chunk: int = 4096, **headers: str) -> bytes:
    names = {k.replace("_", "-"): v for k, v in headers.items()}
    response = httpx.Response(200, headers=names, stream=_Chunks(data, chunk))
    return asyncio.run(read_body(response, max_bytes))


def raw_deflate(data: bytes) -> bytes:
    return zlib.compress(data)[2:-4]


@pytest.mark.parametrize("chunk", [1, 7, 4096])
@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("", lambda b: b),
        ("identity", lambda b: b),
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("GZIP", lambda b: gzip.compress(b[:40]) + gzip.compress(b[40:])),  # two members
        ("deflate", zlib.compress),
        ("deflate", raw_deflate),
        ("deflate, gzip", lambda b: gzip.compress(zlib.compress(b))),  # last applied, first undone
        ("gzip, identity", gzip.compress),
    ],
)
def test_every_supported_encoding_is_undone_in_any_chunking(
    encoding: str, encode: Callable[[bytes], bytes], chunk: int
) -> None:
    assert read(encode(TEXT), chunk=chunk, content_encoding=encoding) == TEXT


@pytest.mark.parametrize("chunk", [1, 4096])
def test_garbage_after_the_stream_is_ignored_even_when_it_looks_like_gzip_later(
    chunk: int,
) -> None:
    garbage = b"\0trailing" + gzip.compress(b"not this")
    assert read(gzip.compress(TEXT) + garbage, chunk=chunk, content_encoding="gzip") == TEXT
    assert read(gzip.compress(TEXT) + b"\x1f", chunk=chunk, content_encoding="gzip") == TEXT


def test_the_cap_is_on_decoded_bytes_and_inclusive() -> None:
    assert read(TEXT, max_bytes=len(TEXT)) == TEXT
    with pytest.raises(FetchError, match=r"^response exceeds 2\.299 kB$"):
        read(TEXT, max_bytes=len(TEXT) - 1)
    with pytest.raises(FetchError, match=r"^response exceeds 2\.299 kB after decompression$"):
        read(gzip.compress(TEXT), max_bytes=len(TEXT) - 1, content_encoding="gzip")


def test_a_bomb_is_refused_without_decoding_it_whole() -> None:
    with pytest.raises(FetchError, match=r"^response exceeds 1 MB after decompression$"):
        read(gzip_bomb(50_000_000), max_bytes=1_000_000, content_encoding="gzip")
    decoder = _Decoder("gzip")
    pieces = decoder.feed(gzip_bomb(1_000_000))
    assert max(len(p) for p in pieces) <= _Decoder.PIECE


def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    with pytest.raises(FetchError, match=r"^response of 5000 bytes exceeds 999 bytes; refused$"):
        read(b"", max_bytes=999, content_length="5000")


@pytest.mark.parametrize(
    ("data", "encoding", "message"),
    [
        (b"x", "br", "unsupported Content-Encoding 'br'"),
        (b"x", "deflate", r"truncated \(incomplete deflate stream\)"),
        (b"not gzip at all", "gzip", "response body is not valid gzip: Error -3"),
        (gzip.compress(TEXT)[:30], "gzip", r"truncated \(incomplete gzip stream\)"),
        (zlib.compress(TEXT)[:30], "deflate", r"truncated \(incomplete deflate stream\)"),
    ],
)
def test_undecodable_bodies_are_errors(data: bytes, encoding: str, message: str) -> None:
    with pytest.raises(FetchError, match=message):
        read(data, content_encoding=encoding)
