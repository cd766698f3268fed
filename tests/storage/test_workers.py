"""The workers table: heartbeats, and the leases each worker holds as `status` shows them."""

from __future__ import annotations

from datetime import timedelta

from storage import outbox
from storage.engine import Database
from storage.feeds import FeedSpec, claim_due_feeds, sync_feeds
from storage.models import Digest
from storage.workers import heartbeat, list_workers
from tests.conftest import FakeClock

LEASE = timedelta(seconds=30)


def test_heartbeat_inserts_once_then_updates(db: Database, clock: FakeClock) -> None:
    start = clock()
    with db.session() as s:
        heartbeat(s, "host-a:10", host="host-a", pid=10, now=start)
    clock.advance(seconds=40)
    with db.session() as s:
        heartbeat(s, "host-a:10", host="host-a", pid=10, now=clock())
    with db.session() as s:
        (w,) = list_workers(s, clock())
    assert (w.id, w.host, w.pid) == ("host-a:10", "host-a", 10)
    assert w.started_at == start and w.last_heartbeat == clock()
    assert (w.feeds_held, w.digests_held, w.stale) == (0, 0, False)


def test_list_workers_counts_unexpired_leases_and_marks_silent_ones_stale(
    db: Database, clock: FakeClock
) -> None:
    with db.session() as s:
        sync_feeds(s, [FeedSpec(f"f{i}", f"http://x/{i}") for i in range(5)], now=clock())
        heartbeat(s, "a:1", host="a", pid=1, now=clock())
        heartbeat(s, "b:2", host="b", pid=2, now=clock())
        s.add(Digest(id="d1", rule_id="r", notifier="mail", period="p1", created_at=clock()))
    with db.session() as s:
        claim_due_feeds(s, now=clock(), worker="a:1", lease=LEASE, limit=3)
        claim_due_feeds(s, now=clock(), worker="b:2", lease=LEASE, limit=3)
        outbox.claim_next_digest(
            s, notifiers=["mail"], now=clock(), token=outbox.new_token("b:2"), lease=LEASE
        )
    clock.advance(minutes=2)
    with db.session() as s:
        heartbeat(s, "b:2", host="b", pid=2, now=clock())
    with db.session() as s:
        held = {w.id: (w.feeds_held, w.digests_held, w.stale) for w in list_workers(s, clock())}
    assert held == {"a:1": (0, 0, False), "b:2": (0, 0, False)}  # the leases have expired
    clock.advance(seconds=-100)
    with db.session() as s:
        held = {w.id: (w.feeds_held, w.digests_held) for w in list_workers(s, clock())}
    assert held == {"a:1": (3, 0), "b:2": (2, 1)}
    clock.advance(minutes=5)
    with db.session() as s:
        stale = {w.id: w.stale for w in list_workers(s, clock())}
    assert stale == {"a:1": True, "b:2": True}


def test_workers_silent_for_a_day_are_forgotten(db: Database, clock: FakeClock) -> None:
    with db.session() as s:
        heartbeat(s, "old:1", host="old", pid=1, now=clock())
    clock.advance(days=1, seconds=1)
    with db.session() as s:
        heartbeat(s, "new:2", host="new", pid=2, now=clock())
    with db.session() as s:
        assert [w.id for w in list_workers(s, clock())] == ["new:2"]
