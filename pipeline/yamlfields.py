"""Typed reads of a loaded YAML document: each mismatch a RuleProblem at the value's position."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from pipeline.ruletypes import RuleProblem
from pipeline.yamlsafe import Document, Map, Node, Scalar, Seq, closest, suggest


def describe(node: Node | None) -> str:
    """How a value reads in a message: 'a list', 'a mapping', 'the number 12', 'empty'."""
    if isinstance(node, Seq):
        return "a list"
    if isinstance(node, Map):
        return "a mapping"
    if node is None or node.value is None:
        return "empty"
    if isinstance(node.value, bool):
        return f"{node.text} (YAML reads it as {str(node.value).lower()})"
    if isinstance(node.value, int | float):
        return f"{node.text} (YAML reads it as the number {node.value})"
    return repr(node.value)


class Fields:
    """Typed reads of a document's values; every mismatch becomes a RuleProblem, none raises."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.problems: list[RuleProblem] = []

    def add(self, at: tuple[int, int], message: str, hint: str | None, severity: str) -> None:
        self.problems.append(RuleProblem(self.doc.path, *at, message, hint, severity))

    def error(self, at: Node, message: str, hint: str | None = None) -> None:
        self.add((at.line, at.col), message, hint, "error")

    def warn(self, at: Node, message: str, hint: str | None = None) -> None:
        self.add((at.line, at.col), message, hint, "warning")

    def error_at(self, scalar: Scalar, offset: int, message: str, hint: str | None = None) -> None:
        """An error at character `offset` of a scalar's value (past its end: just after it)."""
        text = scalar.text.rstrip()
        if offset < len(text):
            at = self.doc.position(scalar, offset)
        else:
            line, col = self.doc.position(scalar, max(len(text) - 1, 0))
            at = (line, col + (1 if text else 0))
        self.add(at, message, hint, "error")

    @property
    def failed(self) -> bool:
        return any(p.severity == "error" for p in self.problems)

    def keys(
        self, node: Map, allowed: Sequence[str], required: Mapping[str, str], what: str = ""
    ) -> None:
        """Unknown keys (with the closest allowed one); missing required ones (with an example)."""
        suggested: set[str | None] = set()
        for key, _ in node.entries:
            if key.text not in allowed:
                close = closest(key.text, allowed)
                suggested.add(close)
                hint = None if close else f"allowed keys{what}: {', '.join(allowed)}"
                self.error(key, f"unknown key {key.text!r}{suggest(key.text, allowed)}", hint)
        for name, example in required.items():
            if node.key(name) is None and name not in suggested:  # 'notfy': one message
                self.error(node, f"missing key `{name}`{what}", f"add {example}")

    def string(self, node: Map, key: str, example: str) -> str | None:
        """The string at `key`; None (after a problem) when it is missing, empty or not a string."""
        value = node.get(key)
        if value is None:
            return None
        if isinstance(value, Scalar) and isinstance(value.value, str) and value.value.strip():
            return value.value.strip()
        self.not_a_string(value, f"`{key}`", example, key)
        return None

    def not_a_string(self, value: Node, what: str, example: str, key: str = "") -> None:
        if isinstance(value, Scalar) and (value.value is None or str(value.value).strip() == ""):
            self.error(value, f"{what} is empty", f"write {example}")
        elif isinstance(value, Scalar) and value.style == "":
            quoted = f'{key}: "{value.text}"' if key else f'"{value.text}"'
            self.error(value, f"{what} must be a string; write it in quotes", f"write {quoted}")
        else:
            self.error(value, f"{what} must be a string, not {describe(value)}", f"write {example}")

    def strings(self, node: Map, key: str, example: str) -> list[Scalar] | None:
        """The non-empty strings of the list at `key`; None after a problem with the list itself."""
        value = node.get(key)
        if value is None:
            return None
        if isinstance(value, Scalar) and value.value is None:
            self.error(value, f"`{key}` is empty", f"write {example}")
            return None
        if not isinstance(value, Seq):
            hint = (
                f"write {key}: [{value.text}]" if isinstance(value, Scalar) else f"write {example}"
            )
            self.error(value, f"`{key}` must be a list, not {describe(value)}", hint)
            return None
        items = []
        for item in value.items:
            if isinstance(item, Scalar) and isinstance(item.value, str) and item.value.strip():
                items.append(item)
            else:
                self.not_a_string(item, f"an item of `{key}`", example)
        return items

    def schedule(self, node: Map, key: str, *, default: str) -> str | None:
        """The digest schedule at `key`, normalised ('Daily 8:00' → 'daily 08:00').

        An unquoted `08:00` (YAML 1.1 reads it as the number 480) gets a message of its own.
        """
        value = node.get(key)
        if value is None:
            return default
        if not (isinstance(value, Scalar) and isinstance(value.value, str)):
            if isinstance(value, Scalar) and ":" in value.text and value.style == "":
                message = f"`{key}` must be a string like `daily 08:00`; write it in quotes"
                self.error(value, message, f'write {key}: "daily {value.text}"')
            else:
                message = f"`{key}` must be a schedule, not {describe(value)}"
                self.error(value, message, SCHEDULE_HINT)
            return None
        try:
            return _parse_schedule(value.text, key)
        except _ScheduleError as exc:
            self.error_at(value, exc.offset, f"`{key}`: {exc.message}", exc.hint)
            return None

    def boolean(self, node: Map, key: str, default: bool) -> bool:
        value = node.get(key)
        if value is None:
            return default
        if isinstance(value, Scalar) and isinstance(value.value, bool):
            return value.value
        self.error(value, f"`{key}` must be true or false, not {describe(value)}")
        return default

    def choice(self, node: Map, key: str, choices: Sequence[str]) -> str | None:
        """The value at `key` when it is one of `choices` (e.g. `level: NO` is not)."""
        value = node.get(key)
        if value is None:
            return None
        if isinstance(value, Scalar) and isinstance(value.value, str) and value.value in choices:
            return value.value
        close = ""
        if isinstance(value, Scalar) and isinstance(value.value, str):
            close = suggest(value.value.strip().lower(), choices)
        self.error(value, f"`{key}` must be one of {', '.join(choices)}{close}")
        return None


# -- digest schedules -----------------------------------------------------------------------------

SCHEDULES = ("immediate", "hourly", "daily", "weekly")
SCHEDULE_HINT = "write immediate, hourly, daily HH:MM or weekly mon HH:MM"
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")


class _ScheduleError(Exception):
    def __init__(self, offset: int, message: str, hint: str) -> None:
        super().__init__(message)
        self.offset, self.message, self.hint = offset, message, hint


def _parse_schedule(text: str, key: str = "digest") -> str:
    """A digest schedule, normalised ('Daily 8:00' → 'daily 08:00'; 'Monday' → 'mon').

    Raises:
        _ScheduleError: with the offset in `text` of what is wrong (`Fields.schedule` reports it).
    """
    words = [(m.start(), m.group()) for m in re.finditer(r"\S+", text)]
    if not words:
        raise _ScheduleError(0, "the schedule is empty", SCHEDULE_HINT)
    (start, first), rest = words[0], words[1:]
    kind = first.lower()
    if kind not in SCHEDULES:
        if _TIME.match(first):
            raise _ScheduleError(
                start, f"{first!r} alone is not a schedule", f'write {key}: "daily {first}"'
            )
        raise _ScheduleError(
            start, f"unknown schedule {first!r}{suggest(kind, SCHEDULES)}", SCHEDULE_HINT
        )
    wanted = {"immediate": 0, "hourly": 0, "daily": 1, "weekly": 2}[kind]
    if len(rest) != wanted:
        example = "weekly mon 08:00" if kind == "weekly" else "daily 08:00"
        offset = rest[wanted][0] if len(rest) > wanted else len(text.rstrip())
        what = (
            "takes no day or time" if not wanted else f"needs {'a day and ' * (wanted - 1)}a time"
        )
        raise _ScheduleError(offset, f"{kind!r} {what}", f'write {key}: "{example}"')
    parts = [kind]
    if kind == "weekly":
        parts.append(_parse_day(*rest[0], time=rest[1][1], key=key))
    if rest:
        parts.append(_parse_time(*rest[-1]))
    return " ".join(parts)


def _parse_day(offset: int, word: str, *, time: str, key: str) -> str:
    day = word.lower()
    if day in _DAYS:
        return day
    if day in _DAY_NAMES:
        return _DAYS[_DAY_NAMES.index(day)]
    near = closest(day, _DAYS + _DAY_NAMES)
    close = f" (did you mean {near[:3]!r}?)" if near else ""  # a full name: its abbreviation
    hint = f'write a day as {", ".join(_DAYS)}, e.g. {key}: "weekly mon {time}"'
    raise _ScheduleError(offset, f"{word!r} is not a day of the week{close}", hint)


def _parse_time(offset: int, word: str) -> str:
    match = _TIME.match(word)
    if match and int(match[1]) < 24 and int(match[2]) < 60:
        return f"{int(match[1]):02d}:{match[2]}"
    raise _ScheduleError(
        offset, f"{word!r} is not a time of day", "write HH:MM from 00:00 to 23:59"
    )
