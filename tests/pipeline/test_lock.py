"""One `newswatch run` per SQLite file; PostgreSQL workers share through leases, no file lock."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.lock import service_lock

REPO = Path(__file__).resolve().parents[2]
HOLDER = """
import sys
from pipeline.lock import service_lock
with service_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_second_service_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'newswatch.db'}"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(ConfigError) as caught, service_lock(url):
            pass
        assert str(caught.value) == (
            f"another newswatch is running on {tmp_path / 'newswatch.db'} (pid {holder.pid})\n"
            "hint: stop it first, or give this one another database.url"
        )
    finally:
        holder.communicate("", timeout=30)
    with service_lock(url):  # free again once the first one stopped
        pass


def test_postgresql_workers_take_no_file_lock() -> None:
    url = "postgresql+psycopg://newswatch@127.0.0.1/newswatch"
    entered = 0
    with service_lock(url), service_lock(url):  # a second worker is welcome
        entered += 1
    assert entered == 1
