"""Tests for notifications/webhook.py against a loopback receiver (RELIABILITY W1–W4, H7)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import random
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from notifications.delivery import Notifier, deliver_due
from notifications.webhook import WebhookNotifier, parse_retry_after, parse_secret, redact_url
from pipeline.schedules import close_due_digests
from storage import outbox

T0 = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
SECRET = "whsec_" + base64.b64encode(b"newswatch-test-key-0123456789abc").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"another-key-entirely-9876543210").decode()
TOKEN = "tok3n-SECRET-path"
World = Any  # the `world` fixture (tests/notifications/conftest.py)


def cycle(world: World, notifiers: dict[str, Notifier], now: datetime = T0) -> list[Any]:
    close_due_digests(world.db, {"panj-crossings": "immediate"}, now=now, tz=ZoneInfo("UTC"))
    return deliver_due(world.db, notifiers, now=now, rng=random.Random(3))


def hook(url: str, **kwargs: Any) -> WebhookNotifier:
    kwargs.setdefault("secret", SECRET)
    return WebhookNotifier("chat", url, **kwargs)


def expected_signature(msg_id: str, stamp: str, body: bytes) -> str:
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def test_signed_post_verifies_with_standardwebhooks(world: World, receiver_factory: Any) -> None:
    """RELIABILITY W1."""
    receiver = receiver_factory()
    world.alert(
        title="Clash near Jurm <script>",
        words=("Jurm",),
        places={"Jurm": "af-badakhshan-jurm"},
        notifiers=("chat",),
    )
    now = datetime.now(UTC)  # standardwebhooks checks the timestamp against the wall clock
    [out] = cycle(world, {"chat": hook(receiver.url)}, now=now)
    assert out.state == "sent"
    [request] = receiver.requests
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["webhook-id"] == out.digest_id
    assert headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert headers["content-type"] == "application/json"
    payload = Webhook(SECRET).verify(request.body, headers)
    assert payload["data"]["id"] == out.digest_id
    assert payload["data"]["rules"][0]["places"][0]["place"] == "Jurm"
    with pytest.raises(WebhookVerificationError):
        Webhook(OTHER_SECRET).verify(request.body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(request.body + b" ", headers)
    assert hmac.compare_digest(
        headers["webhook-signature"],
        expected_signature(out.digest_id, headers["webhook-timestamp"], request.body),
    )


def test_retries_keep_the_id_and_refresh_timestamp_and_signature(
    world: World, receiver_factory: Any
) -> None:
    """RELIABILITY W2: 500, then 429 with Retry-After, then 200."""
    receiver = receiver_factory()
    receiver.script = [(500, {}), (429, {"Retry-After": "7200"})]
    world.alert(notifiers=("chat",))
    notifiers: dict[str, Notifier] = {"chat": hook(receiver.url)}
    [first] = cycle(world, notifiers)
    assert first.state == "failed" and first.detail == f"{redact_url(receiver.url)} answered 500"
    assert first.next_attempt_at is not None
    assert timedelta(seconds=4.5) <= first.next_attempt_at - T0 <= timedelta(seconds=5.5)
    [second] = deliver_due(world.db, notifiers, now=first.next_attempt_at, rng=random.Random(1))
    assert second.detail.endswith("answered 429") and second.next_attempt_at is not None
    assert second.next_attempt_at - first.next_attempt_at == timedelta(hours=2)  # Retry-After wins
    later = second.next_attempt_at + timedelta(days=1)
    [third] = deliver_due(world.db, notifiers, now=later)
    assert third.state == "sent"
    ids = {r.headers["webhook-id"] for r in receiver.requests}
    stamps = [r.headers["webhook-timestamp"] for r in receiver.requests]
    assert ids == {first.digest_id}
    assert stamps == [str(int(t.timestamp())) for t in (T0, first.next_attempt_at, later)]
    for request in receiver.requests:
        sig = expected_signature(
            first.digest_id, request.headers["webhook-timestamp"], request.body
        )
        assert request.headers["webhook-signature"] == sig
    assert len({r.headers["webhook-signature"] for r in receiver.requests}) == 3


def test_410_disables_the_notifier_until_retried(world: World, receiver_factory: Any) -> None:
    receiver = receiver_factory()
    receiver.script = [(410, {})]
    world.alert(notifiers=("chat",))
    notifiers: dict[str, Notifier] = {"chat": hook(receiver.url)}
    [gone] = cycle(world, notifiers)
    assert (gone.state, gone.next_attempt_at) == ("failed", None)
    assert gone.detail == (
        f"failed permanently: {redact_url(receiver.url)} answered 410 Gone; notifier chat disabled"
    )
    world.alert(notifiers=("chat",))
    assert cycle(world, notifiers, now=T0 + timedelta(hours=1)) == []  # the new digest waits
    status = world.status()
    assert status["counts"]["queued"] == 1
    assert [d["notifier"] for d in status["disabled_notifiers"]] == ["chat"]
    with world.db.session() as s:
        assert len(outbox.retry(s, None, T0)) == 1
    outcomes = deliver_due(world.db, notifiers, now=T0 + timedelta(hours=2))
    assert sorted(o.state for o in outcomes) == ["sent", "sent"]
    assert len(receiver.requests) == 3


def test_redirects_are_not_followed(world: World, receiver_factory: Any) -> None:
    private = receiver_factory("/internal")
    receiver = receiver_factory()
    receiver.script = [(302, {"Location": private.url})]
    world.alert(notifiers=("chat",))
    [out] = cycle(world, {"chat": hook(receiver.url)})
    assert out.state == "failed" and out.next_attempt_at is not None
    assert (
        out.detail
        == f"{redact_url(receiver.url)} answered 302 (a redirect); redirects are not followed"
    )
    assert private.requests == []


@pytest.mark.parametrize(("at_least_once", "state"), [(True, "failed"), (False, "uncertain")])
def test_no_answer_after_the_body_was_sent(
    world: World, receiver_factory: Any, at_least_once: bool, state: str
) -> None:
    """RELIABILITY W3: retried with the same id (receivers deduplicate), or uncertain."""
    receiver = receiver_factory()
    receiver.script = ["stall"]
    world.alert(notifiers=("chat",))
    notifier = hook(receiver.url, timeout_s=0.3, at_least_once=at_least_once)
    [out] = cycle(world, {"chat": notifier})
    receiver.release.set()
    assert out.state == state
    assert "did not answer after receiving the digest" in out.detail
    if at_least_once:
        [again] = deliver_due(world.db, {"chat": notifier}, now=out.next_attempt_at)
        assert again.state == "sent"
        assert {r.headers["webhook-id"] for r in receiver.requests} == {out.digest_id}
    else:
        assert deliver_due(world.db, {"chat": notifier}, now=T0 + timedelta(days=1)) == []
        assert len(receiver.requests) == 1


def test_interrupted_webhook_send_is_retried_with_the_same_id(
    world: World, receiver_factory: Any
) -> None:
    receiver = receiver_factory()
    world.alert(notifiers=("chat",))
    [digest_id] = close_due_digests(
        world.db, {"panj-crossings": "immediate"}, now=T0, tz=ZoneInfo("UTC")
    )
    with world.db.session() as s:
        outbox.claim_next_digest(
            s, notifiers=["chat"], now=T0, token="dead:1", lease=timedelta(minutes=5)
        )
    outcomes = deliver_due(world.db, {"chat": hook(receiver.url)}, now=T0 + timedelta(minutes=10))
    assert [o.state for o in outcomes] == ["queued", "sent"]
    assert [r.headers["webhook-id"] for r in receiver.requests] == [digest_id]


def test_the_url_path_never_reaches_logs_or_status(
    world: World, receiver_factory: Any, caplog: pytest.LogCaptureFixture, unused_port: int
) -> None:
    """RELIABILITY W4: all loggers at DEBUG, httpx and httpcore included."""
    caplog.set_level(logging.DEBUG)
    receiver = receiver_factory(f"/services/{TOKEN}")
    world.alert(notifiers=("chat", "dead"))
    dead = WebhookNotifier("dead", f"http://user:pw@127.0.0.1:{unused_port}/services/{TOKEN}")
    outcomes = cycle(world, {"chat": hook(receiver.url), "dead": dead})
    assert sorted(o.state for o in outcomes) == ["failed", "sent"]
    text = caplog.text + json.dumps(world.status()) + repr(dead) + repr(outcomes)
    assert TOKEN not in text and "user:pw" not in text
    assert f"webhook http://127.0.0.1:{receiver.url.split(':')[2].split('/')[0]}/…" in text
    assert f"cannot connect to http://127.0.0.1:{unused_port}/…" in text


def test_slack_payload(world: World, receiver_factory: Any) -> None:
    receiver = receiver_factory()
    world.alert(title="<!channel> attack near Jurm", words=("Jurm",), notifiers=("chat",))
    [out] = cycle(world, {"chat": hook(receiver.url, format="slack", secret=None)})
    assert out.state == "sent"
    [request] = receiver.requests
    assert "webhook-signature" not in {k.lower() for k in request.headers}
    body = json.loads(request.body)
    assert set(body) == {"text", "blocks"}
    assert "&lt;!channel&gt;" in request.body.decode()
    assert "<!channel>" not in request.body.decode()


def test_parse_retry_after() -> None:
    assert parse_retry_after("120", T0) == 120
    assert parse_retry_after("Tue, 10 Mar 2026 09:00:00 GMT", T0) == 3600
    assert parse_retry_after("Tue, 10 Mar 2020 09:00:00 GMT", T0) == 0
    assert parse_retry_after("soon", T0) is None
    assert parse_retry_after(None, T0) is None


def test_secrets_and_urls_are_checked_without_repeating_them() -> None:
    assert parse_secret(SECRET) == b"newswatch-test-key-0123456789abc"
    with pytest.raises(ValueError) as info:
        parse_secret("whsec_not base64 !!")
    assert "not base64" not in str(info.value)
    with pytest.raises(ValueError, match="url must be http"):
        WebhookNotifier("x", "file:///etc/passwd")
    with pytest.raises(ValueError, match="format must be json or slack"):
        WebhookNotifier("x", "https://example.org/", format="xml")
    assert (
        redact_url("https://u:p@hooks.slack.com:8443/services/T/B/x?y=1")
        == "https://hooks.slack.com:8443/…"
    )
