"""Polite feed fetching: conditional GET, size caps after decompression, checked redirects.

One `fetch_all` call fetches many feeds concurrently (a global limit and a per-host limit) and
returns one `FetchResult` per request, never raising for a feed's failure: the failure is data
(`error`), stored on the feed row and shown by `newswatch status`.

Decisions (README material):
- Environment proxies (`HTTP_PROXY`, …) are ignored (`trust_env=False`): a proxy would dial the
  destination itself, out of reach of the address checks in `pipeline.netguard`.
- Redirects are followed here, not by httpx, at most 5 hops, so each hop is checked (scheme,
  address). `permanent_url` is set only when every hop was 301/308 and the new URL answered
  200 or 304.
- Each fetch gets its own small connection pool: the per-fetch address rule needs it, and it
  keeps in-flight requests per httpx client at one (PERFORMANCE.md: httpcore's pool degrades
  above about 10).
- The `httpx` and `httpcore` loggers are set to WARNING: at INFO httpx logs full URLs.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from pipeline.bodycap import ACCEPT_ENCODING, read_body
from pipeline.errors import FetchError
from pipeline.netguard import (
    AddressPolicy,
    AddressRefusedError,
    Classifier,
    GuardedTransport,
    Resolver,
    is_public_address,
    resolve_host,
)
from pipeline.urls import redact_url

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 5
RETRY_AFTER_MIN_S = 60.0
RETRY_AFTER_MAX_S = 24 * 3600.0
INVALID_LOCATION = "redirect with an invalid Location header"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})
_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/json;q=0.9, "
    "application/rdf+xml;q=0.9, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)


@dataclass(frozen=True, slots=True)
class FetchSettings:
    """The `[fetch]` section of config.toml, as the fetcher needs it."""

    user_agent: str
    timeout_s: float = 20.0  # one overall deadline per fetch, redirects and body included
    connect_timeout_s: float = 10.0
    max_bytes: int = 10_000_000  # decoded bytes
    per_host: int = 2
    concurrency: int = 32


@dataclass(frozen=True, slots=True)
class FeedRequest:
    """One feed to fetch, with the validators stored from its last 200 response."""

    name: str
    url: str
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What one fetch produced; `error` is None when the feed answered 200 or 304."""

    name: str
    url: str  # the URL requested
    status: int | None  # final HTTP status, None when no response
    body: bytes | None  # decoded body (200 only)
    headers: Mapping[str, str]  # lowercased names, final response
    etag: str | None
    last_modified: str | None
    permanent_url: str | None  # new URL to store after 301/308 (target passed the checks)
    gone: bool  # 410
    retry_after_s: float | None  # from 429/503 Retry-After, clamped to [60 s, 24 h]
    error: str | None
    elapsed_s: float
    final_url: str | None = None  # the URL that answered (after redirects); base for links

    @property
    def not_modified(self) -> bool:
        """True when the server answered 304 to our conditional GET."""
        return self.status == 304


@dataclass(slots=True)
class _Hop:
    """The state of one fetch while it follows redirects."""

    url: httpx.URL
    origin: httpx.URL
    permanent: bool = True
    redirects: int = 0


async def fetch_all(
    requests: Sequence[FeedRequest],
    settings: FetchSettings,
    *,
    now: datetime,
    transport: httpx.AsyncBaseTransport | None = None,
    is_public: Classifier | None = None,
    resolve: Resolver | None = None,
) -> list[FetchResult]:
    """Fetch every request concurrently; results in the order of `requests`.

    `now` turns an HTTP-date Retry-After into seconds. `transport` replaces the checked network
    transport (tests); `is_public` and `resolve` replace the address classifier and the DNS
    resolver (tests treat 127.0.0.2 as public). Never raises for a feed's failure.
    """
    quiet_http_loggers()
    lookups = ThreadPoolExecutor(max(1, min(settings.concurrency, 32)), "newswatch-dns")
    fetcher = _Fetcher(
        settings,
        now=now,
        transport=transport,
        policy_factory=lambda: AddressPolicy(
            is_public or is_public_address, resolve or resolve_host, lookups
        ),
    )
    try:
        return list(await asyncio.gather(*(fetcher.fetch(r) for r in requests)))
    finally:
        lookups.shutdown(wait=False, cancel_futures=True)  # don't wait for a hung resolver


def fetch_feeds(
    requests: Sequence[FeedRequest], settings: FetchSettings, *, now: datetime, **kw: Any
) -> list[FetchResult]:
    """Synchronous `fetch_all` (runs its own event loop)."""
    return asyncio.run(fetch_all(requests, settings, now=now, **kw))


def quiet_http_loggers() -> None:
    """Raise httpx/httpcore loggers to WARNING: at INFO they log full URLs with credentials."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


class _Fetcher:
    """Shared limits and TLS settings of one `fetch_all` call."""

    def __init__(
        self,
        settings: FetchSettings,
        *,
        now: datetime,
        transport: httpx.AsyncBaseTransport | None,
        policy_factory: Callable[[], AddressPolicy],
    ) -> None:
        self._settings = settings
        self._now = now
        self._transport = transport
        self._policy_factory = policy_factory
        self._global = asyncio.Semaphore(max(1, settings.concurrency))
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._ssl: ssl.SSLContext | None = None
        self._timeout = httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s)

    async def fetch(self, request: FeedRequest) -> FetchResult:
        """Fetch one feed under the global and per-host limits and one overall deadline."""
        # The host slot first: tasks queued behind a busy host must not hold global slots.
        async with self._host_limit(request.url), self._global:
            started = time.monotonic()
            try:
                result = await self._fetch_timed(request, started)
            except Exception as exc:  # one feed's bug must not sink the other feeds of the cycle
                logger.exception("feed=%s: unexpected error while fetching", request.name)
                result = _failure(request, f"unexpected error: {type(exc).__name__}", started)
        logger.debug(
            "fetched feed=%s url=%s status=%s error=%s elapsed=%.2fs",
            request.name,
            redact_url(request.url),
            result.status,
            result.error,
            result.elapsed_s,
        )
        return result

    def _host_limit(self, url: str) -> asyncio.Semaphore:
        try:
            host = (httpx.URL(url).host or "").lower()
        except httpx.InvalidURL:
            host = ""
        if host not in self._hosts:
            self._hosts[host] = asyncio.Semaphore(max(1, self._settings.per_host))
        return self._hosts[host]

    async def _fetch_timed(self, request: FeedRequest, started: float) -> FetchResult:
        policy = self._policy_factory()
        try:
            async with asyncio.timeout(self._settings.timeout_s):
                async with self._client(policy) as client:
                    return await self._follow(client, request, policy, started)
        except TimeoutError:
            message = f"timed out after {self._settings.timeout_s:g} s"
        except AddressRefusedError as exc:
            message = exc.message
            logger.warning("feed=%s url=%s: %s", request.name, redact_url(request.url), message)
        except FetchError as exc:
            message = exc.message
        except httpx.HTTPError as exc:
            message = describe_http_error(exc, self._settings)
        return _failure(request, message, started)

    def _client(self, policy: AddressPolicy) -> httpx.AsyncClient:
        transport: httpx.AsyncBaseTransport
        if self._transport is not None:
            transport = _Unclosed(self._transport)
        else:
            transport = GuardedTransport(policy, self._ssl_context())
        return httpx.AsyncClient(
            transport=transport,
            trust_env=False,
            follow_redirects=False,
            timeout=self._timeout,
            headers={
                "User-Agent": self._settings.user_agent,
                "Accept": _ACCEPT,
                "Accept-Encoding": ACCEPT_ENCODING,  # only what read_body undoes with a bound
            },
        )

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context(trust_env=False)
        return self._ssl

    async def _follow(
        self, client: httpx.AsyncClient, request: FeedRequest, policy: AddressPolicy, t0: float
    ) -> FetchResult:
        hop = _Hop(url=_parse_url(request.url), origin=_parse_url(request.url))
        _check_scheme(hop.url, redirected=False)
        while True:
            if hop.redirects:
                await policy.precheck(hop.url, hop.origin)
            sent = client.build_request("GET", hop.url, headers=_conditional(request))
            response = await client.send(sent, stream=True)
            try:
                if response.status_code in _REDIRECTS and "location" in response.headers:
                    _next_hop(hop, response)
                    continue
                return await self._finish(request, response, hop, t0)
            finally:
                await response.aclose()

    async def _finish(
        self, request: FeedRequest, response: httpx.Response, hop: _Hop, t0: float
    ) -> FetchResult:
        status = response.status_code
        headers = {k.lower(): v for k, v in response.headers.items()}
        body = None
        if status == 200:
            body = await read_body(response, self._settings.max_bytes)
        moved = hop.redirects > 0 and hop.permanent and status in (200, 304)
        keep = status == 304
        return FetchResult(
            name=request.name,
            url=request.url,
            status=status,
            body=body,
            headers=headers,
            etag=headers.get("etag") or (request.etag if keep else None),
            last_modified=headers.get("last-modified") or (request.last_modified if keep else None),
            permanent_url=str(hop.url) if moved else None,
            gone=status == 410,
            retry_after_s=_retry_after(status, headers, self._now),
            error=None if status in (200, 304) else _status_error(response),
            elapsed_s=time.monotonic() - t0,
            final_url=str(hop.url),
        )


class _Unclosed(httpx.AsyncBaseTransport):
    """Lends an injected transport to a per-fetch client without letting the client close it."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)


def _parse_url(url: str) -> httpx.URL:
    try:
        return httpx.URL(url.strip())
    except httpx.InvalidURL as exc:
        raise FetchError(f"invalid URL: {exc}") from None


def _check_scheme(url: httpx.URL, *, redirected: bool) -> None:
    if url.scheme in ("http", "https") and url.host:
        return
    scheme = url.scheme or "(none)"
    if redirected:
        raise FetchError(f"redirect to unsupported scheme '{scheme}' refused")
    raise FetchError(f"unsupported URL scheme '{scheme}' (use http or https)")


def _next_hop(hop: _Hop, response: httpx.Response) -> None:
    if hop.redirects >= MAX_REDIRECTS:
        raise FetchError(f"too many redirects (more than {MAX_REDIRECTS})")
    try:
        target = hop.url.join(response.headers["location"].strip())
    except httpx.InvalidURL:
        raise FetchError(INVALID_LOCATION) from None
    _check_scheme(target, redirected=True)
    hop.permanent = hop.permanent and response.status_code in _PERMANENT
    hop.redirects += 1
    hop.url = target.copy_with(fragment=None)


def _conditional(request: FeedRequest) -> dict[str, str]:
    headers = {}
    if request.etag:
        headers["If-None-Match"] = request.etag
    if request.last_modified:
        headers["If-Modified-Since"] = request.last_modified
    return headers


def _status_error(response: httpx.Response) -> str:
    status = response.status_code
    reason = response.reason_phrase or ""
    if status == 410:
        return "HTTP 410 Gone: the feed was removed"
    if status in _REDIRECTS:
        return f"HTTP {status} without a Location header"
    return f"HTTP {status} {reason}".rstrip()


def _retry_after(status: int, headers: Mapping[str, str], now: datetime) -> float | None:
    if status not in (429, 503):
        return None
    return parse_retry_after(headers.get("retry-after"), now)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or HTTP-date), clamped [60 s, 24 h].

    Returns None when the header is absent or unparsable (the caller's backoff applies).
    """
    if not value or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(int(value[:12]))
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    return min(max(seconds, RETRY_AFTER_MIN_S), RETRY_AFTER_MAX_S)


def describe_http_error(exc: httpx.HTTPError, settings: FetchSettings) -> str:
    """A short human message for an httpx failure (no URL, so no credentials)."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout):
        return f"connect timed out after {settings.connect_timeout_s:g} s"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out after {settings.timeout_s:g} s"
    if isinstance(exc, httpx.ConnectError):
        if "refused" in text.lower():
            return "connection refused"
        if "ssl" in text.lower() or "certificate" in text.lower():
            return f"TLS error: {text}"
        return f"connection failed: {text}"
    if "location header" in text.lower():  # httpx parses Location itself, even unfollowed
        return INVALID_LOCATION
    if isinstance(exc, httpx.ReadError | httpx.RemoteProtocolError):
        return f"connection lost while reading the response: {text}"
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return f"invalid URL: {text}"
    return f"HTTP error: {text}"


def _failure(request: FeedRequest, message: str, t0: float) -> FetchResult:
    return FetchResult(
        name=request.name,
        url=request.url,
        status=None,
        body=None,
        headers={},
        etag=None,
        last_modified=None,
        permanent_url=None,
        gone=False,
        retry_after_s=None,
        error=message,
        elapsed_s=time.monotonic() - t0,
    )
