"""JSON Feed 1.0 / 1.1 reading (feedparser 6 returns nothing for it): bytes → raw items.

Values come back as the feed wrote them (strings, HTML untouched); `pipeline.parse` turns them
into articles exactly as it does feedparser's entries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pipeline.errors import FetchError

_VERSION_PREFIX = "https://jsonfeed.org/version/"


@dataclass(frozen=True, slots=True)
class JsonItem:
    """One item of a JSON Feed, fields as written (None when absent or not a string)."""

    id: str | None
    url: str | None
    title: str | None
    content_html: str | None
    content_text: str | None
    summary: str | None
    date_published: str | None
    date_modified: str | None
    language: str | None


@dataclass(frozen=True, slots=True)
class JsonFeed:
    """A JSON Feed: its title and language, its items (at most `max_items`) and their count."""

    title: str | None
    language: str | None
    items: tuple[JsonItem, ...]
    total_items: int
    warning: str | None


def looks_like_json(body: bytes, content_type: str | None) -> bool:
    """True when the body should be read as JSON: a leading `{`, or a JSON content type on a
    body that does not start with `<` (servers mislabel XML feeds)."""
    start = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return start == b"{" or (media.endswith("json") and start != b"<")


def parse_json_feed(body: bytes, *, max_items: int) -> JsonFeed:
    """Read a JSON Feed document.

    Raises:
        FetchError: "not a feed: invalid JSON …" or "not a feed: JSON without JSON Feed items".
    """
    document = _load(body)
    if not isinstance(document, dict) or not _is_json_feed(document):
        raise FetchError("not a feed: JSON without a JSON Feed 'version' and 'items'")
    raw_items = document.get("items")
    items = raw_items if isinstance(raw_items, list) else []
    objects = [item for item in items if isinstance(item, dict)]
    skipped = len(items) - len(objects)
    warning = f"{skipped} items are not JSON objects; skipped" if skipped else None
    return JsonFeed(
        title=_text(document, "title"),
        language=_text(document, "language"),
        items=tuple(_item(item) for item in objects[:max_items]),
        total_items=len(objects),
        warning=warning,
    )


def _load(body: bytes) -> Any:
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise FetchError(
            f"not a feed: invalid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})"
        ) from None
    except UnicodeDecodeError:
        raise FetchError("not a feed: JSON that is not UTF-8, UTF-16 or UTF-32") from None
    except RecursionError:
        raise FetchError("not a feed: JSON nested too deeply") from None


def _is_json_feed(document: dict[str, Any]) -> bool:
    version = document.get("version")
    if isinstance(version, str) and version.startswith(_VERSION_PREFIX):
        return True
    return isinstance(document.get("items"), list)


def _item(item: dict[str, Any]) -> JsonItem:
    return JsonItem(
        id=_identifier(item.get("id")),
        url=_text(item, "url") or _text(item, "external_url"),
        title=_text(item, "title"),
        content_html=_text(item, "content_html"),
        content_text=_text(item, "content_text"),
        summary=_text(item, "summary"),
        date_published=_text(item, "date_published"),
        date_modified=_text(item, "date_modified"),
        language=_text(item, "language"),
    )


def _identifier(value: Any) -> str | None:
    # JSON Feed requires a string id; numbers are common in the wild and stable enough.
    if isinstance(value, bool):
        return None
    if isinstance(value, str | int):
        return str(value)
    return None


def _text(mapping: dict[str, Any], key: str) -> str | None:
    value = mapping.get(key)
    return value if isinstance(value, str) else None
