"""Bringing a database to this version's schema with Alembic, safely on both engines.

Several workers started together against an empty PostgreSQL database migrate it once: the
upgrade runs under a transaction-scoped advisory lock. A schema newer than this code is refused.
`revision` lets tests build an older release's schema and upgrade it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from storage.engine import Database, open_database, translate_errors
from storage.errors import MigrationError

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
MIGRATION_WAIT_S = 120
_PG_LOCK_KEY = 0x6E657773  # "news": one advisory lock id for schema changes


def _alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(db: Database) -> str | None:
    with translate_errors(db.url), db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(db: Database, *, revision: str = "head") -> str:
    """Applies every pending migration (up to `revision`); returns the revision it is at.

    The check and the upgrade (alembic_version's creation included) run in one transaction that
    first takes an exclusive lock: `pg_advisory_xact_lock` on PostgreSQL, `BEGIN IMMEDIATE` on
    SQLite. A worker that waits for it then sees the upgraded schema and does nothing; the lock
    goes with the transaction, even when a migration fails.

    Raises:
        MigrationError: the database was written by a newer newswatch, or a migration failed.
        StorageError: the database file is not a database, or is busy.
    """
    cfg = _alembic_config()
    script = ScriptDirectory.from_config(cfg)
    with translate_errors(db.url), db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
        else:  # others starting at the same moment wait for the one migrating, however slow
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {MIGRATION_WAIT_S * 1000}")
        current = MigrationContext.configure(conn).get_current_revision()
        if current is not None and current not in {s.revision for s in script.walk_revisions()}:
            raise MigrationError(
                f"database schema is newer than this newswatch (revision {current})",
                hint="upgrade newswatch, or point database.url at another database",
            )
        target = (script.get_current_head() or revision) if revision == "head" else revision
        if current != target:
            logger.info("migrating database from=%s to=%s", current, target)
            cfg.attributes["connection"] = conn
            try:
                command.upgrade(cfg, target)
            except MigrationError:
                raise
            except Exception as exc:
                raise MigrationError(f"migration failed: {exc}") from exc
        conn.commit()
        if conn.dialect.name == "sqlite":  # the pooled connection goes back to the usual wait
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(db.busy_timeout_s * 1000)}")
    return target


@contextmanager
def open_migrated(url: str) -> Iterator[Database]:
    """The database at `url`, migrated first; its connections are closed on leaving.

    Raises:
        MigrationError, StorageError: as migrate() and open_database() do.
    """
    db = open_database(url)
    try:
        migrate(db)
        yield db
    finally:
        db.dispose()
