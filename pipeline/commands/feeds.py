"""`newswatch feeds list|refresh|add|remove|import-opml|export-opml`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from pipeline.assemble import wall_clock
from pipeline.config import Config, FeedConfig, load_config
from pipeline.errors import ConfigError
from pipeline.feedfile import FeedEntry, add_feeds, check_new_feed, remove_feed, write_atomic
from pipeline.opml import plan_import, read_opml, render_opml
from pipeline.output import out, out_json
from pipeline.status import feed_json
from pipeline.yamlsafe import suggest
from storage.feeds import FeedSpec, list_feeds, make_due, sync_feeds
from storage.migrate import open_migrated
from storage.models import Feed

_NOTES = {"last_error": "error", "hold_reason": "held", "disabled_reason": "disabled"}


def list_(args: argparse.Namespace) -> int:
    """Lists the feeds of config.toml with their stored health, last fetch and articles.

    Example: newswatch feeds list --json
    """
    config = load_config(args.config)
    rows = feed_rows(config)
    if args.json:
        out_json(rows)
        return 0
    width = max([len(r["name"]) for r in rows] + [4])
    out(f"{'FEED':<{width}}  {'HEALTH':<8} {'ARTICLES':>8}  {'LAST FETCH':<16}  TAGS")
    for r in rows:
        last = (r["last_fetch_at"] or "never")[:16]
        row = f"{r['name']:<{width}}  {r['health']:<8} {r['articles']:>8}  {last:<16}  "
        out((row + " ".join(r["tags"])).rstrip())
        for key, label in _NOTES.items():
            if r[key]:
                out(f"{'':<{width}}  {label}: {r[key]}")
    out(f"{len(config.feeds)} feeds in {config.path}")
    return 0


def feed_rows(config: Config) -> list[dict[str, Any]]:
    """feed_json for each configured feed (health "new" if not stored yet), then removed ones."""
    stored = {feed.name: (feed, n) for feed, n in _stored_feeds(config)}
    rows = []
    for f in config.feeds:
        feed, articles = (
            stored.pop(f.name) if f.name in stored else (Feed(name=f.name, url=f.url), 0)
        )
        extra = {
            "tags": list(f.tags),
            "language": f.language,
            "interval_s": config.feed_interval_s(f),
        }
        rows.append(feed_json(feed, articles) | extra)
    for feed, articles in stored.values():
        extra = {
            "tags": feed.tags.split(),
            "language": feed.language,
            "interval_s": float(feed.interval_s),
        }
        rows.append(feed_json(feed, articles) | extra)
    return rows


def _stored_feeds(config: Config) -> list[tuple[Feed, int]]:
    url = sa.make_url(config.database_url)
    if url.get_backend_name() == "sqlite" and not (url.database and Path(url.database).is_file()):
        return []  # listing never creates the database
    with open_migrated(config.database_url) as db, db.session() as session:
        return list_feeds(session)


def refresh(args: argparse.Namespace) -> int:
    """Makes feeds due now, except those held by Retry-After, backoff or 410 (said so).

    Example: newswatch feeds refresh ozodi-tg azadi-fa
    """
    config = load_config(args.config)
    names = [f.name for f in config.feeds]
    for name in args.names:
        if name not in names:
            raise ConfigError(
                f"{config.path}: no feed named {name!r}{suggest(name, names)}",
                hint="`newswatch feeds list` shows the feeds",
            )
    now = wall_clock()
    with open_migrated(config.database_url) as db, db.session() as session:
        sync_feeds(session, [_spec(config, f) for f in config.feeds], now=now)
        said = make_due(session, args.names, now=now)
    for name, what in said.items():
        out(f"{name}: {what}")
    return 0


def _spec(config: Config, feed: FeedConfig) -> FeedSpec:
    return FeedSpec(
        name=feed.name,
        url=feed.url,
        tags=feed.tags,
        language=feed.language,
        interval_s=config.feed_interval_s(feed),
    )


def add(args: argparse.Namespace) -> int:
    """Adds a feed to config.toml, keeping its comments; the service picks it up on reload.

    Example: newswatch feeds add ozodi-tg https://www.ozodi.org/api/x --tag tg --interval 10m
    """
    config = load_config(args.config)
    entry = FeedEntry(args.name, args.url, tuple(args.tag), args.language, args.interval)
    check_new_feed(config, entry)
    try:
        add_feeds(config, [entry])
    except ConfigError as exc:
        raise ConfigError(f"feed {entry.name!r} not added: {exc.message}", hint=exc.hint) from None
    out(f"added {entry.name} ({entry.url}) to {config.path}")
    return 0


def remove(args: argparse.Namespace) -> int:
    """Removes a feed from config.toml; its stored articles are kept.

    Example: newswatch feeds remove ozodi-tg
    """
    config = load_config(args.config)
    remove_feed(config, args.name)
    out(f"removed {args.name} from {config.path} (its stored articles are kept)")
    return 0


def import_opml(args: argparse.Namespace) -> int:
    """Adds the feeds of an OPML file: folders become tags, known URLs are skipped.

    Example: newswatch feeds import-opml subscriptions.opml
    """
    config = load_config(args.config)
    plan = plan_import(read_opml(args.file), config.feeds)
    for s in plan.skipped:
        out(f"skipped {args.file}:{s.line}: {s.title or s.url}: {s.reason}")
    if plan.added:
        add_feeds(config, plan.added)
    for entry in plan.added:
        out(f"added {entry.name} ({entry.url})" + "".join(f" #{t}" for t in entry.tags))
    out(f"{len(plan.added)} feeds added, {len(plan.skipped)} skipped")
    return 0


def export_opml(args: argparse.Namespace) -> int:
    """Writes the feeds as OPML 2.0, to FILE or to stdout.

    Example: newswatch feeds export-opml feeds.opml
    """
    config = load_config(args.config)
    text = render_opml(config.feeds)
    if args.file is None:
        out(text.removesuffix("\n"))
    else:
        write_atomic(args.file, text)
        out(f"wrote {len(config.feeds)} feeds to {args.file}")
    return 0
