"""Webhook delivery: a signed POST as Standard Webhooks specifies, or a Slack-compatible payload.

`webhook-id` is the digest id on every attempt, so receivers deduplicate retries; the timestamp
and signature are fresh per attempt. Redirects are never followed and the URL's path, which
often holds a token (Slack), never reaches a log line or status: they show `scheme://host/…`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from datetime import datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx

from notifications.delivery import WEBHOOK_RETRY, NotifierGoneError, RetryPolicy
from notifications.digest import DigestView
from notifications.errors import DeliveryError
from notifications.render import UTC_ZONE, Renderer

logger = logging.getLogger(__name__)

FORMATS = ("json", "slack")
USER_AGENT = "newswatch/0.1 (+webhook)"
SECRET_PREFIX = "whsec_"  # noqa: S105 -- the format's prefix, not a secret


def redact_url(url: str) -> str:
    """`https://hooks.slack.com/…`: scheme and host only, for messages and status."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable url>"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{port}/…"


def parse_secret(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret.

    Raises:
        ValueError: the secret is not base64 (the message never repeats the secret).
    """
    text = secret.strip()
    text = text.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("webhook secret must be written whsec_<base64>") from None
    if not key:
        raise ValueError("webhook secret is empty; write whsec_<base64>")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


class WebhookNotifier:
    """POSTs digests to a URL, as signed JSON (Standard Webhooks) or as a Slack message.

    With `at_least_once` (the default), an attempt whose answer never came (timeout or reset
    after the body was sent), or that a crash cut off, is retried with the same webhook-id:
    receivers deduplicate on it. Without it, such an attempt is `uncertain`, like email.
    """

    def __init__(
        self,
        name: str,
        url: str,
        format: str = "json",  # the config key's name
        secret: str | None = None,
        timeout_s: float = 15.0,
        transport: httpx.BaseTransport | None = None,
        *,
        tz: ZoneInfo = UTC_ZONE,
        renderer: Renderer | None = None,
        clock: Callable[[], datetime] | None = None,
        at_least_once: bool = True,
    ) -> None:
        if format not in FORMATS:
            raise ValueError(f"notifier {name}: format must be json or slack")
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise ValueError(f"notifier {name}: url must be http(s)://host/…")
        self.name = name
        self._url = url
        self.format = format
        self._key = parse_secret(secret) if secret else None
        self.timeout_s = timeout_s
        self._transport = transport
        self.renderer = renderer or Renderer(tz=tz)
        self._clock = clock
        self.retry_policy = RetryPolicy(WEBHOOK_RETRY.delays, resend_interrupted=at_least_once)

    def __repr__(self) -> str:  # never shows the URL's path or the secret
        return f"WebhookNotifier(name={self.name!r}, url={self.where!r})"

    @property
    def where(self) -> str:
        return redact_url(self._url)

    def body(self, digest: DigestView) -> bytes:
        """The exact bytes that are signed and sent."""
        if self.format == "slack":
            payload = self.renderer.slack_payload(digest)
        else:
            payload = self.renderer.json_payload(digest)
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()

    def send(self, digest: DigestView) -> str:
        """POSTs the digest; returns `webhook scheme://host/…`.

        Raises:
            DeliveryError: 410 (NotifierGoneError, permanent); 3xx, 4xx, 5xx, 429 and network
                errors are retryable, with Retry-After; no answer after the body was sent is
                `uncertain`.
        """
        now = self._clock() if self._clock else digest.attempted_at
        request = self._request(digest, now)
        transport = self._transport or httpx.HTTPTransport()
        try:
            status, retry_after = _post(transport, request)
        finally:
            if self._transport is None:
                transport.close()
        return self._judge(status, retry_after, now)

    def _request(self, digest: DigestView, now: datetime) -> httpx.Request:
        body = self.body(digest)
        stamp = int(now.timestamp())
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": digest.id,
            "webhook-timestamp": str(stamp),
        }
        if self._key is not None:
            headers["webhook-signature"] = sign(self._key, digest.id, stamp, body)
        timeout = httpx.Timeout(self.timeout_s).as_dict()
        return httpx.Request(
            "POST", self._url, headers=headers, content=body, extensions={"timeout": timeout}
        )

    def _judge(self, status: int, retry_after: str | None, now: datetime) -> str:
        where = self.where
        if 200 <= status < 300:
            return f"webhook {where}"
        if status == 410:
            raise NotifierGoneError(
                f"{where} answered 410 Gone; notifier {self.name} disabled",
                hint="fix the notifier's url in config.toml, then `newswatch digest retry --all`",
            )
        if 300 <= status < 400:
            raise DeliveryError(
                f"{where} answered {status} (a redirect); redirects are not followed",
                hint="write the final URL in config.toml",
            )
        return _raise_retry(where, status, parse_retry_after(retry_after, now))


def _post(transport: httpx.BaseTransport, request: httpx.Request) -> tuple[int, str | None]:
    """Sends through the transport itself: no redirects, no proxies from the environment, and
    no httpx log line with the full URL."""
    url, where = str(request.url), redact_url(str(request.url))
    try:
        response = transport.handle_request(request)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise DeliveryError(f"cannot connect to {where}: {_describe(exc, url)}") from None
    except (httpx.WriteError, httpx.WriteTimeout) as exc:
        raise DeliveryError(f"sending to {where} failed: {_describe(exc, url)}") from None
    except (httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError) as exc:
        raise DeliveryError(
            f"{where} did not answer after receiving the digest: {_describe(exc, url)}",
            uncertain=True,
        ) from None
    except httpx.TransportError as exc:
        raise DeliveryError(f"webhook {where} failed: {_describe(exc, url)}") from None
    try:
        return response.status_code, response.headers.get("retry-after")
    finally:
        response.close()


def _raise_retry(where: str, status: int, retry_after_s: float | None) -> str:
    raise DeliveryError(f"{where} answered {status}", retry_after_s=retry_after_s)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After in seconds from now: delta-seconds or an HTTP date; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


def _describe(exc: BaseException, url: str) -> str:
    """The error's first line, with the URL (should httpx ever include it) redacted."""
    text = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
    path = urlsplit(url).path
    text = text.replace(url, redact_url(url))
    return text.replace(path, "/…") if len(path) > 1 else text
