"""The configured database for one command: opened, migrated to the current schema, disposed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pipeline.config import Config
from storage.engine import Database, open_database
from storage.migrate import migrate


@contextmanager
def migrated_database(config: Config) -> Iterator[Database]:
    """The database of config.toml, migrated first; its connections are closed on leaving."""
    db = open_database(config.database_url)
    try:
        migrate(db)
        yield db
    finally:
        db.dispose()
