"""One service per SQLite file: an exclusive lock held by `newswatch run`."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from pipeline.errors import ConfigError


@contextmanager
def service_lock(database_url: str) -> Iterator[bool]:
    """Holds `<db>.lock` for the life of the block; PostgreSQL needs none (row leases).

    Yields True when the lock makes this process the only worker on the database (a SQLite
    file), so that any lease left in it belongs to a process that died.

    Raises:
        ConfigError: another newswatch already runs on this SQLite file.
    """
    url = sa.make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        yield False
        return
    path = Path(url.database + ".lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise ConfigError(
                f"another newswatch is running on {url.database} (pid {holder})",
                hint="stop it first, or give this one another database.url",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield True
    finally:
        os.close(fd)
