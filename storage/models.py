"""The tables of newswatch, as SQLModel classes; the only place tables are declared.

Every datetime is stored as UTC and comes back timezone-aware (UTCDateTime), on SQLite and
PostgreSQL alike.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

DIGEST_STATES = ("queued", "sending", "sent", "failed", "uncertain")


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Stores aware datetimes as naive UTC; returns them aware. Refuses naive input."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; pass an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


def _when(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=nullable, index=index))


class Feed(SQLModel, table=True):
    """A feed from config.toml, with its polling state and health."""

    __tablename__ = "feeds"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=sa.Column(sa.String(200), unique=True, nullable=False))
    url: str  # where it is fetched now (a 301 updates it)
    config_url: str = ""  # the url config.toml gives: a change there resets `url`
    tags: str = ""  # space-separated
    language: str | None = None
    interval_s: int = 900
    in_config: bool = True  # False once removed from config.toml: kept for history, not polled
    enabled: bool = True  # False after 410 Gone
    disabled_reason: str | None = None
    disabled_at: datetime | None = _when()
    etag: str | None = None
    last_modified: str | None = None
    last_fetch_at: datetime | None = _when()
    last_success_at: datetime | None = _when()
    last_status: int | None = None
    last_error: str | None = None
    last_warning: str | None = None
    error_count: int = 0
    hold_reason: str | None = None  # retry-after | backoff: why next_fetch_at is later than usual
    next_fetch_at: datetime | None = _when(index=True)
    acquired_by: str | None = None
    acquired_until: datetime | None = _when()


class FetchLog(SQLModel, table=True):
    """One fetch attempt of one feed: what the server said and what came of it."""

    __tablename__ = "fetch_log"

    id: int | None = Field(default=None, primary_key=True)
    feed_id: int = Field(foreign_key="feeds.id", index=True)
    at: datetime = _when(nullable=False)
    status: int | None = None
    error: str | None = None
    warning: str | None = None
    entries: int = 0
    new_articles: int = 0
    bytes: int = 0


class Article(SQLModel, table=True):
    """One entry of one feed, stored once; a syndicated copy points at the first."""

    __tablename__ = "articles"
    __table_args__ = (sa.UniqueConstraint("feed_id", "guid", name="uq_articles_feed_guid"),)

    id: int | None = Field(default=None, primary_key=True)
    feed_id: int = Field(foreign_key="feeds.id", index=True)
    guid: str = Field(index=True)
    link: str | None = None
    canonical_url: str | None = Field(default=None, index=True)
    title: str = ""
    text: str = ""
    language: str | None = None
    published_at: datetime = _when(nullable=False, index=True)
    fetched_at: datetime = _when(nullable=False)
    content_hash: str = Field(index=True)
    duplicate_of: int | None = Field(default=None, foreign_key="articles.id", index=True)

    @property
    def document(self) -> str:
        """The text rules match and match offsets point into: title, blank line, body."""
        return document_text(self.title, self.text)


def document_text(title: str, text: str) -> str:
    """Joins a title and body the way match offsets expect."""
    return f"{title}\n\n{text}" if text else title


class Match(SQLModel, table=True):
    """A rule version matched an article; `hits` is the JSON list of explained hits."""

    __tablename__ = "matches"
    __table_args__ = (
        sa.UniqueConstraint("article_id", "rule_id", "rule_version", name="uq_matches_once"),
    )

    id: int | None = Field(default=None, primary_key=True)
    article_id: int = Field(foreign_key="articles.id", index=True)
    rule_id: str = Field(index=True)
    rule_version: str
    hits: str = "[]"
    snippet: str = ""
    created_at: datetime = _when(nullable=False)


class Alert(SQLModel, table=True):
    """A match queued for one notifier; joins a digest when the rule's schedule says so."""

    __tablename__ = "alerts"
    __table_args__ = (sa.UniqueConstraint("match_id", "notifier", name="uq_alerts_once"),)

    id: int | None = Field(default=None, primary_key=True)
    match_id: int = Field(foreign_key="matches.id", index=True)
    article_id: int = Field(foreign_key="articles.id", index=True)
    rule_id: str = Field(index=True)
    rule_version: str
    rule_title: str = ""
    level: str = "medium"
    notifier: str = Field(index=True)
    digest_id: str | None = Field(default=None, foreign_key="digests.id", index=True)
    created_at: datetime = _when(nullable=False)
    held_at: datetime | None = _when()  # set while its rule is missing: kept, not sent (R7)


class Digest(SQLModel, table=True):
    """The outbox row: one digest per (rule, notifier, period); the truth about delivery.

    state: queued → sending → sent | uncertain | failed
    (failed with next_attempt_at set: will retry; unset: permanent)
    """

    __tablename__ = "digests"
    __table_args__ = (
        sa.UniqueConstraint("rule_id", "notifier", "period", name="uq_digests_period"),
    )

    id: str = Field(sa_column=sa.Column(sa.String(40), primary_key=True))
    rule_id: str = Field(index=True)
    rule_title: str = ""
    level: str = "medium"
    notifier: str = Field(index=True)
    period: str
    state: str = Field(default="queued", index=True)
    alert_count: int = 0
    created_at: datetime = _when(nullable=False)
    attempts: int = 0
    next_attempt_at: datetime | None = _when(index=True)
    last_attempt_at: datetime | None = _when()
    last_error: str | None = None
    sent_at: datetime | None = _when()
    uncertain_at: datetime | None = _when()
    failing_since: datetime | None = _when()  # first failure since queued: the give-up age
    notifier_disabled: bool = False  # the notifier said it is gone (webhook 410) on this digest
    delivered_to: str | None = None  # outbox path, SMTP host or webhook host (never a secret)
    acquired_by: str | None = None
    acquired_until: datetime | None = _when()


class Delivery(SQLModel, table=True):
    """One attempt to deliver one digest, and its outcome."""

    __tablename__ = "deliveries"

    id: int | None = Field(default=None, primary_key=True)
    digest_id: str = Field(foreign_key="digests.id", index=True)
    attempt: int = 1
    started_at: datetime = _when(nullable=False)
    finished_at: datetime | None = _when()
    outcome: str = "started"  # started | handover | sent | retry | failed | uncertain | interrupted
    detail: str | None = None


class Worker(SQLModel, table=True):
    """A `newswatch run` process sharing the database; its heartbeat says it is alive.

    Its leases are the feeds and digests whose acquired_by names it (digests: `<id>:<token>`).
    """

    __tablename__ = "workers"

    id: str = Field(sa_column=sa.Column(sa.String(200), primary_key=True))
    host: str = ""
    pid: int = 0
    started_at: datetime = _when(nullable=False)
    last_heartbeat: datetime = _when(nullable=False, index=True)


__all__ = [
    "DIGEST_STATES",
    "Alert",
    "Article",
    "Delivery",
    "Digest",
    "Feed",
    "FetchLog",
    "Match",
    "SQLModel",
    "UTCDateTime",
    "Worker",
    "document_text",
]
