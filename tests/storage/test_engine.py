"""Opening and migrating databases: WAL, corrupt files, schemas newer than the code (D5)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlmodel import select

from storage.engine import open_database
from storage.errors import MigrationError, StorageError
from storage.migrate import current_revision, head_revision, migrate
from storage.models import Feed


def test_migrate_creates_schema_in_wal_mode_and_is_idempotent(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'a.db'}")
    assert migrate(db) == head_revision()
    assert migrate(db) == head_revision()
    assert current_revision(db) == head_revision()
    conn = sqlite3.connect(tmp_path / "a.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {
        "feeds",
        "articles",
        "matches",
        "alerts",
        "digests",
        "deliveries",
        "fetch_log",
    } <= tables


def test_a_file_that_is_not_a_database_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    db = open_database(f"sqlite:///{path}")
    with pytest.raises(StorageError, match="not a SQLite database"):
        migrate(db)
    assert path.read_bytes().startswith(b"this is not sqlite")


def test_a_schema_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'b.db'}")
    migrate(db)
    with sqlite3.connect(tmp_path / "b.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(MigrationError, match="newer than this newswatch"):
        migrate(db)


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        open_database(f"sqlite:///{tmp_path / 'nope' / 'x.db'}")


def test_a_held_write_lock_becomes_a_busy_error(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    db = open_database(f"sqlite:///{path}", busy_timeout_s=0.05)
    migrate(db)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StorageError, match="database busy"), db.session() as session:
            session.exec(select(Feed)).all()
    finally:
        holder.execute("ROLLBACK")
    with db.session():
        pass


def test_database_urls_never_show_passwords() -> None:
    from storage.engine import redact_url

    shown = redact_url("postgresql+psycopg://u:pw1@h/db?sslpassword=pw2&application_name=nw")
    assert "pw1" not in shown and "pw2" not in shown and "application_name=nw" in shown
