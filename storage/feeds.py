"""Feeds: following config.toml, claiming due feeds with a lease, recording fetch outcomes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from storage.models import Article, Feed, FetchLog

_SYNC_LOCK_KEY = 0x66656564  # "feed": one advisory lock id for following config.toml


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """A feed as the configuration describes it."""

    name: str
    url: str
    tags: tuple[str, ...] = ()
    language: str | None = None
    interval_s: float = 900.0


@dataclass(frozen=True, slots=True)
class FetchOutcome:
    """What one fetch did to a feed's state; computed by the pipeline, written here."""

    at: datetime
    next_fetch_at: datetime
    success: bool
    status: int | None = None
    error: str | None = None
    warning: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    new_url: str | None = None
    gone: bool = False
    hold_reason: str | None = None
    entries: int = 0
    new_articles: int = 0
    bytes: int = 0
    network_down: bool = False  # nothing answered in the whole batch: not the feed's fault


def sync_feeds(session: Session, specs: Sequence[FeedSpec], *, now: datetime) -> None:
    """Makes the feed table follow the configuration: adds, updates, and retires feeds.

    A feed removed from the file is kept (its articles stay) but no longer polled. Workers
    starting together each sync the same file: they take turns (a transaction-scoped lock on
    PostgreSQL, the single writer on SQLite), so the later ones find the feeds already there.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SYNC_LOCK_KEY})
    existing = {feed.name: feed for feed in session.exec(select(Feed)).all()}
    for spec in specs:
        feed = existing.pop(spec.name, None)
        if feed is None:
            feed = Feed(name=spec.name, url=spec.url, config_url=spec.url, next_fetch_at=now)
        elif feed.config_url != spec.url:
            feed.url = feed.config_url = spec.url
            feed.etag = feed.last_modified = None
            feed.enabled, feed.disabled_reason, feed.disabled_at = True, None, None
            feed.next_fetch_at, feed.error_count, feed.hold_reason = now, 0, None
        if not feed.in_config:
            feed.in_config, feed.next_fetch_at = True, now
        feed.tags = " ".join(spec.tags)
        feed.language = spec.language
        feed.interval_s = int(spec.interval_s)
        session.add(feed)
    for feed in existing.values():
        feed.in_config = False
        session.add(feed)


def claim_due_feeds(
    session: Session, *, now: datetime, worker: str, lease: timedelta, limit: int = 10_000
) -> list[Feed]:
    """Takes a lease on the feeds due at `now` that no live worker holds.

    On PostgreSQL the rows are locked with SKIP LOCKED so concurrent workers split them.
    """
    query = (
        select(Feed)
        .where(
            col(Feed.enabled),
            col(Feed.in_config),
            col(Feed.next_fetch_at) <= now,
            sa.or_(col(Feed.acquired_until).is_(None), col(Feed.acquired_until) < now),
        )
        .order_by(col(Feed.next_fetch_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    feeds = list(session.exec(query).all())
    for feed in feeds:
        feed.acquired_by, feed.acquired_until = worker, now + lease
        session.add(feed)
    return feeds


def holds_feed_lease(session: Session, feed_id: int, *, worker: str) -> bool:
    """The fencing check before storing a fetch: True while `worker` still holds the feed.

    Locks the feed row until the transaction ends, so no other worker can take the lease
    between this check and the writes that follow.
    """
    owner = session.exec(
        select(Feed.acquired_by).where(col(Feed.id) == feed_id).with_for_update()
    ).first()
    return owner == worker


def release_feeds(session: Session, feed_ids: Sequence[int], *, worker: str) -> None:
    """Drops this worker's leases (after a cycle that did not record an outcome)."""
    session.execute(
        sa.update(Feed)
        .where(col(Feed.id).in_(feed_ids), col(Feed.acquired_by) == worker)
        .values(acquired_by=None, acquired_until=None)
    )


def record_fetch(session: Session, feed: Feed, outcome: FetchOutcome) -> None:
    """Writes one fetch outcome to the feed row and the fetch log, and releases the lease.

    A failure while the network was down leaves the feed's error streak and last error alone.
    """
    feed.last_fetch_at = outcome.at
    feed.last_status = outcome.status
    feed.next_fetch_at = outcome.next_fetch_at
    feed.hold_reason = outcome.hold_reason
    feed.acquired_by = feed.acquired_until = None
    if outcome.success:
        feed.last_success_at, feed.error_count, feed.last_error = outcome.at, 0, None
        feed.last_warning = outcome.warning
        feed.etag = outcome.etag or feed.etag
        feed.last_modified = outcome.last_modified or feed.last_modified
    elif not outcome.network_down:
        feed.error_count += 1
        feed.last_error = outcome.error
    if outcome.new_url:
        feed.url = outcome.new_url
    if outcome.gone:
        feed.enabled, feed.disabled_reason, feed.disabled_at = False, "410 Gone", outcome.at
    session.add(feed)
    assert feed.id is not None
    session.add(
        FetchLog(
            feed_id=feed.id,
            at=outcome.at,
            status=outcome.status,
            error=outcome.error,
            warning=outcome.warning,
            entries=outcome.entries,
            new_articles=outcome.new_articles,
            bytes=outcome.bytes,
        )
    )


_HELD = ("retry-after", "backoff")  # a wait after "network down" is not the server's wish


def make_due(session: Session, names: Sequence[str], *, now: datetime) -> dict[str, str]:
    """Makes the named feeds (all when empty) due now, except those held back by the server
    (Retry-After), their own failures (backoff) or a 410.

    Returns feed name -> what happened ("due now", or why it was held back).
    """
    query = select(Feed).where(col(Feed.in_config))
    if names:
        query = query.where(col(Feed.name).in_(names))
    said: dict[str, str] = {}
    for feed in session.exec(query.order_by(col(Feed.name))).all():
        if not feed.enabled:
            said[feed.name] = f"held: disabled ({feed.disabled_reason})"
        elif feed.hold_reason in _HELD and feed.next_fetch_at and feed.next_fetch_at > now:
            said[feed.name] = f"held: {feed.hold_reason} until {feed.next_fetch_at.isoformat()}"
        else:
            feed.next_fetch_at = now
            session.add(feed)
            said[feed.name] = "due now"
    return said


def list_feeds(session: Session) -> list[tuple[Feed, int]]:
    """Every feed with its number of stored articles, by name."""
    counts = (
        select(Article.feed_id, func.count().label("n")).group_by(col(Article.feed_id)).subquery()
    )
    query = (
        select(Feed, func.coalesce(counts.c.n, 0))
        .join(counts, counts.c.feed_id == Feed.id, isouter=True)
        .order_by(col(Feed.name))
    )
    return [(feed, int(n)) for feed, n in session.exec(query).all()]


def feed_by_name(session: Session, name: str) -> Feed | None:
    return session.exec(select(Feed).where(Feed.name == name)).first()
