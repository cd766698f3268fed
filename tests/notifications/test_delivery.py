"""Tests for notifications/delivery.py: the state machine with scripted notifiers (test doubles
of the Notifier protocol, not of our code), leases, give-up, two workers on one SQLite file."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from notifications.delivery import (
    OUTBOX_RETRY,
    SMTP_RETRY,
    WEBHOOK_RETRY,
    Notifier,
    NotifierGoneError,
    RetryPolicy,
    deliver_due,
    policy_of,
)
from notifications.digest import DigestView
from notifications.errors import DeliveryError
from pipeline.schedules import close_due_digests
from storage import outbox

T0 = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
World = Any  # the `world` fixture (tests/notifications/conftest.py)


@dataclass
class Scripted:
    """A notifier that raises the scripted errors in turn, then succeeds."""

    name: str = "mail"
    script: list[BaseException] = field(default_factory=list)
    sent: list[DigestView] = field(default_factory=list)
    retry_policy: RetryPolicy = SMTP_RETRY
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, digest: DigestView) -> str:
        with self.lock:
            if self.script:
                raise self.script.pop(0)
            self.sent.append(digest)
        return f"test {self.name}"


def close(world: World, now: datetime = T0) -> list[str]:
    return close_due_digests(world.db, {"panj-crossings": "immediate"}, now=now, tz=ZoneInfo("UTC"))


def test_sends_each_due_digest_once(world: World) -> None:
    notifier = Scripted()
    for n in range(3):
        world.alert(title=f"story {n}")
        close(world, T0 + timedelta(seconds=n))
    outcomes = deliver_due(world.db, {"mail": notifier}, now=T0 + timedelta(minutes=1))
    assert [o.state for o in outcomes] == ["sent"] * 3
    assert [v.entries[0].plain_title for v in notifier.sent] == ["story 0", "story 1", "story 2"]
    assert deliver_due(world.db, {"mail": notifier}, now=T0 + timedelta(hours=1)) == []
    assert all(v.attempted_at == T0 + timedelta(minutes=1) for v in notifier.sent)


def test_digests_of_unconfigured_notifiers_stay_queued(world: World) -> None:
    world.alert(notifiers=("mail", "old"))
    close(world)
    outcomes = deliver_due(world.db, {"mail": Scripted()}, now=T0)
    assert [o.notifier for o in outcomes] == ["mail"]
    assert world.status()["counts"]["queued"] == 1


def test_give_up_age_is_configurable(world: World) -> None:
    notifier = Scripted(script=[DeliveryError("451 later")] * 10)
    world.alert()
    close(world)
    now, states = T0, []
    while True:
        outcomes = deliver_due(
            world.db, {"mail": notifier}, now=now, give_up_after=timedelta(hours=1)
        )
        if not outcomes:
            break
        [out] = outcomes
        states.append(out.state)
        if out.next_attempt_at is None:
            break
        now = out.next_attempt_at
    assert states == ["failed"] * 5  # 0, 1, 6, 33 min, then 2 h 38 min: past 1 h, given up
    assert out.detail == "failed permanently: gave up after 1 h: 451 later"


def test_a_manual_retry_starts_a_fresh_give_up_window(world: World) -> None:
    notifier = Scripted(script=[DeliveryError("refused")] * 3)
    world.alert()
    close(world)
    [out] = deliver_due(world.db, {"mail": notifier}, now=T0, give_up_after=timedelta(minutes=10))
    [out] = deliver_due(
        world.db,
        {"mail": notifier},
        now=T0 + timedelta(hours=1),
        give_up_after=timedelta(minutes=10),
    )
    assert out.next_attempt_at is None and out.detail.startswith("failed permanently: gave up")
    with world.db.session() as s:
        outbox.retry(s, out.digest_id, T0)
    [again] = deliver_due(
        world.db,
        {"mail": notifier},
        now=T0 + timedelta(hours=2),
        give_up_after=timedelta(minutes=10),
    )
    assert again.state == "failed" and again.next_attempt_at is not None
    retry_in = again.next_attempt_at - (T0 + timedelta(hours=2))
    assert timedelta(seconds=54) <= retry_in <= timedelta(seconds=66)  # back to the first step


def test_permanent_and_gone_errors(world: World) -> None:
    notifier = Scripted(script=[DeliveryError("550 no such user", permanent=True)])
    chat = Scripted(name="chat", script=[NotifierGoneError("410 Gone")], retry_policy=WEBHOOK_RETRY)
    world.alert(notifiers=("mail", "chat"))
    close(world)
    outcomes = {
        o.notifier: o for o in deliver_due(world.db, {"mail": notifier, "chat": chat}, now=T0)
    }
    assert outcomes["mail"].detail == "failed permanently: 550 no such user"
    assert outcomes["chat"].detail == "failed permanently: 410 Gone"
    disabled = world.status()["disabled_notifiers"]
    assert [d["notifier"] for d in disabled] == ["chat"]


def test_retry_after_is_honoured_and_capped(world: World) -> None:
    notifier = Scripted(
        script=[DeliveryError("429", retry_after_s=10 * 86400)], retry_policy=WEBHOOK_RETRY
    )
    world.alert()
    close(world)
    [out] = deliver_due(world.db, {"mail": notifier}, now=T0)
    assert out.next_attempt_at == T0 + timedelta(hours=24)


@pytest.mark.parametrize(("policy", "state"), [(SMTP_RETRY, "uncertain"), (OUTBOX_RETRY, "failed")])
def test_a_crashing_notifier_is_uncertain_unless_resending_is_safe(
    world: World, policy: RetryPolicy, state: str
) -> None:
    notifier = Scripted(script=[RuntimeError("bug")], retry_policy=policy)
    world.alert()
    close(world)
    [out] = deliver_due(world.db, {"mail": notifier}, now=T0)
    assert out.state == state
    assert "internal error: RuntimeError('bug')" in out.detail


def test_sending_rows_of_a_missing_notifier_become_uncertain(world: World) -> None:
    world.alert()
    [digest_id] = close(world)
    with world.db.session() as s:
        outbox.claim_next_digest(
            s, notifiers=["mail"], now=T0, token="dead:1", lease=timedelta(minutes=5)
        )
    [out] = deliver_due(world.db, {}, now=T0 + timedelta(minutes=6))
    assert (out.digest_id, out.state) == (digest_id, "uncertain")


def test_retry_policies() -> None:
    rng = random.Random(5)
    steps = [SMTP_RETRY.delay(n, rng).total_seconds() for n in range(1, 9)]
    for got, base in zip(steps, [60, 300, 1800, 7200, 21600, 21600, 21600, 21600], strict=True):
        assert base * 0.9 <= got <= base * 1.1
    assert WEBHOOK_RETRY.delays[0] == timedelta(seconds=5)
    assert WEBHOOK_RETRY.delays[-1] == timedelta(hours=24)
    assert sum(WEBHOOK_RETRY.delays, timedelta()) > timedelta(days=3)
    assert policy_of(None) is SMTP_RETRY
    assert policy_of(Scripted(retry_policy=OUTBOX_RETRY)) is OUTBOX_RETRY


def test_two_workers_on_one_sqlite_file_send_each_digest_once(world: World) -> None:
    """RELIABILITY C2 on SQLite: leases and BEGIN IMMEDIATE keep sends unique."""
    notifier = Scripted()
    for n in range(12):
        world.alert(title=f"story {n}")
        close(world, T0 + timedelta(seconds=n))
    barrier = threading.Barrier(2)
    results: dict[str, list[Any]] = {}

    def work(name: str) -> None:
        barrier.wait()
        notifiers: dict[str, Notifier] = {"mail": notifier}
        results[name] = deliver_due(world.db, notifiers, now=T0 + timedelta(minutes=1), worker=name)

    threads = [threading.Thread(target=work, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    ids = [v.id for v in notifier.sent]
    assert len(ids) == 12 and len(set(ids)) == 12
    assert sum(len(r) for r in results.values()) == 12
    assert world.status()["counts"]["sent"] == 12
