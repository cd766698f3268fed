"""What `newswatch status` reports: feeds' health, rules and their problems, digests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pipeline import health
from pipeline.config import Config
from pipeline.rules import load_rules
from pipeline.ruletypes import RuleProblem, RuleSet
from storage.engine import redact_url
from storage.feeds import list_feeds
from storage.migrate import open_migrated
from storage.models import Feed
from storage.outbox import digest_status
from storage.workers import WorkerInfo, list_workers


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def feed_json(feed: Feed, articles: int) -> dict[str, Any]:
    return {
        "name": feed.name,
        "url": feed.url,
        "enabled": feed.enabled,
        "in_config": feed.in_config,
        "health": health.feed_health(feed),
        "message": health.feed_message(feed),
        "last_fetch_at": _iso(feed.last_fetch_at),
        "last_success_at": _iso(feed.last_success_at),
        "last_status": feed.last_status,
        "last_error": feed.last_error,
        "last_warning": feed.last_warning,
        "error_count": feed.error_count,
        "next_fetch_at": _iso(feed.next_fetch_at),
        "hold_reason": feed.hold_reason,
        "disabled_reason": feed.disabled_reason,
        "disabled_at": _iso(feed.disabled_at),
        "articles": articles,
    }


def worker_json(worker: WorkerInfo, now: datetime) -> dict[str, Any]:
    return {
        "id": worker.id,
        "host": worker.host,
        "pid": worker.pid,
        "started_at": _iso(worker.started_at),
        "last_heartbeat": _iso(worker.last_heartbeat),
        "seconds_since_heartbeat": round((now - worker.last_heartbeat).total_seconds(), 1),
        "stale": worker.stale,
        "feeds_held": worker.feeds_held,
        "digests_held": worker.digests_held,
    }


def feed_health(feed: Feed) -> str:
    """ok | warning | failing | disabled | removed | new."""
    if not feed.in_config:
        return "removed"
    if not feed.enabled:
        return "disabled"
    if feed.error_count:
        return "failing"
    if feed.last_fetch_at is None:
        return "new"
    return "warning" if feed.last_warning else "ok"


def problem_json(problem: RuleProblem) -> dict[str, Any]:
    return {
        "file": problem.path,
        "line": problem.line,
        "col": problem.col,
        "severity": problem.severity,
        "message": problem.message,
        "hint": problem.hint,
        "text": str(problem),
    }


def rules_json(ruleset: RuleSet) -> dict[str, Any]:
    return {
        "loaded": [
            {
                "id": r.id,
                "title": r.title,
                "level": r.level,
                "digest": r.digest,
                "notify": list(r.notify),
                "version": r.version,
                "file": r.path,
            }
            for r in ruleset.rules
        ],
        "places": len(ruleset.places),
        "problems": [problem_json(p) for p in ruleset.problems],
    }


def load_config_rules(config: Config) -> RuleSet:
    return load_rules(
        config.rules_dir,
        notifiers=set(config.notifiers),
        feeds={f.name for f in config.feeds},
        tags={t for f in config.feeds for t in f.tags},
        display_root=config.root,
    )


def collect_status(config: Config, *, now: datetime) -> dict[str, Any]:
    """The whole status document (`status --json` prints exactly this)."""
    with open_migrated(config.database_url) as db, db.session(write=False) as session:
        feeds = [feed_json(feed, n) for feed, n in list_feeds(session)]
        digests = digest_status(session)
        workers = [worker_json(w, now) for w in list_workers(session, now)]
    return {
        "generated_at": now.isoformat(),
        "config": str(config.path),
        "database": redact_url(config.database_url),
        "feeds": feeds,
        "rules": rules_json(load_config_rules(config)),
        "digests": digests,
        "workers": workers,
    }
