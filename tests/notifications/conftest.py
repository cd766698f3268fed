"""Fixtures for digest and delivery tests: a migrated SQLite world, an aiosmtpd sink with a
scripted handler (plain, STARTTLS, AUTH), a raw greeting server, and a webhook receiver."""

from __future__ import annotations

import asyncio
import json
import shutil
import socketserver
import ssl
import subprocess
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from storage import outbox
from storage.engine import Database
from storage.models import Article, Feed, Match, document_text
from tests.loopback import free_port

T0 = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
SMTP_USER = "newswatch"
SMTP_PASSWORD = "s3cret-Pa55word-xyzzy"


# ---------------------------------------------------------------------------------------------
# database world


class World:
    """A migrated SQLite file and helpers that insert feeds, articles, matches and alerts."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._feeds: dict[str, int] = {}
        self._n = 0

    def feed(self, name: str) -> int:
        if name not in self._feeds:
            with self.db.session() as s:
                feed = Feed(name=name, url=f"https://example.org/{self._n}/rss")
                s.add(feed)
                s.flush()
                assert feed.id is not None
                self._feeds[name] = feed.id
        return self._feeds[name]

    def article(
        self,
        *,
        title: str,
        text: str = "",
        feed: str = "ozodi-tj",
        link: str | None = None,
        language: str | None = "en",
        published_at: datetime = T0,
        duplicate_of: int | None = None,
    ) -> int:
        feed_id = self.feed(feed)
        self._n += 1
        with self.db.session() as s:
            article = Article(
                feed_id=feed_id,
                guid=f"guid-{self._n}",
                link=link if link is not None else f"https://example.org/news/{self._n}",
                title=title,
                text=text,
                language=language,
                published_at=published_at,
                fetched_at=published_at,
                content_hash=f"hash-{self._n}",
                duplicate_of=duplicate_of,
            )
            s.add(article)
            s.flush()
            assert article.id is not None
            return article.id

    def alert(
        self,
        *,
        now: datetime = T0,
        rule_id: str = "panj-crossings",
        rule_title: str = "Incidents at the Panj river border crossings",
        level: str = "high",
        notifiers: Sequence[str] = ("mail",),
        article_id: int | None = None,
        words: Sequence[str] = (),
        places: dict[str, str] | None = None,
        **article: Any,
    ) -> int:
        """Stores an article (unless given), a match with hits on `words`, and queues alerts."""
        if article_id is None:
            article.setdefault("title", "Clash near Jurm bridge")
            article_id = self.article(**article)
        with self.db.session() as s:
            stored = s.get(Article, article_id)
            assert stored is not None
            hits = make_hits(document_text(stored.title, stored.text), words, places or {})
            match = Match(
                article_id=article_id,
                rule_id=rule_id,
                rule_version="v1",
                hits=json.dumps(hits),
                created_at=now,
            )
            s.add(match)
            s.flush()
            assert match.id is not None
            outbox.queue_alerts(
                s,
                match_id=match.id,
                article_id=article_id,
                rule_id=rule_id,
                rule_version="v1",
                rule_title=rule_title,
                level=level,
                notifiers=notifiers,
                now=now,
            )
        return article_id

    def digest(self, digest_id: str) -> Any:
        from storage.models import Digest

        with self.db.session() as s:
            return s.get(Digest, digest_id)

    def status(self) -> dict[str, Any]:
        with self.db.session() as s:
            return outbox.digest_status(s)


def make_hits(document: str, words: Sequence[str], places: dict[str, str]) -> list[dict[str, Any]]:
    hits = []
    for word in words:
        start = document.index(word)
        hits.append(
            {
                "selection": "crossing" if word in places else "violence",
                "term": word.lower(),
                "place": places.get(word),
                "start": start,
                "end": start + len(word),
                "text": word,
            }
        )
    return hits


@pytest.fixture
def world(db: Database) -> World:
    """The migrated SQLite database of tests/conftest.py, with row helpers."""
    return World(db)


# ---------------------------------------------------------------------------------------------
# SMTP


@dataclass
class ScriptedHandler:
    """aiosmtpd handler: replies come from the scripts, first entry first; empty means 250.

    data actions: a reply string ("250 OK", "451 …", "550 …"), "close" (store, then drop the
    connection before replying) or "hang" (store, then wait until `release` is set).
    """

    rcpt: list[str] = field(default_factory=list)
    mail: list[str] = field(default_factory=list)
    data: list[str] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.mail:
            return self.mail.pop(0)
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.rcpt:
            return self.rcpt.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        action = self.data.pop(0) if self.data else "250 OK"
        if action in ("close", "hang") or action.startswith("250"):
            self.messages.append(envelope.original_content)
        if action == "close":
            server.transport.close()
        elif action == "hang":
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 20)
            return "250 OK"
        return "250 OK" if action == "close" else action


def _authenticate(
    server: Any, session: Any, envelope: Any, mechanism: str, data: Any
) -> AuthResult:
    ok = (
        isinstance(data, LoginPassword)
        and data.login == SMTP_USER.encode()
        and data.password == SMTP_PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


@dataclass
class SmtpServer:
    handler: ScriptedHandler
    port: int
    controller: Controller


@pytest.fixture
def smtp_factory() -> Iterator[Any]:
    """Starts aiosmtpd controllers: smtp_factory(tls_context=…, auth=True)."""
    started: list[SmtpServer] = []

    def start(
        *,
        tls_context: ssl.SSLContext | None = None,
        auth: bool = False,
        implicit_tls: ssl.SSLContext | None = None,
    ) -> SmtpServer:
        handler = ScriptedHandler()
        port = free_port()  # aiosmtpd cannot take port 0 (aio-libs/aiosmtpd#388)
        kwargs: dict[str, Any] = {"ssl_context": implicit_tls}
        if tls_context is not None:
            kwargs |= {"tls_context": tls_context, "require_starttls": True}
        if auth:
            kwargs |= {"authenticator": _authenticate, "auth_require_tls": True}
        controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        server = SmtpServer(handler, port, controller)
        started.append(server)
        return server

    yield start
    for server in started:
        server.handler.release.set()
        server.controller.stop()


@pytest.fixture
def smtp(smtp_factory: Any) -> SmtpServer:
    return smtp_factory()  # type: ignore[no-any-return]


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on (connection refused)."""
    return free_port()


@pytest.fixture
def smtp_credentials() -> tuple[str, str]:
    return SMTP_USER, SMTP_PASSWORD


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed: cannot make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def server_tls(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*tls_files)
    return context


@pytest.fixture
def client_tls(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(tls_files[0]))


class _Greeting421(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(b"421 4.3.2 service not available, try later\r\n")


@pytest.fixture
def greeting_421() -> Iterator[int]:
    """A server that greets with 421 and hangs up; yields its port."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Greeting421)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


# ---------------------------------------------------------------------------------------------
# webhook receiver


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers from `script` ((status, headers) or "stall"), then 200; records every request."""

    url: str
    requests: list[Received] = field(default_factory=list)
    script: list[Any] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def receiver_factory() -> Iterator[Any]:
    servers: list[tuple[ThreadingHTTPServer, Receiver]] = []

    def start(path: str = "/services/T000/B000/tok3n-SECRET-path") -> Receiver:
        state = Receiver(url="")

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                state.requests.append(Received(self.path, dict(self.headers.items()), body))
                action = state.script.pop(0) if state.script else (200, {})
                if action == "stall":
                    state.release.wait(20)
                    action = (200, {})
                status, headers = action
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the client gave up waiting (the stall tests)
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        state.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
        servers.append((server, state))
        return state

    yield start
    for server, state in servers:
        state.release.set()
        server.shutdown()
        server.server_close()
