"""Bringing a database to this version's schema with Alembic, safely on both engines.

Several workers started together against an empty PostgreSQL database migrate it once: the
upgrade runs under a transaction-scoped advisory lock. A schema newer than this code is refused.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from storage.engine import Database, translate_errors
from storage.errors import MigrationError

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
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


def migrate(db: Database) -> str:
    """Applies every pending migration; returns the revision the database is at.

    Raises:
        MigrationError: the database was written by a newer newswatch, or a migration failed.
        StorageError: the database file is not a database, or is busy.
    """
    cfg = _alembic_config()
    script = ScriptDirectory.from_config(cfg)
    with translate_errors(db.url), db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({_PG_LOCK_KEY})")
        try:
            current = MigrationContext.configure(conn).get_current_revision()
            if current is not None and current not in {s.revision for s in script.walk_revisions()}:
                raise MigrationError(
                    f"database schema is newer than this newswatch (revision {current})",
                    hint="upgrade newswatch, or point database.url at another database",
                )
            if current != script.get_current_head():
                logger.info("migrating database from=%s to=%s", current, script.get_current_head())
                cfg.attributes["connection"] = conn
                try:
                    command.upgrade(cfg, "head")
                except MigrationError:
                    raise
                except Exception as exc:
                    raise MigrationError(f"migration failed: {exc}") from exc
                conn.commit()
        finally:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_PG_LOCK_KEY})")
                conn.commit()
    return head_revision()
