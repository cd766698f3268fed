"""Editing the [[feeds]] of config.toml with every comment kept, and checking a new feed."""

from __future__ import annotations

import os
import stat
import tempfile
import tomllib
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tomlkit
from tomlkit.items import AoT, Array, Comment, Table, Whitespace
from tomlkit.toml_document import TOMLDocument

from pipeline.config import FEED_NAME, FEED_NAME_HINT, Config, load_config
from pipeline.errors import ConfigError
from pipeline.urls import url_problem
from pipeline.yamlsafe import suggest

Trivia = Comment | Whitespace


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """A [[feeds]] table to write: the values as the user gave them (interval as "10m")."""

    name: str
    url: str
    tags: tuple[str, ...] = ()
    language: str | None = None
    interval: str | None = None


# --- checking a new feed ---------------------------------------------------------------------


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
        raise ConfigError(f"{entry.name!r} is not a valid feed name", hint=FEED_NAME_HINT)
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
