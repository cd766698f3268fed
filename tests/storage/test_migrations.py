"""The same Alembic migrations on both engines: from empty, from the 0001 schema, and by
several workers at once against an empty database (migrated once, alembic_version included)."""

from __future__ import annotations

import multiprocessing
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import select

from storage.engine import open_database
from storage.feeds import FeedSpec, sync_feeds
from storage.migrate import current_revision, head_revision, migrate
from storage.models import Feed, SQLModel
from storage.workers import heartbeat, list_workers
from tests.conftest import FakeClock


def schema_drift(url: str) -> list[object]:
    """What autogenerate would still change: empty when migrations and models agree."""
    db = open_database(url)
    try:
        with db.engine.connect() as conn:
            return list(compare_metadata(MigrationContext.configure(conn), SQLModel.metadata))
    finally:
        db.dispose()


def test_an_empty_database_migrates_to_the_models_schema(empty_url: str) -> None:
    db = open_database(empty_url)
    try:
        assert current_revision(db) is None
        assert migrate(db) == head_revision()
        assert migrate(db) == head_revision()
    finally:
        db.dispose()
    assert schema_drift(empty_url) == []


def test_the_0001_schema_upgrades_and_keeps_its_data(empty_url: str, clock: FakeClock) -> None:
    db = open_database(empty_url)
    try:
        assert migrate(db, revision="0001") == "0001"
        assert "workers" not in sa.inspect(db.engine).get_table_names()
        with db.session() as s:
            sync_feeds(s, [FeedSpec("ozodi", "http://x/ozodi")], now=clock())
        assert migrate(db) == head_revision()
        with db.session() as s:
            assert [f.name for f in s.exec(select(Feed)).all()] == ["ozodi"]
            heartbeat(s, "h:1", host="h", pid=1, now=clock())
        with db.session() as s:
            assert [w.id for w in list_workers(s, clock())] == ["h:1"]
    finally:
        db.dispose()
    assert schema_drift(empty_url) == []


def _start_worker(url: str, barrier: Any, results: Any) -> None:
    db = open_database(url)
    try:
        barrier.wait(timeout=60)
        results.put(migrate(db))
    except BaseException as exc:
        results.put(repr(exc))
    finally:
        db.dispose()


def test_workers_starting_together_migrate_an_empty_database_once(empty_url: str) -> None:
    """Real processes (forked, so they start fast) released together by a barrier."""
    count = 5
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(count), ctx.Queue()
    procs = [
        ctx.Process(target=_start_worker, args=(empty_url, barrier, results)) for _ in range(count)
    ]
    for p in procs:
        p.start()
    said = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert said == [head_revision()] * count
    db = open_database(empty_url)
    try:
        with db.engine.connect() as conn:
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        assert [v for (v,) in versions] == [head_revision()]
    finally:
        db.dispose()
