"""The outbox as its user sees and steers it: status, held alerts, disabled notifiers, resend.

Retry and resend put digests back in the queue. `storage.outbox` re-exports every name here, so
`outbox.retry(...)` and `outbox.digest_status(...)` keep working; new code may import from here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.errors import StorageError
from storage.models import DIGEST_STATES, Alert, Digest
from storage.outbox_entries import iso, pending

logger = logging.getLogger(__name__)

STATUS_RECENT = 50


@dataclass(frozen=True, slots=True)
class HeldAlerts:
    """Alerts kept because their rule no longer exists (RELIABILITY R7)."""

    rule_id: str
    alerts: int
    since: datetime


def held_alerts(session: Session) -> list[HeldAlerts]:
    """Held alerts per missing rule, for `status` ("rule X removed; 3 alerts held")."""
    query = (
        select(Alert.rule_id, sa.func.count(), sa.func.min(Alert.held_at))
        .where(pending(), col(Alert.held_at).is_not(None))
        .group_by(col(Alert.rule_id))
        .order_by(col(Alert.rule_id))
    )
    rows = session.exec(query).all()
    return [HeldAlerts(rule_id, int(n), since) for rule_id, n, since in rows if since is not None]


def disabled_notifiers(session: Session) -> dict[str, tuple[datetime | None, str | None]]:
    """Notifiers that said they are gone (webhook 410): name → (when, why)."""
    rows = session.exec(
        select(Digest.notifier, Digest.last_attempt_at, Digest.last_error)
        .where(col(Digest.notifier_disabled).is_(True))
        .order_by(col(Digest.last_attempt_at))
    ).all()
    return {notifier: (at, error) for notifier, at, error in rows}


# ---------------------------------------------------------------------------------------------
# the CLI's verbs


def retry(session: Session, digest_id: str | None, now: datetime) -> list[str]:
    """`digest retry ID|--all`: failed digests go back to the queue, now; returns their ids.

    Retrying a digest of a disabled notifier (webhook 410) enables the notifier again.

    Raises:
        StorageError: the digest does not exist or is not failed.
    """
    query = select(Digest).where(col(Digest.state) == "failed")
    if digest_id is not None:
        digest = _get(session, digest_id)
        if digest.state != "failed":
            raise StorageError(
                f"digest {digest_id} is {digest.state}, not failed; nothing to retry",
                hint=f"`newswatch digest resend {digest_id}` sends it again"
                if digest.state in ("sent", "uncertain")
                else None,
            )
        query = query.where(col(Digest.id) == digest_id)
    digests = session.exec(query.order_by(col(Digest.created_at))).all()
    for digest in digests:
        _requeue(session, digest)
    logger.info("digests requeued count=%d at=%s", len(digests), iso(now))
    return [d.id for d in digests]


def resend(session: Session, digest_id: str, now: datetime) -> None:
    """`digest resend ID`: queue a sent, uncertain or failed digest to be sent again.

    Raises:
        StorageError: the digest does not exist, or is queued or being sent.
    """
    digest = _get(session, digest_id)
    if digest.state in ("queued", "sending"):
        raise StorageError(f"digest {digest_id} is {digest.state} already; nothing to resend")
    _requeue(session, digest)
    logger.info("digest resend requested digest=%s at=%s", digest_id, iso(now))


def _get(session: Session, digest_id: str) -> Digest:
    digest = session.get(Digest, digest_id)
    if digest is None:
        raise StorageError(f"no digest {digest_id!r}", hint="`newswatch status` lists digests")
    return digest


def _requeue(session: Session, digest: Digest) -> None:
    if digest.notifier_disabled:
        session.exec(
            sa.update(Digest)
            .where(col(Digest.notifier) == digest.notifier)
            .values(notifier_disabled=False)
        )
    digest.state = "queued"
    digest.next_attempt_at = None
    digest.failing_since = None
    digest.uncertain_at = None
    digest.notifier_disabled = False
    session.add(digest)
    session.flush()


# ---------------------------------------------------------------------------------------------
# status


def digest_status(session: Session) -> dict[str, Any]:
    """The digest part of `status --json`: counts, recent and unsent digests, held alerts."""
    counts: dict[str, int] = dict.fromkeys(DIGEST_STATES, 0)
    for state, n in session.exec(
        select(Digest.state, sa.func.count()).group_by(col(Digest.state))
    ).all():
        counts[state] = int(n)
    held = held_alerts(session)
    counts["held_alerts"] = sum(h.alerts for h in held)
    waiting = session.exec(
        select(sa.func.count()).select_from(Alert).where(pending(), col(Alert.held_at).is_(None))
    ).one()
    counts["pending_alerts"] = int(waiting)
    return {
        "counts": counts,
        "digests": [_digest_json(d) for d in _status_digests(session)],
        "held": [{"rule": h.rule_id, "alerts": h.alerts, "since": iso(h.since)} for h in held],
        "disabled_notifiers": [
            {"notifier": name, "since": iso(at), "reason": why}
            for name, (at, why) in disabled_notifiers(session).items()
        ],
    }


def _status_digests(session: Session) -> list[Digest]:
    newest = col(Digest.created_at).desc()
    recent = session.exec(select(Digest).order_by(newest).limit(STATUS_RECENT)).all()
    unsent = session.exec(select(Digest).where(col(Digest.state) != "sent").order_by(newest)).all()
    by_id = {d.id: d for d in [*recent, *unsent]}
    return sorted(by_id.values(), key=lambda d: (d.created_at, d.id), reverse=True)


def _digest_json(digest: Digest) -> dict[str, Any]:
    return {
        "id": digest.id,
        "rule": digest.rule_id,
        "notifier": digest.notifier,
        "state": digest.state,
        "alerts": digest.alert_count,
        "created_at": iso(digest.created_at),
        "sent_at": iso(digest.sent_at),
        "attempts": digest.attempts,
        "next_attempt_at": iso(digest.next_attempt_at),
        "last_error": digest.last_error,
        "delivered_to": digest.delivered_to,
    }
