"""Tests for notifications/digest.py: grouping, folding, highlighting, subject and link hygiene."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from notifications.digest import (
    OTHER_PLACE,
    Segment,
    Source,
    build_digest,
    clean_header_text,
    make_subject,
    place_label,
    safe_link,
)
from storage.models import document_text
from storage.outbox import AlertEntry, ArticleCopy, DigestData, DigestHeader

T0 = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)


def hit(document: str, word: str, place: str | None = None, nth: int = 0) -> dict[str, Any]:
    start = -1
    for _ in range(nth + 1):
        start = document.index(word, start + 1)
    return {
        "selection": "s",
        "term": word.lower(),
        "place": place,
        "start": start,
        "end": start + len(word),
        "text": word,
    }


_ids = iter(range(1, 10_000))


def entry(
    title: str,
    text: str = "",
    words: tuple[str, ...] = (),
    places: dict[str, str] | None = None,
    *,
    feed: str = "ozodi-tj",
    article_id: int | None = None,
    story_id: int | None = None,
    copies: tuple[ArticleCopy, ...] = (),
    published_at: datetime = T0,
    rule_id: str = "panj-crossings",
    level: str = "high",
    link: str | None = "https://example.org/a",
    hits: tuple[dict[str, Any], ...] | None = None,
) -> AlertEntry:
    n = next(_ids)
    article_id = article_id or n
    document = document_text(title, text)
    places = places or {}
    return AlertEntry(
        alert_id=n,
        rule_id=rule_id,
        rule_title="Incidents at the Panj crossings",
        level=level,
        article_id=article_id,
        story_id=story_id or article_id,
        feed=feed,
        title=title,
        text=text,
        link=link,
        language="en",
        published_at=published_at,
        hits=hits if hits is not None else tuple(hit(document, w, places.get(w)) for w in words),
        copies=copies,
    )


def data(*alerts: AlertEntry) -> DigestData:
    header = DigestHeader("abc123", "panj-crossings", "Panj", "high", "mail", "p", len(alerts), T0)
    return DigestData(header, alerts)


def text_of(segments: tuple[Segment, ...]) -> str:
    return "".join(f"[{s.text}]" if s.hit else s.text for s in segments)


def test_groups_by_place_most_entries_first_other_last() -> None:
    jurm = {"Jurm": "af-badakhshan-jurm"}
    khorog = {"Khorog": "tj-gbao-khorog"}
    view = build_digest(
        data(
            entry("Clash near Jurm", words=("Jurm",), places=jurm, published_at=T0),
            entry("Khorog protest", words=("Khorog",), places=khorog),
            entry(
                "Jurm market fire",
                words=("Jurm",),
                places=jurm,
                published_at=T0 + timedelta(hours=1),
            ),
            entry("Border guards attacked", words=("attacked",)),
        ),
        now=T0,
    )
    [rule] = view.rules
    assert [(g.place, len(g.entries)) for g in rule.places] == [
        ("Jurm", 2),
        ("Khorog", 1),
        (OTHER_PLACE, 1),
    ]
    assert [e.plain_title for e in rule.places[0].entries] == [
        "Jurm market fire",
        "Clash near Jurm",
    ]
    assert view.subject == "[newswatch] 4 high: Jurm, Khorog — panj-crossings"
    assert (view.alert_count, view.entry_count, view.attempted_at) == (4, 4, T0)


def test_entry_goes_under_its_first_mentioned_place() -> None:
    doc_title = "Khorog officials visit Jurm"
    places = {"Khorog": "tj-gbao-khorog", "Jurm": "af-badakhshan-jurm"}
    view = build_digest(data(entry(doc_title, words=("Jurm", "Khorog"), places=places)), now=T0)
    [group] = view.rules[0].places
    assert group.place == "Khorog"
    assert group.entries[0].places == ("Khorog", "Jurm")


def test_syndicated_copies_fold_into_one_entry() -> None:
    copies = (
        ArticleCopy(100, "ozodi-tj", "https://ozodi.example.org/1"),
        ArticleCopy(101, "asia-plus", "https://asiaplus.example.org/1"),
        ArticleCopy(102, "khovar", "javascript:alert(1)"),
    )
    original = entry("Clash near Jurm", words=("Jurm",), article_id=100, copies=copies)
    copy = entry(
        "Clash near Jurm (copy)", feed="asia-plus", article_id=101, story_id=100, copies=copies
    )
    view = build_digest(data(copy, original), now=T0)
    [only] = view.entries
    assert only.feed == "ozodi-tj" and only.plain_title == "Clash near Jurm"
    assert only.also_reported_by == (
        Source("asia-plus", "https://asiaplus.example.org/1"),
        Source("khovar", None),
    )
    assert sorted(only.alert_ids) == sorted([original.alert_id, copy.alert_id])
    assert view.alert_count == 2 and view.entry_count == 1
    assert view.subject.startswith("[newswatch] 1 high")


def test_highlights_split_between_title_and_body() -> None:
    title = "Gunfire near Jurm bridge"
    body = "Border guards said militants attacked a post near the Jurm district."
    document = document_text(title, body)
    hits = (hit(document, "Jurm"), hit(document, "attacked"), hit(document, "Jurm", nth=1))
    [one] = build_digest(data(entry(title, body, hits=hits)), now=T0).entries
    assert text_of(one.title) == "Gunfire near [Jurm] bridge"
    assert (
        text_of(one.snippet)
        == "Border guards said militants [attacked] a post near the [Jurm] district."
    )
    assert one.terms == ("Jurm", "attacked")


def test_snippet_is_about_300_chars_around_the_first_body_hit() -> None:
    body = (
        ("lorem ipsum dolor " * 40)
        + "a militant attack near Ishkashim bridge "
        + ("sit amet " * 60)
    )
    document = document_text("Title", body)
    [one] = build_digest(
        data(entry("Title", body, hits=(hit(document, "attack"),))), now=T0
    ).entries
    snippet = text_of(one.snippet)
    assert snippet.startswith("… ") and snippet.endswith(" …")
    assert "[attack]" in snippet
    assert 250 <= len(snippet) <= 340
    assert "  " not in snippet


def test_overlapping_and_stale_hits() -> None:
    title = "Clash at the Ishkashim bridge"
    document = document_text(title, "")
    overlapping = (
        {"start": 13, "end": 22, "text": "Ishkashim"},
        {"start": 13, "end": 29, "text": "Ishkashim bridge"},
    )
    [one] = build_digest(data(entry(title, hits=overlapping)), now=T0).entries
    assert text_of(one.title) == "Clash at the [Ishkashim bridge]"
    # the article was edited after the match: offsets point elsewhere, the word is searched
    stale = (
        {"start": 0, "end": 5, "text": "bridge"},
        {"start": 500, "end": 510, "text": "nowhere"},
        {"start": "x"},
    )
    [two] = build_digest(data(entry(title, hits=stale)), now=T0).entries
    assert text_of(two.title) == "Clash at the Ishkashim [bridge]"
    assert document[0:5] == "Clash"


def test_control_characters_and_bidi_overrides_are_not_displayed() -> None:
    title = "Jurm\u202e gnp.exe\r\nBcc: x@evil\x00"
    [one] = build_digest(data(entry(title, "line one\nline two")), now=T0).entries
    assert one.plain_title == "Jurm gnp.exe Bcc: x@evil"
    assert text_of(one.snippet) == "line one line two"


def test_place_labels() -> None:
    names = {"af-badakhshan-jurm": "Jurm"}
    assert place_label("af-badakhshan-jurm", names, {}) == "Jurm"
    assert place_label("tj-gbao-khorog", {}, {}) == "Khorog"
    assert place_label("crossing-ishkashim-bridge", {}, {}) == "Ishkashim Bridge"
    assert place_label("river-panj", {}, {"place_name": "Panj river"}) == "Panj river"
    assert place_label("Хорог", {}, {}) == "Хорог"


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("https://example.org/a?b=1&c=2", "https://example.org/a?b=1&c=2"),
        (" http://example.org/ ", "http://example.org/"),
        ("javascript:alert(1)", None),
        ("JaVaScRiPt:alert(1)", None),
        ("data:text/html,<script>alert(1)</script>", None),
        ("/relative/path", None),
        ("//example.org/x", None),
        ("https://example.org/a b", None),
        ("https://example.org/\r\nX: y", None),
        ("ftp://example.org/", None),
        ("http:///nohost", None),
        (None, None),
    ],
)
def test_safe_link(link: str | None, expected: str | None) -> None:
    assert safe_link(link) == expected


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Clash\r\nBcc: x@evil", "Clash Bcc: x@evil"),
        ("=?UTF-8?Q?=0A?=Bcc: x@evil", "= ?UTF-8?Q? =0A? =Bcc: x@evil"),
        ("trailing\n", "trailing"),
        ("nul\x00byte\x85nel\u2028ls", "nul byte nel ls"),
        ("tab\tand\x0bvt", "tab and vt"),
    ],
)
def test_clean_header_text(raw: str, clean: str) -> None:
    assert clean_header_text(raw) == clean


def test_subject_is_capped_at_200_chars() -> None:
    subject = make_subject(3, "high", ["Jurm" * 100], ["border-security"])
    assert len(subject) == 200 and subject.endswith("…")
    many = make_subject(9, "low", ["A", "B", "C", "D", "E"], ["r"])
    assert many == "[newswatch] 9 low: A, B, C +2 — r"
    assert make_subject(1, "info", [], ["r"]) == "[newswatch] 1 info — r"


def test_highest_level_wins_in_the_subject() -> None:
    view = build_digest(
        data(entry("a", level="low"), entry("b", level="critical"), entry("c", level="medium")),
        now=T0,
    )
    assert view.level == "critical"
    assert view.subject == "[newswatch] 3 critical — panj-crossings"


def test_a_place_has_one_label_in_every_entry() -> None:
    ru = entry(
        "Обстрел у Хорога",
        hits=(
            {"place": "tj-gbao-khorog", "term": "Хорог", "start": 10, "end": 16, "text": "Хорога"},
        ),
    )
    en = entry(
        "Protest in Khorog",
        hits=(
            {"place": "tj-gbao-khorog", "term": "Khorog", "start": 11, "end": 17, "text": "Khorog"},
        ),
    )
    [group] = build_digest(data(ru, en), now=T0).rules[0].places
    assert (group.place, len(group.entries)) == ("Khorog", 2)
    given = build_digest(data(ru, en), now=T0, place_names={"tj-gbao-khorog": "Khorugh"})
    assert given.rules[0].places[0].place == "Khorugh"


def test_matched_words_are_listed_once_whatever_their_case() -> None:
    title = "Задухурд: задухурд near Jurm"
    [one] = build_digest(
        data(
            entry(title, hits=(hit(title, "Задухурд"), hit(title, "задухурд"), hit(title, "Jurm")))
        ),
        now=T0,
    ).entries
    assert one.terms == ("Задухурд", "Jurm")
