"""Loopback HTTP servers for the fetch tests: scripted routes, hostile behaviours, hit counters.

`public_http` listens on 127.0.0.2 and `private_http` on 127.0.0.1 (both fixtures live in
tests/conftest.py, shared with tests/test_fetch_service.py); the `is_public` classifier
treats only 127.0.0.2 as public, so the public→private redirect rule is tested on loopback only.
"""

from __future__ import annotations

import gzip
import ipaddress
import socket
import struct
import threading
import zlib
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipeline.fetch import FetchSettings

Handler = BaseHTTPRequestHandler
RouteFn = Callable[[Handler], None]
PUBLIC_HOST = "127.0.0.2"
PRIVATE_HOST = "127.0.0.1"
NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


class ScriptedServer:
    """A ThreadingHTTPServer whose paths run scripted functions; it counts what it sees."""

    def __init__(self, host: str) -> None:
        self.routes: dict[str, RouteFn] = {}
        self.hits: Counter[str] = Counter()
        self.seen_headers: list[dict[str, str]] = []
        self.active = 0
        self.max_active = 0
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer((host, 0), _handler_for(self))
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def host(self) -> str:
        return str(self.httpd.server_address[0])

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def add(self, path: str, fn: RouteFn) -> str:
        self.routes[path] = fn
        return self.url(path)

    def static(
        self, path: str, body: bytes = b"", status: int = 200, headers: dict[str, str] | None = None
    ) -> str:
        return self.add(path, lambda h: send(h, status, body, headers or {}))

    def redirect(self, path: str, status: int, location: str) -> str:
        return self.add(path, lambda h: send(h, status, b"", {"Location": location}))

    def serve(self, handler: Handler) -> None:
        path = handler.path.split("?", 1)[0]
        with self._lock:
            self.hits[path] += 1
            self.seen_headers.append({k.lower(): v for k, v in handler.headers.items()})
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            self.routes.get(path, not_found)(handler)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should
        finally:
            with self._lock:
                self.active -= 1

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler_for(server: ScriptedServer) -> type[Handler]:
    class _Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server.serve(self)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return _Handler


def not_found(handler: Handler) -> None:
    send(handler, 404, b"not found", {})


def send(handler: Handler, status: int, body: bytes, headers: dict[str, str]) -> None:
    handler.send_response(status)
    if "Content-Length" not in headers:
        handler.send_header("Content-Length", str(len(body)))
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


def drip(stop: threading.Event, interval: float = 0.2, count: int = 100) -> RouteFn:
    """Headers at once, then one byte per `interval`: no single read ever times out."""

    def route(h: Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/rss+xml")
        h.end_headers()
        for _ in range(count):
            h.wfile.write(b" ")
            h.wfile.flush()
            if stop.wait(interval):
                return

    return route


def silent(stop: threading.Event) -> RouteFn:
    """Read the request, then send nothing until the test ends."""

    def route(h: Handler) -> None:
        stop.wait(10)

    return route


def endless(h: Handler) -> None:
    """A body without a length that never ends (until the client hangs up)."""
    h.send_response(200)
    h.end_headers()
    chunk = b"<item>" + b"x" * 65_530
    for _ in range(10_000):
        h.wfile.write(chunk)


def reset_mid_body(h: Handler) -> None:
    """Promise 10,000 bytes, send 5,000, then reset the connection (RST, not FIN)."""
    h.send_response(200)
    h.send_header("Content-Length", "10000")
    h.end_headers()
    h.wfile.write(b"<rss>" + b"x" * 4995)
    h.wfile.flush()
    h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    h.connection.close()


def truncated_gzip(h: Handler) -> None:
    """Half a gzip stream, no Content-Length, then a clean close."""
    data = gzip.compress(b"<rss><channel><title>t</title></channel></rss>" * 200)
    h.send_response(200)
    h.send_header("Content-Encoding", "gzip")
    h.end_headers()
    h.wfile.write(data[: len(data) // 2])


def gzip_bomb(decoded_size: int) -> bytes:
    """`decoded_size` zero bytes, gzip-compressed (50 MB → about 50 KB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1_000_000)
    parts = [compressor.compress(block) for _ in range(decoded_size // len(block))]
    return b"".join(parts) + compressor.flush()


def loopback_is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """The test classifier: 127.0.0.2 plays a public address; everything else is private."""
    return ip == ipaddress.IPv4Address(PUBLIC_HOST)


@pytest.fixture
def settings() -> FetchSettings:
    return FetchSettings(
        user_agent="newswatch-test/0.1 (+https://example.org/newswatch)",
        timeout_s=2.0,
        connect_timeout_s=1.0,
    )
