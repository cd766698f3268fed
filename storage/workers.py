"""Workers: the `newswatch run` processes sharing one database, their heartbeats and leases.

A worker claims feeds (`feeds.acquired_by` = its id) and digests (`digests.acquired_by` = a
fencing token `<id[:60]>:<random>`, see storage.outbox.new_token), each lease with an expiry.
While it lives it renews them; when it dies they expire and other workers take them over.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from storage.models import Digest, Feed, Worker

logger = logging.getLogger(__name__)

STALE_AFTER = timedelta(minutes=3)  # no heartbeat for this long: shown as stale
FORGET_AFTER = timedelta(days=1)  # no heartbeat for this long: row deleted
TOKEN_PREFIX_LEN = 60  # storage.outbox.new_token keeps this much of the worker id


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One worker as `newswatch status` shows it."""

    id: str
    host: str
    pid: int
    started_at: datetime
    last_heartbeat: datetime
    feeds_held: int
    digests_held: int
    stale: bool  # no heartbeat for STALE_AFTER: probably dead; its leases will expire


def digest_token_prefix(worker: str) -> str:
    """The start of every digest fencing token this worker writes."""
    return worker[:TOKEN_PREFIX_LEN] + ":"


def heartbeat(session: Session, worker: str, *, host: str, pid: int, now: datetime) -> None:
    """Records that `worker` is alive at `now` (inserting its row the first time).

    Also forgets workers silent for FORGET_AFTER (their leases expired long before).
    """
    values: dict[str, Any] = {
        "id": worker,
        "host": host[:200],
        "pid": pid,
        "started_at": now,
        "last_heartbeat": now,
    }
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(Worker).values(**values)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[col(Worker.id)],
            set_={"last_heartbeat": now, "host": values["host"], "pid": pid},
        )
    )
    session.execute(sa.delete(Worker).where(col(Worker.last_heartbeat) < now - FORGET_AFTER))


def renew_leases(
    session: Session, *, worker: str, now: datetime, lease: timedelta
) -> tuple[int, int]:
    """Extends every lease `worker` holds to `now + lease`; returns (feeds, digests) renewed.

    A lease another worker has taken over names that worker now, so it is not touched.
    """
    until = now + lease
    feeds = session.execute(
        sa.update(Feed)
        .where(col(Feed.acquired_by) == worker, col(Feed.acquired_until).is_not(None))
        .values(acquired_until=until)
    )
    digests = session.execute(
        sa.update(Digest)
        .where(
            col(Digest.state) == "sending",
            col(Digest.acquired_by).startswith(digest_token_prefix(worker), autoescape=True),
        )
        .values(acquired_until=until)
    )
    return int(feeds.rowcount), int(digests.rowcount)  # type: ignore[attr-defined]


def expire_leases(session: Session, *, worker: str, now: datetime) -> tuple[int, int]:
    """Ends, as of `now`, every feed and digest lease that `worker` does not hold; returns
    (feeds, digests) expired.

    Only for a worker alone on the database (`newswatch run` holding the SQLite service lock):
    every other lease was then left by a process that died, and its feeds and its interrupted
    digests are taken up at once rather than a lease later. Tokens are kept, so a digest left
    `sending` is still settled as interrupted.
    """
    past = now - timedelta(seconds=1)
    feeds = session.execute(
        sa.update(Feed)
        .where(
            col(Feed.acquired_by).is_not(None),
            col(Feed.acquired_by) != worker,
            col(Feed.acquired_until) >= now,
        )
        .values(acquired_until=past)
    )
    digests = session.execute(
        sa.update(Digest)
        .where(
            col(Digest.state) == "sending",
            sa.not_(
                col(Digest.acquired_by).startswith(digest_token_prefix(worker), autoescape=True)
            ),
            col(Digest.acquired_until) >= now,
        )
        .values(acquired_until=past)
    )
    return int(feeds.rowcount), int(digests.rowcount)  # type: ignore[attr-defined]


def list_workers(
    session: Session, now: datetime, *, stale_after: timedelta = STALE_AFTER
) -> list[WorkerInfo]:
    """Every known worker with the unexpired leases it holds, most recent heartbeat first."""
    workers = session.exec(
        select(Worker).order_by(col(Worker.last_heartbeat).desc(), col(Worker.id))
    ).all()
    feeds = _held_feeds(session, now)
    digests = _held_digests(session, now)
    return [
        WorkerInfo(
            id=w.id,
            host=w.host,
            pid=w.pid,
            started_at=w.started_at,
            last_heartbeat=w.last_heartbeat,
            feeds_held=feeds[w.id],
            digests_held=digests[digest_token_prefix(w.id)],
            stale=now - w.last_heartbeat > stale_after,
        )
        for w in workers
    ]


def _held_feeds(session: Session, now: datetime) -> Counter[str]:
    rows = session.exec(
        select(Feed.acquired_by, sa.func.count())
        .where(col(Feed.acquired_by).is_not(None), col(Feed.acquired_until) >= now)
        .group_by(col(Feed.acquired_by))
    ).all()
    return Counter({owner: int(n) for owner, n in rows if owner is not None})


def _held_digests(session: Session, now: datetime) -> Counter[str]:
    tokens = session.exec(
        select(Digest.acquired_by).where(
            col(Digest.state) == "sending",
            col(Digest.acquired_by).is_not(None),
            col(Digest.acquired_until) >= now,
        )
    ).all()
    return Counter(token.rsplit(":", 1)[0] + ":" for token in tokens if token)
