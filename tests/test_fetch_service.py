"""Issue 5 through the Service: real servers on loopback, an injected clock, status and storage.

Each test runs whole cycles (`Service.run_cycle`: fetch, parse, store, match, queue, deliver)
against scripted HTTP servers on 127.0.0.x and asserts on what the user sees: the feed rows of
`newswatch status --json` (`collect_status`), the stored articles and the outbox `.eml` files.
Rows H1–H11 and N1–N5 of RELIABILITY.md have one test each, marked in their names.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import logging
import random
import resource
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import httpx
import pytest
from sqlmodel import col, select

from notifications.delivery import Notifier
from pipeline.assemble import build_notifiers
from pipeline.cli import main
from pipeline.config import Config, load_config
from pipeline.errors import ConfigError
from pipeline.netguard import REDIRECT_REFUSED
from pipeline.parsepool import ParsePool
from pipeline.service import CycleReport, Service
from pipeline.status import collect_status
from storage.engine import Database, open_database
from storage.models import Alert, Article, Feed
from tests.conftest import FakeClock
from tests.loopback import free_port
from tests.pipeline.conftest import (
    Handler,
    RouteFn,
    ScriptedServer,
    drip,
    endless,
    gzip_bomb,
    loopback_is_public,
    reset_mid_body,
    send,
    silent,
    truncated_gzip,
)

PUBLISHED = datetime(2026, 11, 19, 12, 0, tzinfo=UTC)
RSS_TYPE = {"Content-Type": "application/rss+xml; charset=utf-8"}
GUNFIRE_RULE = """\
id: gunfire
title: Gunfire reports
level: high
notify: [outbox]
digest: immediate
feeds: ["*"]
detection:
  shots:
    terms: [gunfire, clash]
  condition: shots
"""


# --- feeds -----------------------------------------------------------------------------------


def item(
    guid: str | None,
    title: str,
    *,
    link: str | None = None,
    text: str = "Border guards reported gunfire near the bridge.",
    when: datetime | str | None = PUBLISHED,
) -> str:
    parts = [f"<title>{escape(title)}</title>"]
    parts.append(f"<link>{escape(link or f'https://news.example.org/{guid}')}</link>")
    if guid is not None:
        parts.append(f'<guid isPermaLink="false">{escape(guid)}</guid>')
    if when is not None:
        date = when if isinstance(when, str) else format_datetime(when)
        parts.append(f"<pubDate>{date}</pubDate>")
    parts.append(f"<description>{escape(text)}</description>")
    return "<item>" + "".join(parts) + "</item>"


def rss(*items: str, title: str = "Border desk", head: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n{head}<rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>https://news.example.org/</link>"
        + "".join(items)
        + "</channel></rss>"
    ).encode()


def feed_route(body: bytes, etag: str | None = None) -> RouteFn:
    """A feed with an ETag: 304 when the client sends it back."""

    def route(h: Handler) -> None:
        if etag and h.headers.get("If-None-Match") == etag:
            send(h, 304, b"", {"ETag": etag})
        else:
            send(h, 200, body, {**RSS_TYPE, **({"ETag": etag} if etag else {})})

    return route


# --- the service under test ------------------------------------------------------------------


@dataclass
class Env:
    """A config.toml in tmp_path, its database and a Service on the injected clock."""

    tmp_path: Path
    clock: FakeClock
    feeds: dict[str, str]
    fetch: str = ""
    interval: str = "10m"
    rules: str | None = None
    feed_extra: dict[str, str] = field(default_factory=dict)
    config: Config = field(init=False)
    db: Database = field(init=False)
    service: Service = field(init=False)

    def __post_init__(self) -> None:
        rules_dir = self.tmp_path / "rules"
        rules_dir.mkdir(exist_ok=True)
        if self.rules:
            (rules_dir / "rule.yaml").write_text(self.rules, encoding="utf-8")
        feeds = "".join(
            f'[[feeds]]\nname = "{name}"\nurl = "{url}"\n{self.feed_extra.get(name, "")}\n'
            for name, url in self.feeds.items()
        )
        path = self.tmp_path / "config.toml"
        path.write_text(
            f'rules_dir = "{rules_dir}"\noutbox_dir = "{self.tmp_path / "outbox"}"\n'
            f'[database]\nurl = "sqlite:///{self.tmp_path / "newswatch.db"}"\n'
            f'[fetch]\ntimeout = "1s"\nconnect_timeout = "1s"\ninterval = "{self.interval}"\n'
            f"{self.fetch}\n"
            f"{feeds}"
            '[notifiers.outbox]\ntype = "outbox"\nto = ["analyst@example.org"]\n'
            'from = "newswatch@example.org"\n',
            encoding="utf-8",
        )
        self.config = load_config(path)
        self.db = open_database(self.config.database_url)
        notifiers: dict[str, Notifier] = build_notifiers(self.config)
        self.service = Service(
            self.config,
            clock=self.clock,
            db=self.db,
            notifiers=notifiers,
            is_public=loopback_is_public,
            rng=random.Random(5),
        )
        self.service.start()

    def cycle(self) -> CycleReport:
        return self.service.run_cycle()

    def status(self) -> dict[str, dict[str, Any]]:
        document = collect_status(self.config, now=self.clock())
        return {f["name"]: f for f in document["feeds"]}

    def articles(self, feed: str | None = None) -> list[Article]:
        with self.db.session(write=False) as session:
            rows = session.exec(select(Article).order_by(col(Article.id))).all()
            names = {f.id: f.name for f in session.exec(select(Feed)).all()}
        return [a for a in rows if feed is None or names[a.feed_id] == feed]

    def alerts(self) -> list[Alert]:
        with self.db.session(write=False) as session:
            return list(session.exec(select(Alert)).all())

    def outbox(self) -> list[email.message.Message]:
        return [
            email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in sorted((self.tmp_path / "outbox").glob("*.eml"))
        ]

    def close(self) -> None:
        self.service.close()
        self.db.dispose()


@pytest.fixture
def make_env(tmp_path: Path, clock: FakeClock) -> Iterator[Callable[..., Env]]:
    made: list[Env] = []

    def make(feeds: dict[str, str], **kw: Any) -> Env:
        env = Env(tmp_path, clock, feeds, **kw)
        made.append(env)
        return env

    yield make
    for env in made:
        env.close()


def parts(message: email.message.Message) -> tuple[str, str]:
    text = html = ""
    for part in message.walk():
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        decoded = payload.decode(part.get_content_charset() or "utf-8")
        if part.get_content_type() == "text/plain":
            text = decoded
        elif part.get_content_type() == "text/html":
            html = decoded
    return text, html


def at(value: datetime) -> str:
    return value.isoformat()


# --- conditional GET, redirects, gone ---------------------------------------------------------


def test_304_keeps_the_feed_and_its_articles_and_sends_the_etag_back(
    make_env: Callable[..., Env], private_http: ScriptedServer, clock: FakeClock
) -> None:
    body = rss(item("a1", "Clash at the bridge"), item("a2", "Market reopens"))
    url = private_http.add("/feed", feed_route(body, etag='"v1"'))
    env = make_env({"desk": url})
    first = env.cycle()
    assert (first.fetched, first.new_articles) == (1, 2)
    clock.advance(minutes=11)
    second = env.cycle()
    assert (second.not_modified, second.new_articles) == (1, 0)
    assert private_http.seen_headers[-1]["if-none-match"] == '"v1"'
    desk = env.status()["desk"]
    assert (desk["last_status"], desk["health"], desk["error_count"]) == (304, "ok", 0)
    assert desk["articles"] == 2 and desk["last_warning"] is None
    assert desk["last_success_at"] == at(clock())


def test_n2_301_moves_the_stored_url_for_good(
    make_env: Callable[..., Env], private_http: ScriptedServer, clock: FakeClock
) -> None:
    new = private_http.add("/new", feed_route(rss(item("a1", "Clash"))))
    old = private_http.redirect("/old", 301, new)
    env = make_env({"desk": old})
    env.cycle()
    assert env.status()["desk"]["url"] == new
    clock.advance(minutes=11)
    env.cycle()
    assert (private_http.hits["/old"], private_http.hits["/new"]) == (1, 2)
    assert env.status()["desk"]["articles"] == 1


def test_n2_302_keeps_the_configured_url(
    make_env: Callable[..., Env], private_http: ScriptedServer, clock: FakeClock
) -> None:
    target = private_http.add("/today", feed_route(rss(item("a1", "Clash"))))
    url = private_http.redirect("/feed", 302, target)
    env = make_env({"desk": url})
    env.cycle()
    clock.advance(minutes=11)
    env.cycle()
    assert env.status()["desk"]["url"] == url
    assert (private_http.hits["/feed"], private_http.hits["/today"]) == (2, 2)


def test_n2_410_disables_the_feed_shows_when_and_stops_requests(
    make_env: Callable[..., Env], private_http: ScriptedServer, clock: FakeClock
) -> None:
    url = private_http.static("/gone", b"gone", status=410)
    env = make_env({"desk": url})
    gone_at = clock()
    env.cycle()
    for _ in range(3):
        clock.advance(days=2)
        env.cycle()
    assert private_http.hits["/gone"] == 1
    desk = env.status()["desk"]
    assert (desk["enabled"], desk["health"], desk["disabled_reason"]) == (
        False,
        "disabled",
        "410 Gone",
    )
    assert desk["disabled_at"] == at(gone_at)
    assert desk["message"] == (
        f"disabled since {gone_at.isoformat(timespec='seconds')}: 410 Gone; no more requests"
    )


# --- N1, N5, backoff and network health -------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retry_after", "wait_s"),
    [
        (429, "120", 120),
        (429, "in an hour", 3600),  # the HTTP-date form, an hour after the clock
        (503, "120", 120),
        (429, "Sat, 01 Jan 2000 00:00:00 GMT", 60),  # in the past: the 1-minute floor
        (429, "Fri, 01 Jan 2100 00:00:00 GMT", 86400),  # decades ahead: 24 h
        (503, "999999999", 86400),
    ],
)
def test_n1_retry_after_in_both_forms_is_honoured_and_clamped(
    make_env: Callable[..., Env],
    private_http: ScriptedServer,
    clock: FakeClock,
    status: int,
    retry_after: str,
    wait_s: int,
) -> None:
    if retry_after == "in an hour":
        retry_after = format_datetime(clock() + timedelta(hours=1), usegmt=True)
    answers = iter([(status, {"Retry-After": retry_after})])

    def route(h: Handler) -> None:
        code, headers = next(answers, (200, RSS_TYPE))
        send(h, code, rss(item("a1", "Clash")) if code == 200 else b"busy", headers)

    env = make_env(
        {"desk": private_http.add("/feed", route)}, feed_extra={"desk": 'interval = "1m"'}
    )
    started = clock()
    env.cycle()
    desk = env.status()["desk"]
    assert (desk["health"], desk["hold_reason"], desk["error_count"]) == (
        "failing",
        "retry-after",
        1,
    )
    assert desk["last_error"].startswith(f"HTTP {status}")
    due = datetime.fromisoformat(desk["next_fetch_at"])
    if wait_s == 60:  # the floor, or the failure backoff when longer (1 min ±10 %)
        assert started + timedelta(seconds=60) <= due <= started + timedelta(seconds=66)
    else:
        assert due == started + timedelta(seconds=wait_s)
    assert "(retry-after)" in desk["message"]
    clock.now = due - timedelta(seconds=1)
    env.cycle()
    assert private_http.hits["/feed"] == 1
    clock.now = due
    env.cycle()
    assert private_http.hits["/feed"] == 2
    desk = env.status()["desk"]
    assert (desk["health"], desk["hold_reason"], desk["articles"]) == ("ok", None, 1)


def test_503_without_retry_after_backs_off_from_the_interval(
    make_env: Callable[..., Env], private_http: ScriptedServer, clock: FakeClock
) -> None:
    env = make_env({"desk": private_http.static("/feed", b"down", status=503)})
    delays = []
    for _ in range(4):
        before = clock()
        env.cycle()
        due = datetime.fromisoformat(env.status()["desk"]["next_fetch_at"])
        delays.append((due - before).total_seconds())
        clock.now = due
    for n, delay in enumerate(delays):  # 10 min, 20, 40, 80, each ±10 %
        assert 600 * 2**n * 0.9 <= delay <= 600 * 2**n * 1.1
    desk = env.status()["desk"]
    assert (desk["error_count"], desk["hold_reason"]) == (4, "backoff")
    assert desk["message"].startswith("4 failures in a row: HTTP 503 Service Unavailable; next")


def test_n5_a_host_down_for_three_days_is_retried_with_capped_backoff_and_never_dropped(
    make_env: Callable[..., Env], clock: FakeClock
) -> None:
    env = make_env({"desk": f"http://127.0.0.1:{free_port()}/feed"}, interval="15m")
    start = clock()
    attempts = []
    while clock() < start + timedelta(days=3):
        env.cycle()
        attempts.append(clock())
        clock.now = datetime.fromisoformat(env.status()["desk"]["next_fetch_at"])
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(attempts)]
    for n, gap in enumerate(gaps):
        expected = min(900 * 2**n, 86400)
        assert expected * 0.9 <= gap <= min(expected * 1.1, 86400), (n, gap)
    assert max(gaps) == 86400 and len(attempts) == 9  # 15 min … 16 h, then 24 h, 24 h
    desk = env.status()["desk"]
    assert (desk["enabled"], desk["health"], desk["error_count"]) == (True, "failing", 9)
    assert desk["last_error"] == "connection refused"
    assert desk["message"] == (
        f"9 failures in a row: connection refused; next attempt "
        f"{clock().isoformat(timespec='seconds')} (backoff)"
    )


def test_network_down_is_not_blamed_on_the_feeds_and_is_retried_soon(
    make_env: Callable[..., Env], clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    hosts = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
    env = make_env({f"desk{n}": f"http://{host}:{port}/feed" for n, host in enumerate(hosts)})
    with caplog.at_level(logging.WARNING, logger="pipeline.service"):
        env.cycle()
    down = (
        "network down: none of 3 feeds on 3 hosts could be reached (connection refused); "
        "not counted against the feeds; retrying in 5 min"
    )
    assert [r.getMessage() for r in caplog.records if r.name == "pipeline.service"] == [down]
    retry = clock() + timedelta(minutes=5)
    for feed in env.status().values():
        assert (feed["health"], feed["error_count"], feed["last_error"]) == (
            "network-down",
            0,
            None,
        )
        assert (feed["hold_reason"], feed["next_fetch_at"]) == ("network down", at(retry))
        assert feed["message"] == (
            f"network down at {clock().isoformat(timespec='seconds')} (no host answered); "
            f"not counted against this feed; next attempt {retry.isoformat(timespec='seconds')}"
        )
    # The network is back for one host: the two others are failing feeds, not a network.
    server = _serve_on("127.0.0.3", port, rss(item("a1", "Clash")))
    try:
        clock.now = retry
        env.cycle()
    finally:
        server.shutdown()
        server.server_close()
    status = env.status()
    assert (status["desk2"]["health"], status["desk2"]["articles"]) == ("ok", 1)
    for name in ("desk0", "desk1"):
        assert (status[name]["health"], status[name]["error_count"]) == ("failing", 1)
        assert status[name]["hold_reason"] == "backoff"


def _serve_on(host: str, port: int, body: bytes) -> ThreadingHTTPServer:
    class One(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            send(self, 200, body, RSS_TYPE)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, port), One)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    ).start()
    return server


def test_a_feed_silent_against_its_usual_cadence_is_reported(
    make_env: Callable[..., Env], private_http: ScriptedServer, clock: FakeClock
) -> None:
    last = clock() - timedelta(hours=1)
    items = [item(f"a{n}", f"Report {n}", when=last - timedelta(hours=6 * n)) for n in range(8)]
    body = {"now": rss(*items)}
    private_http.add("/feed", lambda h: send(h, 200, body["now"], RSS_TYPE))
    env = make_env({"desk": private_http.url("/feed")})
    env.cycle()
    assert env.status()["desk"]["health"] == "ok"
    clock.advance(days=5)
    env.cycle()
    desk = env.status()["desk"]
    silent_for = "silent: no new article for 5 days, usually every 6 h"
    assert (desk["health"], desk["last_warning"], desk["message"]) == (
        "silent",
        silent_for,
        silent_for,
    )
    body["now"] = rss(item("fresh", "Report again", when=clock()), *items)
    clock.advance(minutes=11)
    env.cycle()
    desk = env.status()["desk"]
    assert (desk["health"], desk["last_warning"], desk["articles"]) == ("ok", None, 9)


# --- H3, H4, N3, N4: sizes, deadlines, broken connections, politeness --------------------------


def test_h4_timeout_and_slow_drip_hit_the_overall_deadline_other_feeds_are_stored(
    make_env: Callable[..., Env],
    private_http: ScriptedServer,
    public_http: ScriptedServer,
    clock: FakeClock,
) -> None:
    feeds = {
        "drip": private_http.add("/drip", drip(private_http.stop, interval=0.2)),
        "hung": private_http.add("/hung", silent(private_http.stop)),
    }
    for n in range(3):
        feeds[f"ok{n}"] = public_http.add(f"/ok{n}", feed_route(rss(item(f"ok{n}", "Clash"))))
    env = make_env(feeds)
    report = env.cycle()
    assert report.failed == {"drip": "timed out after 1 s", "hung": "timed out after 1 s"}
    status = env.status()
    for name in ("drip", "hung"):
        assert (status[name]["health"], status[name]["error_count"]) == ("failing", 1)
        due = datetime.fromisoformat(status[name]["next_fetch_at"])
        assert clock() + timedelta(minutes=9) <= due <= clock() + timedelta(minutes=11)
    assert [status[f"ok{n}"]["articles"] for n in range(3)] == [1, 1, 1]


def test_h3_oversized_bodies_and_a_gzip_bomb_are_stopped_at_max_bytes(
    make_env: Callable[..., Env], private_http: ScriptedServer
) -> None:
    bomb = gzip_bomb(20_000_000)
    feeds = {
        "bomb": private_http.static(
            "/bomb", bomb, headers={"Content-Encoding": "gzip", **RSS_TYPE}
        ),
        "declared": private_http.static("/declared", b"", headers={"Content-Length": "1000000000"}),
        "endless": private_http.add("/endless", endless),
        "fine": private_http.add("/fine", feed_route(rss(item("a1", "Clash")))),
    }
    env = make_env(feeds, fetch="max_bytes = 1_000_000")
    report = env.cycle()
    assert report.failed == {
        "bomb": "response exceeds 1 MB after decompression",
        "declared": "response of 1000000000 bytes exceeds 1 MB; refused",
        "endless": "response exceeds 1 MB",
    }
    status = env.status()
    assert all(status[n]["hold_reason"] == "backoff" for n in report.failed)
    assert (status["fine"]["health"], status["fine"]["articles"]) == ("ok", 1)
    assert env.articles("bomb") == env.articles("endless") == []


def test_n3_a_reset_mid_body_or_truncated_gzip_stores_nothing_and_backs_off(
    make_env: Callable[..., Env], private_http: ScriptedServer
) -> None:
    env = make_env(
        {
            "reset": private_http.add("/reset", reset_mid_body),
            "truncated": private_http.add("/truncated", truncated_gzip),
        }
    )
    report = env.cycle()
    assert report.failed["reset"].startswith("connection lost while reading the response")
    assert report.failed["truncated"] == "response body truncated (incomplete gzip stream)"
    assert env.articles() == []
    assert {f["hold_reason"] for f in env.status().values()} == {"backoff"}


def test_n4_two_connections_per_host_at_most_and_environment_proxies_ignored(
    make_env: Callable[..., Env],
    private_http: ScriptedServer,
    public_http: ScriptedServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def slow_feed(n: int) -> RouteFn:
        def route(h: Handler) -> None:
            private_http.stop.wait(0.05)  # long enough for requests to overlap
            send(h, 200, rss(item(f"a{n}", f"Story {n}")), RSS_TYPE)

        return route

    proxy = public_http.static("/proxy", b"proxied")
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, proxy)
    env = make_env(
        {f"f{n}": private_http.add(f"/f{n}", slow_feed(n)) for n in range(10)}, fetch="per_host = 2"
    )
    report = env.cycle()
    assert (report.fetched, report.new_articles) == (10, 10)
    assert private_http.max_active == 2
    assert sum(public_http.hits.values()) == 0


# --- H5, H6: redirects and addresses -----------------------------------------------------------


def test_h5_a_redirect_from_public_to_private_is_refused_without_a_request(
    make_env: Callable[..., Env],
    private_http: ScriptedServer,
    public_http: ScriptedServer,
    clock: FakeClock,
) -> None:
    secret = private_http.static("/secret", rss(item("s1", "Internal")))
    feeds = {
        "found": public_http.redirect("/found", 302, secret),
        "moved": public_http.redirect("/moved", 301, secret),
        "metadata": public_http.redirect("/metadata", 302, "http://169.254.169.254/latest/"),
    }
    env = make_env(feeds)
    report = env.cycle()
    assert report.failed == dict.fromkeys(feeds, REDIRECT_REFUSED)
    assert sum(private_http.hits.values()) == 0
    status = env.status()
    for name, url in feeds.items():
        assert (status[name]["url"], status[name]["health"]) == (url, "failing")
    assert env.articles() == []


def test_h6_ssrf_forms_in_location_and_other_schemes_are_refused(
    make_env: Callable[..., Env], private_http: ScriptedServer, public_http: ScriptedServer
) -> None:
    port = private_http.port
    targets = [
        f"http://2130706433:{port}/secret",
        f"http://0x7f.1:{port}/secret",
        f"http://127.1:{port}/secret",
        f"http://[::ffff:127.0.0.1]:{port}/secret",
        "http://100.64.0.1/secret",
        "file:///etc/passwd",
        "ftp://127.0.0.1/secret",
        "gopher://127.0.0.1:70/_secret",
        "feed://127.0.0.1/secret",
    ]
    private_http.static("/secret", rss(item("s1", "Internal")))
    feeds = {f"form{n}": public_http.redirect(f"/r{n}", 302, t) for n, t in enumerate(targets)}
    env = make_env(feeds)
    report = env.cycle()
    refusals = {REDIRECT_REFUSED, "redirect with an invalid Location header"}
    for n, target in enumerate(targets):
        error = report.failed[f"form{n}"]
        scheme = target.split(":", 1)[0]
        if scheme == "http":
            assert error in refusals, (target, error)
        else:
            assert error == f"redirect to unsupported scheme '{scheme}' refused"
    assert sum(private_http.hits.values()) == 0
    assert {f["url"] for f in env.status().values()} == set(feeds.values())
    # In config.toml a non-http URL stops `run` before anything is fetched.
    bad = env.tmp_path / "bad.toml"
    bad.write_text('[[feeds]]\nname = "local"\nurl = "file:///etc/passwd"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"feeds\[0\]\.url: file scheme in URL"):
        load_config(bad)
    assert main(["run", "--once", "--config", str(bad)]) == 1


# --- H1, H2, H9, H10: hostile and broken documents ---------------------------------------------


def test_h1_external_entities_and_billion_laughs_are_refused_and_nothing_leaks(
    make_env: Callable[..., Env],
    private_http: ScriptedServer,
    public_http: ScriptedServer,
    shared_data: Path,
    tmp_path: Path,
) -> None:
    canary = tmp_path / "canary.txt"
    canary.write_text("CANARY-5e1d")
    files = sorted((shared_data / "hostile" / "payloadsallthethings-xxe").glob("*.xml")) + [
        shared_data / "hostile" / "defusedxml" / n
        for n in ("xmlbomb.xml", "cyclic.xml", "external.xml", "external_file.xml")
    ]
    feeds = {
        f"x{n}": public_http.static(f"/x{n}", path.read_bytes(), headers=RSS_TYPE)
        for n, path in enumerate(files)
    }
    secret = private_http.static("/secret", b"PRIVATE-7c2b")
    for name, system in (("canary", f"file://{canary}"), ("private", secret)):
        head = f'<!DOCTYPE rss [<!ENTITY x SYSTEM "{system}">]>\n'
        body = rss(item("e1", "Clash &x; here"), head=head).replace(b"&amp;x;", b"&x;")
        feeds[name] = public_http.static(f"/{name}", body, headers=RSS_TYPE)
    env = make_env(feeds)
    report = env.cycle()
    assert set(report.failed) == set(feeds)
    for name, error in report.failed.items():
        assert error.endswith("; refused") or error.startswith("not a feed: "), (name, error)
    assert (
        report.failed["x0"] == "feed declares nested entity references; refused"
    )  # billion laughs
    assert (
        report.failed["canary"]
        == report.failed["private"]
        == ("feed declares external entities; refused")
    )
    assert sum(private_http.hits.values()) == 0
    assert env.articles() == []
    assert b"CANARY-5e1d" not in (tmp_path / "newswatch.db").read_bytes()


def quadratic_feed(prefix: str = "") -> bytes:
    """An 88 KiB feed: one 60,000-byte entity referenced 10,000 times (1.7 GB in feedparser)."""
    doctype = f'<!DOCTYPE rss [\n<!ENTITY a "{"B" * 60000}">\n]>\n'
    return rss(item("q1", "Clash", text="&a;" * 10_000), head=prefix + doctype).replace(
        b"&amp;a;", b"&a;"
    )


def test_h2_quadratic_blowups_are_refused_before_feedparser_other_feeds_unaffected(
    make_env: Callable[..., Env], private_http: ScriptedServer, shared_data: Path
) -> None:
    quadratic = (shared_data / "hostile" / "defusedxml" / "quadratic.xml").read_bytes()
    env = make_env(
        {
            "shared": private_http.static("/shared", quadratic, headers=RSS_TYPE),
            "generated": private_http.static("/gen", quadratic_feed(), headers=RSS_TYPE),
            "deep": private_http.static(
                "/deep", quadratic_feed("<!--" + "c" * 70_000 + "-->\n"), headers=RSS_TYPE
            ),
            "fine": private_http.add("/fine", feed_route(rss(item("a1", "Clash")))),
        }
    )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = env.cycle()
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert report.failed == {
        "shared": "feed declares an entity of 100000 bytes (limit 1024); refused",
        "generated": "feed declares an entity of 60000 bytes (limit 1024); refused",
        "deep": "feed declares an entity of 60000 bytes (limit 1024); refused",
    }
    assert grown_mb < 100  # expanded, the generated feed alone takes about 1.7 GB
    status = env.status()
    assert status["generated"]["health"] == "failing"
    assert (status["fine"]["health"], status["fine"]["articles"]) == ("ok", 1)


def test_h9_broken_feeds_warn_or_fail_keep_their_articles_and_are_polled_on(
    make_env: Callable[..., Env], private_http: ScriptedServer, shared_data: Path, clock: FakeClock
) -> None:
    malformed = shared_data / "hostile" / "malformed"
    good = rss(item("a1", "Clash"), item("a2", "Market"))
    served = {"page": good}
    private_http.add("/page", lambda h: send(h, 200, served["page"], RSS_TYPE))
    feeds = {
        "ampersands": private_http.static(
            "/amp",
            (malformed / "theguardian-world-en-2022-09-raw-ampersands.xml").read_bytes(),
            headers=RSS_TYPE,
        ),
        "nested": private_http.static(
            "/nested", (malformed / "pcmag-dvorak-illegally-nested.xml").read_bytes()
        ),
        "latin1": private_http.static(
            "/latin1", (malformed / "uolnoticias-pt-latin1-undeclared.rss").read_bytes()
        ),
        "json": private_http.static(
            "/json",
            (malformed / "allthis-jsonfeed-truncated.json").read_bytes(),
            headers={"Content-Type": "application/feed+json"},
        ),
        "empty": private_http.static("/empty", b"", headers=RSS_TYPE),
        "page": private_http.url("/page"),
    }
    env = make_env(feeds)
    env.cycle()
    status = env.status()
    assert status["ampersands"]["health"] == "warning" and status["ampersands"]["articles"] == 54
    assert status["ampersands"]["last_warning"].startswith("malformed feed (XML error at line 35")
    # feedparser reads 20 entries from the 11 illegally nested items: 10 distinct articles
    assert (status["nested"]["health"], status["nested"]["articles"]) == ("ok", 10)
    assert "parsed as windows-1252" in status["latin1"]["last_warning"]
    assert status["latin1"]["articles"] == 15
    assert status["json"]["last_error"].startswith("not a feed: invalid JSON")
    assert status["empty"]["last_error"] == "not a feed: empty body"
    # A feed that worked turns into an HTML page: its articles stay, it is polled on, backing off.
    served["page"] = b"<!doctype html><html><body>Maintenance</body></html>"
    for _ in range(4):
        clock.now = datetime.fromisoformat(env.status()["page"]["next_fetch_at"])
        env.cycle()
    page = env.status()["page"]
    assert (page["health"], page["error_count"], page["articles"]) == ("failing", 4, 2)
    assert page["last_error"] == "not a feed: an HTML page (application/rss+xml)"
    assert (page["enabled"], private_http.hits["/page"]) == (True, 5)


def test_h10_absurd_dates_50000_items_and_a_5_mb_title_are_clamped_and_capped(
    make_env: Callable[..., Env], private_http: ScriptedServer, clock: FakeClock
) -> None:
    dated = [
        item("future", "Future", when="Fri, 31 Dec 9999 23:59:59 GMT"),
        item("old", "Old", when="Mon, 01 Jan 1900 00:00:00 GMT"),
        item("none", "Undated", when=None),
        item("garbage", "Garbage date", when="yesterday at noon"),
        item("naive", "No zone", when="2026-11-19T10:00:00"),
        item("huge", "T" * 5_000_000),
    ]
    many = rss(*(item(f"m{n}", f"Item {n}", text="") for n in range(50_000)))
    env = make_env(
        {
            "dated": private_http.static("/dated", rss(*dated), headers=RSS_TYPE),
            "many": private_http.static("/many", many, headers=RSS_TYPE),
        },
        fetch="max_bytes = 20_000_000",
    )
    env.cycle()
    by_guid = {a.guid: a for a in env.articles("dated")}
    assert by_guid["future"].published_at == clock()
    assert by_guid["old"].published_at == datetime(1900, 1, 1, tzinfo=UTC)
    assert by_guid["none"].published_at == by_guid["garbage"].published_at == clock()
    assert by_guid["naive"].published_at == datetime(2026, 11, 19, 10, 0, tzinfo=UTC)
    assert len(by_guid["huge"].title) == 1000
    assert len(env.articles("many")) == 1000
    assert env.status()["many"]["last_warning"] == "feed has 50000 entries; kept the first 1000"


def test_invalid_xml_and_a_wrong_encoding_declaration_are_read_with_a_warning(
    make_env: Callable[..., Env], private_http: ScriptedServer
) -> None:
    broken = rss(item("a1", "Clash at the bridge"), item("a2", "Second")).replace(
        b"</channel></rss>", b"<item><title>oops</chan"
    )
    russian = rss(item("r1", "Перестрелка на границе", text="Пограничники сообщили о стрельбе."))
    misdeclared = russian.decode().encode("windows-1251")  # the document still says utf-8
    env = make_env(
        {
            "broken": private_http.static("/broken", broken, headers=RSS_TYPE),
            "charset": private_http.static(  # the server's charset wins over the document
                "/charset",
                misdeclared,
                headers={"Content-Type": "application/rss+xml; charset=windows-1251"},
            ),
            "guessed": private_http.static(
                "/guessed", misdeclared, headers={"Content-Type": "application/rss+xml"}
            ),
        }
    )
    env.cycle()
    status = env.status()
    assert (status["broken"]["health"], status["broken"]["articles"]) == ("warning", 2)
    assert status["broken"]["last_warning"].startswith("malformed feed (XML error at line")
    assert (status["charset"]["health"], status["charset"]["articles"]) == ("ok", 1)
    assert env.articles("charset")[0].title == "Перестрелка на границе"
    # Nothing says windows-1251: feedparser falls back to windows-1252, and status says so.
    assert (status["guessed"]["health"], status["guessed"]["articles"]) == ("warning", 1)
    assert status["guessed"]["last_warning"] == (
        "malformed feed (document declared as utf-8, but parsed as windows-1252); read 1 entries"
    )


# --- H7, H8, H11 and syndicated copies: what reaches the digest --------------------------------


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.hrefs += [v or "" for k, v in attrs if k == "href"]


def hostile_titles_feed() -> bytes:
    markup = (
        '<p onclick="steal()">Gunfire reported.</p><script>alert(1)</script>'
        '<div style="background:url(javascript:alert(2))">x</div><svg onload=alert(3)></svg>'
        '<iframe src="http://evil.example/"></iframe><form action="http://evil.example/">'
    )
    return rss(
        item(
            "h1", "<img src=x onerror=alert(1)>Clash at the\x07 bridge \u202egnp.exe", text=markup
        ),
        item("h2", "Clash\r\nBcc: x@evil.example", link="javascript:alert(1)"),
        item("h3", "Clash =?UTF-8?Q?=0A?=Bcc: x@evil.example\n", link="data:text/html,<b>x</b>"),
        item("h4", "Clash " + "long " * 1000),
        title="Feed <script>alert('feed')</script>",
    )


def test_h7_markup_and_control_characters_in_feed_text_never_reach_the_digest_as_markup(
    make_env: Callable[..., Env], private_http: ScriptedServer
) -> None:
    url = private_http.static("/feed", hostile_titles_feed(), headers=RSS_TYPE)
    env = make_env({"desk": url}, rules=GUNFIRE_RULE)
    env.cycle()
    stored = {a.guid: a for a in env.articles()}
    assert stored["h1"].title == "Clash at the bridge gnp.exe"  # tags, BEL and RTL override gone
    assert stored["h1"].text == "Gunfire reported. x"
    assert stored["h2"].title == "Clash Bcc: x@evil.example"
    assert stored["h2"].link is None and stored["h3"].link is None
    [message] = env.outbox()
    text, html = parts(message)
    parser = _Tags()
    parser.feed(html)
    assert not parser.tags & {"script", "img", "svg", "iframe", "form"}
    assert parser.hrefs and all(h.startswith(("http://", "https://")) for h in parser.hrefs)
    assert "javascript:" not in html and "onerror" not in html.replace("onerror=alert", "")
    assert "&lt;" not in text and "*Clash* at the bridge gnp.exe" in text


def test_h8_header_injection_through_titles_gives_one_clean_subject_and_no_extra_headers(
    make_env: Callable[..., Env], private_http: ScriptedServer
) -> None:
    url = private_http.static("/feed", hostile_titles_feed(), headers=RSS_TYPE)
    env = make_env({"desk": url}, rules=GUNFIRE_RULE)
    env.cycle()
    [message] = env.outbox()
    headers = "From To Subject Date Message-ID Auto-Submitted MIME-Version Content-Type"
    assert sorted(message.keys()) == sorted(headers.split())
    subject = str(message["Subject"])
    assert subject == "[newswatch] 4 high — gunfire"
    text, _ = parts(message)
    assert "* *Clash* Bcc: x@evil.example\r\n" in text  # the CR/LF became a space


def test_h11_unstable_identity_is_stored_once_and_alerted_once_over_three_cycles(
    make_env: Callable[..., Env], private_http: ScriptedServer, clock: FakeClock
) -> None:
    cycle = {"n": 0}

    def route(h: Handler) -> None:
        n = cycle["n"]
        edited = " (updated)" if n else ""
        body = rss(
            item("stable", f"Clash at the bridge{edited}"),  # same guid, edited text
            item(f"changing-{n}", "Gunfire in the valley", link="https://news.example.org/v"),
            item(None, "Clash without guid", link="https://news.example.org/no-guid"),
            item(None, "Clash with trackers", link=f"https://news.example.org/t?utm_source=r{n}"),
        )
        send(h, 200, body, RSS_TYPE)

    env = make_env({"desk": private_http.add("/feed", route)}, rules=GUNFIRE_RULE)
    news = []
    for n in range(3):
        cycle["n"] = n
        news.append(env.cycle().new_articles)
        clock.advance(minutes=11)
    assert news == [4, 0, 0]
    stored = env.articles()
    assert len(stored) == 4 and all(a.duplicate_of is None for a in stored)
    assert {a.title for a in stored if a.guid == "stable"} == {"Clash at the bridge (updated)"}
    assert len(env.alerts()) == 4 and len(env.outbox()) == 1


def test_the_same_story_from_three_feeds_is_stored_once_and_shown_once_in_the_digest(
    make_env: Callable[..., Env], private_http: ScriptedServer
) -> None:
    story = "Border guards reported gunfire near the Ishkashim bridge on Tuesday."
    feeds = {
        "first": rss(
            item(
                "x-2026-1", "Clash at Ishkashim bridge", link="https://a.example.org/x", text=story
            ),
            item("y-1", "Gunfire at Khorog", link="https://a.example.org/y", text="Shots fired."),
        ),
        "second": rss(  # same guid, another link and wording; same URL with trackers
            item("x-2026-1", "Ishkashim: clash", link="https://b.example.org/1", text="Shots."),
            item(
                "b-77",
                "Khorog gunfire",
                link="https://a.example.org/y?utm_source=b&utm_medium=rss",
                text="Gunfire again.",
            ),
        ),
        "third": rss(  # same URL with trackers; the same text under another link
            item(
                "c-1",
                "Clash at Ishkashim",
                link="https://a.example.org/x?utm_campaign=c",
                text="A.",
            ),
            item(
                "c-2", "Gunfire at Khorog", link="https://c.example.org/khorog", text="Shots fired."
            ),
        ),
    }
    env = make_env(
        {
            name: private_http.static(f"/{name}", body, headers=RSS_TYPE)
            for name, body in feeds.items()
        },
        rules=GUNFIRE_RULE,
    )
    env.service.parse_pool = ParsePool(min_bytes=0)  # through the worker processes
    report = env.cycle()
    assert env.service.parse_pool.worker_pids()
    assert (report.new_articles, report.matches) == (6, 2)
    stored = env.articles()
    originals = [a for a in stored if a.duplicate_of is None]
    assert [a.guid for a in originals] == ["x-2026-1", "y-1"]
    copies = {a.duplicate_of for a in stored if a.duplicate_of is not None}
    assert copies == {a.id for a in originals} and len(stored) == 6
    [message] = env.outbox()
    text, _ = parts(message)
    assert text.count("* *Clash* at Ishkashim bridge\r\n") == 1
    assert text.count("* *Gunfire* at Khorog\r\n") == 1 and "Khorog gunfire" not in text
    assert (
        "Also reported by: second <https://b.example.org/1>, third <https://a.example.org/x?utm_campaign=c>"
        in text
    )
    assert (
        "Also reported by: second <https://a.example.org/y?utm_source=b&utm_medium=rss>, "
        "third <https://c.example.org/khorog>" in text
    )


class _Interrupted(BaseException):
    """Like ^C in the middle of a fetch: not a feed's failure, the cycle itself stops."""


class _InterruptingTransport(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise _Interrupted


def test_an_interrupted_cycle_releases_its_leases_so_the_next_one_fetches_at_once(
    make_env: Callable[..., Env], private_http: ScriptedServer
) -> None:
    env = make_env({"desk": private_http.add("/feed", feed_route(rss(item("a1", "Clash"))))})
    env.service.transport = _InterruptingTransport()
    with pytest.raises(_Interrupted):
        env.cycle()
    with env.db.session(write=False) as session:
        [feed] = session.exec(select(Feed)).all()
    assert (feed.acquired_by, feed.last_fetch_at, feed.error_count) == (None, None, 0)
    env.service.transport = None
    assert env.cycle().new_articles == 1
