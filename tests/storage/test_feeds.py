"""The feed table follows the config, leases due feeds, records outcomes."""

from __future__ import annotations

from datetime import timedelta

from storage.engine import Database
from storage.feeds import (
    FeedSpec,
    FetchOutcome,
    claim_due_feeds,
    feed_by_name,
    list_feeds,
    make_due,
    record_fetch,
    sync_feeds,
)
from tests.conftest import FakeClock

LEASE = timedelta(minutes=5)


def test_sync_adds_updates_and_retires_feeds(db: Database, clock: FakeClock) -> None:
    with db.session() as s:
        sync_feeds(s, [FeedSpec("a", "http://x/a"), FeedSpec("b", "http://x/b")], now=clock())
    with db.session() as s:
        sync_feeds(s, [FeedSpec("a", "http://x/a2", tags=("tg",))], now=clock())
    with db.session() as s:
        feeds = {f.name: f for f, _ in list_feeds(s)}
    assert feeds["a"].url == "http://x/a2" and feeds["a"].tags == "tg"
    assert feeds["b"].in_config is False


def test_claim_leases_due_feeds_once(db: Database, clock: FakeClock) -> None:
    with db.session() as s:
        sync_feeds(s, [FeedSpec("a", "http://x/a"), FeedSpec("b", "http://x/b")], now=clock())
    with db.session() as s:
        first = claim_due_feeds(s, now=clock(), worker="w1", lease=LEASE)
    with db.session() as s:
        second = claim_due_feeds(s, now=clock(), worker="w2", lease=LEASE)
    assert sorted(f.name for f in first) == ["a", "b"] and second == []
    clock.advance(minutes=6)  # the lease of a dead worker expires
    with db.session() as s:
        assert len(claim_due_feeds(s, now=clock(), worker="w2", lease=LEASE)) == 2


def test_record_fetch_keeps_301_url_until_config_changes(db: Database, clock: FakeClock) -> None:
    with db.session() as s:
        sync_feeds(s, [FeedSpec("a", "http://x/a")], now=clock())
        (feed,) = claim_due_feeds(s, now=clock(), worker="w", lease=LEASE)
        record_fetch(
            s,
            feed,
            FetchOutcome(
                at=clock(), next_fetch_at=clock(), success=True, status=200, new_url="http://y/a"
            ),
        )
    with db.session() as s:
        sync_feeds(s, [FeedSpec("a", "http://x/a")], now=clock())
        feed = feed_by_name(s, "a")
        assert feed is not None and feed.url == "http://y/a"


def test_refresh_holds_gone_and_retry_after_feeds(db: Database, clock: FakeClock) -> None:
    with db.session() as s:
        sync_feeds(s, [FeedSpec(n, f"http://x/{n}") for n in "abc"], now=clock())
        feeds = {f.name: f for f in claim_due_feeds(s, now=clock(), worker="w", lease=LEASE)}
        later = clock() + timedelta(hours=1)
        record_fetch(
            s,
            feeds["a"],
            FetchOutcome(
                at=clock(), next_fetch_at=later, success=False, status=410, gone=True, error="gone"
            ),
        )
        record_fetch(
            s,
            feeds["b"],
            FetchOutcome(
                at=clock(),
                next_fetch_at=later,
                success=False,
                status=429,
                hold_reason="retry-after",
                error="429",
            ),
        )
        record_fetch(
            s, feeds["c"], FetchOutcome(at=clock(), next_fetch_at=later, success=True, status=200)
        )
    with db.session() as s:
        said = make_due(s, [], now=clock())
    assert said["a"].startswith("held: disabled (410 Gone)")
    assert said["b"].startswith("held: retry-after until")
    assert said["c"] == "due now"
