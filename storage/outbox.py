"""The outbox: alerts queued per (rule, notifier), digests, delivery attempts; all their SQL.

A digest row is the source of truth for delivery (DESIGN "Alerts and digests"):

    queued → sending → sent | failed (next_attempt_at set: will retry; unset: permanent) | uncertain

`sending` is committed before any server is contacted, under a lease (acquired_by holds a fencing
token, acquired_until its expiry), so a worker that dies mid-send leaves a row that the next run
can recognise and settle instead of silently sending twice. A notifier that can tell when the
receiver may start to hold the digest (SMTP: the final `.` of DATA) has the attempt's delivery
row marked `handover` just before; an attempt cut off before that mark never reached anyone.

What a digest holds is read by storage.outbox_entries, and status, retry and resend live in
storage.outbox_admin; both are re-exported here, so `from storage import outbox` reaches them all.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage.models import Alert, Delivery, Digest
from storage.outbox_admin import STATUS_RECENT as STATUS_RECENT
from storage.outbox_admin import HeldAlerts as HeldAlerts
from storage.outbox_admin import digest_status as digest_status
from storage.outbox_admin import disabled_notifiers as disabled_notifiers
from storage.outbox_admin import held_alerts as held_alerts
from storage.outbox_admin import resend as resend
from storage.outbox_admin import retry as retry
from storage.outbox_entries import LEVEL_RANK as LEVEL_RANK
from storage.outbox_entries import AlertEntry as AlertEntry
from storage.outbox_entries import ArticleCopy as ArticleCopy
from storage.outbox_entries import DigestData as DigestData
from storage.outbox_entries import DigestHeader as DigestHeader
from storage.outbox_entries import digest_entries as digest_entries
from storage.outbox_entries import digest_id_for as digest_id_for
from storage.outbox_entries import highest_level as highest_level
from storage.outbox_entries import iso as iso
from storage.outbox_entries import parse_hits as parse_hits
from storage.outbox_entries import pending
from storage.outbox_entries import pending_entries as pending_entries

logger = logging.getLogger(__name__)

HANDOVER = "handover"  # Delivery.outcome while the receiver may be taking the digest


@dataclass(frozen=True, slots=True)
class PendingGroup:
    """Alerts of one (rule, notifier) that belong to no digest yet."""

    rule_id: str
    notifier: str
    alerts: int
    first_alert_id: int


@dataclass(frozen=True, slots=True)
class Claim:
    """A digest leased to one worker for one attempt; `token` fences its later writes."""

    digest_id: str
    notifier: str
    token: str
    attempt: int
    created_at: datetime
    failing_since: datetime | None
    failures: int  # failed attempts since failing_since: the step in the retry schedule


@dataclass(frozen=True, slots=True)
class Interrupted:
    """A digest left `sending` by a worker whose lease expired (it died or stalled).

    `handed_over`: the attempt had reached its hand-over mark, so the receiver may have it.
    """

    digest_id: str
    notifier: str
    token: str
    attempt: int
    attempted_at: datetime
    handed_over: bool = False


def new_token(worker: str) -> str:
    """A fencing token for one claim: the worker's name and a random suffix."""
    return f"{worker}:{uuid.uuid4().hex[:12]}"


# ---------------------------------------------------------------------------------------------
# alerts


def queue_alerts(
    session: Session,
    *,
    match_id: int,
    article_id: int,
    rule_id: str,
    rule_version: str,
    rule_title: str,
    level: str,
    notifiers: Sequence[str],
    now: datetime,
) -> int:
    """Queues one alert per notifier for a stored match; returns how many were new.

    Idempotent: an alert already queued for (match, notifier) is left as it is.
    """
    existing = set(session.exec(select(Alert.notifier).where(Alert.match_id == match_id)).all())
    added = 0
    for name in dict.fromkeys(notifiers):
        if name in existing:
            continue
        session.add(
            Alert(
                match_id=match_id,
                article_id=article_id,
                rule_id=rule_id,
                rule_version=rule_version,
                rule_title=rule_title,
                level=level,
                notifier=name,
                created_at=now,
            )
        )
        added += 1
    session.flush()
    return added


def pending_groups(session: Session) -> list[PendingGroup]:
    """Every (rule, notifier) with alerts in no digest, held ones included."""
    query = (
        select(Alert.rule_id, Alert.notifier, sa.func.count(), sa.func.min(Alert.id))
        .where(pending())
        .group_by(col(Alert.rule_id), col(Alert.notifier))
        .order_by(col(Alert.rule_id), col(Alert.notifier))
    )
    return [
        PendingGroup(rule_id, notifier, int(n), int(first or 0))
        for rule_id, notifier, n, first in session.exec(query).all()
    ]


def hold_alerts(session: Session, *, rule_id: str, now: datetime) -> int:
    """Marks the pending alerts of a rule that no longer exists as held; returns how many."""
    result = session.exec(
        sa.update(Alert)
        .where(col(Alert.rule_id) == rule_id, pending(), col(Alert.held_at).is_(None))
        .values(held_at=now)
    )
    return int(result.rowcount)


def release_alerts(session: Session, *, rule_id: str) -> int:
    """Releases held alerts of a rule that exists again; returns how many."""
    result = session.exec(
        sa.update(Alert)
        .where(col(Alert.rule_id) == rule_id, pending(), col(Alert.held_at).is_not(None))
        .values(held_at=None)
    )
    return int(result.rowcount)


# ---------------------------------------------------------------------------------------------
# digests


def create_digest(
    session: Session,
    *,
    rule_id: str,
    notifier: str,
    period: str,
    before: datetime | None,
    now: datetime,
) -> str | None:
    """Closes the pending alerts of (rule, notifier) created before `before` (all if None) into
    the digest of `period`; returns its id, or None when the period is already used or no alert
    is due. A period never holds two digests, whatever the clock did (RELIABILITY K1).
    """
    digest_id = digest_id_for(rule_id, notifier, period)
    if session.get(Digest, digest_id) is not None:
        return None
    query = select(Alert).where(
        Alert.rule_id == rule_id,
        Alert.notifier == notifier,
        pending(),
        col(Alert.held_at).is_(None),
    )
    if before is not None:
        query = query.where(col(Alert.created_at) < before)
    alerts = session.exec(query.order_by(col(Alert.id)).with_for_update()).all()
    if not alerts:
        return None
    digest = Digest(
        id=digest_id,
        rule_id=rule_id,
        rule_title=alerts[-1].rule_title,
        level=highest_level(a.level for a in alerts),
        notifier=notifier,
        period=period,
        alert_count=len(alerts),
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(digest)
    except IntegrityError:  # another worker closed the same period a moment ago
        return None
    session.exec(
        sa.update(Alert)
        .where(col(Alert.id).in_([a.id for a in alerts]), pending())
        .values(digest_id=digest_id)
    )
    return digest_id


# ---------------------------------------------------------------------------------------------
# delivery


def claim_next_digest(
    session: Session,
    *,
    notifiers: Collection[str],
    now: datetime,
    token: str,
    lease: timedelta,
    skip: Collection[str] = (),
) -> Claim | None:
    """Leases the oldest due digest of one of `notifiers` and marks it `sending`.

    Due: queued, or failed with next_attempt_at ≤ now. Rows another worker has locked are
    skipped (FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite has one writer at a time anyway).
    Commit the session before contacting any server.
    """
    names = [n for n in notifiers if n not in disabled_notifiers(session)]
    if not names:
        return None
    due = sa.or_(
        col(Digest.state) == "queued",
        sa.and_(col(Digest.state) == "failed", col(Digest.next_attempt_at) <= now),
    )
    query = select(Digest).where(col(Digest.notifier).in_(names), due)
    if skip:
        query = query.where(col(Digest.id).not_in(list(skip)))
    query = query.order_by(col(Digest.created_at), col(Digest.id)).limit(1)
    digest = session.exec(query.with_for_update(skip_locked=True)).first()
    if digest is None:
        return None
    digest.state = "sending"
    digest.acquired_by = token
    digest.acquired_until = now + lease
    digest.attempts += 1
    digest.last_attempt_at = now
    session.add(digest)
    session.add(Delivery(digest_id=digest.id, attempt=digest.attempts, started_at=now))
    session.flush()
    return Claim(
        digest.id,
        digest.notifier,
        token,
        digest.attempts,
        digest.created_at,
        digest.failing_since,
        _failures_since(session, digest.id, digest.failing_since),
    )


def _failures_since(session: Session, digest_id: str, since: datetime | None) -> int:
    if since is None:
        return 0
    count = session.exec(
        select(sa.func.count())
        .select_from(Delivery)
        .where(
            col(Delivery.digest_id) == digest_id,
            col(Delivery.outcome) == "retry",
            col(Delivery.started_at) >= since,
        )
    ).one()
    return int(count)


def _leased(claim: Claim) -> Any:
    return sa.and_(
        col(Digest.id) == claim.digest_id,
        col(Digest.acquired_by) == claim.token,
        col(Digest.state) == "sending",
    )


def confirm_claim(session: Session, claim: Claim, *, now: datetime, lease: timedelta) -> bool:
    """The fencing check just before sending: True while this claim still holds the digest."""
    result = session.exec(
        sa.update(Digest).where(_leased(claim)).values(acquired_until=now + lease)
    )
    return bool(result.rowcount == 1)


def mark_handover(session: Session, claim: Claim, *, now: datetime) -> bool:
    """Records that the receiver may take the digest from now on (commit before going on).

    False, marking nothing, when the claim lost its lease: then the caller must not hand over.
    """
    held = session.exec(select(Digest.id).where(_leased(claim)).with_for_update()).first()
    if held is None:
        return False
    session.exec(
        sa.update(Delivery)
        .where(
            col(Delivery.digest_id) == claim.digest_id,
            col(Delivery.attempt) == claim.attempt,
            col(Delivery.outcome) == "started",
        )
        .values(outcome=HANDOVER, detail=f"handed over at {iso(now)}")
    )
    return True


def record_sent(session: Session, claim: Claim, *, now: datetime, delivered_to: str) -> None:
    """The server accepted the digest: `sent`. Recorded even if the lease was lost meanwhile,
    since the server's acceptance is the truth."""
    session.exec(
        sa.update(Digest)
        .where(col(Digest.id) == claim.digest_id)
        .values(
            state="sent",
            sent_at=now,
            delivered_to=delivered_to,
            last_error=None,
            next_attempt_at=None,
            failing_since=None,
            uncertain_at=None,
            acquired_by=None,
            acquired_until=None,
        )
    )
    _finish_delivery(session, claim.digest_id, claim.attempt, now, "sent", delivered_to)


def record_failure(
    session: Session,
    claim: Claim,
    *,
    now: datetime,
    state: str,
    error: str,
    next_attempt_at: datetime | None = None,
    notifier_disabled: bool = False,
) -> bool:
    """The attempt failed: `failed` (retry at next_attempt_at, or permanent) or `uncertain`.

    Returns False, writing nothing to the digest, when the claim lost its lease meanwhile.
    """
    assert state in ("failed", "uncertain")
    values: dict[str, Any] = {
        "state": state,
        "last_error": error,
        "next_attempt_at": next_attempt_at,
        "acquired_by": None,
        "acquired_until": None,
        "notifier_disabled": notifier_disabled,
    }
    if next_attempt_at is not None:
        values["failing_since"] = claim.failing_since or now
    if state == "uncertain":
        values["uncertain_at"] = now
    result = session.exec(sa.update(Digest).where(_leased(claim)).values(**values))
    outcome = "uncertain" if state == "uncertain" else "retry" if next_attempt_at else "failed"
    _finish_delivery(session, claim.digest_id, claim.attempt, now, outcome, error)
    return bool(result.rowcount == 1)


def _finish_delivery(
    session: Session, digest_id: str, attempt: int, now: datetime, outcome: str, detail: str
) -> None:
    session.exec(
        sa.update(Delivery)
        .where(
            col(Delivery.digest_id) == digest_id,
            col(Delivery.attempt) == attempt,
            col(Delivery.outcome).in_(("started", HANDOVER)),
        )
        .values(finished_at=now, outcome=outcome, detail=detail[:2000])
    )


def interrupted_digests(session: Session, *, now: datetime) -> list[Interrupted]:
    """Digests left `sending` whose lease has expired: their worker died or stalled."""
    rows = session.exec(
        select(Digest)
        .where(col(Digest.state) == "sending", col(Digest.acquired_until) < now)
        .order_by(col(Digest.created_at))
        .with_for_update(skip_locked=True)
    ).all()
    handed = _handed_over(session, [d.id for d in rows])
    return [
        Interrupted(
            d.id,
            d.notifier,
            d.acquired_by or "",
            d.attempts,
            d.last_attempt_at or now,
            (d.id, d.attempts) in handed,
        )
        for d in rows
    ]


def _handed_over(session: Session, digest_ids: list[str]) -> set[tuple[str, int]]:
    if not digest_ids:
        return set()
    rows = session.exec(
        select(Delivery.digest_id, Delivery.attempt).where(
            col(Delivery.digest_id).in_(digest_ids), col(Delivery.outcome) == HANDOVER
        )
    ).all()
    return {(digest_id, attempt) for digest_id, attempt in rows}


def settle_interrupted(
    session: Session, item: Interrupted, *, now: datetime, state: str, detail: str
) -> bool:
    """Settles an interrupted attempt: `uncertain` (not resent) or `queued` (sent again)."""
    assert state in ("uncertain", "queued")
    values: dict[str, Any] = {"state": state, "acquired_by": None, "acquired_until": None}
    if state == "uncertain":
        values |= {"uncertain_at": item.attempted_at, "last_error": detail}
    result = session.exec(
        sa.update(Digest)
        .where(
            col(Digest.id) == item.digest_id,
            col(Digest.state) == "sending",
            col(Digest.acquired_by) == item.token,
        )
        .values(**values)
    )
    outcome = "uncertain" if state == "uncertain" else "interrupted"
    _finish_delivery(session, item.digest_id, item.attempt, now, outcome, detail)
    return bool(result.rowcount == 1)
