"""Tests for storage/outbox.py on a migrated SQLite file: alerts, digests, leases, status."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, col, select

from storage import outbox
from storage.engine import Database
from storage.errors import StorageError
from storage.models import Alert, Article, Delivery, Digest, Feed, Match

T0 = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


def feed(s: Session, name: str) -> int:
    found = s.exec(select(Feed).where(Feed.name == name)).first()
    if found is None:
        found = Feed(name=name, url=f"https://example.org/{name}.rss")
        s.add(found)
        s.flush()
    assert found.id is not None
    return found.id


def article(
    s: Session,
    *,
    feed_name: str = "ozodi",
    title: str = "Clash near Jurm",
    duplicate_of: int | None = None,
    at: datetime = T0,
) -> int:
    n = len(s.exec(select(Article)).all())
    row = Article(
        feed_id=feed(s, feed_name),
        guid=f"g{n}",
        link=f"https://example.org/{feed_name}/{n}",
        title=title,
        text="Border guards reported gunfire.",
        published_at=at,
        fetched_at=at,
        content_hash=f"h{n}",
        duplicate_of=duplicate_of,
    )
    s.add(row)
    s.flush()
    assert row.id is not None
    return row.id


def match(s: Session, article_id: int, *, rule: str = "panj", hits: str = "[]") -> int:
    row = Match(article_id=article_id, rule_id=rule, rule_version="v1", hits=hits, created_at=T0)
    s.add(row)
    s.flush()
    assert row.id is not None
    return row.id


def alert(
    db: Database,
    *,
    rule: str = "panj",
    notifiers: tuple[str, ...] = ("mail",),
    level: str = "high",
    title: str = "Panj crossings",
    now: datetime = T0,
    article_id: int | None = None,
    hits: str = "[]",
) -> int:
    with db.session() as s:
        art = article_id or article(s)
        mid = match(s, art, rule=rule, hits=hits)
        outbox.queue_alerts(
            s,
            match_id=mid,
            article_id=art,
            rule_id=rule,
            rule_version="v1",
            rule_title=title,
            level=level,
            notifiers=notifiers,
            now=now,
        )
        return mid


def close(
    db: Database,
    *,
    rule: str = "panj",
    notifier: str = "mail",
    period: str = "p1",
    now: datetime = T0,
) -> str:
    with db.session() as s:
        digest_id = outbox.create_digest(
            s, rule_id=rule, notifier=notifier, period=period, before=None, now=now
        )
    assert digest_id is not None
    return digest_id


def test_queue_alerts_is_idempotent_per_match_and_notifier(db: Database) -> None:
    with db.session() as s:
        art = article(s)
        mid = match(s, art)
        args = {
            "match_id": mid,
            "article_id": art,
            "rule_id": "panj",
            "rule_version": "v1",
            "rule_title": "Panj",
            "level": "high",
            "now": T0,
        }
        assert outbox.queue_alerts(s, notifiers=["mail", "chat", "mail"], **args) == 2  # type: ignore[arg-type]
        assert outbox.queue_alerts(s, notifiers=["mail", "chat", "ops"], **args) == 1  # type: ignore[arg-type]
        assert sorted(s.exec(select(Alert.notifier)).all()) == ["chat", "mail", "ops"]


def test_digest_ids_are_short_hex_from_rule_notifier_period() -> None:
    one = outbox.digest_id_for("../../etc/passwd\x00\u202e", "mail", "2026-03-10T03:00:00Z")
    assert len(one) == 20 and set(one) <= set("0123456789abcdef")
    assert one == outbox.digest_id_for("../../etc/passwd\x00\u202e", "mail", "2026-03-10T03:00:00Z")
    assert one != outbox.digest_id_for("../../etc/passwd\x00\u202e", "chat", "2026-03-10T03:00:00Z")


def test_create_digest_uses_a_period_once(db: Database) -> None:
    alert(db, level="medium", title="old title")
    alert(db, level="critical", title="new title")
    digest_id = close(db)
    with db.session() as s:
        digest = s.get(Digest, digest_id)
        assert digest is not None
        assert (digest.alert_count, digest.level, digest.rule_title) == (2, "critical", "new title")
        assert (
            outbox.create_digest(
                s, rule_id="panj", notifier="mail", period="p1", before=None, now=T0
            )
            is None
        )
    alert(db)
    with db.session() as s:  # same period again (clock went back): refused although alerts wait
        assert (
            outbox.create_digest(
                s, rule_id="panj", notifier="mail", period="p1", before=None, now=T0
            )
            is None
        )
        assert (
            outbox.create_digest(s, rule_id="panj", notifier="mail", period="p2", before=T0, now=T0)
            is None
        )


def test_digest_entries_fold_copies_and_parse_hits(db: Database) -> None:
    hits = json.dumps(
        [
            {
                "selection": "crossing",
                "term": "jurm",
                "place": "af-badakhshan-jurm",
                "start": 11,
                "end": 15,
                "text": "Jurm",
            }
        ]
    )
    with db.session() as s:
        first = article(s, feed_name="ozodi")
        copy = article(s, feed_name="asia-plus", duplicate_of=first)
        article(s, feed_name="khovar", duplicate_of=first)  # a copy that matched nothing
    alert(db, article_id=first, hits=hits)
    alert(db, article_id=copy, hits="not json")
    digest_id = close(db)
    with db.session() as s:
        data = outbox.digest_entries(s, digest_id)
    assert data.digest.id == digest_id and data.digest.alert_count == 2
    one, two = data.alerts
    assert (one.story_id, two.story_id) == (first, first)
    assert [c.feed for c in one.copies] == ["ozodi", "asia-plus", "khovar"]
    assert one.hits[0]["place"] == "af-badakhshan-jurm"
    assert two.hits == ()
    with db.session() as s, pytest.raises(StorageError, match="no digest 'nope'"):
        outbox.digest_entries(s, "nope")


def test_pending_entries_previews_the_next_digest(db: Database) -> None:
    alert(db, notifiers=("mail", "chat"))
    with db.session() as s:
        preview = outbox.pending_entries(s, rule_id="panj", now=T0)
        chat = outbox.pending_entries(s, rule_id="panj", notifier="chat", now=T0)
        none = outbox.pending_entries(s, rule_id="other", now=T0)
    assert preview is not None and preview.digest.notifier == "mail" and len(preview.alerts) == 1
    assert chat is not None and chat.digest.notifier == "chat"
    assert none is None


def claim(
    db: Database,
    *,
    now: datetime = T0,
    token: str = "w1:a",
    notifiers: tuple[str, ...] = ("mail",),
    skip: tuple[str, ...] = (),
) -> outbox.Claim | None:
    with db.session() as s:
        return outbox.claim_next_digest(
            s, notifiers=notifiers, now=now, token=token, lease=LEASE, skip=skip
        )


def test_claim_marks_sending_with_a_lease_and_a_delivery_row(db: Database) -> None:
    alert(db)
    digest_id = close(db)
    got = claim(db)
    assert got is not None and (got.digest_id, got.attempt, got.failures) == (digest_id, 1, 0)
    with db.session() as s:
        digest = s.get(Digest, digest_id)
        assert digest is not None
        assert (digest.state, digest.acquired_by, digest.acquired_until) == (
            "sending",
            "w1:a",
            T0 + LEASE,
        )
        [delivery] = s.exec(select(Delivery)).all()
        assert (delivery.attempt, delivery.outcome) == (1, "started")
    assert claim(db, token="w2:b") is None  # nothing else due
    with db.session() as s:
        assert outbox.confirm_claim(s, got, now=T0, lease=LEASE)


def test_claim_order_skip_and_unknown_notifiers(db: Database) -> None:
    alert(db, notifiers=("mail", "chat"))
    first = close(db, now=T0)
    second = close(db, notifier="chat", now=T0 + timedelta(seconds=1))
    assert claim(db, notifiers=("ops",)) is None
    got = claim(db, notifiers=("mail", "chat"), skip=(first,))
    assert got is not None and got.digest_id == second


def test_failed_digest_is_due_at_next_attempt_and_counts_failures(db: Database) -> None:
    alert(db)
    digest_id = close(db)
    got = claim(db)
    assert got is not None
    with db.session() as s:
        assert outbox.record_failure(
            s,
            got,
            now=T0,
            state="failed",
            error="451 later",
            next_attempt_at=T0 + timedelta(minutes=1),
        )
    assert claim(db, now=T0 + timedelta(seconds=59)) is None
    again = claim(db, now=T0 + timedelta(minutes=1), token="w1:b")
    assert again is not None
    assert (again.attempt, again.failures, again.failing_since) == (2, 1, T0)
    with db.session() as s:
        outbox.record_sent(s, again, now=T0 + timedelta(minutes=1), delivered_to="smtp h:25")
        digest = s.get(Digest, digest_id)
        assert digest is not None
        assert (digest.state, digest.failing_since, digest.last_error) == ("sent", None, None)
        outcomes = s.exec(select(Delivery.outcome).order_by(col(Delivery.attempt))).all()
        assert outcomes == ["retry", "sent"]


def test_a_lost_lease_fences_later_writes(db: Database) -> None:
    """RELIABILITY C2: the worker whose lease was taken over cannot confirm or record."""
    alert(db)
    close(db)
    stale = claim(db, token="A:1")
    assert stale is not None
    later = T0 + LEASE + timedelta(seconds=1)
    with db.session() as s:
        [item] = outbox.interrupted_digests(s, now=later)
        assert outbox.settle_interrupted(s, item, now=later, state="queued", detail="interrupted")
    fresh = claim(db, now=later, token="B:1")
    assert fresh is not None and fresh.attempt == 2
    with db.session() as s:
        assert not outbox.confirm_claim(s, stale, now=later, lease=LEASE)
        assert not outbox.record_failure(s, stale, now=later, state="failed", error="x")
        assert outbox.confirm_claim(s, fresh, now=later, lease=LEASE)


def test_interrupted_only_after_the_lease_expires(db: Database) -> None:
    alert(db)
    digest_id = close(db)
    claim(db)
    with db.session() as s:
        assert outbox.interrupted_digests(s, now=T0 + LEASE - timedelta(seconds=1)) == []
        [item] = outbox.interrupted_digests(s, now=T0 + LEASE + timedelta(seconds=1))
        assert outbox.settle_interrupted(
            s, item, now=T0 + LEASE, state="uncertain", detail="may have been delivered"
        )
        digest = s.get(Digest, digest_id)
        assert digest is not None
        assert (digest.state, digest.uncertain_at, digest.acquired_by) == ("uncertain", T0, None)


def test_retry_and_resend_verbs(db: Database) -> None:
    alert(db)
    digest_id = close(db)
    got = claim(db)
    assert got is not None
    with db.session() as s:
        outbox.record_failure(s, got, now=T0, state="failed", error="failed permanently: 550 no")
    with db.session() as s:
        assert outbox.retry(s, None, T0) == [digest_id]
        assert s.get(Digest, digest_id).state == "queued"  # type: ignore[union-attr]
    with db.session() as s, pytest.raises(StorageError) as info:
        outbox.retry(s, digest_id, T0)
    assert str(info.value) == f"digest {digest_id} is queued, not failed; nothing to retry"
    with (
        db.session() as s,
        pytest.raises(StorageError, match="is queued already; nothing to resend"),
    ):
        outbox.resend(s, digest_id, T0)
    got = claim(db)
    assert got is not None
    with db.session() as s:
        outbox.record_failure(s, got, now=T0, state="uncertain", error="may have been delivered")
    with db.session() as s, pytest.raises(StorageError) as info:
        outbox.retry(s, digest_id, T0)
    assert str(info.value) == (
        f"digest {digest_id} is uncertain, not failed; nothing to retry\n"
        f"hint: `newswatch digest resend {digest_id}` sends it again"
    )
    with db.session() as s:
        outbox.resend(s, digest_id, T0)
        digest = s.get(Digest, digest_id)
        assert digest is not None and (digest.state, digest.uncertain_at) == ("queued", None)
    with db.session() as s, pytest.raises(StorageError, match="no digest 'missing'"):
        outbox.resend(s, "missing", T0)


def test_a_gone_notifier_is_disabled_until_retried(db: Database) -> None:
    alert(db, notifiers=("chat",))
    first = close(db, notifier="chat")
    got = claim(db, notifiers=("chat",))
    assert got is not None
    with db.session() as s:
        outbox.record_failure(
            s, got, now=T0, state="failed", error="410 Gone", notifier_disabled=True
        )
    alert(db, notifiers=("chat",))
    close(db, notifier="chat", period="p2")
    assert claim(db, notifiers=("chat",)) is None  # the new digest waits, queued
    with db.session() as s:
        status = outbox.digest_status(s)
        assert status["disabled_notifiers"] == [
            {"notifier": "chat", "since": "2026-03-10T08:00:00Z", "reason": "410 Gone"}
        ]
        assert outbox.retry(s, first, T0) == [first]
        assert outbox.disabled_notifiers(s) == {}
    assert claim(db, notifiers=("chat",)) is not None


def test_status_shape_counts_and_selection(db: Database) -> None:
    for n in range(55):
        alert(db)
        close(db, period=f"p{n}", now=T0 + timedelta(minutes=n))
    sent_ids = []
    for n in range(54):
        got = claim(db, token=f"w:{n}")
        assert got is not None
        with db.session() as s:
            outbox.record_sent(s, got, now=T0, delivered_to="outbox/x.eml")
        sent_ids.append(got.digest_id)
    alert(db)  # pending
    with db.session() as s:
        status = outbox.digest_status(s)
    assert status["counts"] == {
        "queued": 1,
        "sending": 0,
        "sent": 54,
        "failed": 0,
        "uncertain": 0,
        "held_alerts": 0,
        "pending_alerts": 1,
    }
    listed = status["digests"]
    assert len(listed) == 50
    assert listed[0]["state"] == "queued"  # the newest, and unsent
    assert sent_ids[0] not in {d["id"] for d in listed}  # old sent ones drop off
    assert set(listed[1]) == {
        "id", "rule", "notifier", "state", "alerts", "created_at", "sent_at", "attempts",
        "next_attempt_at", "last_error", "delivered_to",
    }  # fmt: skip
    assert listed[1]["sent_at"] == "2026-03-10T08:00:00Z"
    assert listed[1]["created_at"].endswith("Z")
    json.dumps(status)


def test_old_unsent_digests_stay_listed(db: Database) -> None:
    alert(db)
    old = close(db, period="old", now=T0 - timedelta(days=30))
    for n in range(60):
        alert(db)
        got_id = close(db, period=f"p{n}", now=T0 + timedelta(minutes=n))
        with db.session() as s:
            digest = s.get(Digest, got_id)
            assert digest is not None
            digest.state = "sent"
            s.add(digest)
    with db.session() as s:
        listed = outbox.digest_status(s)["digests"]
    assert len(listed) == 51
    assert listed[-1]["id"] == old
