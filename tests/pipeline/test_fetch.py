"""pipeline.fetch against real loopback servers: politeness, caps, deadlines, redirects."""

from __future__ import annotations

import dataclasses
import gzip
import logging
import threading
import zlib
from collections.abc import Sequence
from datetime import timedelta
from email.utils import format_datetime

import httpx
import pytest

from pipeline.fetch import (
    FeedRequest,
    FetchResult,
    FetchSettings,
    fetch_feeds,
    parse_retry_after,
)
from tests.loopback import free_port
from tests.pipeline.conftest import (
    NOW,
    Handler,
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

FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'


def fetch_one(url: str, settings: FetchSettings, **kw: object) -> FetchResult:
    request = kw.pop("request", None) or FeedRequest("feed", url)
    assert isinstance(request, FeedRequest)
    return fetch_feeds([request], settings, now=NOW, is_public=loopback_is_public, **kw)[0]


# --- ordinary responses --------------------------------------------------------------------


def test_200_gives_body_validators_and_sends_polite_headers(
    private_http: ScriptedServer, settings: FetchSettings
) -> None:
    url = private_http.static(
        "/feed",
        FEED,
        headers={
            "Content-Type": "application/rss+xml",
            "ETag": '"v1"',
            "Last-Modified": "Thu, 19 Nov 2026 10:00:00 GMT",
        },
    )
    result = fetch_one(url, settings)
    assert (result.status, result.body, result.error) == (200, FEED, None)
    assert (result.etag, result.last_modified) == ('"v1"', "Thu, 19 Nov 2026 10:00:00 GMT")
    assert result.headers["content-type"] == "application/rss+xml"
    assert (result.final_url, result.permanent_url, result.gone) == (url, None, False)
    seen = private_http.seen_headers[0]
    assert seen["user-agent"] == settings.user_agent
    assert "gzip" in seen["accept-encoding"] and "br" not in seen["accept-encoding"]
    assert "if-none-match" not in seen


def test_conditional_get_gives_not_modified_and_keeps_validators(
    private_http: ScriptedServer, settings: FetchSettings
) -> None:
    def route(h: Handler) -> None:
        if h.headers.get("If-None-Match") == '"v1"':
            send(h, 304, b"", {})
        else:
            send(h, 200, FEED, {"ETag": '"v1"'})

    url = private_http.add("/feed", route)
    request = FeedRequest("feed", url, etag='"v1"', last_modified="Thu, 19 Nov 2026 10:00:00 GMT")
    result = fetch_one(url, settings, request=request)
    assert result.not_modified and result.error is None and result.body is None
    assert (result.etag, result.last_modified) == ('"v1"', "Thu, 19 Nov 2026 10:00:00 GMT")
    seen = private_http.seen_headers[0]
    assert seen["if-none-match"] == '"v1"'
    assert seen["if-modified-since"] == "Thu, 19 Nov 2026 10:00:00 GMT"


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("gzip", lambda b: gzip.compress(b[:40]) + gzip.compress(b[40:])),  # two members
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, no zlib header
        ("identity", lambda b: b),
    ],
)
def test_compressed_bodies_are_decoded(
    private_http: ScriptedServer, settings: FetchSettings, encoding: str, encode: object
) -> None:
    assert callable(encode)
    url = private_http.static("/feed", encode(FEED), headers={"Content-Encoding": encoding})
    result = fetch_one(url, settings)
    assert (result.body, result.error) == (FEED, None)


def test_410_marks_the_feed_gone(private_http: ScriptedServer, settings: FetchSettings) -> None:
    result = fetch_one(private_http.static("/feed", b"gone", status=410), settings)
    assert (result.status, result.gone, result.body) == (410, True, None)
    assert result.error == "HTTP 410 Gone: the feed was removed"


def test_other_statuses_are_errors_without_body(
    private_http: ScriptedServer, settings: FetchSettings
) -> None:
    result = fetch_one(private_http.static("/feed", b"oops", status=500), settings)
    assert (result.status, result.body, result.error) == (
        500,
        None,
        "HTTP 500 Internal Server Error",
    )


# --- Retry-After -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "value", "expected"),
    [
        (429, "120", 120.0),
        (503, format_datetime(NOW + timedelta(seconds=300), usegmt=True), 300.0),
        (429, "0", 60.0),  # clamped up to the minimum interval
        (503, "99999999999", 86400.0),  # clamped down to 24 h
        (429, format_datetime(NOW - timedelta(days=3), usegmt=True), 60.0),  # in the past
        (429, "soon", None),
        (429, None, None),
        (500, "120", None),  # only 429 and 503 carry it
    ],
)
def test_retry_after_in_both_forms_is_clamped(
    private_http: ScriptedServer,
    settings: FetchSettings,
    status: int,
    value: str | None,
    expected: float | None,
) -> None:
    headers = {"Retry-After": value} if value is not None else {}
    result = fetch_one(private_http.static("/feed", b"", status, headers), settings)
    assert result.status == status and result.retry_after_s == expected
    assert result.error is not None and result.body is None


def test_parse_retry_after_naive_date_is_utc() -> None:
    value = (NOW + timedelta(hours=1)).strftime("%a, %d %b %Y %H:%M:%S")
    assert parse_retry_after(value, NOW) == 3600.0


# --- size caps -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return gzip_bomb(50_000_000)


def test_gzip_bomb_is_stopped_at_max_bytes_decoded(
    private_http: ScriptedServer, settings: FetchSettings, bomb: bytes
) -> None:
    assert len(bomb) < 100_000
    url = private_http.static("/feed", bomb, headers={"Content-Encoding": "gzip"})
    result = fetch_one(url, dataclasses.replace(settings, max_bytes=1_000_000))
    assert (result.body, result.status) == (None, None)
    assert result.error == "response exceeds 1 MB after decompression"


def test_too_large_content_length_is_refused_from_headers(
    private_http: ScriptedServer, settings: FetchSettings
) -> None:
    url = private_http.static("/feed", b"<rss>", headers={"Content-Length": "1000000000"})
    result = fetch_one(url, settings)
    assert result.body is None
    assert result.error == "response of 1000000000 bytes exceeds 10 MB; refused"


def test_endless_body_is_stopped_at_max_bytes(
    private_http: ScriptedServer, settings: FetchSettings
) -> None:
    url = private_http.add("/feed", endless)
    result = fetch_one(url, dataclasses.replace(settings, max_bytes=500_000))
    assert (result.body, result.error) == (None, "response exceeds 500 kB")


# --- broken connections and deadlines ---------------------------------------------------------


def test_connection_reset_mid_body_gives_no_body(
    private_http: ScriptedServer, settings: FetchSettings
) -> None:
    result = fetch_one(private_http.add("/feed", reset_mid_body), settings)
    assert result.body is None and result.status is None
    assert result.error is not None
    assert result.error.startswith("connection lost while reading the response")


def test_truncated_gzip_is_an_error(private_http: ScriptedServer, settings: FetchSettings) -> None:
    result = fetch_one(private_http.add("/feed", truncated_gzip), settings)
    assert result.body is None
    assert result.error == "response body truncated (incomplete gzip stream)"


def test_connection_refused(settings: FetchSettings) -> None:
    result = fetch_one(f"http://127.0.0.1:{free_port()}/feed", settings)
    assert (result.status, result.body, result.error) == (None, None, "connection refused")


def test_slow_drip_hits_the_overall_deadline_other_feeds_finish(
    private_http: ScriptedServer, public_http: ScriptedServer, settings: FetchSettings
) -> None:
    quick = dataclasses.replace(settings, timeout_s=1.0)
    requests = [FeedRequest("drip", private_http.add("/drip", drip(private_http.stop)))]
    requests += [FeedRequest(f"ok{i}", public_http.static(f"/ok{i}", FEED)) for i in range(3)]
    results = fetch_feeds(requests, quick, now=NOW, is_public=loopback_is_public)
    assert [r.name for r in results] == ["drip", "ok0", "ok1", "ok2"]
    assert (results[0].error, results[0].body) == ("timed out after 1 s", None)
    assert [(r.status, r.body) for r in results[1:]] == [(200, FEED)] * 3


def test_silent_server_times_out(private_http: ScriptedServer, settings: FetchSettings) -> None:
    url = private_http.add("/feed", silent(private_http.stop))
    result = fetch_one(url, dataclasses.replace(settings, timeout_s=1.0))
    assert (result.status, result.error) == (None, "timed out after 1 s")


# --- redirects -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "permanent"),
    [([301], True), ([308], True), ([302], False), ([307], False), ([301, 302], False)],
)
def test_redirects_are_followed_and_only_permanent_ones_move_the_feed(
    public_http: ScriptedServer, settings: FetchSettings, statuses: list[int], permanent: bool
) -> None:
    target = public_http.static("/new", FEED)
    location = target
    for i, status in reversed(list(enumerate(statuses))):
        location = public_http.redirect(f"/hop{i}", status, location)
    result = fetch_one(public_http.url("/hop0"), settings)
    assert (result.status, result.body, result.error) == (200, FEED, None)
    assert result.permanent_url == (target if permanent else None)
    assert result.final_url == target and result.url == public_http.url("/hop0")


def test_relative_location_is_resolved(
    public_http: ScriptedServer, settings: FetchSettings
) -> None:
    public_http.static("/feeds/new.xml", FEED)
    url = public_http.redirect("/feeds/old.xml", 301, "new.xml")
    result = fetch_one(url, settings)
    assert result.permanent_url == public_http.url("/feeds/new.xml")


def test_301_to_a_dead_url_does_not_move_the_feed(
    public_http: ScriptedServer, settings: FetchSettings
) -> None:
    url = public_http.redirect("/old", 301, public_http.url("/missing"))
    result = fetch_one(url, settings)
    assert (result.status, result.permanent_url) == (404, None)


def test_redirect_loop_stops_after_five_hops(
    public_http: ScriptedServer, settings: FetchSettings
) -> None:
    url = public_http.redirect("/loop", 302, "/loop")
    result = fetch_one(url, settings)
    assert result.error == "too many redirects (more than 5)"
    assert public_http.hits["/loop"] == 6


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("file:///etc/passwd", "redirect to unsupported scheme 'file' refused"),
        ("ftp://127.0.0.2/feed", "redirect to unsupported scheme 'ftp' refused"),
        ("gopher://127.0.0.2/", "redirect to unsupported scheme 'gopher' refused"),
        ("feed://127.0.0.2/", "redirect to unsupported scheme 'feed' refused"),
    ],
)
def test_redirect_to_other_schemes_is_refused(
    public_http: ScriptedServer, settings: FetchSettings, location: str, message: str
) -> None:
    result = fetch_one(public_http.redirect("/r", 302, location), settings)
    assert result.error == message


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.org/feed", "unsupported URL scheme 'ftp' (use http or https)"),
        ("file:///etc/passwd", "unsupported URL scheme 'file' (use http or https)"),
        ("example.org/feed", "unsupported URL scheme '(none)' (use http or https)"),
    ],
)
def test_configured_url_with_other_scheme_is_refused(
    settings: FetchSettings, url: str, message: str
) -> None:
    assert fetch_one(url, settings).error == message


# --- addresses: public → private ---------------------------------------------------------------

PRIVATE_TARGETS = [
    "http://127.0.0.1:{port}/feed",
    "http://localhost:{port}/feed",
    "http://2130706433:{port}/feed",
    "http://127.1:{port}/feed",
    "http://0x7f.1:{port}/feed",
    "http://[::ffff:127.0.0.1]:{port}/feed",
    "http://[::1]:{port}/feed",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/feed",
    "http://10.0.0.1/feed",
]


@pytest.mark.parametrize("status", [301, 302, 307])
@pytest.mark.parametrize("target", PRIVATE_TARGETS)
def test_redirect_from_public_to_private_is_refused(
    public_http: ScriptedServer,
    private_http: ScriptedServer,
    settings: FetchSettings,
    status: int,
    target: str,
) -> None:
    private_http.static("/feed", FEED)
    url = public_http.redirect("/r", status, target.format(port=private_http.port))
    result = fetch_one(url, settings)
    assert result.error == "redirect to a private address refused"
    assert (result.body, result.permanent_url) == (None, None)
    assert sum(private_http.hits.values()) == 0


def test_redirect_to_an_invalid_address_form_is_an_error(
    public_http: ScriptedServer, private_http: ScriptedServer, settings: FetchSettings
) -> None:
    url = public_http.redirect("/r", 302, f"http://0177.0.0.1:{private_http.port}/feed")
    result = fetch_one(url, settings)
    assert result.error == "redirect with an invalid Location header"
    assert sum(private_http.hits.values()) == 0


def test_dns_rebinding_is_caught_at_connect_time(
    public_http: ScriptedServer, private_http: ScriptedServer, settings: FetchSettings
) -> None:
    """The pre-check sees a public address; the connection would go to a private one."""
    answers = iter([["127.0.0.2"], ["127.0.0.1"]])
    calls: list[str] = []

    def resolve(host: str, port: int) -> Sequence[str]:
        calls.append(host)
        return next(answers)

    private_http.static("/feed", FEED)
    url = public_http.redirect("/r", 302, f"http://rebind.test:{private_http.port}/feed")
    result = fetch_one(url, settings, resolve=resolve)
    assert result.error == "redirect to a private address refused"
    assert calls == ["rebind.test", "rebind.test"]
    assert sum(private_http.hits.values()) == 0


def test_rebinding_of_the_configured_host_is_caught(
    public_http: ScriptedServer, settings: FetchSettings
) -> None:
    """feed.test resolves public for the first connection, private when reconnecting."""
    answers = iter([["127.0.0.2"], ["127.0.0.2"], ["127.0.0.1"]])
    public_http.static("/b", FEED)
    public_http.redirect("/a", 302, "/b")
    url = f"http://feed.test:{public_http.port}/a"
    result = fetch_one(url, settings, resolve=lambda host, port: next(answers))
    assert result.error == "redirect to a private address refused"
    assert public_http.hits == {"/a": 1}


def test_configured_local_url_is_allowed_and_may_redirect_locally(
    private_http: ScriptedServer, settings: FetchSettings
) -> None:
    private_http.static("/feed", FEED)
    url = private_http.redirect("/old", 301, "/feed")
    result = fetch_one(url, settings)
    assert (result.body, result.permanent_url) == (FEED, private_http.url("/feed"))


def test_local_to_public_to_private_is_refused(
    public_http: ScriptedServer, private_http: ScriptedServer, settings: FetchSettings
) -> None:
    private_http.static("/feed", FEED)
    public_http.redirect("/bounce", 302, private_http.url("/feed"))
    url = private_http.redirect("/start", 302, public_http.url("/bounce"))
    result = fetch_one(url, settings)
    assert result.error == "redirect to a private address refused"
    assert private_http.hits == {"/start": 1}


def test_injected_transport_still_gets_the_redirect_check(settings: FetchSettings) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(301, headers={"Location": "http://intranet.example/admin"})

    resolved = {"feeds.example": ["93.184.216.34"], "intranet.example": ["10.0.0.5"]}
    result = fetch_feeds(
        [FeedRequest("f", "https://feeds.example/rss")],
        settings,
        now=NOW,
        transport=httpx.MockTransport(handler),
        resolve=lambda host, port: resolved[host],
    )[0]
    assert result.error == "redirect to a private address refused"
    assert seen == ["https://feeds.example/rss"]


# --- limits, proxies, logs ---------------------------------------------------------------------


def test_per_host_limit_is_respected(public_http: ScriptedServer, settings: FetchSettings) -> None:
    release = threading.Event()

    def slow(h: Handler) -> None:
        release.wait(0.05)
        send(h, 200, FEED, {})

    requests = [FeedRequest(f"f{i}", public_http.add(f"/f{i}", slow)) for i in range(10)]
    results = fetch_feeds(requests, settings, now=NOW, is_public=loopback_is_public)
    assert [r.status for r in results] == [200] * 10
    assert 1 <= public_http.max_active <= settings.per_host


def test_environment_proxy_is_ignored(
    private_http: ScriptedServer,
    public_http: ScriptedServer,
    settings: FetchSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, public_http.url("/"))
    result = fetch_one(private_http.static("/feed", FEED), settings)
    assert result.body == FEED
    assert sum(public_http.hits.values()) == 0


def test_credentials_never_reach_the_logs(
    private_http: ScriptedServer, settings: FetchSettings, caplog: pytest.LogCaptureFixture
) -> None:
    private_http.static("/feed", FEED)
    url = f"http://reader:s3cr3t-pw@127.0.0.1:{private_http.port}/feed?token=t0ken-value"
    with caplog.at_level(logging.DEBUG):
        result = fetch_one(url, settings)
    assert result.body == FEED
    assert private_http.seen_headers[0]["authorization"].startswith("Basic ")
    assert "feed=feed" in caplog.text
    assert "s3cr3t-pw" not in caplog.text and "t0ken-value" not in caplog.text
    assert logging.getLogger("httpx").level == logging.WARNING


def test_unresolvable_redirect_target_fails_only_that_feed(
    public_http: ScriptedServer, settings: FetchSettings
) -> None:
    def resolve(host: str, port: int) -> Sequence[str]:
        if host == "127.0.0.2":
            return ["127.0.0.2"]
        raise OSError(-2, "Name or service not known")

    requests = [
        FeedRequest("lost", public_http.redirect("/r", 302, "http://nowhere.test/feed")),
        FeedRequest("ok", public_http.static("/ok", FEED)),
    ]
    lost, ok = fetch_feeds(
        requests, settings, now=NOW, is_public=loopback_is_public, resolve=resolve
    )
    assert lost.error == (
        "connection failed: cannot resolve host nowhere.test: Name or service not known"
    )
    assert ok.body == FEED


def test_a_bug_in_one_fetch_does_not_sink_the_others(
    public_http: ScriptedServer, settings: FetchSettings, caplog: pytest.LogCaptureFixture
) -> None:
    def resolve(host: str, port: int) -> Sequence[str]:
        raise RuntimeError("resolver bug")

    requests = [
        FeedRequest("buggy", public_http.redirect("/r", 302, "http://nowhere.test/feed")),
        FeedRequest("ok", public_http.static("/ok", FEED)),
    ]
    buggy, ok = fetch_feeds(
        requests, settings, now=NOW, is_public=loopback_is_public, resolve=resolve
    )
    assert buggy.error == "unexpected error: RuntimeError"
    assert ok.body == FEED
    assert "feed=buggy: unexpected error while fetching" in caplog.text


def test_a_hung_resolver_does_not_hold_the_cycle(
    public_http: ScriptedServer, settings: FetchSettings
) -> None:
    release = threading.Event()
    finished = threading.Event()

    def hung(host: str, port: int) -> Sequence[str]:
        release.wait(10)
        finished.set()
        return ["127.0.0.2"]

    url = public_http.redirect("/r", 302, "http://slow-dns.test/feed")
    result = fetch_one(url, dataclasses.replace(settings, timeout_s=1.0), resolve=hung)
    assert result.error == "timed out after 1 s"
    assert not finished.is_set()  # fetch_feeds returned while the lookup was still hanging
    release.set()
