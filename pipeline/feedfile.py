"""Editing the [[feeds]] of config.toml (comments kept), and importing and exporting OPML."""

from __future__ import annotations

import os
import re
import stat
import tempfile
import tomllib
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.parsers import expat
from xml.sax.saxutils import escape

import tomlkit
from tomlkit.items import AoT, Array, Comment, Table, Whitespace
from tomlkit.toml_document import TOMLDocument

from pipeline.config import Config, FeedConfig, load_config
from pipeline.errors import ConfigError
from pipeline.yamlsafe import suggest

MAX_OPML_BYTES = 20_000_000
FEED_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # as pipeline/config.py accepts
_NAME_MAX = 60
Trivia = Comment | Whitespace
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
class FeedEntry:
    """A [[feeds]] table to write: the values as the user gave them (interval as "10m")."""

    name: str
    url: str
    tags: tuple[str, ...] = ()
    language: str | None = None
    interval: str | None = None


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


# --- checking a new feed ---------------------------------------------------------------------


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a feed URL (only http and https with a host), or None."""
    try:
        parts = urlsplit(url)
        host, _port = parts.hostname, parts.port
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return f"{parts.scheme or 'no'} scheme in URL; only http and https are allowed"
    return None if host else "no host in URL"


def url_key(url: str) -> str:
    """What makes two feed URLs the same: host case, scheme, default port and fragment aside."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").removeprefix("www.")
    port = f":{parts.port}" if parts.port not in (None, 80, 443) else ""
    query = f"?{parts.query}" if parts.query else ""
    return f"{host}{port}{parts.path or '/'}{query}"


def check_new_feed(config: Config, entry: FeedEntry) -> None:
    """Refuses a feed whose name or URL is invalid or already in config.toml.

    Raises:
        ConfigError: the message says which and what to write instead.
    """
    if not FEED_NAME.match(entry.name):
        raise ConfigError(
            f"{entry.name!r} is not a valid feed name",
            hint="use letters, digits, '.', '-' and '_', starting with a letter or digit",
        )
    problem = url_problem(entry.url)
    if problem:
        raise ConfigError(f"{entry.url!r}: {problem}", hint="write a URL starting with https://")
    for tag in entry.tags:
        # The feed table stores tags space-separated, and rules name them as one word.
        if not tag or any(c.isspace() for c in tag):
            raise ConfigError(f"tag {tag!r} is empty or has spaces", hint="write e.g. 'two-words'")
    for feed in config.feeds:
        if feed.name == entry.name:
            raise ConfigError(
                f"{config.path}: a feed named {entry.name!r} already exists ({feed.url})",
                hint="choose another name, or `newswatch feeds remove` the old one first",
            )
        if url_key(feed.url) == url_key(entry.url):
            raise ConfigError(
                f"{config.path}: feed {feed.name!r} already has this URL ({feed.url})"
            )


# --- editing config.toml -------------------------------------------------------------------


def add_feeds(config: Config, entries: Sequence[FeedEntry]) -> Config:
    """Appends [[feeds]] tables to config.toml, keeping every comment; returns the new Config.

    Raises:
        ConfigError: the result would not be a valid configuration; the file is unchanged.
    """
    original = _read(config.path)
    return save_config_text(config.path, original, append_feed_tables(original, entries))


def remove_feed(config: Config, name: str) -> Config:
    """Removes the [[feeds]] table of `name` (with the comments inside it, no others).

    Raises:
        ConfigError: there is no such feed (with a suggestion); the file is unchanged.
    """
    original = _read(config.path)
    return save_config_text(config.path, original, remove_feed_table(original, name))


def append_feed_tables(text: str, entries: Sequence[FeedEntry]) -> str:
    """config.toml text with one [[feeds]] table per entry after the last feed."""
    expected = _feeds_of(text) + [_entry_values(e) for e in entries]
    return _edited(text, expected, lambda doc: _append(doc, entries))


def remove_feed_table(text: str, name: str) -> str:
    """config.toml text without the feed `name`; comments that follow its keys are kept.

    Raises:
        ConfigError: no feed has that name.
    """
    expected = [f for f in _feeds_of(text) if f.get("name") != name]
    return _edited(text, expected, lambda doc: _remove(doc, name))


def _edited(text: str, feeds: list[dict[str, Any]], edit: Callable[[TOMLDocument], str]) -> str:
    """Runs `edit` on the parsed text (CRLF files edited as LF, then restored), then proves
    that the result differs from the text in its feeds only, and that they are `feeds`."""
    crlf = "\r\n" in text and text.count("\r\n") == text.count("\n")
    plain = text.replace("\r\n", "\n") if crlf else text
    new = edit(tomlkit.parse(plain))
    before, after = tomllib.loads(plain), tomllib.loads(new)
    before["feeds"], after["feeds"] = feeds, after.get("feeds", [])
    if before != after:
        raise ConfigError(
            "could not edit config.toml safely (its layout confused the TOML editor); "
            "nothing was written",
            hint="edit the [[feeds]] tables by hand",
        )
    return new.replace("\n", "\r\n") if crlf else new


def _append(doc: TOMLDocument, entries: Sequence[FeedEntry]) -> str:
    feeds = doc.get("feeds")
    if isinstance(feeds, Array):
        for entry in entries:
            inline = tomlkit.inline_table()
            inline.update(_entry_values(entry))
            feeds.append(inline)
        return doc.as_string()
    blank = [Whitespace("\n")]
    if isinstance(feeds, AoT) and len(feeds):
        # Comments after the last feed's keys introduce what follows the feeds: keep them there.
        last = feeds[-1]
        after = _take_trailing(last)
        last.add(Whitespace("\n"))
    else:
        so_far = doc.as_string()
        if so_far.strip() and not so_far.endswith("\n\n"):
            doc.add(Whitespace("\n" if so_far.endswith("\n") else "\n\n"))
        feeds, after = tomlkit.aot(), []
        doc["feeds"] = feeds
    for i, entry in enumerate(entries):
        feeds.append(_new_table(entry, after if i == len(entries) - 1 else blank))
    return doc.as_string()


def _remove(doc: TOMLDocument, name: str) -> str:
    feeds = doc.get("feeds")
    if not isinstance(feeds, AoT | Array):
        feeds = tomlkit.array()
    names = [str(f.get("name")) if isinstance(f, dict) else "" for f in feeds]
    if name not in names:
        raise ConfigError(
            f"no feed named {name!r} in config.toml{suggest(name, names)}",
            hint="`newswatch feeds list` shows the feeds",
        )
    if isinstance(feeds, Array):
        del feeds[names.index(name)]
        return doc.as_string()
    return _cut_table(doc, feeds, names.index(name))


def _cut_table(doc: TOMLDocument, feeds: AoT, index: int) -> str:
    # A table's trailing comments sit before the next header and belong to what follows. The
    # table becomes a marker line plus those comments; the marker and its header are cut from
    # the text, which also works for the first table, whose predecessor tomlkit can't append to.
    marker = f"newswatch-remove-{uuid.uuid4().hex}"
    stub = tomlkit.table()
    stub.add(tomlkit.comment(marker))
    for item in _take_trailing(feeds[index]):
        stub.add(item)
    feeds[index] = stub
    text = doc.as_string()
    at = text.index("# " + marker)
    header = text.rfind("\n", 0, at - 1) + 1
    assert text[header:at].lstrip().startswith("[["), text[header:at]  # the table's header
    return _join_blank(text[:header], text[text.index("\n", at) + 1 :])


def _join_blank(before: str, after: str) -> str:
    """Joins two pieces of a file without leaving two blank lines (or one at the start)."""
    while after[:1] == "\n" and (before.endswith("\n\n") or not before):
        after = after[1:]
    return before + after


def _take_trailing(table: Table) -> list[Trivia]:
    body = table.value.body
    start = len(body)
    while start > 0 and isinstance(body[start - 1][1], Whitespace | Comment):
        start -= 1
    items = [item for _, item in body[start:] if isinstance(item, Whitespace | Comment)]
    del body[start:]  # keyless items: the container's key index is unaffected
    return items


def _new_table(entry: FeedEntry, trailing: Iterable[Trivia]) -> Table:
    table = tomlkit.table()
    for key, value in _entry_values(entry).items():
        table.add(key, value)
    for item in trailing:
        table.add(item)
    return table


def _entry_values(entry: FeedEntry) -> dict[str, Any]:
    values: dict[str, Any] = {"name": entry.name, "url": entry.url}
    if entry.tags:
        values["tags"] = list(entry.tags)
    if entry.language:
        values["language"] = entry.language
    if entry.interval:
        values["interval"] = entry.interval
    return values


def _feeds_of(text: str) -> list[dict[str, Any]]:
    return list(tomllib.loads(text).get("feeds", []))


def save_config_text(path: Path, original: str, new: str) -> Config:
    """Writes `new` over config.toml if it loads as a valid Config, atomically.

    The new text is validated in a temporary file beside the real one, so config.toml is never
    invalid, not even for a moment; a service watching it sees the old or the new file.

    Raises:
        ConfigError: the new text is not a valid configuration, or the file changed meanwhile.
    """
    tmp = _write_temp(path, new)
    try:
        try:
            config = load_config(tmp)
        except ConfigError as exc:
            message = exc.message.replace(str(tmp), str(path))
            raise ConfigError(f"{message} (config.toml was not changed)", hint=exc.hint) from None
        if _read(path) != original:
            raise ConfigError(
                f"{path} changed while newswatch was editing it; nothing was written",
                hint="run the command again",
            )
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return replace(config, path=path)


def write_atomic(path: Path, text: str) -> None:
    """Replaces `path` with `text` through a temporary file and os.replace.

    Raises:
        ConfigError: the folder does not exist or cannot be written.
    """
    os.replace(_write_temp(path, text), path)


def _write_temp(path: Path, text: str) -> Path:
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        if path.exists():
            os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _read(path: Path) -> str:
    with path.open(encoding="utf-8", newline="") as file:
        return file.read()


# --- OPML ----------------------------------------------------------------------------------


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
