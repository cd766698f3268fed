"""Opening the database: engine settings per dialect, sessions, and applying migrations.

SQLite runs in WAL mode with a busy timeout, and every transaction begins IMMEDIATE so a
read-then-write never fails with SQLITE_BUSY_SNAPSHOT (RELIABILITY.md D1).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlmodel import Session

from storage.errors import StorageError

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Database:
    """An engine and the way to open a transaction on it."""

    engine: sa.Engine
    url: str
    busy_timeout_s: float = BUSY_TIMEOUT_S

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self, *, write: bool = True) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on any error.

        On SQLite a write transaction begins IMMEDIATE; `write=False` begins a deferred,
        read-only one that never blocks the service (long scans, status).

        Raises:
            StorageError: the database is busy, full, read-only or corrupt.
        """
        bind = self.engine if write else self.engine.execution_options(newswatch_read_only=True)
        with (
            translate_errors(self.url),
            Session(bind, expire_on_commit=False) as session,
            session.begin(),
        ):
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(url: str, *, busy_timeout_s: float = BUSY_TIMEOUT_S) -> Database:
    """Creates the engine for `url` (sqlite:///path or postgresql+psycopg://…); does not migrate.

    Raises:
        StorageError: the URL names an unsupported database or a folder that does not exist.
    """
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite_engine(parsed, busy_timeout_s)
    elif parsed.get_backend_name() == "postgresql":
        engine = sa.create_engine(parsed, pool_pre_ping=True, future=True)
    else:
        raise StorageError(
            f"database.url {redact_url(url)!r} is not supported",
            hint="write sqlite:///newswatch.db or postgresql+psycopg://user@host/db",
        )
    return Database(engine=engine, url=url, busy_timeout_s=busy_timeout_s)


def _sqlite_engine(url: sa.URL, busy_timeout_s: float) -> sa.Engine:
    if url.database and url.database != ":memory:":
        folder = Path(url.database).parent
        if not folder.is_dir():
            raise StorageError(
                f"database folder {folder} does not exist",
                hint="create it, or point database.url at an existing folder",
            )
    engine = sa.create_engine(
        url, connect_args={"timeout": busy_timeout_s, "check_same_thread": False}, future=True
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # Take transaction control from pysqlite so that we can BEGIN IMMEDIATE ourselves.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        read_only = conn.get_execution_options().get("newswatch_read_only", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


@contextmanager
def translate_errors(url: str) -> Iterator[None]:
    """Turns driver errors a user can act on into StorageError with a hint."""
    try:
        yield
    except OperationalError as exc:
        text = str(exc.orig)
        if "locked" in text or "busy" in text:
            raise StorageError(
                "database busy (held by another process); will retry",
                hint="another newswatch or a tool holds a write lock on the database",
            ) from exc
        if "full" in text:
            raise StorageError("database full: " + text, hint="free disk space") from exc
        if "readonly" in text or "read-only" in text:
            raise StorageError(f"database is read-only: {redact_url(url)}") from exc
        raise StorageError(f"database error: {text}") from exc
    except DatabaseError as exc:
        text = str(exc.orig)
        if "not a database" in text or "malformed" in text:
            raise StorageError(
                f"database file is not a SQLite database (or is corrupt): {redact_url(url)}",
                hint="restore it from a backup or point database.url at another file; "
                "newswatch never deletes it",
            ) from exc
        raise StorageError(f"database error: {text}") from exc


def redact_url(url: str) -> str:
    """A database URL with any password replaced, for messages and status."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        return "<unparsable url>"
    secret = {k: "***" for k in parsed.query if any(w in k.lower() for w in _SECRET_WORDS)}
    return parsed.update_query_dict(secret).render_as_string(hide_password=True)


_SECRET_WORDS = ("password", "secret", "token", "key")
