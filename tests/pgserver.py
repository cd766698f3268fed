"""A throwaway PostgreSQL cluster for tests and benchmarks: initdb into a temp dir, pg_ctl start.

One cluster serves the whole pytest session (fixture `pg_cluster`); each test gets its own
database (`pg_url`: empty; `pg_db`: migrated, cloned from a template migrated once). As root the
server binaries run as the `postgres` system user (initdb refuses root); otherwise directly.
Register with `pytest_plugins = ["tests.pgserver"]` in tests/conftest.py.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from storage.engine import Database, open_database
from storage.migrate import migrate
from tests.loopback import free_port

TEMPLATE = "nw_template"
_SETTINGS = {
    # A test cluster: durability off, small, loopback only, no unix socket.
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "'64MB'",
    "max_connections": "200",
    "log_min_messages": "warning",
    "logging_collector": "off",
}


def find_bindir() -> Path | None:
    """The folder holding initdb and pg_ctl: Debian's /usr/lib/postgresql/N/bin, else PATH."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


@dataclass
class PgCluster:
    """A running PostgreSQL server on 127.0.0.1:port with trust auth for user `postgres`."""

    base: Path
    bindir: Path
    port: int = 0
    as_postgres: bool = False
    template_ready: bool = False
    _names: Iterator[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def datadir(self) -> Path:
        return self.base / "data"

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def _run(self, *args: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_postgres else []
        done = subprocess.run(
            [*prefix, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            log = self.base / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {done.stdout}{done.stderr}{tail}")

    def init(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.datadir),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        )
        with (self.datadir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in _SETTINGS.items())

    def start(self) -> None:
        for attempt in range(3):
            self.port = free_port()
            try:
                self._run(
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.datadir),
                    "-l",
                    str(self.base / "server.log"),
                    "-o",
                    f"-p {self.port}",
                    "-w",
                    "-t",
                    "60",
                    "start",
                )
                return
            except RuntimeError:  # the port was taken between picking and binding
                if attempt == 2:
                    raise

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def execute(self, sql: str, dbname: str = "postgres") -> None:
        with psycopg.connect(self.dsn(dbname), autocommit=True) as conn:
            conn.execute(sql.encode())

    def create_database(self, *, template: str | None = None) -> str:
        """A new database (empty, or a copy of `template`); returns its SQLAlchemy URL."""
        with self._lock:
            name = f"nw_{os.getpid()}_{next(self._names)}"
        self.execute(f"CREATE DATABASE {name} TEMPLATE {template or 'template0'}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def migrated_template(self) -> str:
        """The name of a database migrated to head, made once, to clone for each test."""
        with self._lock:
            if self.template_ready:
                return TEMPLATE
            self.execute(f"CREATE DATABASE {TEMPLATE} TEMPLATE template0")
            db = open_database(self.url(TEMPLATE))
            try:
                migrate(db)
            finally:
                db.dispose()
            self.template_ready = True
            return TEMPLATE


def start_cluster() -> PgCluster:
    """Starts a new cluster in a temp dir.

    Raises:
        RuntimeError: no server binaries, or initdb / pg_ctl failed.
    """
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError(
            "PostgreSQL server binaries (initdb, pg_ctl) not found; "
            "install the postgresql package (.ci/run does on Debian)"
        )
    as_postgres = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="newswatch-pg-"))
    if as_postgres:
        user = pwd.getpwnam("postgres")
        os.chown(base, user.pw_uid, user.pw_gid)
    cluster = PgCluster(base=base, bindir=bindir, as_postgres=as_postgres)
    try:
        cluster.init()
        cluster.start()
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    return cluster


def _can_start() -> str | None:
    if find_bindir() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) not found; install postgresql"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root but there is no `postgres` user to run initdb as"
    return None


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One PostgreSQL server for the whole session; skips when no binaries are installed."""
    reason = _can_start()
    if reason:
        pytest.skip(reason)
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> Iterator[str]:
    """The URL of a new, empty database; dropped after the test."""
    url = pg_cluster.create_database()
    yield url
    pg_cluster.drop_database(url)


@pytest.fixture
def pg_db(pg_cluster: PgCluster) -> Iterator[Database]:
    """A new database migrated to head (cloned from a template); dropped after the test."""
    url = pg_cluster.create_database(template=pg_cluster.migrated_template())
    database = open_database(url)
    yield database
    database.dispose()
    pg_cluster.drop_database(url)
