"""Shared fixtures: a clean environment, a fake clock, a migrated SQLite database, shared/data,
and the loopback HTTP servers `public_http` (127.0.0.2) and `private_http` (127.0.0.1)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage.engine import Database, open_database
from storage.migrate import migrate
from tests.pipeline.conftest import PRIVATE_HOST, PUBLIC_HOST, ScriptedServer

pytest_plugins = ["tests.pgserver"]

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


class FakeClock:
    """An injected clock: `clock()` is now; `advance()` moves it. Never sleeps."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture(autouse=True)
def clean_environ(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No proxies or SSL overrides from the machine; HOME points at a temp dir."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name.startswith(
            ("SSL_", "REQUESTS_CA", "NEWSWATCH_")
        ):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 20, 8, 0, tzinfo=UTC))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(f"sqlite:///{tmp_path / 'newswatch.db'}")
    migrate(database)
    yield database
    database.dispose()


@pytest.fixture
def public_http() -> Iterator[ScriptedServer]:
    server = ScriptedServer(PUBLIC_HOST)
    yield server
    server.close()


@pytest.fixture
def private_http() -> Iterator[ScriptedServer]:
    server = ScriptedServer(PRIVATE_HOST)
    yield server
    server.close()


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not present: this clone has no shared data folder beside it")
    return SHARED_DATA
