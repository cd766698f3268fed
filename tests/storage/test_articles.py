"""Articles are stored once; syndicated copies link to the first; edits don't re-alert."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlmodel import select

from storage.articles import count_articles, store_article
from storage.engine import Database
from storage.feeds import FeedSpec, feed_by_name, sync_feeds
from storage.models import Article
from tests.conftest import FakeClock


@dataclass(frozen=True)
class Entry:
    guid: str
    title: str = "Clash at the Ishkashim bridge"
    link: str | None = "https://a.example.org/story?utm_source=x"
    canonical_url: str | None = "https://a.example.org/story"
    published_at: datetime = datetime(2026, 11, 19, tzinfo=UTC)
    text: str = "Border guards reported gunfire."
    language: str | None = "en"
    content_hash: str = "h1"


def _feeds(db: Database, clock: FakeClock) -> tuple[int, int, int]:
    with db.session() as s:
        sync_feeds(s, [FeedSpec(n, f"http://x/{n}") for n in ("a", "b", "c")], now=clock())
    with db.session() as s:
        ids = [feed_by_name(s, n).id for n in ("a", "b", "c")]  # type: ignore[union-attr]
    return ids[0], ids[1], ids[2]  # type: ignore[return-value]


def test_same_story_from_three_feeds_is_stored_once_with_two_copies(
    db: Database, clock: FakeClock
) -> None:
    a, b, c = _feeds(db, clock)
    with db.session() as s:
        first = store_article(s, a, Entry("g1"), now=clock())
        same_guid = store_article(
            s, b, Entry("g1", content_hash="other", canonical_url=None), now=clock()
        )
        same_text = store_article(
            s, c, Entry("g3", canonical_url="https://c.example.org/x"), now=clock()
        )
    assert first is not None and first.duplicate_of is None
    assert same_guid is not None and same_guid.duplicate_of == first.id
    assert same_text is not None and same_text.duplicate_of == first.id
    with db.session() as s:
        assert count_articles(s) == 1


def test_refetch_stores_nothing_and_an_edit_updates_in_place(
    db: Database, clock: FakeClock
) -> None:
    a, _, _ = _feeds(db, clock)
    with db.session() as s:
        assert store_article(s, a, Entry("g1"), now=clock()) is not None
        assert store_article(s, a, Entry("g1"), now=clock()) is None
        edited = replace(Entry("g1"), title="Clash at the bridge (updated)", content_hash="h2")
        assert store_article(s, a, edited, now=clock()) is None
    with db.session() as s:
        rows = s.exec(select(Article)).all()
    assert len(rows) == 1 and rows[0].title == "Clash at the bridge (updated)"


def test_future_dates_are_clamped_to_fetch_time(db: Database, clock: FakeClock) -> None:
    a, _, _ = _feeds(db, clock)
    with db.session() as s:
        row = store_article(
            s, a, Entry("g9", published_at=datetime(9999, 1, 1, tzinfo=UTC)), now=clock()
        )
    assert row is not None and row.published_at == clock()
