"""The hand-over mark of a delivery attempt, and ending the leases of a worker that died."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import col, select

from storage import outbox
from storage.engine import Database
from storage.feeds import FeedSpec, claim_due_feeds, sync_feeds
from storage.models import Delivery, Digest, Feed
from storage.workers import expire_leases
from tests.conftest import FakeClock

LEASE = timedelta(minutes=5)


def add_digest(db: Database, clock: FakeClock, digest_id: str = "d1") -> None:
    with db.session() as s:
        s.add(
            Digest(id=digest_id, rule_id="r", notifier="mail", period=digest_id, created_at=clock())
        )


def claim(db: Database, clock: FakeClock, token: str) -> outbox.Claim:
    with db.session() as s:
        found = outbox.claim_next_digest(
            s, notifiers=["mail"], now=clock(), token=token, lease=LEASE
        )
    assert found is not None
    return found


def outcomes(db: Database) -> list[tuple[int, str]]:
    with db.session() as s:
        rows = s.exec(select(Delivery).order_by(col(Delivery.attempt))).all()
        return [(d.attempt, d.outcome) for d in rows]


def test_an_interrupted_attempt_says_whether_it_reached_the_hand_over(
    db: Database, clock: FakeClock
) -> None:
    add_digest(db, clock, "d1")
    add_digest(db, clock, "d2")
    first, second = claim(db, clock, "dead:1"), claim(db, clock, "dead:2")
    with db.session() as s:
        assert outbox.mark_handover(s, second, now=clock())
    assert outcomes(db) == [(1, "started"), (1, "handover")]
    clock.advance(minutes=6)
    with db.session() as s:
        found = {i.digest_id: i.handed_over for i in outbox.interrupted_digests(s, now=clock())}
    assert found == {first.digest_id: False, second.digest_id: True}


def test_the_hand_over_is_refused_once_the_lease_is_lost_and_a_marked_attempt_finishes(
    db: Database, clock: FakeClock
) -> None:
    add_digest(db, clock)
    stale = claim(db, clock, "slow:1")
    clock.advance(minutes=6)
    with db.session() as s:
        [item] = outbox.interrupted_digests(s, now=clock())
        assert outbox.settle_interrupted(s, item, now=clock(), state="queued", detail="again")
    fresh = claim(db, clock, "live:1")
    with db.session() as s:
        assert not outbox.mark_handover(s, stale, now=clock())  # the slow worker must not send
        assert outbox.mark_handover(s, fresh, now=clock())
    with db.session() as s:
        outbox.record_sent(s, fresh, now=clock(), delivered_to="smtp 127.0.0.1:25")
    assert outcomes(db) == [(1, "interrupted"), (2, "sent")]


def test_a_worker_alone_on_the_database_ends_every_lease_but_its_own(
    db: Database, clock: FakeClock
) -> None:
    with db.session() as s:
        sync_feeds(s, [FeedSpec(f"f{i}", f"http://x/{i}") for i in range(4)], now=clock())
    with db.session() as s:
        claim_due_feeds(s, now=clock(), worker="dead:1", lease=LEASE, limit=3)
        claim_due_feeds(s, now=clock(), worker="me:2", lease=LEASE, limit=3)
    add_digest(db, clock, "d1")
    add_digest(db, clock, "d2")
    claim(db, clock, outbox.new_token("dead:1"))
    claim(db, clock, outbox.new_token("me:2"))
    with db.session() as s:
        assert expire_leases(s, worker="me:2", now=clock()) == (3, 1)
    with db.session() as s:
        [item] = outbox.interrupted_digests(s, now=clock())  # at once, not a lease later
        assert item.token.startswith("dead:1:")
        due = claim_due_feeds(s, now=clock(), worker="me:2", lease=LEASE, limit=10)
        assert sorted(f.name for f in due) == ["f0", "f1", "f2"]
        mine = s.exec(select(Feed).where(col(Feed.acquired_by) == "me:2")).all()
        assert len(mine) == 4
