"""Digest content, pure: alerts grouped by rule then place, syndicated copies folded, words marked.

`build_digest` turns the rows `storage.outbox.digest_entries` reads into a `DigestView` that the
templates and webhook payloads render. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from storage.models import document_text
from storage.outbox import LEVEL_RANK, AlertEntry, ArticleCopy, DigestData

SUBJECT_MAX = 200
SNIPPET_CHARS = 300
OTHER_PLACE = "Other matches"
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_KIND_WORDS = frozenset(
    {"bridge", "crossing", "river", "district", "market", "town", "village", "province", "region"}
)
_PLACE_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)+")


@dataclass(frozen=True, slots=True)
class Segment:
    """A piece of displayed text; `hit` marks a matched word."""

    text: str
    hit: bool = False


@dataclass(frozen=True, slots=True)
class Source:
    """Where a story was published: a feed name and its link (absolute http(s), else None)."""

    feed: str
    link: str | None


@dataclass(frozen=True, slots=True)
class Entry:
    """One story in a digest: one article, with its syndicated copies folded in."""

    title: tuple[Segment, ...]
    snippet: tuple[Segment, ...]
    feed: str
    link: str | None
    published_at: datetime
    language: str | None
    also_reported_by: tuple[Source, ...]
    terms: tuple[str, ...]
    places: tuple[str, ...]
    alert_ids: tuple[int, ...]

    @property
    def plain_title(self) -> str:
        return "".join(s.text for s in self.title)


@dataclass(frozen=True, slots=True)
class PlaceGroup:
    """The entries of one place (the first place each entry mentions)."""

    place: str
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class RuleGroup:
    """The entries of one rule, by place."""

    rule_id: str
    title: str
    level: str
    places: tuple[PlaceGroup, ...]


@dataclass(frozen=True, slots=True)
class DigestView:
    """What one digest says, ready for templates and payloads."""

    id: str
    notifier: str
    subject: str
    level: str
    alert_count: int
    entry_count: int
    created_at: datetime
    attempted_at: datetime
    rules: tuple[RuleGroup, ...]

    @property
    def entries(self) -> tuple[Entry, ...]:
        return tuple(e for r in self.rules for p in r.places for e in p.entries)


def build_digest(
    data: DigestData, *, now: datetime, place_names: Mapping[str, str] | None = None
) -> DigestView:
    """Groups a digest's alerts for display. `place_names` maps gazetteer ids to display names;
    without it, a hit's `place_name`, else a name made from the place id, is shown."""
    names = place_labels(data, place_names or {})
    stories: dict[tuple[str, int], list[AlertEntry]] = {}
    for alert in data.alerts:
        stories.setdefault((alert.rule_id, alert.story_id), []).append(alert)
    by_rule: dict[str, list[Entry]] = {}
    for (rule_id, _), alerts in stories.items():
        by_rule.setdefault(rule_id, []).append(_entry(alerts, names))
    rules = tuple(_rule_group(rule_id, data, entries) for rule_id, entries in by_rule.items())
    entry_count = sum(len(p.entries) for r in rules for p in r.places)
    level = _highest([r.level for r in rules] or [data.digest.level])
    return DigestView(
        id=data.digest.id,
        notifier=data.digest.notifier,
        subject=make_subject(entry_count, level, _top_places(rules), [r.rule_id for r in rules]),
        level=level,
        alert_count=len(data.alerts),
        entry_count=entry_count,
        created_at=data.digest.created_at,
        attempted_at=now,
        rules=rules,
    )


def _highest(levels: Iterable[str]) -> str:
    return max(levels, key=lambda lv: LEVEL_RANK.get(lv, 2))


def _rule_group(rule_id: str, data: DigestData, entries: list[Entry]) -> RuleGroup:
    alerts = [a for a in data.alerts if a.rule_id == rule_id]
    groups: dict[str, list[Entry]] = {}
    for entry in entries:
        groups.setdefault(entry.places[0] if entry.places else OTHER_PLACE, []).append(entry)
    ordered = sorted(
        groups.items(), key=lambda kv: (kv[0] == OTHER_PLACE, -len(kv[1]), kv[0].casefold())
    )
    places = tuple(
        PlaceGroup(place, tuple(sorted(items, key=lambda e: e.published_at, reverse=True)))
        for place, items in ordered
    )
    return RuleGroup(rule_id, alerts[-1].rule_title, _highest(a.level for a in alerts), places)


def _top_places(rules: Sequence[RuleGroup]) -> list[str]:
    counts: Counter[str] = Counter()
    for rule in rules:
        for group in rule.places:
            if group.place != OTHER_PLACE:
                counts[group.place] += len(group.entries)
    return [place for place, _ in counts.most_common()]


def _entry(alerts: list[AlertEntry], names: Mapping[str, str]) -> Entry:
    main = next((a for a in alerts if a.article_id == a.story_id), alerts[0])
    title_parts, body_parts, hits = _highlight(main)
    copies = main.copies or tuple(_copy_of(a) for a in alerts)
    also = tuple(
        dict.fromkeys(
            Source(display_text(c.feed), safe_link(c.link))
            for c in copies
            if c.article_id != main.article_id and c.feed != main.feed
        )
    )
    return Entry(
        title=title_parts,
        snippet=body_parts,
        feed=display_text(main.feed),
        link=safe_link(main.link),
        published_at=main.published_at,
        language=main.language,
        also_reported_by=also,
        terms=_terms(hits),
        places=_places(hits, names),
        alert_ids=tuple(a.alert_id for a in alerts),
    )


def _terms(hits: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    words: dict[str, str] = {}
    for hit in hits:
        word = display_text(str(hit.get("text", "")))
        if word:
            words.setdefault(word.casefold(), word)
    return tuple(words.values())


def _copy_of(alert: AlertEntry) -> ArticleCopy:
    return ArticleCopy(alert.article_id, alert.feed, alert.link)


def _places(hits: Sequence[Mapping[str, Any]], names: Mapping[str, str]) -> tuple[str, ...]:
    labels = [
        place_label(str(h["place"]), names, h) for h in hits if isinstance(h.get("place"), str)
    ]
    return tuple(dict.fromkeys(label for label in labels if label))


def place_labels(data: DigestData, given: Mapping[str, str]) -> dict[str, str]:
    """One display name per place of the digest, the same in every entry: the given name (the
    gazetteer's), else a Latin-script name a hit matched it by, else one made from the id."""
    labels = {place: display_text(name) for place, name in given.items()}
    for alert in data.alerts:
        for hit in alert.hits:
            place, term = hit.get("place"), hit.get("term")
            if isinstance(place, str) and place not in labels and _is_latin_name(term):
                labels[place] = display_text(str(term))
    return labels


def _is_latin_name(term: object) -> bool:
    return isinstance(term, str) and term[:1].isupper() and term.isascii() and term.strip() != ""


def place_label(place: str, names: Mapping[str, str], hit: Mapping[str, Any]) -> str:
    """A display name for a hit's place: the gazetteer's, the hit's, or one made from the id."""
    if place in names:
        return display_text(names[place])
    given = hit.get("place_name")
    if isinstance(given, str) and given.strip():
        return display_text(given)
    if _PLACE_ID.fullmatch(place):
        parts = place.split("-")
        words = parts[-2:] if parts[-1] in _KIND_WORDS else parts[-1:]
        return " ".join(w.capitalize() for w in words)
    return display_text(place)


# ---------------------------------------------------------------------------------------------
# highlighting


def _highlight(
    alert: AlertEntry,
) -> tuple[tuple[Segment, ...], tuple[Segment, ...], list[Mapping[str, Any]]]:
    """Title and snippet segments with the hits marked; also the hits that were found."""
    document = document_text(alert.title, alert.text)
    spans: list[tuple[int, int]] = []
    found: list[Mapping[str, Any]] = []
    for hit in sorted(alert.hits, key=lambda h: _int(h.get("start"))):
        span = _locate(document, hit)
        if span is not None:
            spans.append(span)
            found.append(hit)
    spans = _merge(spans)
    cut = len(alert.title)
    body_at = cut + 2
    title_spans = [(max(s, 0), min(e, cut)) for s, e in spans if s < cut]
    body_spans = [(s - body_at, e - body_at) for s, e in spans if s >= body_at]
    title = _segments(alert.title, title_spans)
    return title, _snippet(alert.text, body_spans), found


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


def _locate(document: str, hit: Mapping[str, Any]) -> tuple[int, int] | None:
    """The hit's span in the document; searched by its text when the stored offsets no longer
    fit (the article was edited after the match)."""
    start, end, text = _int(hit.get("start")), _int(hit.get("end")), hit.get("text")
    fits = 0 <= start < end <= len(document)
    if fits and (not isinstance(text, str) or document[start:end].casefold() == text.casefold()):
        return start, end
    if isinstance(text, str) and text.strip():
        found = re.search(re.escape(text), document, re.IGNORECASE)
        if found:
            return found.span()
    return None


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _segments(text: str, spans: Sequence[tuple[int, int]]) -> tuple[Segment, ...]:
    parts: list[Segment] = []
    at = 0
    for start, end in spans:
        if start > at:
            parts.append(Segment(display_text(text[at:start], strip=False)))
        parts.append(Segment(display_text(text[start:end], strip=False), hit=True))
        at = end
    if at < len(text):
        parts.append(Segment(display_text(text[at:], strip=False)))
    if parts:  # no blank at either end
        parts[0] = Segment(parts[0].text.lstrip(), parts[0].hit)
        parts[-1] = Segment(parts[-1].text.rstrip(), parts[-1].hit)
    return tuple(p for p in parts if p.text)


def _snippet(body: str, spans: Sequence[tuple[int, int]]) -> tuple[Segment, ...]:
    """About SNIPPET_CHARS of the body around its first hits, cut at word boundaries."""
    if not body.strip():
        return ()
    first = spans[0] if spans else (0, 0)
    start = max(0, first[0] - SNIPPET_CHARS // 3)
    end = max(min(len(body), start + SNIPPET_CHARS), first[1])
    start = _word_start(body, start)
    end = _word_end(body, end)
    inside = [
        (max(s, start) - start, min(e, end) - start) for s, e in spans if s < end and e > start
    ]
    parts = list(_segments(body[start:end], inside))
    if start > 0:
        parts.insert(0, Segment("… "))
    if end < len(body):
        parts.append(Segment(" …"))
    return tuple(parts)


def _word_start(text: str, at: int) -> int:
    if at == 0:
        return 0
    space = text.find(" ", at, at + 25)
    return space + 1 if space != -1 else at


def _word_end(text: str, at: int) -> int:
    if at >= len(text):
        return len(text)
    space = text.rfind(" ", max(0, at - 25), at)
    return space if space > 0 else at


# ---------------------------------------------------------------------------------------------
# text hygiene


def display_text(text: str, *, strip: bool = True) -> str:
    """Feed text for display: control characters and bidi overrides become spaces, runs of
    whitespace one space. Escaping for each sink (HTML, Slack) is the renderer's job."""
    cleaned = "".join(" " if _is_unsafe(c) else c for c in text)
    squashed = re.sub(r"\s+", " ", cleaned)
    return squashed.strip() if strip else squashed


def _is_unsafe(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") or char in _BIDI_CONTROLS


def clean_header_text(text: str, limit: int = SUBJECT_MAX) -> str:
    """One line of at most `limit` characters, safe for a mail header.

    Control characters, line and paragraph separators and bidi overrides go; `=?` and `?=`
    are split so no RFC 2047 encoded word can be smuggled in (Python 3.11.7 turns an encoded
    newline into a new header, CVE-2024-6923).
    """
    line = " ".join(display_text(text).split())
    line = line.replace("=?", "= ?").replace("?=", "? =")
    if len(line) > limit:
        line = line[: limit - 1].rstrip() + "…"
    return line


def make_subject(count: int, level: str, places: Sequence[str], rules: Sequence[str]) -> str:
    """`[newswatch] 3 high: Jurm, Khorog — border-security`: one clean line, ≤ 200 chars."""
    shown = ", ".join(places[:3]) + (f" +{len(places) - 3}" if len(places) > 3 else "")
    head = f"[newswatch] {count} {level}"
    rule_text = ", ".join(rules)
    text = f"{head}: {shown} — {rule_text}" if shown else f"{head} — {rule_text}"
    return clean_header_text(text)


def safe_link(link: str | None) -> str | None:
    """The link if it is an absolute http(s) URL without spaces or controls; else None."""
    if not link:
        return None
    link = link.strip()
    if any(c.isspace() or _is_unsafe(c) for c in link):
        return None
    try:
        parts = urlsplit(link)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return link
