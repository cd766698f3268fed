"""The delivery state machine: lease a due digest, mark it sending, send it, record what happened.

    queued → sending → sent | failed (next_attempt_at set: retry; unset: permanent) | uncertain

`sending` is committed before any server is contacted. A digest found `sending` with an expired
lease was cut off mid-send. A `StagedNotifier` (SMTP) has the attempt marked `handover` just
before the receiver may take the digest (the final `.` of DATA): cut off before that mark, the
digest never left and is sent again; after it, it is `uncertain` and never resent by itself
(DESIGN: at most once). Notifiers whose receivers deduplicate (outbox files by name, webhooks by
webhook-id) declare `retry_policy.resend_interrupted` and are sent again either way.

`checkpoint(step)` is called at each step of an attempt ("sending", "handover", "accepted",
"sent"); it does nothing but in the crash tests (pipeline.assemble.crash_checkpoint).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from notifications.digest import DigestView, build_digest
from notifications.errors import DeliveryError
from storage import outbox
from storage.engine import Database

logger = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(minutes=5)
DEFAULT_GIVE_UP = timedelta(days=2)
MAX_RETRY_AFTER = timedelta(hours=24)


class NotifierGoneError(DeliveryError):
    """The receiver says the notifier's endpoint is gone for good (webhook 410): the digest
    fails permanently and the notifier is disabled until `newswatch digest retry`."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, permanent=True, hint=hint)


class Notifier(Protocol):
    """Sends one digest; returns where it went (never a secret); raises DeliveryError."""

    name: str

    def send(self, digest: DigestView) -> str: ...


@runtime_checkable
class StagedNotifier(Protocol):
    """A notifier that says when the receiver may start to hold the digest: `send_staged` calls
    `handover()` right before that point and not at all if it fails earlier, so a send cut off
    before `handover()` is known never to have reached the receiver."""

    name: str

    def send(self, digest: DigestView) -> str: ...

    def send_staged(self, digest: DigestView, handover: Callable[[], None]) -> str: ...


Checkpoint = Callable[[str], None]


def no_checkpoint(step: str) -> None:
    """The checkpoint of every real run: nothing happens at any step."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Waits after the 1st, 2nd, … failure (the last repeats), and whether a send cut off by
    a crash may be repeated (true where the receiver deduplicates)."""

    delays: tuple[timedelta, ...]
    resend_interrupted: bool = False

    def delay(self, failures: int, rng: random.Random) -> timedelta:
        """The wait after `failures` failed attempts (≥ 1), with ±10 % jitter."""
        base = self.delays[min(max(failures, 1), len(self.delays)) - 1]
        return base * rng.uniform(0.9, 1.1)


def _steps(*seconds: float) -> tuple[timedelta, ...]:
    return tuple(timedelta(seconds=s) for s in seconds)


# SMTP: 1 min, 5 min, 30 min, 2 h, then every 6 h (Postfix-like, faster at first).
SMTP_RETRY = RetryPolicy(_steps(60, 300, 1800, 7200, 21600))
# Outbox files are written once by name, so a cut-off write is simply tried again.
OUTBOX_RETRY = RetryPolicy(_steps(60, 300, 1800, 7200, 21600), resend_interrupted=True)
# Standard Webhooks: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h.
WEBHOOK_RETRY = RetryPolicy(
    _steps(5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400), resend_interrupted=True
)


def policy_of(notifier: Notifier | None) -> RetryPolicy:
    """The notifier's `retry_policy`, else SMTP's (never resends an interrupted send)."""
    policy = getattr(notifier, "retry_policy", None)
    return policy if isinstance(policy, RetryPolicy) else SMTP_RETRY


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What one delivery step did to one digest: its new state and why."""

    digest_id: str
    notifier: str
    state: str  # sent | failed | uncertain | queued (interrupted, will be resent) | skipped
    detail: str
    delivered_to: str | None = None
    next_attempt_at: datetime | None = None


def uncertain_message(digest_id: str, when: datetime, reason: str) -> str:
    """What status says of a digest that may have been accepted (RELIABILITY S4, D4)."""
    return (
        f"may have been delivered at {outbox.iso(when)}; not resent; "
        f"run `newswatch digest resend {digest_id}` to send it again ({reason})"
    )


def deliver_due(
    db: Database,
    notifiers: Mapping[str, Notifier],
    *,
    now: datetime,
    worker: str = "local",
    lease: timedelta = DEFAULT_LEASE,
    rng: random.Random | None = None,
    give_up_after: timedelta = DEFAULT_GIVE_UP,
    place_names: Mapping[str, str] | None = None,
    checkpoint: Checkpoint = no_checkpoint,
) -> list[DeliveryOutcome]:
    """Settles interrupted sends, then sends every due digest of `notifiers`, one at a time.

    Each digest is leased and marked `sending` in its own committed transaction before its
    notifier is called, and its outcome is committed right after. Digests of notifiers not in
    `notifiers` stay queued (shown in status).

    Raises:
        StorageError: the database failed; digests already settled stay settled.
    """
    rng = rng or random.Random()  # noqa: S311 -- retry jitter, not a secret
    outcomes = settle_interrupted(db, notifiers, now=now)
    done: set[str] = set()
    while True:
        token = outbox.new_token(worker)
        with db.session() as session:
            claim = outbox.claim_next_digest(
                session, notifiers=list(notifiers), now=now, token=token, lease=lease, skip=done
            )
            data = None if claim is None else outbox.digest_entries(session, claim.digest_id)
        if claim is None or data is None:
            return outcomes
        checkpoint("sending")
        done.add(claim.digest_id)
        notifier = notifiers[claim.notifier]
        attempt = _Attempt(db, notifier, claim, now, lease, rng, give_up_after, checkpoint)
        outcomes.append(attempt.run(data, place_names))


def settle_interrupted(
    db: Database, notifiers: Mapping[str, Notifier], *, now: datetime
) -> list[DeliveryOutcome]:
    """Digests left `sending` past their lease: `uncertain`, or queued again where the
    notifier's receiver deduplicates."""
    outcomes = []
    with db.session() as session:
        for item in outbox.interrupted_digests(session, now=now):
            notifier = notifiers.get(item.notifier)
            if notifier is not None and policy_of(notifier).resend_interrupted:
                detail = "interrupted while sending; sending again with the same id"
                state = "queued"
            elif isinstance(notifier, StagedNotifier) and not item.handed_over:
                detail = "interrupted before the server was given the message; sending again"
                state = "queued"
            else:
                detail = uncertain_message(
                    item.digest_id, item.attempted_at, "the worker stopped while sending"
                )
                state = "uncertain"
            if outbox.settle_interrupted(session, item, now=now, state=state, detail=detail):
                logger.warning(
                    "digest interrupted digest=%s notifier=%s state=%s",
                    item.digest_id,
                    item.notifier,
                    state,
                )
                outcomes.append(DeliveryOutcome(item.digest_id, item.notifier, state, detail))
    return outcomes


@dataclass(slots=True)
class _Attempt:
    db: Database
    notifier: Notifier
    claim: outbox.Claim
    now: datetime
    lease: timedelta
    rng: random.Random
    give_up_after: timedelta
    checkpoint: Checkpoint = no_checkpoint

    def run(
        self, data: outbox.DigestData, place_names: Mapping[str, str] | None
    ) -> DeliveryOutcome:
        claim = self.claim
        try:
            view = build_digest(data, now=self.now, place_names=place_names)
        except Exception as exc:  # a bug; nothing was sent, so a retry is safe
            logger.exception("digest could not be built digest=%s", claim.digest_id)
            return self._failed(DeliveryError(f"internal error building the digest: {exc!r}"))
        with self.db.session() as session:  # fencing: still ours, just before the server
            if not outbox.confirm_claim(session, claim, now=self.now, lease=self.lease):
                detail = "lease lost to another worker before sending; not sent by this one"
                logger.warning("digest skipped digest=%s: %s", claim.digest_id, detail)
                return DeliveryOutcome(claim.digest_id, claim.notifier, "skipped", detail)
        try:
            if isinstance(self.notifier, StagedNotifier):
                where = self.notifier.send_staged(view, self._handover)
            else:
                where = self.notifier.send(view)
        except DeliveryError as exc:
            return self._failed(exc)
        except Exception as exc:  # a bug: we cannot tell whether the server got it
            logger.exception(
                "notifier crashed digest=%s notifier=%s", claim.digest_id, claim.notifier
            )
            resend = policy_of(self.notifier).resend_interrupted
            return self._failed(DeliveryError(f"internal error: {exc!r}", uncertain=not resend))
        self.checkpoint("accepted")
        with self.db.session() as session:
            outbox.record_sent(session, claim, now=self.now, delivered_to=where)
        self.checkpoint("sent")
        logger.info(
            "digest sent digest=%s notifier=%s to=%s", claim.digest_id, claim.notifier, where
        )
        return DeliveryOutcome(claim.digest_id, claim.notifier, "sent", "sent", delivered_to=where)

    def _handover(self) -> None:
        """Commits the hand-over mark; raises DeliveryError (retried: nothing left) if it cannot."""
        try:
            with self.db.session() as session:
                held = outbox.mark_handover(session, self.claim, now=self.now)
        except Exception as exc:
            raise DeliveryError(f"could not record the hand-over; not sent: {exc}") from exc
        if not held:
            raise DeliveryError("lease lost to another worker before the hand-over; not sent")
        self.checkpoint("handover")

    def _failed(self, exc: DeliveryError) -> DeliveryOutcome:
        claim = self.claim
        next_at: datetime | None = None
        disabled = False
        if exc.uncertain and not policy_of(self.notifier).resend_interrupted:
            state, error = "uncertain", uncertain_message(claim.digest_id, self.now, exc.message)
        elif exc.permanent:
            state, error = "failed", f"failed permanently: {exc.message}"
            disabled = isinstance(exc, NotifierGoneError)
        elif self.now - (claim.failing_since or self.now) >= self.give_up_after:
            state = "failed"
            error = f"failed permanently: gave up after {_age(self.give_up_after)}: {exc.message}"
        else:
            state, error = "failed", exc.message
            next_at = self.now + self._wait(exc)
        with self.db.session() as session:
            outbox.record_failure(
                session,
                claim,
                now=self.now,
                state=state,
                error=error,
                next_attempt_at=next_at,
                notifier_disabled=disabled,
            )
        logger.warning(
            "digest not delivered digest=%s notifier=%s state=%s error=%s next_attempt_at=%s",
            claim.digest_id,
            claim.notifier,
            state,
            error,
            outbox.iso(next_at),
        )
        return DeliveryOutcome(claim.digest_id, claim.notifier, state, error, None, next_at)

    def _wait(self, exc: DeliveryError) -> timedelta:
        wait = policy_of(self.notifier).delay(self.claim.failures + 1, self.rng)
        if exc.retry_after_s is not None:
            asked = timedelta(seconds=max(0.0, exc.retry_after_s))
            wait = max(wait, min(asked, MAX_RETRY_AFTER))
        return max(wait, timedelta(seconds=1))


def _age(span: timedelta) -> str:
    if span % timedelta(days=1) == timedelta(0):
        days = span.days
        return f"{days} day" if days == 1 else f"{days} days"
    return f"{span.total_seconds() / 3600:g} h"
