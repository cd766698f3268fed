"""Several `newswatch run` processes on one PostgreSQL database, against a loopback feed farm and
a real SMTP server: they share the work through row leases, fetch each feed once per cycle,
send each digest once, and take over the leases of a worker killed mid-cycle."""

from __future__ import annotations

import asyncio
import email
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from sqlmodel import col, func, select

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.status import collect_status
from storage.engine import Database, open_database
from storage.models import Alert, Article, Digest, Feed
from tests.farm import FeedFarm, farm_config, write_rules
from tests.loopback import free_port
from tests.pgserver import PgCluster

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[1]


class SinkHandler:
    """Keeps every message; with `hang_first`, never answers the first one's end of data
    (the sender cannot know whether it was accepted) until `release`."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.lock = threading.Lock()
        self.hang_first = False
        self.release: asyncio.Event | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append(envelope.original_content)
            hang = self.hang_first and len(self.messages) == 1
        if hang:
            self.release = asyncio.Event()
            await self.release.wait()
        return "250 OK"

    def count(self) -> int:
        with self.lock:
            return len(self.messages)

    def digest_ids(self) -> Counter[str]:
        """Delivered digest ids, from Message-ID `<digest-id@domain>`."""
        with self.lock:
            ids = [email.message_from_bytes(m)["Message-ID"] for m in self.messages]
        return Counter(i.strip("<>").split("@")[0] for i in ids)


@pytest.fixture
def smtp_sink() -> Iterator[tuple[SinkHandler, int]]:
    handler = SinkHandler()
    port = free_port()  # aiosmtpd cannot take port 0 (aio-libs/aiosmtpd#388)
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    if handler.release is not None:
        controller.loop.call_soon_threadsafe(handler.release.set)
    controller.stop()


@pytest.fixture
def world(pg_cluster: PgCluster, tmp_path: Path) -> Iterator[tuple[str, Database]]:
    """An empty database (the workers migrate it) and a rules dir beside the config."""
    url = pg_cluster.create_database()
    write_rules(tmp_path / "rules")
    db = open_database(url)
    yield url, db
    db.dispose()
    pg_cluster.drop_database(url)


class Workers:
    """`newswatch run --tick 0.2` processes, their output in files."""

    def __init__(self, config: Path, folder: Path) -> None:
        self.config, self.folder = config, folder
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = (self.folder / f"worker-{len(self.procs)}.log").open("wb")
        argv = [sys.executable, "-m", "pipeline.cli", "run", "--tick", "0.2"]
        proc = subprocess.Popen(
            [*argv, "--config", str(self.config)],
            cwd=self.config.parent,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def worker_id(self, proc: subprocess.Popen[bytes]) -> str:
        return f"{socket.gethostname()}:{proc.pid}"

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.folder.glob("worker-*.log"))
        )

    def status_when(self, done: Callable[[], bool], *, timeout: float, what: str) -> dict[str, Any]:
        """Waits until `done` holds, then returns what `newswatch status --json` shows."""
        wait_until(done, timeout=timeout, what=what, workers=self)
        return collect_status(load_config(self.config), now=datetime.now(UTC))

    def stop(self) -> list[int | None]:
        """SIGTERM to each live worker; each finishes its cycle and exits."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = []
        for proc in self.procs:
            try:
                codes.append(proc.wait(timeout=60))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait())
        return codes


def write_config(folder: Path, farm: FeedFarm, url: str, **options: Any) -> Path:
    """`folder`/config.toml for `farm`, the database at `url` and the rules in `folder`/rules."""
    config = folder / "config.toml"
    config.write_text(
        farm_config(farm, database_url=url, rules_dir="rules", **options), encoding="utf-8"
    )
    return config


def wait_until(done: Callable[[], bool], *, timeout: float, what: str, workers: Workers) -> None:
    """Polls `done` until it holds; fails with the workers' logs at the deadline."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}\n{workers.logs()}")
        if any(p.poll() not in (None, -signal.SIGKILL) for p in workers.procs):
            pytest.fail(f"a worker exited while waiting for {what}\n{workers.logs()}")
        pause.wait(0.05)


def cycle_done(db: Database, feeds: int) -> bool:
    """Every feed fetched, every alert in a digest, no digest queued or being sent."""
    try:
        with db.session(write=False) as s:
            fetched = s.exec(
                select(func.count()).select_from(Feed).where(col(Feed.last_fetch_at).is_not(None))
            ).one()
            pending = s.exec(
                select(func.count()).select_from(Alert).where(col(Alert.digest_id).is_(None))
            ).one()
            unsent = s.exec(
                select(func.count())
                .select_from(Digest)
                .where(col(Digest.state).in_(["queued", "sending"]))
            ).one()
    except Exception:  # the workers have not migrated the database yet
        return False
    return fetched == feeds and pending == 0 and unsent == 0


def check_delivery(db: Database, sink: SinkHandler, *, alerts: int) -> None:
    """Each digest was received exactly once, is marked sent, and holds its share of alerts."""
    received = sink.digest_ids()
    with db.session(write=False) as s:
        digests = s.exec(select(Digest)).all()
        alert_rows = s.exec(select(Alert)).all()
    assert received and set(received.values()) == {1}, received
    assert {d.id for d in digests} == set(received)
    assert {d.state for d in digests} == {"sent"}
    assert len(alert_rows) == alerts == sum(d.alert_count for d in digests)


def article_count(db: Database) -> int:
    with db.session(write=False) as s:
        return int(s.exec(select(func.count()).select_from(Article)).one())


def test_three_workers_started_together_share_a_cycle_once(
    world: tuple[str, Database], smtp_sink: tuple[SinkHandler, int], tmp_path: Path
) -> None:
    url, db = world
    sink, smtp_port = smtp_sink
    farm = FeedFarm(feeds=500, entries=4, match_every=25)
    with farm.running():
        config = write_config(tmp_path, farm, url, smtp_port=smtp_port)
        workers = Workers(config, tmp_path)
        for _ in range(3):  # at the same moment, against an empty database
            workers.start()
        try:
            status = workers.status_when(
                lambda: cycle_done(db, farm.feeds), timeout=240, what="one cycle"
            )
        finally:
            codes = workers.stop()
    assert codes == [0, 0, 0], workers.logs()
    assert farm.hits == Counter(dict.fromkeys(range(farm.feeds), 1))
    assert article_count(db) == farm.feeds * farm.entries
    check_delivery(db, sink, alerts=farm.feeds // farm.match_every)
    shown = {w["id"] for w in status["workers"]}
    assert shown == {workers.worker_id(p) for p in workers.procs}
    assert all(not w["stale"] for w in status["workers"])
    with db.engine.connect() as conn:
        versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    assert len(versions) == 1


def test_a_killed_workers_feeds_are_taken_over_after_its_lease_and_nothing_is_sent_twice(
    world: tuple[str, Database], smtp_sink: tuple[SinkHandler, int], tmp_path: Path
) -> None:
    url, db = world
    sink, smtp_port = smtp_sink
    farm = FeedFarm(feeds=200, entries=3, match_every=10)
    farm.close_gate()  # requests are counted and held: the victim stays mid-fetch
    with farm.running():
        config = write_config(tmp_path, farm, url, smtp_port=smtp_port, lease="3s")
        workers = Workers(config, tmp_path)
        victim = workers.start()
        try:
            wait_until(
                lambda: farm.total_hits() > 0, timeout=120, what="the first fetch", workers=workers
            )
            victim.kill()
            victim.wait(timeout=30)
            killed_at = time.time()
            with db.session(write=False) as s:  # the dead worker's leases, renewed no more
                leased = s.exec(
                    select(Feed.name, Feed.acquired_until).where(
                        Feed.acquired_by == workers.worker_id(victim)
                    )
                ).all()
            assert leased
            farm.open_gate()
            workers.start()
            workers.start()
            status = workers.status_when(
                lambda: cycle_done(db, farm.feeds), timeout=240, what="the survivors' cycle"
            )
        finally:
            codes = workers.stop()
    assert codes == [-signal.SIGKILL, 0, 0], workers.logs()
    after_kill = [(at, i) for at, i in farm.log if at >= killed_at]
    assert Counter(i for _, i in after_kill) == Counter(dict.fromkeys(range(farm.feeds), 1))
    first_fetch = {f"farm-{i}": at for at, i in after_kill}
    for name, until in leased:
        assert until is not None and first_fetch[name] >= until.timestamp(), name
    assert article_count(db) == farm.feeds * farm.entries
    check_delivery(db, sink, alerts=farm.feeds // farm.match_every)
    victim_row = next(w for w in status["workers"] if w["id"] == workers.worker_id(victim))
    assert (victim_row["feeds_held"], victim_row["digests_held"]) == (0, 0)


def test_a_worker_killed_while_sending_leaves_an_uncertain_digest_never_sent_twice(
    world: tuple[str, Database], smtp_sink: tuple[SinkHandler, int], tmp_path: Path
) -> None:
    url, db = world
    sink, smtp_port = smtp_sink
    sink.hang_first = True  # the server has the message but never says so
    farm = FeedFarm(feeds=20, entries=2, match_every=20)  # one alert, one digest
    with farm.running():
        config = write_config(tmp_path, farm, url, smtp_port=smtp_port, lease="3s")
        workers = Workers(config, tmp_path)
        victim = workers.start()
        try:
            wait_until(lambda: sink.count() == 1, timeout=120, what="the send", workers=workers)
            victim.kill()
            victim.wait(timeout=30)
            workers.start()
            status = workers.status_when(
                lambda: digest_states(db) == ["uncertain"],
                timeout=120,
                what="the interrupted send to be settled",
            )
        finally:
            codes = workers.stop()
    assert codes == [-signal.SIGKILL, 0], workers.logs()
    assert sink.count() == 1
    (digest,) = status["digests"]["digests"]
    assert digest["state"] == "uncertain" and digest["attempts"] == 1
    assert digest["last_error"].startswith("may have been delivered at ")
    assert f"newswatch digest resend {digest['id']}" in digest["last_error"]
    assert farm.hits == Counter(dict.fromkeys(range(farm.feeds), 1))


def digest_states(db: Database) -> list[str]:
    with db.session(write=False) as s:
        return sorted(d.state for d in s.exec(select(Digest)).all())


def run_once(config: Path) -> None:
    """`newswatch run --once` in its own process, as users run it."""
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", "--once", "--config", str(config)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_every_database_command_works_on_postgresql(
    world: tuple[str, Database], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _db = world
    farm = FeedFarm(feeds=5, entries=2, match_every=2)
    with farm.running():
        config = write_config(tmp_path, farm, url)
        at = ["--config", str(config)]
        run_once(config)
        assert main(["feeds", "refresh", *at]) == 0
        run_once(config)
        assert main(["rules", "test", "farm-watch", "--since", "3650d", "--json", *at]) == 0
        assert main(["digest", "preview", "farm-watch", *at]) == 0
        assert main(["digest", "retry", "--all", *at]) == 0
        capsys.readouterr()
        assert main(["status", "--json", *at]) == 0
        status = json.loads(capsys.readouterr().out)
    assert farm.hits == Counter(dict.fromkeys(range(5), 2))
    assert farm.not_modified == Counter(dict.fromkeys(range(5), 1))
    assert status["database"].startswith("postgresql+psycopg://")
    assert {f["health"] for f in status["feeds"]} == {"ok"}
    assert status["digests"]["counts"]["sent"] >= 1
    assert [w["feeds_held"] for w in status["workers"]] == [0, 0]  # one per run --once
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == status["digests"]["counts"]["sent"]
