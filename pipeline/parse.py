"""Feed bytes + response headers → articles: stable ids, UTC times, plain text, language.

Pure: no network, no database, no clock (the caller passes `now`). XML goes through the entity
pre-scan (`pipeline.xmlguard`) and then feedparser on `io.BytesIO(body)` with the response
headers, never a URL or a str (feedparser may fetch those). feedparser's HTML sanitizer and URI
resolution are off (about 2× faster): we keep only plain text, and every sink escapes it again.
JSON Feed has its own reader (`pipeline.jsonfeed`).
"""

from __future__ import annotations

import hashlib
import html
import io
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit
from xml.sax import SAXParseException

import feedparser
from feedparser.exceptions import NonXMLContentType

from pipeline import jsonfeed
from pipeline.errors import FetchError
from pipeline.urls import canonical_url
from pipeline.xmlguard import check_entities

MAX_TITLE = 1000
MAX_TEXT = 100_000
MAX_ID = 1000
MAX_LINK = 4096
_MAX_RAW_TITLE = 20_000  # markup read to make one title
_MAX_RAW_TEXT = 1_000_000  # markup read to make one text

_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_TAG_LIKE = re.compile(r"<[A-Za-z/!?]")
_ITEM_START = re.compile(rb"<(?:[\w.-]+:)?(?:item|entry)[\s>/]")
_ITEM_END = re.compile(rb"</(?:[\w.-]+:)?(?:item|entry)\s*>")
_HTML_START = re.compile(
    rb"\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)\b", re.I | re.S
)
_ROOT_NAME = re.compile(rb"<([A-Za-z_][\w:.-]*)")
_HTML_TYPES = ("text/html", "application/xhtml+xml", "html", "xhtml")
_TAG_BODY = r"""(?:[^<>"']|"[^"]*"|'[^']*')*>"""
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_HTML_SKIPPED = re.compile(
    r"<(script|style|template|head|title|svg|math)\b(?:.*?</\1\s*>|.*\Z)", re.I | re.S
)
_HTML_BLOCK = re.compile(
    r"</?(?:address|article|aside|blockquote|br|dd|div|dl|dt|figcaption|figure|footer|h[1-6]"
    r"|header|hr|li|main|nav|ol|p|pre|section|table|td|th|tr|ul)\b" + _TAG_BODY,
    re.I,
)
_HTML_TAG = re.compile(r"<[A-Za-z/!?]" + _TAG_BODY)


@dataclass(frozen=True, slots=True)
class ParsedArticle:
    """One entry of a feed, ready to store."""

    guid: str  # stable id: guid, else link, else sha256 of title+text
    title: str  # plain text, no markup, no control chars, ≤ 1000 chars
    link: str | None  # absolute http(s) only, else None
    canonical_url: str | None  # link without tracking params / fragment
    published_at: datetime  # aware UTC; missing or in the future → `now`
    text: str  # plain text from the HTML summary/content, ≤ 100_000 chars
    language: str | None
    content_hash: str  # sha256 hex of normalised title + text, for cross-feed dedup


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """The articles of one feed document; `warning` tells of a malformed feed or a cap."""

    title: str
    articles: tuple[ParsedArticle, ...]
    warning: str | None


@dataclass(frozen=True, slots=True)
class _Context:
    url: str
    now: datetime
    language: str | None  # the user's choice from config.toml
    declared: str | None  # the feed's own declaration
    inherited: str | None  # xml:lang / Content-Language every entry inherits


@dataclass(frozen=True, slots=True)
class _Entry:
    """An entry reduced to what we keep, from feedparser or JSON Feed alike."""

    guid: str | None
    title: str
    title_is_html: bool
    link: str | None
    published: datetime | None
    body: str
    body_is_html: bool
    language: str | None


def parse_feed(
    body: bytes,
    *,
    headers: Mapping[str, str],
    url: str,
    now: datetime,
    language: str | None = None,
    max_entries: int = 1000,
) -> ParsedFeed:
    """Parse one fetched feed document into articles (at most `max_entries`, the first ones).

    `url` is the feed's URL (relative links resolve against it); `language` is the feed's
    configured language, used when an entry declares none.

    Raises:
        FetchError: "not a feed: <reason>" (HTML page, empty body, invalid JSON, …), or the entity
            pre-scan's refusal ("feed declares external entities; refused", …).
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    now = now.astimezone(UTC)
    if not body.strip(b"\xef\xbb\xbf \t\r\n\x00"):
        raise FetchError("not a feed: empty body")
    if jsonfeed.looks_like_json(body, lowered.get("content-type")):
        return _parse_json(body, url, now, language, max_entries)
    check_entities(body, content_type=lowered.get("content-type"))
    body, cap_warning = _cap_items(body, max_entries)
    result = feedparser.parse(
        io.BytesIO(body),
        response_headers=_feedparser_headers(lowered),
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    _ensure_feed(result, body, lowered)
    context = _feed_context(result, url, now, language)
    entries = [_feedparser_entry(e) for e in result.entries[:max_entries]]
    feed = result.get("feed", {})
    return ParsedFeed(
        title=_title_of(feed.get("title_detail") or {}, feed.get("title")),
        articles=_articles(entries, context),
        warning=_join(_bozo_warning(result), cap_warning),
    )


def _feedparser_headers(headers: Mapping[str, str]) -> dict[str, str]:
    # Only what decides decoding and language. No Content-Location: feedparser would resolve
    # guids against it, and ids must not change when a feed moves. Links are resolved here.
    keep = ("content-type", "content-language")
    return {k: headers[k] for k in keep if k in headers}


def _cap_items(body: bytes, max_entries: int) -> tuple[bytes, str | None]:
    """Cut the document before item `max_entries + 1`, keeping its closing tags.

    feedparser reads every item (50,000 items take half a minute), so the cap is applied to the
    bytes: everything from the first surplus item up to the end of the last item goes.
    """
    starts = [m.start() for m in _ITEM_START.finditer(body)]
    if len(starts) <= max_entries:
        return body, None
    last_end = None
    for match in _ITEM_END.finditer(body, starts[-1]):
        last_end = match
    if last_end is None:
        return body, f"feed has {len(starts)} entries; kept the first {max_entries}"
    cut = body[: starts[max_entries]] + body[last_end.end() :]
    return cut, f"feed has {len(starts)} entries; kept the first {max_entries}"


def _ensure_feed(result: Any, body: bytes, headers: Mapping[str, str]) -> None:
    if result.get("version") or result.entries:
        return
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if _HTML_START.match(body[:4096]) or media in ("text/html", "application/xhtml+xml"):
        raise FetchError(f"not a feed: an HTML page ({media or 'no Content-Type'})")
    if isinstance(result.get("bozo_exception"), SAXParseException):
        raise FetchError(f"not a feed: {_describe_bozo(result.get('bozo_exception'))}")
    root = _ROOT_NAME.search(body[:65536])
    found = f" (root element <{root.group(1).decode('ascii', 'replace')}>)" if root else ""
    raise FetchError(f"not a feed: no RSS, Atom or JSON Feed content{found}")


def _bozo_warning(result: Any) -> str | None:
    # A wrong Content-Type alone (text/html for RSS is common) is not worth a warning.
    if not result.get("bozo") or isinstance(result.get("bozo_exception"), NonXMLContentType):
        return None
    count = len(result.entries)
    return f"malformed feed ({_describe_bozo(result.get('bozo_exception'))}); read {count} entries"


def _describe_bozo(exc: object) -> str:
    if isinstance(exc, SAXParseException):
        line, column = exc.getLineNumber(), exc.getColumnNumber()
        return f"XML error at line {line}, column {column}: {exc.getMessage()}"
    return str(exc) or type(exc).__name__


def _feed_context(result: Any, url: str, now: datetime, language: str | None) -> _Context:
    feed = result.get("feed", {})
    inherited = (feed.get("title_detail") or {}).get("language") or result.get("headers", {}).get(
        "content-language"
    )
    declared = language_code(feed.get("language")) or language_code(inherited)
    return _Context(url, now, language_code(language), declared, language_code(inherited))


def _feedparser_entry(entry: Any) -> _Entry:
    title_detail = entry.get("title_detail") or {}
    content = [c for c in entry.get("content") or () if c.get("value")]
    source = content[0] if content else entry.get("summary_detail") or {}
    body = " ".join(c["value"] for c in content) if content else source.get("value", "")
    return _Entry(
        guid=entry.get("id"),
        title=entry.get("title") or "",
        title_is_html=title_detail.get("type") in _HTML_TYPES,
        link=entry.get("link"),
        published=_published(entry),
        body=body or entry.get("summary") or "",
        body_is_html=source.get("type", "text/html") in _HTML_TYPES,
        language=source.get("language") or title_detail.get("language"),
    )


def _published(entry: Any) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        # dict.get: FeedParserDict.get maps updated→published with a DeprecationWarning
        parsed = dict.get(entry, key)
        if parsed:
            try:
                year, month, day, hour, minute, second = parsed[:6]
                return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
            except (TypeError, ValueError, OverflowError):
                continue
    return None


def _parse_json(
    body: bytes, url: str, now: datetime, language: str | None, max_entries: int
) -> ParsedFeed:
    feed = jsonfeed.parse_json_feed(body, max_items=max_entries)
    declared = language_code(feed.language)
    context = _Context(url, now, language_code(language), declared, declared)
    entries = [
        _Entry(
            guid=item.id,
            title=item.title or "",
            title_is_html=False,
            link=item.url,
            published=_iso_datetime(item.date_published or item.date_modified),
            body=item.content_html or item.content_text or item.summary or "",
            body_is_html=item.content_html is not None,
            language=item.language,
        )
        for item in feed.items
    ]
    capped = None
    if feed.total_items > max_entries:
        capped = f"feed has {feed.total_items} entries; kept the first {max_entries}"
    return ParsedFeed(
        title=_title_of({"type": "text/plain"}, feed.title),
        articles=_articles(entries, context),
        warning=_join(feed.warning, capped),
    )


def _iso_datetime(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _articles(entries: list[_Entry], context: _Context) -> tuple[ParsedArticle, ...]:
    articles = (_article(entry, context) for entry in entries)
    return tuple(a for a in articles if a is not None)


def _article(entry: _Entry, context: _Context) -> ParsedArticle | None:
    title = _title_of({"type": "text/html" if entry.title_is_html else "text/plain"}, entry.title)
    text = (
        html_to_text(entry.body) if entry.body_is_html else clean_text(entry.body[:_MAX_RAW_TEXT])
    )
    text = text[:MAX_TEXT].rstrip()
    link = absolute_link(entry.link, context.url)
    if not (title or text or link):
        return None
    published = entry.published if entry.published and entry.published <= context.now else None
    return ParsedArticle(
        guid=_guid(entry.guid, link, title, text),
        title=title,
        link=link,
        canonical_url=canonical_url(link) if link else None,
        published_at=published or context.now,
        text=text,
        language=_language(entry.language, context, title, text),
        content_hash=content_hash(title, text),
    )


def _title_of(detail: Mapping[str, Any], title: str | None) -> str:
    raw = (title or detail.get("value") or "")[:_MAX_RAW_TITLE]
    if detail.get("type") in _HTML_TYPES:
        text = html_to_text(raw)
    elif _TAG_LIKE.search(raw):  # plain text that still carries tags: drop them, keep entities
        text = html_to_text(raw, decode_entities=False)
    else:
        text = clean_text(raw)
    return text[:MAX_TITLE].rstrip()


def _guid(raw: str | None, link: str | None, title: str, text: str) -> str:
    guid = clean_text(raw or "")
    if guid:
        if len(guid) > MAX_ID:
            return "sha256:" + hashlib.sha256(guid.encode("utf-8")).hexdigest()
        return guid
    if link:
        return link
    return "sha256:" + hashlib.sha256(f"{title}\n{text}".encode()).hexdigest()


def absolute_link(raw: str | None, base: str) -> str | None:
    """`raw` resolved against `base` when the result is an absolute http(s) URL, else None."""
    if not raw:
        return None
    raw = raw.strip()
    if not raw or len(raw) > MAX_LINK or _CONTROLS.search(raw) or any(c in raw for c in "\r\n\t"):
        return None
    try:
        link = urljoin(base, raw)
        parts = urlsplit(link)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return link


def content_hash(title: str, text: str) -> str:
    """sha256 hex of NFKC, casefolded, whitespace-collapsed title + text (cross-feed dedup)."""
    normal = " ".join(unicodedata.normalize("NFKC", f"{title}\n{text}").casefold().split())
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()


def clean_text(text: str) -> str:
    """Drop control and bidi-override characters; collapse whitespace (CR/LF become spaces)."""
    return " ".join(_CONTROLS.sub("", text).split())


def html_to_text(markup: str, *, decode_entities: bool = True) -> str:
    """Plain text of an HTML fragment: comments and tags dropped (script/style with their
    content), block elements separated by spaces, entities decoded once (unless
    `decode_entities` is False). Regular expressions, 4× faster than html.parser here; each
    pattern is linear (no `<` inside an unquoted tag), so hostile markup cannot blow it up.
    """
    markup = markup[:_MAX_RAW_TEXT]
    if "<" not in markup and ("&" not in markup or not decode_entities):
        return clean_text(markup)
    text = _HTML_COMMENT.sub("", markup)
    text = _HTML_SKIPPED.sub(" ", text)
    text = _HTML_BLOCK.sub(" ", text)
    text = _HTML_TAG.sub("", text)
    return clean_text(html.unescape(text) if decode_entities else text)


def language_code(value: str | None) -> str | None:
    """Primary subtag of a language tag, lowercased ("en-US" → "en"), or None if not one."""
    if not value:
        return None
    primary = value.strip().replace("_", "-").split("-", 1)[0].lower()
    return primary if primary.isascii() and primary.isalpha() and 2 <= len(primary) <= 3 else None


def _language(entry_language: str | None, context: _Context, title: str, text: str) -> str | None:
    own = language_code(entry_language)
    if own == context.inherited:
        own = None  # inherited from the feed element or Content-Language: not the entry's own
    if context.language and not own:
        return context.language
    declared = own or context.declared
    sample = f"{title} {text[:2000]}"
    if declared and not _contradicts(declared, sample):
        return declared
    return guess_language(sample) or declared


_ARABIC = re.compile("[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff]")
_CYRILLIC = re.compile("[\u0400-\u052f]")
_LATIN = re.compile("[A-Za-z\u00c0-\u024f]")
_TAJIK = re.compile("[ҳҷқғӣӯҲҶҚҒӢӮ]")
_UKRAINIAN = re.compile("[єїґЄЇҐіІ]")
_URDU = re.compile("[\u0679\u0688\u0691\u06ba\u06d2\u06d3]")
_SCRIPT_OF = {"en": "latin", "ru": "cyrillic", "uk": "cyrillic", "tg": "cyrillic", "fa": "arabic"}


def _dominant_script(sample: str, share: float = 0.5) -> str | None:
    """The script of more than `share` of the letters of `sample` (Arabic, Cyrillic, Latin)."""
    counts = {
        "arabic": len(_ARABIC.findall(sample)),
        "cyrillic": len(_CYRILLIC.findall(sample)),
        "latin": len(_LATIN.findall(sample)),
    }
    script, count = max(counts.items(), key=lambda kv: kv[1])
    return script if count and count > share * sum(counts.values()) else None


def _contradicts(declared: str, sample: str) -> bool:
    """A declared language whose script is not the text's (hoder.com declares en-us in Persian)."""
    expected = _SCRIPT_OF.get(declared)
    if expected is None:
        return False
    script = _dominant_script(sample, share=0.75)  # mixed text keeps its declaration
    return script is not None and script != expected


def guess_language(sample: str) -> str | None:
    """A cheap script-based guess: Arabic script → fa (ur with Urdu letters), Cyrillic → tg with
    Tajik letters, uk with Ukrainian letters, else ru; Latin → en; anything else → None."""
    script = _dominant_script(sample)
    if script == "arabic":
        return "ur" if _URDU.search(sample) else "fa"
    if script == "cyrillic":
        if _TAJIK.search(sample):
            return "tg"
        return "uk" if _UKRAINIAN.search(sample) else "ru"
    if script == "latin":
        return "en"
    return None


def _join(*warnings: str | None) -> str | None:
    present = [w for w in warnings if w]
    return "; ".join(present) if present else None
