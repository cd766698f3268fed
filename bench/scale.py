"""Benchmark of the scale path: one cold and one hot cycle over a loopback feed farm.

Run from the repository: `python bench/scale.py [--feeds 10000] [--entries 50] [--workers 1,2,4]`.
Prints figures; never part of the tests.

The farm (tests/farm.py) serves N generated RSS feeds of `--entries` items each from one asyncio
server in this process. Each configuration gets a fresh database: SQLite with one worker, then a
throwaway PostgreSQL cluster (tests/pgserver.py: initdb in a temp dir, fsync off) with 1, 2 and 4
worker processes. The workers are real `newswatch run --once` processes started together; each
runs one cycle (claiming due feeds a batch at a time, so they share them) and exits. Times are wall
clock from starting the workers to the last one's exit, so they include start-up (config, rules,
migration, feed sync). A hot cycle follows on the same database: every feed made due again, every
answer a 304. Peak RSS is each worker's ru_maxrss from wait4.

Targets (issue 8): 10,000 feeds cold on SQLite < 5 min with peak RSS < 400 MB, hot < 60 s;
PostgreSQL with 4 workers ≥ 1.6× one worker's throughput.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlmodel import col, func, select  # noqa: E402 - after the path fix above

from storage.engine import open_database  # noqa: E402
from storage.feeds import make_due  # noqa: E402
from storage.models import Article, FetchLog  # noqa: E402
from tests.farm import FeedFarm, farm_config, write_rules  # noqa: E402
from tests.pgserver import PgCluster, start_cluster  # noqa: E402


@dataclass(frozen=True)
class Cycle:
    label: str
    workers: int
    seconds: float
    feeds: int
    articles: int
    not_modified: int
    errors: int
    rss_mb: tuple[float, ...]
    tree_mb: float  # peak of the sum of VmRSS over each worker and its parse processes
    cpu_s: float  # user + system CPU of the worker processes (parse-pool children excluded)
    db_bytes: int

    def line(self) -> str:
        rss = "/".join(f"{r:.0f}" for r in self.rss_mb)
        return (
            f"{self.label:<18} {self.workers:>2}w {self.seconds:7.1f} s (cpu {self.cpu_s:6.1f} s) "
            f"{self.feeds / self.seconds:8.1f} feeds/s {self.articles / self.seconds:9.0f} "
            f"entries/s  304s {self.not_modified:>6}  errors {self.errors:>3}  "
            f"peak RSS MB {rss} (with parse processes {self.tree_mb:.0f})"
        )


def _children() -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            found.setdefault(int(stat[1]), []).append(int(entry))
    return found


def tree_rss_mb(pid: int) -> float:
    """VmRSS of `pid` and all its descendants, summed (shared pages counted in each)."""
    children, total, todo = _children(), 0, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        total += next((int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS")), 0)
    return total / 1024


def sample_trees(pids: list[int], stop: threading.Event, peak: list[float]) -> None:
    while not stop.wait(0.25):
        peak[0] = max(peak[0], max(tree_rss_mb(pid) for pid in pids))


def run_workers(config: Path, count: int) -> tuple[float, list[float], float, float]:
    """Starts `count` `run --once` workers together; returns wall seconds, each one's peak RSS
    (MB), the largest worker-with-parse-processes RSS seen (MB) and their CPU seconds."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "pipeline.cli", "run", "--once", "--config", str(config)]
    start = time.monotonic()
    procs = [
        subprocess.Popen(argv, env=env, cwd=config.parent, stdout=subprocess.DEVNULL)
        for _ in range(count)
    ]
    stop, peak = threading.Event(), [0.0]
    sampler = threading.Thread(target=sample_trees, args=([p.pid for p in procs], stop, peak))
    sampler.start()
    rss, cpu = [], 0.0
    for proc in procs:
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"a worker failed with exit code {proc.returncode}")
        rss.append(usage.ru_maxrss / 1024)
        cpu += usage.ru_utime + usage.ru_stime
    seconds = time.monotonic() - start
    stop.set()
    sampler.join()
    return seconds, rss, peak[0], cpu


def counts(url: str, since_id: int) -> tuple[int, int, int, int]:
    """(articles, fetches, fetch errors, last fetch_log id) after fetch_log id `since_id`."""
    db = open_database(url)
    try:
        with db.session(write=False) as s:
            articles = s.exec(select(func.count()).select_from(Article)).one()
            new = select(FetchLog).where(col(FetchLog.id) > since_id)
            logs = s.exec(new).all()
        errors = sum(1 for log in logs if log.error)
        last = max((log.id or 0 for log in logs), default=since_id)
        return int(articles), len(logs), errors, last
    finally:
        db.dispose()


def refresh_all(url: str) -> None:
    db = open_database(url)
    try:
        with db.session() as s:
            make_due(s, [], now=datetime.now(UTC))
    finally:
        db.dispose()


def db_size(url: str, sqlite_path: Path | None) -> int:
    if sqlite_path is not None:
        return sum(p.stat().st_size for p in sqlite_path.parent.glob(sqlite_path.name + "*"))
    db = open_database(url)
    try:
        with db.engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar())
    finally:
        db.dispose()


def bench(
    farm: FeedFarm, label: str, url: str, workers: int, folder: Path, sqlite_path: Path | None
) -> list[Cycle]:
    folder.mkdir(parents=True, exist_ok=True)
    write_rules(folder / "rules")
    config = folder / "config.toml"
    config.write_text(
        farm_config(farm, database_url=url, rules_dir="rules", lease="60s", concurrency=32),
        encoding="utf-8",
    )
    cycles = []
    last_log = 0
    for kind in ("cold", "hot"):
        if kind == "hot":
            refresh_all(url)
        before_304 = sum(farm.not_modified.values())
        seconds, rss, tree, cpu = run_workers(config, workers)
        articles, fetched, errors, last_log = counts(url, last_log)
        cycle = Cycle(
            f"{label} {kind}",
            workers,
            seconds,
            fetched,
            articles if kind == "cold" else 0,
            sum(farm.not_modified.values()) - before_304,
            errors,
            tuple(rss),
            tree,
            cpu,
            db_size(url, sqlite_path),
        )
        print(cycle.line(), flush=True)
        if kind == "cold" and articles:
            per = cycle.db_bytes / articles * 100_000 / 1e6
            size = cycle.db_bytes / 1e6
            print(f"{'':<26}database {size:.0f} MB = {per:.0f} MB per 100,000 articles")
        cycles.append(cycle)
    return cycles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=10_000)
    parser.add_argument("--entries", type=int, default=50)
    parser.add_argument("--workers", default="1,2,4", help="PostgreSQL worker counts")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="newswatch-scale-"))
    farm = FeedFarm(feeds=args.feeds, entries=args.entries, match_every=500)
    print(f"farm: {args.feeds} feeds x {args.entries} entries; {os.cpu_count()} CPUs; in {tmp}")
    results: list[Cycle] = []
    with farm.running():
        if not args.no_sqlite:
            path = tmp / "sqlite" / "bench.db"
            results += bench(farm, "sqlite", f"sqlite:///{path}", 1, path.parent, path)
        if not args.no_postgres:
            cluster: PgCluster = start_cluster()
            try:
                for n in (int(w) for w in args.workers.split(",")):
                    url = cluster.create_database()
                    results += bench(farm, "postgresql", url, n, tmp / f"pg{n}", None)
                    cluster.drop_database(url)
            finally:
                cluster.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    pg_cold = {c.workers: c for c in results if c.label == "postgresql cold"}
    if 1 in pg_cold and len(pg_cold) > 1:
        base = pg_cold[1].feeds / pg_cold[1].seconds
        for n, c in sorted(pg_cold.items()):
            print(f"postgresql {n} workers: {c.feeds / c.seconds / base:.2f}x one worker's feeds/s")


if __name__ == "__main__":
    main()
