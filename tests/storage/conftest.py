"""Storage tests run on both engines: `db` is a migrated SQLite file or PostgreSQL database.

The PostgreSQL side needs the `pg_db` fixture of tests/pgserver.py (registered as a plugin by
tests/conftest.py) and is marked `postgres`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.engine import Database, open_database
from storage.migrate import migrate

ENGINES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=ENGINES)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database migrated to head, on each engine in turn."""
    if request.param == "postgresql":
        database: Database = request.getfixturevalue("pg_db")
        yield database
        return
    database = open_database(f"sqlite:///{tmp_path / 'newswatch.db'}")
    migrate(database)
    yield database
    database.dispose()


@pytest.fixture(params=ENGINES)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database (nothing migrated), on each engine in turn."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_url")
        return url
    return f"sqlite:///{tmp_path / 'empty.db'}"
