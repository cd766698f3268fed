"""One cycle of the service: fetch due feeds, parse, store, match, queue, close and deliver digests.

Each feed's articles, their matches and queued alerts are written in one transaction, so a
crash anywhere leaves every article matched exactly once per rule version.

`checkpoint(step)` is called after each committed stage ("fetched", "stored", "closed", then
delivery's steps); it does nothing but in the crash tests (pipeline.assemble.crash_checkpoint).
"""

from __future__ import annotations

import logging
import os
import random
import socket
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

import httpx
from sqlmodel import Session

from notifications.delivery import (
    Checkpoint,
    DeliveryOutcome,
    Notifier,
    deliver_due,
    no_checkpoint,
)
from pipeline.backoff import (
    next_after_failure,
    next_after_network_down,
    next_after_retry_after,
    next_after_success,
)
from pipeline.config import Config
from pipeline.fetch import FeedRequest, FetchResult, FetchSettings, fetch_feeds
from pipeline.health import (
    NETWORK_DOWN,
    NETWORK_RETRY_S,
    SILENT_PREFIX,
    human_duration,
    network_down,
    silence_warning,
)
from pipeline.leases import LeaseKeeper
from pipeline.match import CompiledRules, compile_rules
from pipeline.parse import ParsedFeed
from pipeline.parsepool import ParsedBatch, ParseJob, ParseOutcome, ParsePool
from pipeline.rules import keep_last_good, load_rules
from pipeline.ruletypes import RuleSet
from pipeline.schedules import close_due_digests
from storage.articles import (
    StoredArticle,
    recent_publication_times,
    store_articles,
    store_match,
)
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
from storage.workers import expire_leases, heartbeat, renew_leases

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
        checkpoint: Checkpoint = no_checkpoint,
    ) -> None:
        self.config = config
        self.checkpoint = checkpoint
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
        self.parse_pool = ParsePool()  # processes start on the first batch worth them
        self.settings = FetchSettings(
            user_agent=config.fetch.user_agent,
            timeout_s=config.fetch.timeout_s,
            connect_timeout_s=config.fetch.connect_timeout_s,
            max_bytes=config.fetch.max_bytes,
            per_host=config.fetch.per_host,
            concurrency=config.fetch.concurrency,
        )

    # --- start-up and reload -------------------------------------------------------------

    def start(self, *, alone: bool = False) -> None:
        """Migrates the database, makes the feed table follow the config, loads the rules.

        `alone`: this worker holds the SQLite service lock, so leases left in the database are
        those of a newswatch that died; they end now, and its work is taken up this cycle.
        """
        migrate(self.db)
        if alone:
            with self.db.session() as session:
                feeds, digests = expire_leases(session, worker=self.worker, now=self.clock())
            if feeds or digests:
                logger.warning(
                    "leases left by a stopped newswatch released feeds=%d digests=%d",
                    feeds,
                    digests,
                )
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
            # Warnings (shared names, missing scripts) are for `rules check`; errors stop a file.
            level = logging.WARNING if problem.severity == "error" else logging.DEBUG
            logger.log(level, "rule problem: %s", problem)
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
        """Claims due feeds a batch at a time, so that several workers share them.

        The next batch is fetched in a thread while this one is parsed (on every core, see
        pipeline.parsepool) and stored. On any error the feeds not yet recorded are released.
        """
        seen: set[int] = set()
        fetcher = ThreadPoolExecutor(1, thread_name_prefix="newswatch-fetch")
        try:
            self.fetch_batches(now, seen, report, fetcher)
        except BaseException:
            self.release(seen)
            raise
        finally:
            fetcher.shutdown(wait=False, cancel_futures=True)  # a fetch in flight is dropped

    def fetch_batches(
        self, now: datetime, seen: set[int], report: CycleReport, fetcher: ThreadPoolExecutor
    ) -> None:
        batch = self.claim_batch(now, seen, report)
        fetching = fetcher.submit(self.fetch_batch, batch, now) if batch else None
        while fetching is not None:
            current, current_now, fetched = batch, now, fetching.result()
            self.checkpoint("fetched")
            fetching = None
            if len(current) >= self.batch:
                now = self.clock()
                batch = self.claim_batch(now, seen, report)
                fetching = fetcher.submit(self.fetch_batch, batch, now) if batch else None
            self.ingest_batch(current, fetched, current_now, report)

    def release(self, feed_ids: set[int]) -> None:
        """Drops this worker's leases on feeds it claimed but did not record."""
        try:
            with self.db.session() as session:
                release_feeds(session, sorted(feed_ids), worker=self.worker)
        except Exception:  # they expire by themselves; don't hide the error that got us here
            logger.exception("could not release feed leases; they expire in %s", self.lease)

    def claim_batch(self, now: datetime, seen: set[int], report: CycleReport) -> list[Feed]:
        """Leases up to `self.batch` due feeds not already handled in this cycle."""
        with self.db.session() as session:
            feeds = claim_due_feeds(
                session, now=now, worker=self.worker, lease=self.lease, limit=self.batch
            )
            again = [f.id for f in feeds if f.id in seen]  # due again within one cycle: next one
            if again:
                release_feeds(session, [i for i in again if i is not None], worker=self.worker)
        fresh = [f for f in feeds if f.id is not None and f.id not in seen]
        seen.update(f.id for f in fresh if f.id is not None)
        report.feeds_due += len(fresh)
        return fresh

    def fetch_batch(self, feeds: list[Feed], now: datetime) -> FetchedBatch:
        """Fetches a batch and hands its bodies to the parse pool (in the fetch thread)."""
        requests = [FeedRequest(f.name, f.url, f.etag, f.last_modified) for f in feeds]
        results = fetch_feeds(
            requests, self.settings, now=now, transport=self.transport, is_public=self.is_public
        )
        down = network_down(results)
        pairs = zip(feeds, results, strict=True)
        jobs = [None if down else self.parse_job(feed, result, now) for feed, result in pairs]
        sizes = [len(r.body or b"") for r in results]
        results = [replace(r, body=None) for r in results]  # the bodies live in the jobs only
        return FetchedBatch(results, sizes, down, self.parse_pool.submit(jobs))

    def ingest_batch(
        self, feeds: list[Feed], fetched: FetchedBatch, now: datetime, report: CycleReport
    ) -> None:
        """Stores each feed of the batch as its body is parsed.

        A batch where nothing could be connected to, on several hosts, is the network's fault:
        recorded as such, not against each feed (pipeline.health).
        """
        if fetched.network_down:
            logger.warning(
                "%s; not counted against the feeds; retrying in %s",
                fetched.network_down,
                human_duration(timedelta(seconds=NETWORK_RETRY_S)),
            )
        outcomes = zip(fetched.results, fetched.sizes, fetched.parsed, strict=True)
        for feed, (result, size, parsed) in zip(feeds, outcomes, strict=True):
            self.ingest(feed, result, now, report, parsed, network=fetched.network_down, size=size)

    def parse_job(self, feed: Feed, result: FetchResult, now: datetime) -> ParseJob | None:
        if result.error is not None or result.status != 200 or result.body is None:
            return None
        url = result.final_url or result.url
        return ParseJob(result.body, result.headers, url, now, feed.language)

    def ingest(
        self,
        feed: Feed,
        result: FetchResult,
        now: datetime,
        report: CycleReport,
        parsed: ParseOutcome | None = None,
        *,
        network: str | None = None,
        size: int | None = None,
    ) -> None:
        """Stores one fetch result and its parsed feed with their matches in one transaction.

        `network` is set when the whole batch found the network down.
        """
        error = network or fetch_error(result, parsed)
        feed_parsed = parsed if isinstance(parsed, ParsedFeed) and error is None else None
        with self.db.session() as session:
            assert feed.id is not None
            if not holds_feed_lease(session, feed.id, worker=self.worker):
                logger.warning("lease lost feed=%s: another worker has it; not stored", feed.name)
                return
            session.add(feed)
            new = self.store(session, feed, feed_parsed, now, report) if feed_parsed else 0
            silence = None
            if error is None and new == 0:
                silence = silence_warning(recent_publication_times(session, feed.id), now)
            outcome = self.outcome(
                feed, result, feed_parsed, error, now, new, silence=silence, network=bool(network)
            )
            if size is not None:
                outcome = replace(outcome, bytes=size)
            record_fetch(session, feed, outcome)
        self.checkpoint("stored")
        if error:
            report.failed[feed.name] = error
            if network is None:
                logger.warning("fetch failed feed=%s error=%s", feed.name, error)
        elif result.not_modified:
            report.not_modified += 1
        else:
            report.fetched += 1

    def store(
        self, session: Session, feed: Feed, parsed: ParsedFeed, now: datetime, report: CycleReport
    ) -> int:
        """Stores the feed's new articles, then matches and queues the first copies of stories."""
        assert feed.id is not None
        compiled = self.compiled  # one complete rule version for this feed's articles
        stored = store_articles(session, feed.id, parsed.articles, now=now)
        for article in stored:
            if article.duplicate_of is None:
                self.match_article(session, feed, article, compiled, now, report)
        report.new_articles += len(stored)
        return len(stored)

    def match_article(
        self,
        session: Session,
        feed: Feed,
        article: StoredArticle,
        compiled: tuple[RuleSet, CompiledRules],
        now: datetime,
        report: CycleReport,
    ) -> None:
        ruleset, matcher = compiled
        tags = tuple(feed.tags.split())
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

    def outcome(
        self,
        feed: Feed,
        result: FetchResult,
        parsed: ParsedFeed | None,
        error: str | None,
        now: datetime,
        new: int,
        *,
        silence: str | None = None,
        network: bool = False,
    ) -> FetchOutcome:
        """The feed's new state: when to come back (interval, Retry-After, backoff) and why.

        `network`: the whole batch found the network down; not this feed's failure.
        """
        interval = float(feed.interval_s)
        hold: str | None = None
        if network:
            next_at = next_after_network_down(now, interval, NETWORK_RETRY_S)
            hold = NETWORK_DOWN
        elif result.retry_after_s is not None:
            next_at = next_after_retry_after(
                now, result.retry_after_s, interval, error_count=feed.error_count + 1, rng=self.rng
            )
            hold = "retry-after"
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
            warning=_join(feed_warning(feed, result, parsed), silence),
            etag=result.etag,
            last_modified=result.last_modified,
            new_url=result.permanent_url,
            gone=result.gone,
            hold_reason=hold,
            entries=len(parsed.articles) if parsed else 0,
            new_articles=new,
            bytes=len(result.body or b""),
            network_down=network,
        )

    def deliver(self, now: datetime, report: CycleReport) -> None:
        schedules = {rule.id: rule.digest for rule in self.ruleset.rules}
        report.digests = close_due_digests(self.db, schedules, now=now, tz=self.config.tz)
        self.checkpoint("closed")
        report.deliveries = deliver_due(
            self.db,
            self.notifiers,
            now=now,
            worker=self.worker,
            lease=self.lease,
            place_names=self.ruleset.place_names(),
            checkpoint=self.checkpoint,
        )

    def close(self) -> None:
        """Stops the parse pool's processes and closes the database connections."""
        self.parse_pool.close()
        self.db.dispose()


@dataclass(frozen=True, slots=True)
class FetchedBatch:
    """A fetched batch: its results, whether the network was down, its bodies being parsed."""

    results: list[FetchResult]  # without their bodies
    sizes: list[int]  # the bodies' sizes
    network_down: str | None
    parsed: ParsedBatch


def fetch_error(result: FetchResult, parsed: ParseOutcome | None) -> str | None:
    """Why this fetch gave no usable feed, or None (a 200 with a parsed feed, or a 304)."""
    if result.gone:
        return "410 Gone: the feed was removed"
    if result.error is not None:
        return result.error
    if isinstance(parsed, str):
        return parsed
    if result.status == 200 and parsed is None:
        return "HTTP 200 without a body"
    if result.status != 200 and not result.not_modified:
        return f"HTTP {result.status}"
    return None


def feed_warning(feed: Feed, result: FetchResult, parsed: ParsedFeed | None) -> str | None:
    """The parse warning to store: this document's, or on a 304 the one the document had."""
    if parsed is not None:
        return parsed.warning
    if result.not_modified and feed.last_warning:
        return None if feed.last_warning.startswith(SILENT_PREFIX) else feed.last_warning
    return None


def _join(*warnings: str | None) -> str | None:
    return "; ".join(w for w in warnings if w) or None
