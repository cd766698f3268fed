"""Safe YAML for rule and place files: values with positions; tags, aliases, duplicates refused."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import ScalarNode

from pipeline.ruletypes import RuleProblem

MAX_BYTES = 1_000_000
MAX_NODES = 50_000
MAX_DEPTH = 64

# Only the plain YAML types; anything else (!!python/…, !!binary, !!set, !local) is refused.
_YAML_TAG = "tag:yaml.org,2002:"
_ALLOWED_TAGS = frozenset(
    _YAML_TAG + t for t in ("str", "int", "float", "bool", "null", "seq", "map")
)
_SCALAR_KINDS = ("null", "bool", "int", "float")


# The C parser (libyaml) keeps marks as the pure one does (0-based line, column, character index),
# so use it when PyYAML was built with it. Events only are read: no constructor ever runs on a tag.
_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _EventLoader(_BaseLoader):  # type: ignore[misc]  # the C base class has no stubs
    """A SafeLoader subclass used for its parser (events) and resolver only."""


@dataclass(frozen=True, slots=True)
class Scalar:
    """A scalar with its YAML 1.1 value, the text as written (unquoted) and its 1-based position."""

    value: str | int | float | bool | None
    text: str
    style: str  # "" plain, "'" or '"' quoted, "|" or ">" block
    line: int
    col: int
    start: int  # character index of the first character of the scalar (its quote or indicator)
    end: int


@dataclass(frozen=True, slots=True)
class Seq:
    items: tuple[Node, ...]
    line: int
    col: int


@dataclass(frozen=True, slots=True)
class Map:
    entries: tuple[tuple[Scalar, Node], ...]
    line: int
    col: int

    def get(self, key: str) -> Node | None:
        return next((value for k, value in self.entries if k.text == key), None)

    def key(self, key: str) -> Scalar | None:
        return next((k for k, _ in self.entries if k.text == key), None)


Node = Scalar | Seq | Map


@dataclass(frozen=True, slots=True)
class Document:
    """One loaded file: its root (None when empty or broken) and the problems found."""

    path: str
    text: str
    root: Node | None
    problems: tuple[RuleProblem, ...]

    def position(self, scalar: Scalar, offset: int) -> tuple[int, int]:
        """The 1-based (line, col) in the file of character `offset` of a scalar's value."""
        index = _align(self.text, scalar, offset)
        return _line_col(self.text, index)


class _Fatal(Exception):
    def __init__(self, path: str, at: tuple[int, int], message: str, hint: str | None) -> None:
        super().__init__(message)
        self.problem = RuleProblem(path, at[0], at[1], message, hint)


def load_yaml(data: bytes, path: str, *, max_bytes: int = MAX_BYTES) -> Document:
    """Load one YAML document with positions, refusing what a rule file must never contain.

    Never raises for bad content: syntax errors, tags, anchors/aliases, duplicate keys, more than
    MAX_NODES nodes or `max_bytes` bytes become RuleProblems (then `root` is None, except for
    duplicate keys, where the first value is kept so that later checks can still run).
    """
    try:
        text = _decode(data, path, max_bytes)
        builder = _Builder(text, path)
        root = builder.document()
    except _Fatal as fatal:
        return Document(path, "", None, (fatal.problem,))
    return Document(path, text, root, tuple(builder.problems))


def _decode(data: bytes, path: str, max_bytes: int) -> str:
    if len(data) > max_bytes:
        size = f"{max_bytes / 1_000_000:g} MB"
        raise _Fatal(path, (1, 1), f"file is larger than {size}", "split it into smaller files")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        prefix = data[: exc.start].decode("utf-8", "replace")
        bad = f"not valid UTF-8 (byte 0x{data[exc.start]:02x})"
        raise _Fatal(path, _line_col(prefix, len(prefix)), bad, "save it as UTF-8") from None
    # YAML treats a lone CR as a line break; make lines agree with what editors show.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _line_col(text: str, index: int) -> tuple[int, int]:
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 1


class _Builder:
    """Builds positioned nodes from parser events, counting nodes and checking each event."""

    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self.problems: list[RuleProblem] = []
        self.nodes = 0

    def document(self) -> Node | None:
        self.loader: Any = None
        try:
            self.loader = _EventLoader(self.text)  # the pure reader checks characters here
            root = self._stream()
        except yaml.MarkedYAMLError as exc:
            problem = _syntax_problem(self.text, exc)
            raise _Fatal(self.path, *problem) from None
        except yaml.reader.ReaderError as exc:
            code = exc.character if isinstance(exc.character, int) else ord(exc.character)
            message = f"control character U+{code:04X} is not allowed in YAML"
            raise _Fatal(
                self.path, _line_col(self.text, exc.position), message, "remove it"
            ) from None
        finally:
            if self.loader is not None:
                self.loader.dispose()
        return root

    def _stream(self) -> Node | None:
        root: Node | None = None
        documents = 0
        while not isinstance(event := self.loader.get_event(), yaml.StreamEndEvent):
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise self.fatal(
                        event,
                        "a second YAML document ('---') in one file",
                        "remove the '---' line, or move what follows to a file of its own",
                    )
            elif isinstance(event, yaml.NodeEvent):
                root = self._node(event, 0)
        if isinstance(root, Scalar) and root.value is None and not root.text:
            return None  # a bare '---': an empty document
        return root

    def fatal(self, event: yaml.Event, message: str, hint: str | None = None) -> _Fatal:
        return _Fatal(self.path, _pos(event.start_mark), message, hint)

    def _node(self, event: yaml.Event, depth: int) -> Node:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fatal(
                event,
                f"file has more than {MAX_NODES:,} YAML values",
                "split it into several smaller files",
            )
        if depth > MAX_DEPTH:
            raise self.fatal(event, f"values nested deeper than {MAX_DEPTH} levels")
        self._check_event(event)
        if isinstance(event, yaml.ScalarEvent):
            return self._scalar(event)
        if isinstance(event, yaml.SequenceStartEvent):
            return self._sequence(event, depth)
        assert isinstance(event, yaml.MappingStartEvent)
        return self._mapping(event, depth)

    def _check_event(self, event: yaml.Event) -> None:
        if isinstance(event, yaml.AliasEvent):
            raise self.fatal(
                event,
                f"aliases (*{event.anchor}) are not allowed in rule files",
                "write the value out again instead of referring to it",
            )
        if anchor := getattr(event, "anchor", None):
            raise self.fatal(
                event,
                f"anchors (&{anchor}) are not allowed in rule files",
                "remove the anchor and write values out in full",
            )
        tag = getattr(event, "tag", None)
        if tag is not None and tag != "!" and tag not in _ALLOWED_TAGS:
            shown = "!!" + tag.removeprefix(_YAML_TAG) if tag.startswith(_YAML_TAG) else tag
            raise self.fatal(
                event,
                f"tags like {shown} are not allowed",
                "remove the tag and write a plain value",
            )

    def _scalar(self, event: yaml.ScalarEvent) -> Scalar:
        tag = event.tag
        if tag is None:
            tag = (
                self.loader.resolve(ScalarNode, event.value, (True, False))
                if event.implicit[0]
                else _YAML_TAG + "str"
            )
        kind = tag.removeprefix(_YAML_TAG)
        value: str | int | float | bool | None = event.value
        if kind in _SCALAR_KINDS:
            node = ScalarNode(tag, event.value)
            try:
                value = getattr(self.loader, f"construct_yaml_{kind}")(node)
            except (ValueError, TypeError, KeyError):
                raise self.fatal(
                    event, f"{event.value!r} is not a valid !!{kind}", "remove the tag"
                ) from None
        line, col = _pos(event.start_mark)
        start, end = _index(event.start_mark), _index(event.end_mark)
        return Scalar(value, event.value, event.style or "", line, col, start, end)

    def _sequence(self, event: yaml.SequenceStartEvent, depth: int) -> Seq:
        items: list[Node] = []
        while not isinstance(child := self.loader.get_event(), yaml.SequenceEndEvent):
            items.append(self._node(child, depth + 1))
        return Seq(tuple(items), *_pos(event.start_mark))

    def _mapping(self, event: yaml.MappingStartEvent, depth: int) -> Map:
        entries: list[tuple[Scalar, Node]] = []
        seen: dict[str, Scalar] = {}
        while not isinstance(key_event := self.loader.get_event(), yaml.MappingEndEvent):
            key = self._node(key_event, depth + 1)
            value = self._node(self.loader.get_event(), depth + 1)
            if not isinstance(key, Scalar):
                raise self.fatal(
                    key_event,
                    "a key must be a plain name, not a list or mapping",
                    "write name: value",
                )
            if key.text in seen:
                self.problems.append(self._duplicate(key, seen[key.text]))
                continue
            seen[key.text] = key
            entries.append((key, value))
        return Map(tuple(entries), *_pos(event.start_mark))

    def _duplicate(self, key: Scalar, first: Scalar) -> RuleProblem:
        return RuleProblem(
            self.path,
            key.line,
            key.col,
            f"duplicate key {key.text!r} (first on line {first.line}, again on line {key.line})",
            "keep one of them",
        )


def _pos(mark: Any) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def _index(mark: Any) -> int:
    return mark.index if mark is not None else 0


# -- syntax errors --------------------------------------------------------------------------------


_Message = tuple[tuple[int, int], str, str | None]


def _syntax_problem(text: str, exc: yaml.MarkedYAMLError) -> _Message:
    """Turn a PyYAML/libyaml error into a message that says what to write instead."""
    problem, context = exc.problem or "", exc.context or ""
    mark, ctx = exc.problem_mark, exc.context_mark
    at = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    if mark and text[mark.index : mark.index + 1] == "\t":
        return at, "found a tab character in the indentation", "indent with spaces"
    if ctx is None:
        pass
    elif "quoted scalar" in context and "end of stream" in problem:
        quote = text[ctx.index : ctx.index + 1]
        return (
            (ctx.line + 1, ctx.column + 1),
            "this quoted text is never closed",
            f"end it with {quote}",
        )
    elif "flow" in context:
        opening, closing = ("[", "]") if "sequence" in context else ("{", "}")
        hint = f"separate items with ',' and end them with {closing}"
        return (ctx.line + 1, ctx.column + 1), f"this {opening} is not closed", hint
    elif "block mapping" in context or "block collection" in context:
        return _bad_indentation(text, at, ctx)
    if "mapping values are not allowed" in problem:
        return _colon_in_value(text, at)
    if "expected ':'" in problem and ctx is not None:
        hint = "write key: value (with a space after ':'), or quote the text"
        return (ctx.line + 1, ctx.column + 1), "this line has no ':' after its key", hint
    return at, f"invalid YAML: {context + ': ' if context else ''}{problem}", None


def _bad_indentation(text: str, at: tuple[int, int], ctx: yaml.Mark) -> _Message:
    line = text.split("\n")[at[0] - 1]
    if at[1] - 1 != len(line) - len(line.lstrip()):  # not the first character on its line
        found = line[at[1] - 1 : at[1]] or "the end of the line"
        return at, f"unexpected {found!r}", "remove it, or put the whole value in quotes"
    if line.lstrip().startswith("-"):
        message = "bad indentation: this list item does not line up with the items above it"
        return at, message, "start every '- ' item of one list in the same column"
    message = "bad indentation: this key does not line up with the keys above it"
    return at, message, f"start it in column {ctx.column + 1}, like line {ctx.line + 1}"


def _colon_in_value(text: str, at: tuple[int, int]) -> _Message:
    lines = text.split("\n")
    line = lines[at[0] - 1]
    before = line[: at[1] - 1]
    if re.fullmatch(r"\s+[^\s:#]+\s*", before) and at[0] > 1:
        above = _line_above(lines, at[0] - 1)
        indent = len(lines[above]) - len(lines[above].lstrip())
        key_at = (at[0], len(before) - len(before.lstrip()) + 1)
        message = f"bad indentation: key {before.strip()!r} is indented more than the key above it"
        return key_at, message, f"start it in column {indent + 1}, like line {above + 1}"
    key, _, value = line.partition(": ")
    return (
        at,
        "a value that contains ': ' must be quoted",
        f'write {key.strip()}: "{value.strip()}"',
    )


def _line_above(lines: list[str], index: int) -> int:
    """The index of the nearest line above `index` that holds more than a comment."""
    for above in range(index - 1, -1, -1):
        if lines[above].strip() and not lines[above].lstrip().startswith("#"):
            return above
    return 0


# -- positions inside a scalar --------------------------------------------------------------------


def _align(text: str, scalar: Scalar, offset: int) -> int:
    """The character index in `text` of character `offset` of the scalar's value.

    Non-blank characters of a value appear in order in its source (quotes, escapes, indentation and
    folded line breaks are what lies between), so walk both; fall back to the scalar's start.
    """
    value, i = scalar.text, scalar.start
    if scalar.style in ("|", ">"):
        i = text.find("\n", i) + 1 or scalar.start
    elif scalar.style:
        i += 1
    for j, ch in enumerate(value[: offset + 1]):
        if ch.isspace():
            continue
        found = text.find(ch, i, scalar.end)
        if found < 0:
            return scalar.start
        if j == offset:
            return found
        i = found + 1
    # the offset is on a blank (or past the end): one past the previous character
    return min(i, max(scalar.end, scalar.start))


# -- suggestions and files ------------------------------------------------------------------------


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The closest of `choices` to a misspelt `word` (difflib, then case-insensitive), if any."""
    pool = list(choices)
    close = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    return close[0] if close else next((c for c in pool if c.casefold() == word.casefold()), None)


def suggest(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest of `choices`, or ''."""
    close = closest(word, choices)
    return f" (did you mean {close!r}?)" if close else ""


def read_yaml_file(path: Path, display: str, *, max_bytes: int = MAX_BYTES) -> Document:
    """load_yaml on a file; an unreadable file becomes a problem too (never reads past the cap)."""
    try:
        with path.open("rb") as stream:
            data = stream.read(max_bytes + 1)
    except OSError as exc:
        problem = RuleProblem(display, 1, 1, f"cannot read the file: {exc.strerror or exc}")
        return Document(display, "", None, (problem,))
    return load_yaml(data, display, max_bytes=max_bytes)


def yaml_files(directory: Path) -> list[Path]:
    """The *.yaml and *.yml files of a folder, sorted; hidden files (editor locks) are skipped."""
    if not directory.is_dir():
        return []
    return sorted(
        p
        for p in directory.iterdir()
        if p.suffix in (".yaml", ".yml") and not p.name.startswith(".") and not p.is_dir()
    )


def display_path(path: Path, root: Path) -> str:
    """`path` as the user reads it in messages: relative to `root` where possible, with '/'."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()
