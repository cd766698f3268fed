"""`newswatch run` and `newswatch demo`."""

from __future__ import annotations

import argparse
import logging
import threading
from contextlib import closing
from dataclasses import replace
from pathlib import Path

from pipeline.assemble import build_service
from pipeline.config import Config, FeedConfig, NotifierConfig, load_config
from pipeline.demo import SAMPLES_DIR, sample_feeds, serve_directory
from pipeline.lock import service_lock
from pipeline.output import out
from pipeline.reload import watch_service
from pipeline.scheduling import run_forever
from pipeline.service import CycleReport

logger = logging.getLogger(__name__)


def run(args: argparse.Namespace) -> int:
    """The service: every feed on its interval, digests on their schedules.

    Example: newswatch run --once
    """
    config = load_config(args.config)
    with service_lock(config.database_url) as alone, closing(build_service(config)) as service:
        service.start(alone=alone)
        if args.once:
            out(summarise(service.run_cycle()))
            return 0
        logger.info(
            "newswatch running feeds=%d rules=%d", len(config.feeds), len(service.ruleset.rules)
        )
        stop = threading.Event()
        watch_service(service, config.path, stop=stop)
        run_forever(service.run_cycle, tick_s=args.tick, stop=stop)
    return 0


def demo(args: argparse.Namespace) -> int:
    """Serves the bundled sample feeds on 127.0.0.1, runs one full cycle, prints the digest paths.

    The demo keeps its own database (newswatch-demo.db beside config.toml) and writes to the
    configured outbox folder; every notifier becomes an outbox notifier, so nothing is mailed.
    Example: newswatch demo
    """
    config = load_config(args.config)
    with serve_directory(SAMPLES_DIR) as base_url:
        demo_config = demo_configuration(config, sample_feeds(base_url))
        before = _eml_files(demo_config.outbox_dir)
        with (
            service_lock(demo_config.database_url) as alone,
            closing(build_service(demo_config)) as service,
        ):
            service.start(alone=alone)
            report = service.run_cycle()
    out(summarise(report))
    written = sorted(_eml_files(demo_config.outbox_dir) - before)
    if not written:
        out("no new digest: the sample articles were already delivered by an earlier demo run")
    for path in written:
        out(str(path))
    return 0


def demo_configuration(config: Config, feeds: tuple[FeedConfig, ...]) -> Config:
    notifiers = {
        name: NotifierConfig(name=name, type="outbox", to=nc.to, from_addr=nc.from_addr)
        for name, nc in config.notifiers.items()
    }
    return replace(
        config,
        feeds=feeds,
        notifiers=notifiers,
        database_url="sqlite:///" + str(config.root / "newswatch-demo.db"),
    )


def _eml_files(folder: Path) -> set[Path]:
    return set(folder.glob("*.eml")) if folder.is_dir() else set()


def summarise(report: CycleReport) -> str:
    lines = [
        f"feeds due: {report.feeds_due}, fetched: {report.fetched}, "
        f"not modified: {report.not_modified}, failed: {len(report.failed)}",
        f"new articles: {report.new_articles}, matches: {report.matches}, "
        f"alerts queued: {report.alerts}, digests: {len(report.digests)}",
    ]
    lines += [f"  feed {name}: {error}" for name, error in sorted(report.failed.items())]
    lines += [
        f"  digest {d.digest_id} ({d.notifier}): {d.state}"
        + (f" — {d.detail}" if d.detail and d.detail != d.state else "")
        for d in report.deliveries
    ]
    return "\n".join(lines)
