"""Loopback helpers for tests: a scripted feed server on 127.0.0.1 (routes, ETags, request
counts) and `free_port`, a port nothing listens on."""

from __future__ import annotations

import hashlib
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port() -> int:
    """A 127.0.0.1 port free right now: nothing listens on it (connections are refused).

    For servers that cannot take port 0 (aiosmtpd: aio-libs/aiosmtpd#388, pg_ctl) and for
    "connection refused" tests.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Route:
    body: bytes
    status: int = 200
    content_type: str = "application/rss+xml; charset=utf-8"
    etag: bool = True
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FeedServer:
    base_url: str
    routes: dict[str, Route]
    hits: Counter[str] = field(default_factory=Counter)
    not_modified: Counter[str] = field(default_factory=Counter)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"


def _handler(server_state: FeedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server_state.hits[self.path] += 1
            route = server_state.routes.get(self.path)
            if route is None:
                self.send_error(404)
                return
            etag = '"' + hashlib.sha256(route.body).hexdigest()[:16] + '"'
            if route.etag and self.headers.get("If-None-Match") == etag:
                server_state.not_modified[self.path] += 1
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            self.send_response(route.status)
            self.send_header("Content-Type", route.content_type)
            self.send_header("Content-Length", str(len(route.body)))
            if route.etag:
                self.send_header("ETag", etag)
            for name, value in route.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(route.body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def feed_server(routes: dict[str, Route]) -> Iterator[FeedServer]:
    state = FeedServer(base_url="", routes=routes)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
