"""kill -9 in the middle of a fetch cycle: nothing stored is lost, nothing is stored twice, and
every feed keeps its schedule (RELIABILITY D3, for the fetch stages; issue 5).

A real `newswatch run` process fetches 60 feeds in batches of 16. Four feeds of the third batch
drip their bodies slowly, so the process is killed (SIGKILL) while that batch is in flight, after
the first two batches were stored. The next run (a Service on an injected clock that starts at
the wall clock) must then: leave the stored feeds alone until their next fetch, fetch the feeds
the dead process never claimed, and fetch the feeds it held only once their lease expired.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline.assemble import build_notifiers
from pipeline.config import load_config
from pipeline.service import Service
from storage.engine import open_database
from tests.conftest import REPO, FakeClock
from tests.pipeline.conftest import PRIVATE_HOST, PUBLIC_HOST, Handler, ScriptedServer, send
from tests.test_fetch_service import GUNFIRE_RULE, RSS_TYPE, item, rss

FAST_BEFORE, SLOW, FAST_AFTER = 32, 4, 24  # batches: 16 fast, 16 fast, 4 slow + 12 fast, 12 fast
ITEMS = 5


def feed_body(name: str) -> bytes:
    return rss(*(item(f"{name}-{n}", f"Gunfire report {n} of {name}") for n in range(ITEMS)))


def names() -> list[str]:
    fast = [f"fast{n:02d}" for n in range(FAST_BEFORE + FAST_AFTER)]
    return fast[:FAST_BEFORE] + [f"slow{n}" for n in range(SLOW)] + fast[FAST_BEFORE:]


@pytest.fixture
def servers() -> Iterator[tuple[ScriptedServer, ScriptedServer]]:
    fast, slow = ScriptedServer(PUBLIC_HOST), ScriptedServer(PRIVATE_HOST)
    yield fast, slow
    fast.close()
    slow.close()


def drip_until_released(hit: threading.Event) -> Callable[[Handler], None]:
    """Headers, then a byte every 0.1 s, until the test releases the route; then a whole feed."""

    def route(h: Handler) -> None:
        if released.is_set():
            send(h, 200, feed_body(h.path.strip("/")), RSS_TYPE)
            return
        hit.set()
        h.send_response(200)
        h.send_header("Content-Type", "application/rss+xml")
        h.end_headers()
        while not released.wait(0.1):
            h.wfile.write(b" ")
            h.wfile.flush()

    released = threading.Event()
    route.release = released  # type: ignore[attr-defined]
    return route


def write_config(tmp_path: Path, fast: ScriptedServer, slow: ScriptedServer) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "gunfire.yaml").write_text(GUNFIRE_RULE, encoding="utf-8")
    feeds = "".join(
        f'[[feeds]]\nname = "{name}"\n'
        f'url = "{(slow if name.startswith("slow") else fast).url("/" + name)}"\n\n'
        for name in names()
    )
    path = tmp_path / "config.toml"
    path.write_text(
        'rules_dir = "rules"\noutbox_dir = "outbox"\n[database]\nurl = "sqlite:///newswatch.db"\n'
        '[fetch]\ntimeout = "60s"\nconcurrency = 4\nlease = "3s"\ninterval = "15m"\n\n'
        f"{feeds}"
        '[notifiers.outbox]\ntype = "outbox"\nto = ["analyst@example.org"]\n',
        encoding="utf-8",
    )
    return path


def rows(db: Path, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        return conn.execute(query).fetchall()


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    """Polls a condition on the other process (bounded); never waits for a schedule."""
    deadline = threading.Event()
    timer = threading.Timer(timeout_s, deadline.set)
    timer.start()
    try:
        while not condition():
            if deadline.wait(0.05):
                raise AssertionError(f"timed out waiting for {what}")
    finally:
        timer.cancel()


def test_kill_9_mid_cycle_loses_nothing_stores_nothing_twice_and_keeps_schedules(
    tmp_path: Path, servers: tuple[ScriptedServer, ScriptedServer]
) -> None:
    fast, slow = servers
    for name in names():
        if name.startswith("fast"):
            fast.static(f"/{name}", feed_body(name), headers=RSS_TYPE)
    hit = threading.Event()
    dripping = drip_until_released(hit)
    for name in names():
        if name.startswith("slow"):
            slow.add(f"/{name}", dripping)
    config_path = write_config(tmp_path, fast, slow)
    db_path = tmp_path / "newswatch.db"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = (tmp_path / "run.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "run", "--config", str(config_path), "--tick", "1"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(hit.is_set, "the slow batch to start")
        recorded = "SELECT count(*) FROM feeds WHERE last_fetch_at IS NOT NULL"
        wait_for(lambda: rows(db_path, recorded)[0][0] >= 2 * 16, "two batches to be stored")
        process.send_signal(signal.SIGKILL)
        assert process.wait(10) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        dripping.release.set()  # type: ignore[attr-defined]
        log.close()

    before = set(rows(db_path, "SELECT feed_id, guid FROM articles"))
    schedule = dict(rows(db_path, "SELECT name, next_fetch_at FROM feeds"))
    held = {n for (n,) in rows(db_path, "SELECT name FROM feeds WHERE acquired_by IS NOT NULL")}
    stored = {n for (n,) in rows(db_path, "SELECT name FROM feeds WHERE last_fetch_at IS NOT NULL")}
    assert len(stored) >= 32 and len(before) == ITEMS * len(stored)
    assert held and held.isdisjoint(stored) and {f"slow{n}" for n in range(SLOW)} <= held
    unclaimed = set(names()) - held - stored
    assert unclaimed, "the kill should land before the last batch is claimed"
    hits_at_kill = {name: fast.hits[f"/{name}"] + slow.hits[f"/{name}"] for name in names()}

    # The next run, on an injected clock from the wall clock; the dead worker's leases hold.
    config = load_config(config_path)
    clock = FakeClock(datetime.now(UTC))
    db = open_database(config.database_url)
    service = Service(
        config, clock=clock, db=db, notifiers=build_notifiers(config), rng=random.Random(3)
    )
    try:
        service.start()
        first = service.run_cycle()
        assert first.feeds_due == len(unclaimed) and not first.failed
        clock.advance(seconds=60)  # past the 3 s lease
        second = service.run_cycle()
        assert second.feeds_due == len(held) and not second.failed
        clock.advance(seconds=60)
        assert service.run_cycle().feeds_due == 0
    finally:
        service.close()
        db.dispose()

    after = rows(db_path, "SELECT feed_id, guid FROM articles")
    assert before <= set(after), "an article stored before the kill was lost"
    assert len(after) == len(set(after)) == ITEMS * len(names())
    assert rows(db_path, "SELECT count(*) FROM articles WHERE duplicate_of IS NOT NULL") == [(0,)]
    alerts = rows(db_path, "SELECT article_id, count(*) FROM alerts GROUP BY article_id")
    assert len(alerts) == len(after) and {n for _, n in alerts} == {1}  # matched exactly once
    hits = {name: fast.hits[f"/{name}"] + slow.hits[f"/{name}"] for name in names()}
    for name in stored:  # kept their schedule: not fetched again
        assert hits[name] == 1, name
    for name in unclaimed:
        assert hits[name] == 1, name
    for name in held:  # fetched (maybe) by the dead process, then once more after the lease
        assert hits[name] == hits_at_kill[name] + 1, name
    now_schedule = dict(rows(db_path, "SELECT name, next_fetch_at FROM feeds"))
    assert {n: now_schedule[n] for n in stored} == {n: schedule[n] for n in stored}
    assert rows(db_path, "SELECT count(*) FROM feeds WHERE acquired_by IS NOT NULL") == [(0,)]
    assert rows(db_path, "SELECT count(*) FROM feeds WHERE error_count > 0") == [(0,)]
