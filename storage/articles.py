"""Articles: stored once per feed, syndicated copies linked to the first, and read back."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.models import Article, Feed, Match, document_text


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


@dataclass(frozen=True, slots=True)
class StoredArticle:
    """An article just stored, as the matcher needs it."""

    id: int
    duplicate_of: int | None  # the first article of the story, when this is a syndicated copy
    title: str
    text: str

    @property
    def document(self) -> str:
        return document_text(self.title, self.text)


def store_articles(
    session: Session, feed_id: int, entries: Sequence[ArticleLike], *, now: datetime
) -> list[StoredArticle]:
    """Stores the entries this feed does not have yet; returns the new ones, in feed order.

    A handful of statements per feed, whatever its size: one query for the guids the feed has,
    three for stored articles with the same guid, text or canonical URL, one multi-row INSERT
    (and one more for copies of an entry of the same document).

    - An entry whose guid this feed has is not new; if its text changed (an edit) the stored
      row is updated, and it is not matched again. A guid repeated in a document counts once.
    - An entry this feed has under another guid (guids that change on every fetch) is not new
      either: same canonical URL, or same text when it has no link.
    - An entry whose guid (unless a bare number), canonical URL or normalised text is stored
      already, from another feed, is a syndicated copy: duplicate_of points at the story's
      first article, and the copy is not matched.
    """
    unique = _first_of_each_guid(entries)
    known = _known_guids(session, feed_id, [e.guid for e in unique])
    _update_edited(session, [(known[e.guid][0], e) for e in unique if _is_edit(known, e)])
    fresh = [e for e in unique if e.guid not in known]
    if not fresh:
        return []
    plan = _plan(fresh, _Stored(_candidate_rows(session, fresh), feed_id))
    rows = [_row(feed_id, entry, first, now) for entry, first, _ in plan]
    ids: list[int] = [0] * len(plan)
    for copies in (False, True):  # originals first: copies within the document need their ids
        todo = [i for i, (_, _, local) in enumerate(plan) if (local is not None) is copies]
        for i in todo:
            local = plan[i][2]
            if local is not None:
                rows[i]["duplicate_of"] = ids[local]
        for i, new_id in zip(todo, _insert(session, [rows[i] for i in todo]), strict=True):
            ids[i] = new_id
    return [
        StoredArticle(id=i, duplicate_of=row["duplicate_of"], title=row["title"], text=row["text"])
        for i, row in zip(ids, rows, strict=True)
    ]


def store_article(
    session: Session, feed_id: int, entry: ArticleLike, *, now: datetime
) -> Article | None:
    """Stores one entry (see `store_articles`); returns the new row, else None."""
    stored = store_articles(session, feed_id, [entry], now=now)
    return session.get(Article, stored[0].id) if stored else None


def _first_of_each_guid(entries: Sequence[ArticleLike]) -> list[ArticleLike]:
    first: dict[str, ArticleLike] = {}
    for entry in entries:
        first.setdefault(entry.guid, entry)
    return list(first.values())


_T = TypeVar("_T")
_ARTICLES = Article.__table__  # type: ignore[attr-defined]
_CHUNK = 400  # bound parameters per IN list (SQLite allows 32,766; PostgreSQL 65,535)


def _chunks(values: Sequence[_T]) -> Iterator[Sequence[_T]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _known_guids(
    session: Session, feed_id: int, guids: Sequence[str]
) -> dict[str, tuple[int, str]]:
    """guid -> (id, content_hash) of this feed's stored articles among `guids`."""
    known: dict[str, tuple[int, str]] = {}
    for chunk in _chunks(guids):
        query = sa.select(_ARTICLES.c.guid, _ARTICLES.c.id, _ARTICLES.c.content_hash).where(
            _ARTICLES.c.feed_id == feed_id, _ARTICLES.c.guid.in_(chunk)
        )
        known.update((guid, (row_id, digest)) for guid, row_id, digest in session.execute(query))
    return known


def _is_edit(known: dict[str, tuple[int, str]], entry: ArticleLike) -> bool:
    return entry.guid in known and known[entry.guid][1] != entry.content_hash


def _update_edited(session: Session, edits: list[tuple[int, ArticleLike]]) -> None:
    if not edits:
        return
    statement = (
        sa.update(_ARTICLES)
        .where(_ARTICLES.c.id == sa.bindparam("row_id"))
        .values(title=sa.bindparam("new_title"), text=sa.bindparam("new_text"))
        .values(content_hash=sa.bindparam("new_hash"))
    )
    session.execute(
        statement,
        [
            {"row_id": i, "new_title": e.title, "new_text": e.text, "new_hash": e.content_hash}
            for i, e in edits
        ],
    )


def is_global_guid(guid: str) -> bool:
    """Whether a guid may identify a story across feeds: not a bare number like "1234".

    Small sites number their items 1, 2, 3…; two such feeds must not fold unrelated stories.
    """
    return not guid.isdigit()


_Candidate = tuple[int, int, int, str, str, str | None]  # id, first, feed, guid, hash, url


def _candidate_rows(session: Session, entries: Sequence[ArticleLike]) -> list[_Candidate]:
    """Stored articles sharing a guid (unless a bare number), text or canonical URL with an entry.

    Ids first, from the indexes alone (without an index on guid, SQLite scans the small
    (feed_id, guid) index rather than the table), then the rows. `duplicate_of` is read, not
    filtered on: with nearly every row NULL, SQLite would pick its index over the selective ones.
    """
    table = _ARTICLES
    ids: set[int] = set()
    for column, values in (
        (table.c.guid, [e.guid for e in entries if is_global_guid(e.guid)]),
        (table.c.content_hash, [e.content_hash for e in entries]),
        (table.c.canonical_url, [e.canonical_url for e in entries if e.canonical_url]),
    ):
        for part in _chunks(values):
            ids.update(session.execute(sa.select(table.c.id).where(column.in_(part))).scalars())
    columns = (table.c.id, table.c.duplicate_of, table.c.feed_id, table.c.guid)
    found: list[_Candidate] = []
    for chunk in _chunks(sorted(ids)):
        query = sa.select(*columns, table.c.content_hash, table.c.canonical_url)
        for row_id, first, feed, guid, digest, url in session.execute(
            query.where(table.c.id.in_(chunk))
        ):
            found.append((row_id, first or row_id, feed, guid, digest, url))
    return found


def _own_key(entry: ArticleLike) -> str:
    """What identifies an entry within its feed when its guid does not: link, else text."""
    return entry.canonical_url or "text:" + entry.content_hash


def _story_keys(entry: ArticleLike) -> list[tuple[str, str]]:
    keys = [("text", entry.content_hash)]
    if is_global_guid(entry.guid):
        keys.append(("guid", entry.guid))
    if entry.canonical_url:
        keys.append(("url", entry.canonical_url))
    return keys


class _Stored:
    """Stored articles by guid, text and URL: this feed's own, and the stories' first articles."""

    def __init__(self, rows: list[_Candidate], feed_id: int) -> None:
        self.own: set[str] = set()
        self.first: dict[tuple[str, str], int] = {}
        for _, first, feed, guid, digest, url in sorted(rows, reverse=True):  # lowest id wins
            if feed == feed_id:
                self.own.add(url or "text:" + digest)
            if is_global_guid(guid):
                self.first["guid", guid] = first
            self.first["text", digest] = first
            if url:
                self.first["url", url] = first

    def first_copy(self, entry: ArticleLike) -> int | None:
        found = [self.first[k] for k in _story_keys(entry) if k in self.first]
        return min(found) if found else None


def _plan(
    entries: Sequence[ArticleLike], stored: _Stored
) -> list[tuple[ArticleLike, int | None, int | None]]:
    """(entry, stored first article, index of an earlier entry of this document it copies)."""
    plan: list[tuple[ArticleLike, int | None, int | None]] = []
    own = set(stored.own)
    story: dict[tuple[str, str], int] = {}
    for entry in entries:
        if _own_key(entry) in own:
            continue  # this feed has it already, under another guid
        own.add(_own_key(entry))
        first = stored.first_copy(entry)
        earlier = [story[k] for k in _story_keys(entry) if k in story] if first is None else []
        if first is None and not earlier:
            story.update(dict.fromkeys(_story_keys(entry), len(plan)))
        plan.append((entry, first, min(earlier) if earlier else None))
    return plan


def _row(feed_id: int, entry: ArticleLike, first: int | None, now: datetime) -> dict[str, Any]:
    return {
        "feed_id": feed_id,
        "guid": entry.guid,
        "link": entry.link,
        "canonical_url": entry.canonical_url,
        "title": entry.title,
        "text": entry.text,
        "language": entry.language,
        "published_at": min(entry.published_at, now),
        "fetched_at": now,
        "content_hash": entry.content_hash,
        "duplicate_of": first,
    }


def _insert(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """One multi-row INSERT; the new ids in the order of `rows`."""
    if not rows:
        return []
    statement = sa.insert(_ARTICLES).returning(_ARTICLES.c.id, sort_by_parameter_order=True)
    return [int(row_id) for (row_id,) in session.execute(statement, rows)]


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


def recent_publication_times(session: Session, feed_id: int, *, limit: int = 20) -> list[datetime]:
    """The dates of a feed's latest `limit` articles, newest first (how often it publishes)."""
    query = (
        select(Article.published_at)
        .where(Article.feed_id == feed_id)
        .order_by(col(Article.published_at).desc())
        .limit(limit)
    )
    return list(session.exec(query).all())


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
