"""Reading an HTTP response body: gzip/deflate undone in bounded pieces, under a decoded-size cap.

httpx would hand back a whole decompressed bomb from one read (RELIABILITY H3), so bodies are read
raw and decoded here, and refused as soon as the decoded bytes pass the cap.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

import httpx

from pipeline.errors import FetchError

# The encodings read_body undoes: what a request may offer in Accept-Encoding. (httpx would offer
# br and zstd as well when those packages happen to be installed, with no size bound.)
ACCEPT_ENCODING = "gzip, deflate"


class _Decoder:
    """Undoes one Content-Encoding in pieces of at most 64 KiB, so the size cap sees every piece
    (`decompressobj(...).decompress(data, max_length)`)."""

    PIECE = 64 * 1024

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._gzip = encoding in ("gzip", "x-gzip")
        self._zlib = self._new()
        self._started = False
        self._held = b""  # one byte the next piece of data decides about (a header's first half)
        self._ignoring = False

    def _new(self) -> Any:
        if self._gzip:
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        return zlib.decompressobj()

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Yield the decoded pieces of `data` (the body may come in pieces of any size)."""
        if self._held:
            data, self._held = self._held + data, b""
        if not self._started and not self._gzip and data:
            if len(data) < 2:  # telling zlib from raw deflate takes the first two bytes
                self._held = data
                return
            self._started = True
            if not _has_zlib_header(data):  # raw deflate, as some servers send for "deflate"
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
        while data and not self._ignoring:
            if self._zlib.eof and not self._next_member(data):
                return
            try:
                piece = self._zlib.decompress(data, self.PIECE)
            except zlib.error as exc:
                raise FetchError(f"response body is not valid {self.encoding}: {exc}") from None
            if piece:
                yield piece
            data = self._zlib.unused_data if self._zlib.eof else self._zlib.unconsumed_tail

    def _next_member(self, data: bytes) -> bool:
        """After the end of a stream: True when `data` starts a new gzip member (concatenated
        gzip); else holds a lone b"\x1f" for the next piece, or ignores the rest of the body
        as trailing garbage, as browsers do."""
        if self._gzip and data.startswith(b"\x1f\x8b"):
            self._zlib = self._new()
            return True
        if self._gzip and data == b"\x1f":
            self._held = data
        else:
            self._ignoring = True
        return False

    def finish(self) -> None:
        """Raise when the stream stopped before its end (truncated body)."""
        if not self._zlib.eof and (self._started or self._gzip or self._held):
            raise FetchError(f"response body truncated (incomplete {self.encoding} stream)")


def _has_zlib_header(data: bytes) -> bool:
    return data[0] & 0x0F == 8 and (data[0] * 256 + data[1]) % 31 == 0


def _decoders(content_encoding: str) -> list[_Decoder]:
    names = [n.strip().lower() for n in content_encoding.split(",") if n.strip()]
    decoders = []
    for name in reversed(names):  # the last encoding applied is undone first
        if name == "identity":
            continue
        if name not in ("gzip", "x-gzip", "deflate"):
            raise FetchError(f"unsupported Content-Encoding '{name}'")
        decoders.append(_Decoder(name))
    return decoders


def _decode(decoders: list[_Decoder], data: bytes) -> Iterator[bytes]:
    if not decoders:
        yield data
        return
    for piece in decoders[0].feed(data):
        yield from _decode(decoders[1:], piece)


async def read_body(response: httpx.Response, max_bytes: int) -> bytes:
    """Read and decode a streamed body, refusing it once it exceeds `max_bytes` decoded bytes.

    Raises:
        FetchError: too large (from Content-Length or while decoding), truncated or undecodable.
    """
    limit = _size(max_bytes)
    declared = response.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(f"response of {int(declared)} bytes exceeds {limit}; refused")
    decoders = _decoders(response.headers.get("content-encoding", ""))
    pieces: list[bytes] = []
    total = 0
    async for raw in response.aiter_raw():
        for piece in _decode(decoders, raw):
            total += len(piece)
            if total > max_bytes:
                after = " after decompression" if decoders else ""
                raise FetchError(f"response exceeds {limit}{after}")
            pieces.append(piece)
    for decoder in decoders:
        decoder.finish()
    return b"".join(pieces)


def _size(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:g} MB"
    if n >= 1000:
        return f"{n / 1000:g} kB"
    return f"{n} bytes"
