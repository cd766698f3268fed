"""One cycle of the service: fetch due feeds, parse, store, match, queue, close and deliver digests.

Each feed's articles, their matches and queued alerts are written in one transaction, so a
crash anywhere leaves every article matched exactly once per rule version.
"""

from __future__ import annotations

import logging
import os
import random
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

import httpx
from sqlmodel import Session

from notifications.delivery import DeliveryOutcome, Notifier, deliver_due
from pipeline.backoff import next_after_failure, next_after_retry_after, next_after_success
from pipeline.config import Config
from pipeline.errors import FetchError
from pipeline.fetch import FeedRequest, FetchResult, FetchSettings, fetch_feeds
from pipeline.leases import LeaseKeeper
from pipeline.match import CompiledRules, compile_rules
from pipeline.parse import ParsedFeed, parse_feed
from pipeline.rules import keep_last_good, load_rules
from pipeline.ruletypes import RuleSet
from pipeline.schedules import close_due_digests
from storage.articles import store_article, store_match
from storage.engine import Database
from storage.feeds import (
    FeedSpec,
    FetchOutcome,
    claim_due_feeds,
    holds_feed_lease,
    record_fetch,
    release_feeds,
    sync_feeds,
)
from storage.migrate import migrate
from storage.models import Feed
from storage.outbox import queue_alerts
from storage.workers import heartbeat, renew_leases

logger = logging.getLogger(__name__)


class Clock(Protocol):
    def __call__(self) -> datetime: ...


@dataclass(slots=True)
class CycleReport:
    """What one cycle did, for logs, `run --once` and tests."""

    feeds_due: int = 0
    fetched: int = 0
    not_modified: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    new_articles: int = 0
    matches: int = 0
    alerts: int = 0
    digests: list[str] = field(default_factory=list)
    deliveries: list[DeliveryOutcome] = field(default_factory=list)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Service:
    """The composition of the pipeline for one worker; every collaborator is injectable."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock,
        db: Database,
        notifiers: Mapping[str, Notifier],
        transport: httpx.AsyncBaseTransport | None = None,
        is_public: Callable[..., bool] | None = None,
        worker: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.db = db
        self.notifiers = notifiers
        self.transport = transport
        self.is_public = is_public
        self.worker = worker or default_worker_id()
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.lease = timedelta(seconds=config.fetch.lease_s)
        self.batch = max(config.fetch.concurrency * 4, 16)  # feeds claimed at a time
        self.compiled: tuple[RuleSet, CompiledRules] = (RuleSet((), ()), compile_rules((), ()))
        self.settings = FetchSettings(
            user_agent=config.fetch.user_agent,
            timeout_s=config.fetch.timeout_s,
            connect_timeout_s=config.fetch.connect_timeout_s,
            max_bytes=config.fetch.max_bytes,
            per_host=config.fetch.per_host,
            concurrency=config.fetch.concurrency,
        )

    # --- start-up and reload -------------------------------------------------------------

    def start(self) -> None:
        """Migrates the database, makes the feed table follow the config, loads the rules."""
        migrate(self.db)
        self.sync_feeds()
        self.reload_rules()

    def sync_feeds(self) -> None:
        specs = [
            FeedSpec(
                name=f.name,
                url=f.url,
                tags=f.tags,
                language=f.language,
                interval_s=self.config.feed_interval_s(f),
            )
            for f in self.config.feeds
        ]
        with self.db.session() as session:
            sync_feeds(session, specs, now=self.clock())

    def reload_config(self, config: Config) -> None:
        """Takes a changed config.toml's feeds; the rest needs a restart (logged)."""
        if (config.database_url, config.rules_dir) != (
            self.config.database_url,
            self.config.rules_dir,
        ):
            logger.warning("database.url or rules_dir changed: restart newswatch to use them")
        self.config = replace(self.config, feeds=config.feeds)
        self.sync_feeds()
        logger.info("config reloaded feeds=%d", len(config.feeds))

    def reload_rules(self) -> RuleSet:
        """Loads rules and places; a file that fails keeps its last good version running."""
        loaded = load_rules(
            self.config.rules_dir,
            notifiers=set(self.config.notifiers),
            feeds={f.name for f in self.config.feeds},
            tags={t for f in self.config.feeds for t in f.tags},
            display_root=self.config.root,
        )
        for problem in loaded.problems:
            logger.warning("rule problem: %s", problem)
        ruleset = keep_last_good(self.ruleset if self.ruleset.rules else None, loaded)
        # One assignment: a cycle in flight keeps the (ruleset, matcher) pair it started with.
        self.compiled = (ruleset, compile_rules(ruleset.rules, ruleset.places))
        logger.info(
            "rules loaded rules=%d places=%d problems=%d",
            len(ruleset.rules),
            len(ruleset.places),
            len(ruleset.problems),
        )
        return ruleset

    @property
    def ruleset(self) -> RuleSet:
        return self.compiled[0]

    @property
    def matcher(self) -> CompiledRules:
        return self.compiled[1]

    # --- the cycle -------------------------------------------------------------------------

    def run_cycle(self) -> CycleReport:
        """Fetches what is due, then closes and delivers what is due.

        The clock is read at the start, before each batch of feeds and before delivery: leases
        are shared with other workers, so their expiry must be on fresh time.
        """
        now = self.clock()
        report = CycleReport()
        self.renew_leases(now)
        with LeaseKeeper(self.renew_leases, interval_s=self.lease.total_seconds() / 3):
            self.fetch_due(now, report)
            self.deliver(self.clock(), report)
        return report

    def renew_leases(self, now: datetime | None = None) -> None:
        """The heartbeat: this worker is alive, and keeps the feeds and digests it holds."""
        now = now or self.clock()
        with self.db.session() as session:
            heartbeat(session, self.worker, host=socket.gethostname(), pid=os.getpid(), now=now)
            renew_leases(session, worker=self.worker, now=now, lease=self.lease)

    def fetch_due(self, now: datetime, report: CycleReport) -> None:
        """Claims due feeds a batch at a time, so that several workers share them."""
        seen: set[int | None] = set()
        while True:
            with self.db.session() as session:
                feeds = claim_due_feeds(
                    session, now=now, worker=self.worker, lease=self.lease, limit=self.batch
                )
            if not feeds or {f.id for f in feeds} <= seen:
                return
            seen |= {f.id for f in feeds}
            report.feeds_due += len(feeds)
            self.fetch_batch(feeds, now, report)
            if len(feeds) < self.batch:
                return
            now = self.clock()

    def fetch_batch(self, feeds: list[Feed], now: datetime, report: CycleReport) -> None:
        requests = [FeedRequest(f.name, f.url, f.etag, f.last_modified) for f in feeds]
        try:
            results = fetch_feeds(
                requests,
                self.settings,
                now=now,
                transport=self.transport,
                is_public=self.is_public,
            )
        except BaseException:
            with self.db.session() as session:
                release_feeds(
                    session, [f.id for f in feeds if f.id is not None], worker=self.worker
                )
            raise
        for feed, result in zip(feeds, results, strict=True):
            self.ingest(feed, result, now, report)

    def ingest(self, feed: Feed, result: FetchResult, now: datetime, report: CycleReport) -> None:
        """Parses one fetch result and stores it with its matches in one transaction."""
        parsed: ParsedFeed | None = None
        error = result.error
        if error is None and result.status == 200 and result.body is not None:
            try:
                parsed = parse_feed(
                    result.body,
                    headers=result.headers,
                    url=result.final_url or result.url,
                    now=now,
                    language=feed.language,
                )
            except FetchError as exc:
                error = exc.message
        elif error is None and not result.not_modified and not result.gone:
            error = f"HTTP {result.status}"
        outcome_error = error if not result.gone else "410 Gone: the feed was removed"
        with self.db.session() as session:
            assert feed.id is not None
            if not holds_feed_lease(session, feed.id, worker=self.worker):
                logger.warning("lease lost feed=%s: another worker has it; not stored", feed.name)
                return
            session.add(feed)
            new = self.store(session, feed, parsed, now, report) if parsed else 0
            record_fetch(session, feed, self.outcome(feed, result, parsed, outcome_error, now, new))
        if outcome_error:
            report.failed[feed.name] = outcome_error
            logger.warning("fetch failed feed=%s error=%s", feed.name, outcome_error)
        elif result.not_modified:
            report.not_modified += 1
        else:
            report.fetched += 1

    def store(
        self, session: Session, feed: Feed, parsed: ParsedFeed, now: datetime, report: CycleReport
    ) -> int:
        assert feed.id is not None
        ruleset, matcher = self.compiled  # one complete rule version for this feed's articles
        tags = tuple(feed.tags.split())
        new = 0
        for entry in parsed.articles:
            article = store_article(session, feed.id, entry, now=now)
            if article is None:
                continue
            new += 1
            if article.duplicate_of is not None:
                continue
            assert article.id is not None
            for match in matcher.match(article.document, feed=feed.name, feed_tags=tags):
                rule = ruleset.rule(match.rule_id)
                if rule is None:
                    continue
                row = store_match(session, article.id, match, now=now)
                assert row.id is not None
                report.matches += 1
                report.alerts += queue_alerts(
                    session,
                    match_id=row.id,
                    article_id=article.id,
                    rule_id=rule.id,
                    rule_version=rule.version,
                    rule_title=rule.title,
                    level=rule.level,
                    notifiers=rule.notify,
                    now=now,
                )
        report.new_articles += new
        return new

    def outcome(
        self,
        feed: Feed,
        result: FetchResult,
        parsed: ParsedFeed | None,
        error: str | None,
        now: datetime,
        new: int,
    ) -> FetchOutcome:
        interval = float(feed.interval_s)
        hold: str | None = None
        if result.retry_after_s is not None:
            next_at, hold = (
                next_after_retry_after(now, result.retry_after_s, interval),
                "retry-after",
            )
        elif error:
            next_at = next_after_failure(now, interval, feed.error_count + 1, self.rng)
            hold = "backoff"
        else:
            next_at = next_after_success(now, interval, self.rng)
        return FetchOutcome(
            at=now,
            next_fetch_at=next_at,
            success=error is None,
            status=result.status,
            error=error,
            warning=parsed.warning if parsed else None,
            etag=result.etag,
            last_modified=result.last_modified,
            new_url=result.permanent_url,
            gone=result.gone,
            hold_reason=hold,
            entries=len(parsed.articles) if parsed else 0,
            new_articles=new,
            bytes=len(result.body or b""),
        )

    def deliver(self, now: datetime, report: CycleReport) -> None:
        schedules = {rule.id: rule.digest for rule in self.ruleset.rules}
        report.digests = close_due_digests(self.db, schedules, now=now, tz=self.config.tz)
        report.deliveries = deliver_due(
            self.db,
            self.notifiers,
            now=now,
            worker=self.worker,
            lease=self.lease,
            place_names=self.ruleset.place_names(),
        )
