"""Articles: stored once per feed, syndicated copies linked to the first, and read back."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Protocol

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.models import Article, Feed, Match


class ArticleLike(Protocol):
    """What the parser hands over for one entry (pipeline.parse.ParsedArticle fits)."""

    @property
    def guid(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def link(self) -> str | None: ...
    @property
    def canonical_url(self) -> str | None: ...
    @property
    def published_at(self) -> datetime: ...
    @property
    def text(self) -> str: ...
    @property
    def language(self) -> str | None: ...
    @property
    def content_hash(self) -> str: ...


class HitLike(Protocol):
    @property
    def selection(self) -> str: ...
    @property
    def term(self) -> str: ...
    @property
    def place(self) -> str | None: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...
    @property
    def text(self) -> str: ...


class MatchLike(Protocol):
    """What the matcher hands over for one rule (pipeline.match.Match fits)."""

    @property
    def rule_id(self) -> str: ...
    @property
    def rule_version(self) -> str: ...
    @property
    def hits(self) -> Sequence[HitLike]: ...
    @property
    def snippet(self) -> str: ...


def store_article(
    session: Session, feed_id: int, entry: ArticleLike, *, now: datetime
) -> Article | None:
    """Stores an entry unless this feed has it already; returns the new row, else None.

    An entry whose guid, canonical URL or normalised text is already stored from another feed
    is stored as a syndicated copy (duplicate_of points at the first). An edited entry (same
    guid, new text) updates the stored row but is not new: it is not matched again.
    """
    existing = session.exec(
        select(Article).where(Article.feed_id == feed_id, Article.guid == entry.guid)
    ).first()
    if existing is not None:
        if existing.content_hash != entry.content_hash:
            existing.title, existing.text = entry.title, entry.text
            existing.content_hash = entry.content_hash
            session.add(existing)
        return None
    article = Article(
        feed_id=feed_id,
        guid=entry.guid,
        link=entry.link,
        canonical_url=entry.canonical_url,
        title=entry.title,
        text=entry.text,
        language=entry.language,
        published_at=min(entry.published_at, now),
        fetched_at=now,
        content_hash=entry.content_hash,
        duplicate_of=_first_copy(session, entry),
    )
    session.add(article)
    session.flush()
    return article


def _first_copy(session: Session, entry: ArticleLike) -> int | None:
    same = [col(Article.guid) == entry.guid, col(Article.content_hash) == entry.content_hash]
    if entry.canonical_url:
        same.append(col(Article.canonical_url) == entry.canonical_url)
    query = (
        select(Article.id)
        .where(sa.or_(*same), col(Article.duplicate_of).is_(None))
        .order_by(col(Article.id))
        .limit(1)
    )
    return session.exec(query).first()


def store_match(session: Session, article_id: int, match: MatchLike, *, now: datetime) -> Match:
    """Records that a rule version matched an article, with its explained hits."""
    hits = [
        {
            "selection": h.selection,
            "term": h.term,
            "place": h.place,
            "start": h.start,
            "end": h.end,
            "text": h.text,
        }
        for h in match.hits
    ]
    row = Match(
        article_id=article_id,
        rule_id=match.rule_id,
        rule_version=match.rule_version,
        hits=json.dumps(hits, ensure_ascii=False),
        snippet=match.snippet,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def iter_articles(
    session: Session, *, since: datetime | None = None, originals_only: bool = True
) -> Iterator[tuple[Article, Feed]]:
    """Stored articles (oldest first) with their feed, optionally since a time."""
    query = select(Article, Feed).join(Feed, col(Feed.id) == Article.feed_id)
    if since is not None:
        query = query.where(col(Article.published_at) >= since)
    if originals_only:
        query = query.where(col(Article.duplicate_of).is_(None))
    yield from session.exec(query.order_by(col(Article.id)).execution_options(yield_per=1000))


def count_articles(session: Session, *, since: datetime | None = None) -> int:
    query = select(sa.func.count()).select_from(Article).where(col(Article.duplicate_of).is_(None))
    if since is not None:
        query = query.where(col(Article.published_at) >= since)
    return int(session.exec(query).one())


def get_article(session: Session, article_id: int) -> tuple[Article, Feed] | None:
    query = select(Article, Feed).join(Feed, col(Feed.id) == Article.feed_id)
    row = session.exec(query.where(Article.id == article_id)).first()
    return None if row is None else (row[0], row[1])
