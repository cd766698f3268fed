"""Digest schedules (immediate, hourly, daily HH:MM, weekly DAY HH:MM) and closing due digests.

Slots are wall-clock times in the configured timezone, computed with zoneinfo, so `daily 08:00`
fires once a day on DST transition days too. A slot is the digest's period: the outbox refuses a
second digest for a period already used, so a clock that jumps back never repeats a digest, and a
service that was down over several slots sends one digest on start, not one per missed slot.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session

from storage import outbox
from storage.engine import Database

logger = logging.getLogger(__name__)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
KINDS = ("immediate", "hourly", "daily", "weekly")
_EXAMPLES = "write immediate, hourly, daily 08:00 or weekly mon 08:00"
_TIME = re.compile(r"(\d{1,2}):(\d{2})")


@dataclass(frozen=True, slots=True)
class Schedule:
    """A parsed digest schedule; `weekday` is 0 for Monday."""

    kind: str
    hour: int = 0
    minute: int = 0
    weekday: int = 0

    @property
    def is_immediate(self) -> bool:
        return self.kind == "immediate"

    def __str__(self) -> str:
        clock = f"{self.hour:02d}:{self.minute:02d}"
        if self.kind == "daily":
            return f"daily {clock}"
        if self.kind == "weekly":
            return f"weekly {WEEKDAYS[self.weekday]} {clock}"
        return self.kind

    def latest_slot(self, now: datetime, tz: ZoneInfo) -> datetime | None:
        """The latest slot at or before `now`, in UTC; None for immediate."""
        local = now.astimezone(tz)
        if self.kind == "immediate":
            return None
        if self.kind == "hourly":
            # replace() keeps `fold`, so the repeated hour of a DST fall-back is its own slot.
            return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        day = local.date()
        if self.kind == "weekly":
            day -= timedelta(days=(day.weekday() - self.weekday) % 7)
        slot = self._at(day, tz)
        if slot > now:
            slot = self._at(day - timedelta(days=7 if self.kind == "weekly" else 1), tz)
        return slot

    def next_slot(self, now: datetime, tz: ZoneInfo) -> datetime | None:
        """The first slot after `now`, in UTC (for status and previews); None for immediate."""
        if self.kind == "immediate":
            return None
        if self.kind == "hourly":
            return self.latest_slot(now + timedelta(hours=1), tz)
        step = timedelta(days=7 if self.kind == "weekly" else 1)
        day = now.astimezone(tz).date()
        if self.kind == "weekly":
            day += timedelta(days=(self.weekday - day.weekday()) % 7)
        slot = self._at(day, tz)
        return slot if slot > now else self._at(day + step, tz)

    def _at(self, day: date, tz: ZoneInfo) -> datetime:
        # A wall time skipped by DST (02:30 on a spring-forward day) maps, with fold=0, to the
        # instant just after the gap; a repeated one (fall-back) to its first occurrence: either
        # way exactly one instant per day.
        return datetime.combine(day, time(self.hour, self.minute), tzinfo=tz).astimezone(UTC)


def parse_schedule(text: str) -> Schedule:
    """Parses a rule's `digest:` value.

    Raises:
        ValueError: the text is not a schedule; the message says what to write.
    """
    if not isinstance(text, str):
        raise ValueError(f"digest schedule must be a string like 'daily 08:00'; {_EXAMPLES}")
    words = text.strip().lower().split()
    if not words or words[0] not in KINDS:
        raise ValueError(f"unknown digest schedule {text!r}; {_EXAMPLES}")
    kind, args = words[0], words[1:]
    expected = {"immediate": 0, "hourly": 0, "daily": 1, "weekly": 2}[kind]
    if len(args) != expected:
        example = {"daily": "daily 08:00", "weekly": "weekly mon 08:00"}.get(kind, kind)
        raise ValueError(f"digest schedule {text!r} is malformed; write it like {example!r}")
    if kind in ("immediate", "hourly"):
        return Schedule(kind)
    weekday = _parse_weekday(args[0], text) if kind == "weekly" else 0
    hour, minute = _parse_time(args[-1], text)
    return Schedule(kind, hour, minute, weekday)


def _parse_weekday(word: str, text: str) -> int:
    for index, name in enumerate(WEEKDAYS):
        if len(word) >= 3 and (word == name or _FULL_DAYS[index].startswith(word)):
            return index
    raise ValueError(f"unknown weekday {word!r} in digest schedule {text!r}; write mon … sun")


def _parse_time(word: str, text: str) -> tuple[int, int]:
    found = _TIME.fullmatch(word)
    if found is None:
        raise ValueError(f"time {word!r} in digest schedule {text!r} must be HH:MM, e.g. 08:00")
    hour, minute = int(found[1]), int(found[2])
    if hour > 23 or minute > 59:
        raise ValueError(f"time {word!r} in digest schedule {text!r} is not a time of day")
    return hour, minute


def period_of(schedule: Schedule, *, now: datetime, tz: ZoneInfo, first_alert_id: int) -> str:
    """The period a digest closed at `now` belongs to: its slot, or `immediate:<alert id>`."""
    slot = schedule.latest_slot(now, tz)
    if slot is None:
        return f"immediate:{first_alert_id}"
    stamp = outbox.iso(slot)
    assert stamp is not None
    return stamp


def close_due_digests(
    db: Database, schedules: Mapping[str, str], *, now: datetime, tz: ZoneInfo
) -> list[str]:
    """Closes every due (rule, notifier) queue into a digest; returns the ids created.

    `schedules` maps each existing rule id to its digest schedule. Alerts of a rule missing from
    it are held (kept, not sent, shown in status) until the rule comes back (RELIABILITY R7).
    Each (rule, notifier) closes in its own transaction, so one bad rule cannot block others.
    """
    with db.session() as session:
        groups = outbox.pending_groups(session)
    created: list[str] = []
    for group in groups:
        with db.session() as session:
            digest_id = _close_group(session, group, schedules, now=now, tz=tz)
        if digest_id is not None:
            logger.info(
                "digest queued digest=%s rule=%s notifier=%s",
                digest_id,
                group.rule_id,
                group.notifier,
            )
            created.append(digest_id)
    return created


def _close_group(
    session: Session,
    group: outbox.PendingGroup,
    schedules: Mapping[str, str],
    *,
    now: datetime,
    tz: ZoneInfo,
) -> str | None:
    text = schedules.get(group.rule_id)
    if text is None:
        held = outbox.hold_alerts(session, rule_id=group.rule_id, now=now)
        if held:
            logger.warning("rule %s removed; %d alerts held until it returns", group.rule_id, held)
        return None
    outbox.release_alerts(session, rule_id=group.rule_id)
    try:
        schedule = parse_schedule(text)
    except ValueError as exc:
        logger.error("rule %s: %s; its alerts wait", group.rule_id, exc)
        return None
    period = period_of(schedule, now=now, tz=tz, first_alert_id=group.first_alert_id)
    before = None if schedule.is_immediate else schedule.latest_slot(now, tz)
    return outbox.create_digest(
        session,
        rule_id=group.rule_id,
        notifier=group.notifier,
        period=period,
        before=before,
        now=now,
    )
