"""Tests for pipeline/schedules.py: parsing, DST-correct slots, and closing due digests."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import col, select

from pipeline.schedules import Schedule, close_due_digests, parse_schedule
from storage import outbox
from storage.engine import Database
from storage.models import Alert, Article, Digest, Feed, Match

BERLIN = ZoneInfo("Europe/Berlin")
DUSHANBE = ZoneInfo("Asia/Dushanbe")
T0 = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("immediate", Schedule("immediate")),
        ("hourly", Schedule("hourly")),
        ("daily 08:00", Schedule("daily", 8, 0)),
        ("  Daily   8:05 ", Schedule("daily", 8, 5)),
        ("weekly mon 08:00", Schedule("weekly", 8, 0, 0)),
        ("weekly sun 23:59", Schedule("weekly", 23, 59, 6)),
        ("weekly Friday 17:30", Schedule("weekly", 17, 30, 4)),
    ],
)
def test_parse_schedule(text: str, expected: Schedule) -> None:
    assert parse_schedule(text) == expected


def test_schedule_prints_back_canonically() -> None:
    assert [str(parse_schedule(t)) for t in ("daily 8:05", "weekly TUE 7:00", "hourly")] == [
        "daily 08:05",
        "weekly tue 07:00",
        "hourly",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "",
            "unknown digest schedule ''; write immediate, hourly, daily 08:00 or weekly mon 08:00",
        ),
        (
            "twice a day",
            "unknown digest schedule 'twice a day'; "
            "write immediate, hourly, daily 08:00 or weekly mon 08:00",
        ),
        ("daily", "digest schedule 'daily' is malformed; write it like 'daily 08:00'"),
        ("hourly 10", "digest schedule 'hourly 10' is malformed; write it like 'hourly'"),
        ("daily 25:00", "time '25:00' in digest schedule 'daily 25:00' is not a time of day"),
        ("daily 8h", "time '8h' in digest schedule 'daily 8h' must be HH:MM, e.g. 08:00"),
        (
            "weekly mo 08:00",
            "unknown weekday 'mo' in digest schedule 'weekly mo 08:00'; write mon … sun",
        ),
        (
            "weekly 08:00",
            "digest schedule 'weekly 08:00' is malformed; write it like 'weekly mon 08:00'",
        ),
    ],
)
def test_parse_schedule_errors_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_schedule(text)
    assert str(info.value) == message


def test_yaml_coerced_values_are_refused() -> None:
    with pytest.raises(ValueError, match="must be a string"):
        parse_schedule(750)  # type: ignore[arg-type]  # `digest: 12:30` in YAML 1.1


# ---------------------------------------------------------------------------------------------
# slots


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_daily_slot_in_the_configured_timezone() -> None:
    daily = parse_schedule("daily 08:00")
    # 08:00 in Dushanbe (+05) is 03:00 UTC
    assert daily.latest_slot(utc(2026, 3, 10, 3, 0), DUSHANBE) == utc(2026, 3, 10, 3, 0)
    assert daily.latest_slot(utc(2026, 3, 10, 2, 59), DUSHANBE) == utc(2026, 3, 9, 3, 0)
    assert daily.next_slot(utc(2026, 3, 10, 3, 0), DUSHANBE) == utc(2026, 3, 11, 3, 0)


def test_weekly_slot() -> None:
    weekly = parse_schedule("weekly mon 08:00")
    # 2026-03-09 is a Monday
    assert weekly.latest_slot(utc(2026, 3, 12, 12), DUSHANBE) == utc(2026, 3, 9, 3)
    assert weekly.latest_slot(utc(2026, 3, 9, 2, 59), DUSHANBE) == utc(2026, 3, 2, 3)
    assert weekly.next_slot(utc(2026, 3, 9, 3), DUSHANBE) == utc(2026, 3, 16, 3)
    assert weekly.next_slot(utc(2026, 3, 8, 3), DUSHANBE) == utc(2026, 3, 9, 3)


def test_hourly_and_immediate_slots() -> None:
    assert parse_schedule("hourly").latest_slot(utc(2026, 3, 10, 8, 59, 59), DUSHANBE) == utc(
        2026, 3, 10, 8
    )
    assert parse_schedule("hourly").next_slot(utc(2026, 3, 10, 8, 0), DUSHANBE) == utc(
        2026, 3, 10, 9
    )
    assert parse_schedule("immediate").latest_slot(T0, DUSHANBE) is None
    assert parse_schedule("immediate").next_slot(T0, DUSHANBE) is None


def slots_seen(
    schedule: Schedule, start: datetime, end: datetime, step: timedelta
) -> list[datetime]:
    """Every distinct latest slot a clock ticking from start to end observes."""
    seen: list[datetime] = []
    now = start
    while now <= end:
        slot = schedule.latest_slot(now, BERLIN)
        assert slot is not None and slot <= now
        if not seen or seen[-1] != slot:
            seen.append(slot)
        now += step
    return seen


@pytest.mark.parametrize(
    "day",
    [datetime(2026, 3, 29, tzinfo=BERLIN), datetime(2026, 10, 25, tzinfo=BERLIN)],
    ids=["spring-forward", "fall-back"],
)
def test_daily_fires_once_on_dst_transition_days(day: datetime) -> None:
    """RELIABILITY K2: `daily 08:00` in Europe/Berlin fires exactly once on both days."""
    slots = slots_seen(
        parse_schedule("daily 08:00"),
        (day - timedelta(days=1)).astimezone(UTC),
        (day + timedelta(days=2)).astimezone(UTC),
        timedelta(minutes=7),
    )
    local = [s.astimezone(BERLIN) for s in slots]
    on_day = [s for s in local if s.date() == day.date()]
    assert len(on_day) == 1
    assert (on_day[0].hour, on_day[0].minute) == (8, 0)
    assert all((s.hour, s.minute) == (8, 0) for s in local)


def test_daily_at_a_skipped_or_repeated_wall_time_fires_once() -> None:
    at_0230 = parse_schedule("daily 02:30")
    spring = slots_seen(at_0230, utc(2026, 3, 28, 12), utc(2026, 3, 30, 12), timedelta(minutes=5))
    fall = slots_seen(at_0230, utc(2026, 10, 24, 12), utc(2026, 10, 26, 12), timedelta(minutes=5))
    assert [s.date().isoformat() for s in spring] == ["2026-03-28", "2026-03-29", "2026-03-30"]
    assert [s.date().isoformat() for s in fall] == ["2026-10-24", "2026-10-25", "2026-10-26"]
    # 02:30 does not exist on 29 March: the slot is the instant the gap ends (01:30 UTC)
    assert spring[1] == utc(2026, 3, 29, 1, 30)
    # 02:30 happens twice on 25 October: the first one (CEST) is the slot
    assert fall[1] == utc(2026, 10, 25, 0, 30)


def test_hourly_has_25_slots_on_a_fall_back_day() -> None:
    start = datetime(2026, 10, 25, tzinfo=BERLIN).astimezone(UTC)
    slots = slots_seen(
        parse_schedule("hourly"),
        start,
        start + timedelta(hours=24, minutes=59),
        timedelta(minutes=10),
    )
    assert len(slots) == 25
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(slots))


# ---------------------------------------------------------------------------------------------
# closing digests


def queue(
    db: Database, *, now: datetime, rule: str = "panj", notifiers: tuple[str, ...] = ("mail",)
) -> None:
    """One article, one match, and its alerts, stored at `now`."""
    with db.session() as s:
        feed = s.get(Feed, 1) or Feed(id=1, name="ozodi", url="https://example.org/rss")
        s.add(feed)
        count = len(s.exec(select(Article)).all())
        article = Article(
            feed_id=1,
            guid=f"g{count}",
            title=f"Clash near Jurm {count}",
            published_at=now,
            fetched_at=now,
            content_hash=f"h{count}",
        )
        s.add(article)
        s.flush()
        assert article.id is not None
        match = Match(
            article_id=article.id,
            rule_id=rule,
            rule_version="v1",
            hits=json.dumps([]),
            created_at=now,
        )
        s.add(match)
        s.flush()
        assert match.id is not None
        outbox.queue_alerts(
            s,
            match_id=match.id,
            article_id=article.id,
            rule_id=rule,
            rule_version="v1",
            rule_title="Panj",
            level="high",
            notifiers=notifiers,
            now=now,
        )


def digests(db: Database) -> list[Digest]:
    with db.session() as s:
        return list(
            s.exec(select(Digest).order_by(col(Digest.created_at), col(Digest.period))).all()
        )


def pending(db: Database) -> int:
    with db.session() as s:
        return len(s.exec(select(Alert).where(col(Alert.digest_id).is_(None))).all())


def test_immediate_closes_a_digest_per_notifier_at_once(db: Database) -> None:
    queue(db, now=T0, notifiers=("mail", "chat"))
    queue(db, now=T0, notifiers=("mail", "chat"))
    created = close_due_digests(db, {"panj": "immediate"}, now=T0, tz=DUSHANBE)
    assert len(created) == 2
    assert sorted((d.notifier, d.alert_count, d.period) for d in digests(db)) == [
        ("chat", 2, "immediate:2"),
        ("mail", 2, "immediate:1"),
    ]
    assert close_due_digests(db, {"panj": "immediate"}, now=T0, tz=DUSHANBE) == []
    assert all(len(i) == 20 and int(i, 16) >= 0 for i in created)


def test_daily_waits_for_its_slot_and_takes_alerts_before_it(db: Database) -> None:
    schedules = {"panj": "daily 08:00"}  # 03:00 UTC in Dushanbe
    queue(db, now=utc(2026, 3, 10, 1))
    assert close_due_digests(db, schedules, now=utc(2026, 3, 10, 2, 59), tz=DUSHANBE) == []
    queue(db, now=utc(2026, 3, 10, 3, 30))  # after the slot: next day's digest
    [digest_id] = close_due_digests(db, schedules, now=utc(2026, 3, 10, 4), tz=DUSHANBE)
    [digest] = digests(db)
    assert (digest.id, digest.alert_count, digest.period) == (digest_id, 1, "2026-03-10T03:00:00Z")
    assert pending(db) == 1
    assert close_due_digests(db, schedules, now=utc(2026, 3, 10, 23), tz=DUSHANBE) == []
    assert len(close_due_digests(db, schedules, now=utc(2026, 3, 11, 3), tz=DUSHANBE)) == 1


def test_service_down_over_several_slots_sends_one_digest(db: Database) -> None:
    for hour in range(5):
        queue(db, now=utc(2026, 3, 10, hour, 30))
    created = close_due_digests(db, {"panj": "hourly"}, now=utc(2026, 3, 10, 9, 10), tz=DUSHANBE)
    assert len(created) == 1
    assert [(d.alert_count, d.period) for d in digests(db)] == [(5, "2026-03-10T09:00:00Z")]


def test_clock_jumping_back_never_makes_a_second_digest_for_a_slot(db: Database) -> None:
    """RELIABILITY K1: forward 3 h, then back 1 h; each period at most once."""
    schedules = {"panj": "hourly"}
    queue(db, now=utc(2026, 3, 10, 8, 5))
    assert len(close_due_digests(db, schedules, now=utc(2026, 3, 10, 11, 5), tz=DUSHANBE)) == 1
    queue(db, now=utc(2026, 3, 10, 10, 10))  # the clock went back an hour
    assert close_due_digests(db, schedules, now=utc(2026, 3, 10, 10, 20), tz=DUSHANBE) == []
    assert close_due_digests(db, schedules, now=utc(2026, 3, 10, 11, 5), tz=DUSHANBE) == []
    assert pending(db) == 1  # kept for the next slot, not dropped
    assert len(close_due_digests(db, schedules, now=utc(2026, 3, 10, 12, 0), tz=DUSHANBE)) == 1
    periods = [d.period for d in digests(db)]
    assert periods == ["2026-03-10T11:00:00Z", "2026-03-10T12:00:00Z"]


def test_daily_digest_across_dst_in_berlin(db: Database) -> None:
    schedules = {"panj": "daily 08:00"}
    made = []
    now = datetime(2026, 3, 28, 0, 0, tzinfo=BERLIN).astimezone(UTC)
    while now < datetime(2026, 3, 31, 0, 0, tzinfo=BERLIN).astimezone(UTC):
        queue(db, now=now)
        made += close_due_digests(db, schedules, now=now, tz=BERLIN)
        now += timedelta(minutes=45)
    local = [datetime.fromisoformat(d.period).astimezone(BERLIN) for d in digests(db)]
    assert [(t.day, t.hour) for t in local] == [(28, 8), (29, 8), (30, 8)]
    assert len(made) == 3


def test_alerts_of_a_removed_rule_are_held_and_reported_then_released(db: Database) -> None:
    """RELIABILITY R7."""
    queue(db, now=T0, rule="gone")
    queue(db, now=T0, rule="gone")
    queue(db, now=T0, rule="panj")
    created = close_due_digests(db, {"panj": "immediate"}, now=T0, tz=DUSHANBE)
    assert len(created) == 1
    with db.session() as s:
        held = outbox.held_alerts(s)
        status = outbox.digest_status(s)
    assert [(h.rule_id, h.alerts, h.since) for h in held] == [("gone", 2, T0)]
    assert status["held"] == [{"rule": "gone", "alerts": 2, "since": "2026-03-10T08:00:00Z"}]
    assert status["counts"]["held_alerts"] == 2
    assert status["counts"]["pending_alerts"] == 0
    later = T0 + timedelta(days=3)
    assert close_due_digests(db, {"panj": "immediate"}, now=later, tz=DUSHANBE) == []
    [back] = close_due_digests(
        db, {"panj": "immediate", "gone": "immediate"}, now=later, tz=DUSHANBE
    )
    with db.session() as s:
        assert outbox.held_alerts(s) == []
        assert s.get(Digest, back).alert_count == 2  # type: ignore[union-attr]


def test_a_bad_schedule_leaves_its_alerts_waiting(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    queue(db, now=T0, rule="panj")
    queue(db, now=T0, rule="other")
    created = close_due_digests(db, {"panj": "daily 8", "other": "immediate"}, now=T0, tz=DUSHANBE)
    assert len(created) == 1
    assert pending(db) == 1
    assert "rule panj: time '8' in digest schedule 'daily 8' must be HH:MM" in caplog.text
