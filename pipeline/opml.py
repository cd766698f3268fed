"""Importing and exporting OPML subscription lists: parsing safely, planning feeds, rendering."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.parsers import expat
from xml.sax.saxutils import escape

from pipeline.config import FeedConfig
from pipeline.errors import ConfigError
from pipeline.feedfile import FeedEntry, url_key
from pipeline.urls import url_problem

MAX_OPML_BYTES = 20_000_000
_NAME_MAX = 60
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_ATTR_ESCAPES = {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
_LANGUAGE = re.compile(r"^([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]{1,8})*$")
_CYRILLIC = str.maketrans(
    {
        **dict(zip("абвгдезийклмнопрстуфыэ", "abvgdeziyklmnoprstufye", strict=True)),
        **{"ё": "e", "ж": "zh", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "shch"},
        **{"ъ": "", "ь": "", "ю": "yu", "я": "ya", "і": "i", "ї": "yi", "є": "ye", "ґ": "g"},
        **{"ғ": "gh", "ӣ": "i", "қ": "q", "ӯ": "u", "ҳ": "h", "ҷ": "j"},  # Tajik letters
    }
)


@dataclass(frozen=True, slots=True)
class OpmlOutline:
    """An OPML outline with an xmlUrl; `categories` are its folders, outermost first."""

    line: int
    title: str
    url: str
    categories: tuple[str, ...] = ()
    language: str | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    line: int
    title: str
    url: str
    reason: str


@dataclass(frozen=True, slots=True)
class ImportPlan:
    added: tuple[FeedEntry, ...]
    skipped: tuple[Skipped, ...]


class _Refused(Exception):
    def __init__(self, message: str, line: int, col: int) -> None:
        super().__init__(message)
        self.line, self.col = line, col


def read_opml(path: Path, *, max_bytes: int = MAX_OPML_BYTES) -> tuple[OpmlOutline, ...]:
    """The outlines with an xmlUrl in an OPML file.

    Raises:
        ConfigError: the file is missing, too large, not well-formed, declares a DOCTYPE,
            or is not OPML; the message gives file:line:col.
    """
    try:
        with path.open("rb") as file:
            data = file.read(max_bytes + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the OPML file: {exc.strerror}") from None
    if len(data) > max_bytes:
        raise ConfigError(f"{path}: OPML file larger than {max_bytes:,} bytes; refused")
    return parse_opml(data, source=str(path))


def parse_opml(data: bytes, *, source: str) -> tuple[OpmlOutline, ...]:
    """Parses OPML with expat, refusing any DOCTYPE (so no entity is ever declared or expanded).

    Raises:
        ConfigError: as read_opml.
    """
    reader = _OpmlReader(data)
    try:
        reader.parser.Parse(data, True)
    except expat.ExpatError as exc:
        line, col = exc.lineno, exc.offset + 1
        message = expat.errors.messages[exc.code]
        hint = "fix the file and import it again (config.toml was not changed)"
        if message == expat.errors.XML_ERROR_INVALID_TOKEN:
            hint = "a raw '&' must be written &amp;, and a '\"' inside an attribute &quot;; " + hint
        raise ConfigError(
            f"{source}:{line}:{col}: not well-formed XML: {message}{_near(data, line, col)}",
            hint=hint,
        ) from None
    except _Refused as exc:
        raise ConfigError(f"{source}:{exc.line}:{exc.col}: {exc}") from None
    if not reader.has_body:
        raise ConfigError(
            f"{source}: no <body> in <opml>: not an OPML subscription list",
            hint="export the subscriptions from the feed reader again",
        )
    return tuple(reader.outlines)


def _near(data: bytes, line: int, col: int) -> str:
    lines = data.decode("utf-8", errors="replace").splitlines()
    if not 0 < line <= len(lines):
        return ""
    text = lines[line - 1]
    start = max(0, col - 40)
    return f"\n  near: {'…' if start else ''}{text[start : col + 20].strip()}"


class _OpmlReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.parser = expat.ParserCreate()
        self.parser.StartDoctypeDeclHandler = self.doctype
        self.parser.StartElementHandler = self.start
        self.parser.EndElementHandler = self.end
        self.stack: list[str] = []
        self.folders: list[str | None] = []
        self.has_body = False
        self.outlines: list[OpmlOutline] = []

    def doctype(self, *_args: Any) -> None:
        # Refusing the DOCTYPE refuses every entity declaration, internal or external, before
        # expat could expand one (billion laughs) or read a file (XXE).
        line, col = self.parser.CurrentLineNumber, self.parser.CurrentColumnNumber + 1
        start = self.data.rfind(b"<!DOCTYPE", 0, self.parser.CurrentByteIndex + 1)
        if start >= 0:  # expat reports the end of the declaration's head: point at its start
            line = self.data.count(b"\n", 0, start) + 1
            col = start - self.data.rfind(b"\n", 0, start)
        raise _Refused(
            "OPML declares a DOCTYPE; refused (its entities could read local files or expand "
            "without bound)",
            line,
            col,
        )

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        self.stack.append(tag)
        self.folders.append(None)
        if len(self.stack) == 1 and tag != "opml":
            raise _Refused(
                f"root element is <{tag}>, not <opml>: not an OPML file",
                self.parser.CurrentLineNumber,
                self.parser.CurrentColumnNumber + 1,
            )
        if self.stack[:2] == ["opml", "body"]:
            self.has_body = True
            if len(self.stack) > 2 and all(t == "outline" for t in self.stack[2:]):
                self.outline({k.lower(): v.strip() for k, v in attrs.items()})

    def outline(self, attrs: dict[str, str]) -> None:
        url = attrs.get("xmlurl", "")
        if not url:
            self.folders[-1] = attrs.get("text") or attrs.get("title") or None
            return
        categories = [f for f in self.folders if f]
        for path in attrs.get("category", "").split(","):
            categories.extend(p for p in path.split("/") if p.strip())
        self.outlines.append(
            OpmlOutline(
                line=self.parser.CurrentLineNumber,
                title=attrs.get("title") or attrs.get("text") or "",
                url=url,
                categories=tuple(categories),
                language=attrs.get("language") or None,
            )
        )

    def end(self, _tag: str) -> None:
        self.stack.pop()
        self.folders.pop()


def plan_import(outlines: Sequence[OpmlOutline], existing: Sequence[FeedConfig]) -> ImportPlan:
    """Which outlines become feeds (with unique names), and why the others are skipped."""
    known = {url_key(f.url): f"already in config.toml as {f.name!r}" for f in existing}
    taken = {f.name for f in existing}
    added: list[FeedEntry] = []
    skipped: list[Skipped] = []
    for o in outlines:
        problem = url_problem(o.url)
        key = "" if problem else url_key(o.url)
        reason = f"xmlUrl {o.url!r}: {problem}" if problem else known.get(key)
        if reason:
            skipped.append(Skipped(o.line, o.title, o.url, reason))
            continue
        known[key] = f"same URL as line {o.line}"
        name = feed_name(o.title, o.url, taken)
        taken.add(name)
        tags = tuple(dict.fromkeys(t for t in map(tag_slug, o.categories) if t))
        added.append(FeedEntry(name, o.url, tags, _language(o.language)))
    return ImportPlan(tuple(added), tuple(skipped))


def feed_name(title: str, url: str, taken: set[str]) -> str:
    """A valid feed name from a title (Cyrillic transliterated), else from the URL's host."""
    base = _ascii_slug(title) or _ascii_slug((urlsplit(url).hostname or "").removeprefix("www."))
    base = base or "feed"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return name


def _ascii_slug(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.lower().translate(_CYRILLIC))
    ascii_text = folded.encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")
    if len(slug) > _NAME_MAX:
        slug = slug[:_NAME_MAX].rsplit("-", 1)[0]
    return slug


def tag_slug(text: str) -> str:
    """A tag from a folder or category name: lower case, words joined by '-', any script."""
    text = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"[^\w\u200c]+", "-", text).strip("-_\u200c")


def _language(value: str | None) -> str | None:
    found = _LANGUAGE.match(value or "")
    return found.group(1).lower() if found else None


def render_opml(feeds: Sequence[FeedConfig], *, title: str = "newswatch feeds") -> str:
    """The feeds as an OPML 2.0 document: one flat outline each, tags as its category."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<opml version="2.0">',
        f"  <head>\n    <title>{escape(_xml_text(title))}</title>\n  </head>",
        "  <body>",
    ]
    for feed in feeds:
        attrs = {"type": "rss", "text": feed.name, "title": feed.name, "xmlUrl": feed.url}
        if feed.language:
            attrs["language"] = feed.language
        if feed.tags:
            attrs["category"] = ",".join(feed.tags)
        rendered = " ".join(
            f'{k}="{escape(_xml_text(v), _ATTR_ESCAPES)}"' for k, v in attrs.items()
        )
        lines.append(f"    <outline {rendered}/>")
    lines += ["  </body>", "</opml>", ""]
    return "\n".join(lines)


def _xml_text(value: str) -> str:
    return _XML_INVALID.sub("", value)
