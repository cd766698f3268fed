"""The outbox's values and what a digest holds: ids, levels, times, alerts with their articles.

`digest_entries` reads a closed digest and `pending_entries` what the next one would hold, each
in one transaction, as the `DigestData` that `notifications.digest.build_digest` groups.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.errors import StorageError
from storage.models import Alert, Article, Digest, Feed, Match

logger = logging.getLogger(__name__)

LEVEL_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


@dataclass(frozen=True, slots=True)
class ArticleCopy:
    """One stored copy of a story: the first article or a syndicated duplicate of it."""

    article_id: int
    feed: str
    link: str | None


@dataclass(frozen=True, slots=True)
class AlertEntry:
    """One alert with what a digest shows of it: the article, its feed, the match's hits."""

    alert_id: int
    rule_id: str
    rule_title: str
    level: str
    article_id: int
    story_id: int  # the first article of the story: duplicate_of, else the article itself
    feed: str
    title: str
    text: str
    link: str | None
    language: str | None
    published_at: datetime
    hits: tuple[Mapping[str, Any], ...]
    copies: tuple[ArticleCopy, ...]  # every stored article of the story, this one included


@dataclass(frozen=True, slots=True)
class DigestHeader:
    """The digest row's identity, as digest building needs it."""

    id: str
    rule_id: str
    rule_title: str
    level: str
    notifier: str
    period: str
    alert_count: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DigestData:
    """Everything `notifications.digest.build_digest` needs, read in one transaction."""

    digest: DigestHeader
    alerts: tuple[AlertEntry, ...]


def iso(when: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, as status and messages print times."""
    if when is None:
        return None
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def digest_id_for(rule_id: str, notifier: str, period: str) -> str:
    """A short hex id from (rule, notifier, period): stable, and safe as a file name (O3)."""
    key = "\x1f".join((rule_id, notifier, period)).encode()
    return hashlib.sha256(key).hexdigest()[:20]


def highest_level(levels: Iterable[str]) -> str:
    """The most severe of `levels` (an unknown level counts as medium)."""
    return max(levels, key=lambda lv: LEVEL_RANK.get(lv, 2))


def pending() -> Any:
    """The SQL condition of an alert that belongs to no digest yet."""
    return col(Alert.digest_id).is_(None)


def digest_entries(session: Session, digest_id: str) -> DigestData:
    """The digest and its alerts with articles, feeds, hits and syndicated copies.

    Raises:
        StorageError: there is no digest with this id.
    """
    digest = session.get(Digest, digest_id)
    if digest is None:
        raise StorageError(f"no digest {digest_id!r}", hint="`newswatch status` lists digests")
    header = DigestHeader(
        digest.id,
        digest.rule_id,
        digest.rule_title,
        digest.level,
        digest.notifier,
        digest.period,
        digest.alert_count,
        digest.created_at,
    )
    return DigestData(header, _entries(session, col(Alert.digest_id) == digest_id))


def pending_entries(
    session: Session, *, rule_id: str, notifier: str | None = None, now: datetime
) -> DigestData | None:
    """What the next digest of a rule would hold, for `digest preview`; None when nothing waits.

    Without `notifier`, the notifier of the oldest pending alert of the rule is shown.
    """
    if notifier is None:
        notifier = session.exec(
            select(Alert.notifier)
            .where(Alert.rule_id == rule_id, pending())
            .order_by(col(Alert.id))
            .limit(1)
        ).first()
        if notifier is None:
            return None
    where = sa.and_(col(Alert.rule_id) == rule_id, col(Alert.notifier) == notifier, pending())
    entries = _entries(session, where)
    if not entries:
        return None
    header = DigestHeader(
        digest_id_for(rule_id, notifier, f"preview:{entries[0].alert_id}"),
        rule_id,
        entries[-1].rule_title,
        highest_level(e.level for e in entries),
        notifier,
        "preview",
        len(entries),
        now,
    )
    return DigestData(header, entries)


def _entries(session: Session, where: Any) -> tuple[AlertEntry, ...]:
    rows = session.exec(
        select(Alert, Match, Article, Feed)
        .join(Match, col(Match.id) == col(Alert.match_id))
        .join(Article, col(Article.id) == col(Alert.article_id))
        .join(Feed, col(Feed.id) == col(Article.feed_id))
        .where(where)
        .order_by(col(Alert.id))
    ).all()
    stories = {art.duplicate_of or art.id for _, _, art, _ in rows}
    copies = _copies(session, {s for s in stories if s is not None})
    entries = []
    for alert, match, article, feed in rows:
        assert alert.id is not None and article.id is not None
        story = article.duplicate_of or article.id
        entries.append(
            AlertEntry(
                alert_id=alert.id,
                rule_id=alert.rule_id,
                rule_title=alert.rule_title,
                level=alert.level,
                article_id=article.id,
                story_id=story,
                feed=feed.name,
                title=article.title,
                text=article.text,
                link=article.link,
                language=article.language,
                published_at=article.published_at,
                hits=parse_hits(match.hits),
                copies=copies.get(story, ()),
            )
        )
    return tuple(entries)


def _copies(session: Session, stories: set[int]) -> dict[int, tuple[ArticleCopy, ...]]:
    if not stories:
        return {}
    rows = session.exec(
        select(Article.id, Article.duplicate_of, Article.link, Feed.name)
        .join(Feed, col(Feed.id) == col(Article.feed_id))
        .where(sa.or_(col(Article.id).in_(stories), col(Article.duplicate_of).in_(stories)))
        .order_by(col(Article.published_at), col(Article.id))
    ).all()
    found: dict[int, list[ArticleCopy]] = {}
    for article_id, duplicate_of, link, feed in rows:
        assert article_id is not None
        found.setdefault(duplicate_of or article_id, []).append(ArticleCopy(article_id, feed, link))
    return {story: tuple(items) for story, items in found.items()}


def parse_hits(text: str) -> tuple[Mapping[str, Any], ...]:
    """The stored JSON list of hits; anything unreadable counts as no hits."""
    try:
        value = json.loads(text or "[]")
    except ValueError:
        logger.warning("unreadable hits in a stored match; shown without highlights")
        return ()
    if not isinstance(value, list):
        return ()
    return tuple(h for h in value if isinstance(h, dict))
