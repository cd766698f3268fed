"""Row leases on both engines: feeds and digests claimed by several workers, each exactly once;
expired leases taken over; renewals keep them; fencing checks refuse a lost lease."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlmodel import select

from storage import outbox
from storage.engine import Database
from storage.feeds import (
    FeedSpec,
    FetchOutcome,
    claim_due_feeds,
    holds_feed_lease,
    record_fetch,
    sync_feeds,
)
from storage.models import Digest, Feed
from storage.workers import renew_leases
from tests.conftest import FakeClock

LEASE = timedelta(seconds=30)


def add_feeds(db: Database, clock: FakeClock, n: int) -> None:
    with db.session() as s:
        sync_feeds(s, [FeedSpec(f"f{i:03d}", f"http://x/{i}") for i in range(n)], now=clock())


def add_digests(db: Database, clock: FakeClock, n: int) -> list[str]:
    ids = [f"d{i:03d}" for i in range(n)]
    with db.session() as s:
        for i, digest_id in enumerate(ids):
            s.add(
                Digest(
                    id=digest_id,
                    rule_id="panj",
                    notifier="mail",
                    period=f"p{i}",
                    created_at=clock() + timedelta(seconds=i),
                )
            )
    return ids


def run_workers(count: int, work: object) -> None:
    """Runs `work(name)` in `count` threads started together; re-raises the first error."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def body(name: str) -> None:
        try:
            barrier.wait()
            work(name)  # type: ignore[operator]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(f"w{i}",)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def test_workers_claiming_in_batches_fetch_every_feed_exactly_once(
    db: Database, clock: FakeClock
) -> None:
    add_feeds(db, clock, 60)
    claimed: Counter[str] = Counter()
    lock = threading.Lock()

    def work(worker: str) -> None:
        while True:
            with db.session() as s:
                feeds = claim_due_feeds(s, now=clock(), worker=worker, lease=LEASE, limit=4)
            if not feeds:
                return
            with lock:
                claimed.update(f.name for f in feeds)
            for feed in feeds:
                with db.session() as s:
                    assert feed.id is not None
                    assert holds_feed_lease(s, feed.id, worker=worker)
                    s.add(feed)
                    outcome = FetchOutcome(
                        at=clock(), next_fetch_at=clock() + timedelta(hours=1), success=True
                    )
                    record_fetch(s, feed, outcome)

    run_workers(4, work)
    assert sorted(claimed) == [f"f{i:03d}" for i in range(60)]
    assert set(claimed.values()) == {1}
    with db.session() as s:
        assert all(f.acquired_by is None for f in s.exec(select(Feed)).all())


@pytest.mark.postgres
def test_rows_locked_by_an_open_claim_are_skipped_not_waited_for(
    pg_db: Database, clock: FakeClock
) -> None:
    add_feeds(pg_db, clock, 4)
    with pg_db.session() as first:  # still open: its rows stay locked
        mine = claim_due_feeds(first, now=clock(), worker="w1", lease=LEASE, limit=2)
        with pg_db.session() as second:
            theirs = claim_due_feeds(second, now=clock(), worker="w2", lease=LEASE, limit=10)
    assert len(mine) == 2 and len(theirs) == 2
    assert {f.name for f in mine}.isdisjoint(f.name for f in theirs)


def test_a_dead_workers_feeds_are_taken_over_when_the_lease_expires(
    db: Database, clock: FakeClock
) -> None:
    add_feeds(db, clock, 3)
    with db.session() as s:
        assert len(claim_due_feeds(s, now=clock(), worker="dead", lease=LEASE)) == 3
    clock.advance(seconds=29)
    with db.session() as s:
        assert claim_due_feeds(s, now=clock(), worker="live", lease=LEASE) == []
    clock.advance(seconds=2)
    with db.session() as s:
        taken = claim_due_feeds(s, now=clock(), worker="live", lease=LEASE)
    assert len(taken) == 3
    with db.session() as s:
        assert taken[0].id is not None
        assert not holds_feed_lease(s, taken[0].id, worker="dead")
        assert holds_feed_lease(s, taken[0].id, worker="live")
        # A late renewal by the first worker does not steal the lease back.
        assert renew_leases(s, worker="dead", now=clock(), lease=LEASE) == (0, 0)


def test_a_live_worker_keeps_its_feeds_by_renewing(db: Database, clock: FakeClock) -> None:
    add_feeds(db, clock, 2)
    with db.session() as s:
        claim_due_feeds(s, now=clock(), worker="slow", lease=LEASE)
    for _ in range(4):  # a cycle four times longer than the lease
        clock.advance(seconds=20)
        with db.session() as s:
            assert renew_leases(s, worker="slow", now=clock(), lease=LEASE) == (2, 0)
        with db.session() as s:
            assert claim_due_feeds(s, now=clock(), worker="other", lease=LEASE) == []


def test_workers_claiming_digests_send_each_exactly_once(db: Database, clock: FakeClock) -> None:
    ids = add_digests(db, clock, 15)
    claimed: Counter[str] = Counter()
    lock = threading.Lock()

    def work(worker: str) -> None:
        while True:
            token = outbox.new_token(worker)
            with db.session() as s:
                claim = outbox.claim_next_digest(
                    s, notifiers=["mail"], now=clock(), token=token, lease=LEASE
                )
            if claim is None:
                return
            with lock:
                claimed[claim.digest_id] += 1
            with db.session() as s:  # the fencing check just before the server
                assert outbox.confirm_claim(s, claim, now=clock(), lease=LEASE)
            with db.session() as s:
                outbox.record_sent(s, claim, now=clock(), delivered_to="smtp")

    run_workers(3, work)
    assert sorted(claimed) == ids and set(claimed.values()) == {1}
    with db.session() as s:
        assert {d.state for d in s.exec(select(Digest)).all()} == {"sent"}


@pytest.mark.postgres
def test_a_digest_being_claimed_is_skipped_by_another_worker(
    pg_db: Database, clock: FakeClock
) -> None:
    add_digests(pg_db, clock, 2)
    with pg_db.session() as first:
        mine = outbox.claim_next_digest(
            first, notifiers=["mail"], now=clock(), token="w1:a", lease=LEASE
        )
        with pg_db.session() as second:
            theirs = outbox.claim_next_digest(
                second, notifiers=["mail"], now=clock(), token="w2:b", lease=LEASE
            )
    assert mine is not None and theirs is not None
    assert (mine.digest_id, theirs.digest_id) == ("d000", "d001")


def test_an_expired_digest_lease_fails_the_fencing_check(db: Database, clock: FakeClock) -> None:
    add_digests(db, clock, 1)
    token = outbox.new_token("dead")
    with db.session() as s:
        claim = outbox.claim_next_digest(
            s, notifiers=["mail"], now=clock(), token=token, lease=LEASE
        )
    assert claim is not None
    with db.session() as s:  # renewed while the worker lives: not interrupted
        clock.advance(seconds=25)
        assert renew_leases(s, worker="dead", now=clock(), lease=LEASE) == (0, 1)
    clock.advance(seconds=25)
    with db.session() as s:
        assert outbox.interrupted_digests(s, now=clock()) == []
    clock.advance(seconds=10)  # the worker died: no renewal, the lease expires
    with db.session() as s:
        (item,) = outbox.interrupted_digests(s, now=clock())
        assert outbox.settle_interrupted(s, item, now=clock(), state="uncertain", detail="x")
    with db.session() as s:
        assert not outbox.confirm_claim(s, claim, now=clock(), lease=LEASE)
        assert not outbox.record_failure(s, claim, now=clock(), state="failed", error="late")
    with db.session() as s:
        digest = s.get(Digest, claim.digest_id)
        assert digest is not None and digest.state == "uncertain"


def test_workers_starting_together_sync_the_same_feeds_without_conflict(
    db: Database, clock: FakeClock
) -> None:
    specs = [FeedSpec(f"f{i:03d}", f"http://x/{i}") for i in range(50)]

    def work(_worker: str) -> None:
        with db.session() as s:
            sync_feeds(s, specs, now=clock())

    run_workers(4, work)
    with db.session() as s:
        assert sorted(f.name for f in s.exec(select(Feed)).all()) == [s.name for s in specs]
