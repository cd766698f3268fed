"""The outbox: alerts queued per (rule, notifier), digests, delivery attempts; all their SQL.

A digest row is the source of truth for delivery (DESIGN "Alerts and digests"):

    queued → sending → sent | failed (next_attempt_at set: will retry; unset: permanent) | uncertain

`sending` is committed before any server is contacted, under a lease (acquired_by holds a fencing
token, acquired_until its expiry), so a worker that dies mid-send leaves a row that the next run
can recognise and settle instead of silently sending twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage.errors import StorageError
from storage.models import DIGEST_STATES, Alert, Article, Delivery, Digest, Feed, Match

logger = logging.getLogger(__name__)

LEVEL_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
STATUS_RECENT = 50


@dataclass(frozen=True, slots=True)
class PendingGroup:
    """Alerts of one (rule, notifier) that belong to no digest yet."""

    rule_id: str
    notifier: str
    alerts: int
    first_alert_id: int


@dataclass(frozen=True, slots=True)
class HeldAlerts:
    """Alerts kept because their rule no longer exists (RELIABILITY R7)."""

    rule_id: str
    alerts: int
    since: datetime


@dataclass(frozen=True, slots=True)
class ArticleCopy:
    """One stored copy of a story: the first article or a syndicated duplicate of it."""

    article_id: int
    feed: str
    link: str | None


@dataclass(frozen=True, slots=True)
class AlertEntry:
    """One alert with what a digest shows of it: the article, its feed, the match's hits."""

    alert_id: int
    rule_id: str
    rule_title: str
    level: str
    article_id: int
    story_id: int  # the first article of the story: duplicate_of, else the article itself
    feed: str
    title: str
    text: str
    link: str | None
    language: str | None
    published_at: datetime
    hits: tuple[Mapping[str, Any], ...]
    copies: tuple[ArticleCopy, ...]  # every stored article of the story, this one included


@dataclass(frozen=True, slots=True)
class DigestHeader:
    """The digest row's identity, as digest building needs it."""

    id: str
    rule_id: str
    rule_title: str
    level: str
    notifier: str
    period: str
    alert_count: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DigestData:
    """Everything `notifications.digest.build_digest` needs, read in one transaction."""

    digest: DigestHeader
    alerts: tuple[AlertEntry, ...]


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
    """A digest left `sending` by a worker whose lease expired (it died or stalled)."""

    digest_id: str
    notifier: str
    token: str
    attempt: int
    attempted_at: datetime


def iso(when: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, as status and messages print times."""
    if when is None:
        return None
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def digest_id_for(rule_id: str, notifier: str, period: str) -> str:
    """A short hex id from (rule, notifier, period): stable, and safe as a file name (O3)."""
    key = "\x1f".join((rule_id, notifier, period)).encode()
    return hashlib.sha256(key).hexdigest()[:20]


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


def _pending() -> Any:
    return col(Alert.digest_id).is_(None)


def pending_groups(session: Session) -> list[PendingGroup]:
    """Every (rule, notifier) with alerts in no digest, held ones included."""
    query = (
        select(Alert.rule_id, Alert.notifier, sa.func.count(), sa.func.min(Alert.id))
        .where(_pending())
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
        .where(col(Alert.rule_id) == rule_id, _pending(), col(Alert.held_at).is_(None))
        .values(held_at=now)
    )
    return int(result.rowcount)


def release_alerts(session: Session, *, rule_id: str) -> int:
    """Releases held alerts of a rule that exists again; returns how many."""
    result = session.exec(
        sa.update(Alert)
        .where(col(Alert.rule_id) == rule_id, _pending(), col(Alert.held_at).is_not(None))
        .values(held_at=None)
    )
    return int(result.rowcount)


def held_alerts(session: Session) -> list[HeldAlerts]:
    """Held alerts per missing rule, for `status` ("rule X removed; 3 alerts held")."""
    query = (
        select(Alert.rule_id, sa.func.count(), sa.func.min(Alert.held_at))
        .where(_pending(), col(Alert.held_at).is_not(None))
        .group_by(col(Alert.rule_id))
        .order_by(col(Alert.rule_id))
    )
    rows = session.exec(query).all()
    return [HeldAlerts(rule_id, int(n), since) for rule_id, n, since in rows if since is not None]


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
        _pending(),
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
        level=max((a.level for a in alerts), key=lambda lv: LEVEL_RANK.get(lv, 2)),
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
        .where(col(Alert.id).in_([a.id for a in alerts]), _pending())
        .values(digest_id=digest_id)
    )
    return digest_id


def digest_entries(session: Session, digest_id: str) -> DigestData:
    """The digest and its alerts with articles, feeds, hits and syndicated copies.

    Raises:
        StorageError: there is no digest with this id.
    """
    digest = session.get(Digest, digest_id)
    if digest is None:
        raise StorageError(f"no digest {digest_id!r}", hint="`newswatch status` lists digests")
    header = DigestHeader(
        digest.id,
        digest.rule_id,
        digest.rule_title,
        digest.level,
        digest.notifier,
        digest.period,
        digest.alert_count,
        digest.created_at,
    )
    return DigestData(header, _entries(session, col(Alert.digest_id) == digest_id))


def pending_entries(
    session: Session, *, rule_id: str, notifier: str | None = None, now: datetime
) -> DigestData | None:
    """What the next digest of a rule would hold, for `digest preview`; None when nothing waits.

    Without `notifier`, the notifier of the oldest pending alert of the rule is shown.
    """
    if notifier is None:
        notifier = session.exec(
            select(Alert.notifier)
            .where(Alert.rule_id == rule_id, _pending())
            .order_by(col(Alert.id))
            .limit(1)
        ).first()
        if notifier is None:
            return None
    where = sa.and_(col(Alert.rule_id) == rule_id, col(Alert.notifier) == notifier, _pending())
    entries = _entries(session, where)
    if not entries:
        return None
    header = DigestHeader(
        digest_id_for(rule_id, notifier, f"preview:{entries[0].alert_id}"),
        rule_id,
        entries[-1].rule_title,
        max((e.level for e in entries), key=lambda lv: LEVEL_RANK.get(lv, 2)),
        notifier,
        "preview",
        len(entries),
        now,
    )
    return DigestData(header, entries)


def _entries(session: Session, where: Any) -> tuple[AlertEntry, ...]:
    rows = session.exec(
        select(Alert, Match, Article, Feed)
        .join(Match, col(Match.id) == col(Alert.match_id))
        .join(Article, col(Article.id) == col(Alert.article_id))
        .join(Feed, col(Feed.id) == col(Article.feed_id))
        .where(where)
        .order_by(col(Alert.id))
    ).all()
    stories = {art.duplicate_of or art.id for _, _, art, _ in rows}
    copies = _copies(session, {s for s in stories if s is not None})
    entries = []
    for alert, match, article, feed in rows:
        assert alert.id is not None and article.id is not None
        story = article.duplicate_of or article.id
        entries.append(
            AlertEntry(
                alert_id=alert.id,
                rule_id=alert.rule_id,
                rule_title=alert.rule_title,
                level=alert.level,
                article_id=article.id,
                story_id=story,
                feed=feed.name,
                title=article.title,
                text=article.text,
                link=article.link,
                language=article.language,
                published_at=article.published_at,
                hits=parse_hits(match.hits),
                copies=copies.get(story, ()),
            )
        )
    return tuple(entries)


def _copies(session: Session, stories: set[int]) -> dict[int, tuple[ArticleCopy, ...]]:
    if not stories:
        return {}
    rows = session.exec(
        select(Article.id, Article.duplicate_of, Article.link, Feed.name)
        .join(Feed, col(Feed.id) == col(Article.feed_id))
        .where(sa.or_(col(Article.id).in_(stories), col(Article.duplicate_of).in_(stories)))
        .order_by(col(Article.published_at), col(Article.id))
    ).all()
    found: dict[int, list[ArticleCopy]] = {}
    for article_id, duplicate_of, link, feed in rows:
        assert article_id is not None
        found.setdefault(duplicate_of or article_id, []).append(ArticleCopy(article_id, feed, link))
    return {story: tuple(items) for story, items in found.items()}


def parse_hits(text: str) -> tuple[Mapping[str, Any], ...]:
    """The stored JSON list of hits; anything unreadable counts as no hits."""
    try:
        value = json.loads(text or "[]")
    except ValueError:
        logger.warning("unreadable hits in a stored match; shown without highlights")
        return ()
    if not isinstance(value, list):
        return ()
    return tuple(h for h in value if isinstance(h, dict))


# ---------------------------------------------------------------------------------------------
# delivery


def disabled_notifiers(session: Session) -> dict[str, tuple[datetime | None, str | None]]:
    """Notifiers that said they are gone (webhook 410): name → (when, why)."""
    rows = session.exec(
        select(Digest.notifier, Digest.last_attempt_at, Digest.last_error)
        .where(col(Digest.notifier_disabled).is_(True))
        .order_by(col(Digest.last_attempt_at))
    ).all()
    return {notifier: (at, error) for notifier, at, error in rows}


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
            col(Delivery.outcome) == "started",
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
    return [
        Interrupted(d.id, d.notifier, d.acquired_by or "", d.attempts, d.last_attempt_at or now)
        for d in rows
    ]


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
    pending = session.exec(
        select(sa.func.count()).select_from(Alert).where(_pending(), col(Alert.held_at).is_(None))
    ).one()
    counts["pending_alerts"] = int(pending)
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
