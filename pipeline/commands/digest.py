"""`newswatch digest preview|retry|resend`."""

from __future__ import annotations

import argparse
from pathlib import Path

from notifications.digest import build_digest
from notifications.render import Renderer
from pipeline.assemble import wall_clock
from pipeline.config import load_config
from pipeline.errors import ConfigError
from pipeline.output import out
from pipeline.status import load_config_rules
from storage.migrate import open_migrated
from storage.outbox import pending_entries
from storage.outbox import resend as resend_digest
from storage.outbox import retry as retry_digests


def preview(args: argparse.Namespace) -> int:
    """Renders the next digest of a rule without sending it (text to stdout, HTML to a file).

    Example: newswatch digest preview border-security --html next.html
    """
    config = load_config(args.config)
    ruleset = load_config_rules(config)
    now = wall_clock()
    with open_migrated(config.database_url) as db, db.session(write=False) as session:
        data = pending_entries(session, rule_id=args.rule, now=now)
    if data is None:
        out(f"nothing waits for {args.rule}: the next digest would be empty")
        return 0
    view = build_digest(data, now=now, place_names=ruleset.place_names())
    renderer = Renderer(tz=config.tz)
    out(renderer.text(view))
    if args.html:
        _write(args.html, renderer.html(view))
        out(f"HTML written to {args.html}")
    return 0


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write: {exc.strerror}") from None


def retry(args: argparse.Namespace) -> int:
    """Makes deferred and failed deliveries due now (after fixing the server).

    Example: newswatch digest retry --all
    """
    if not args.id and not args.all:
        raise ConfigError("say which digest to retry", hint="newswatch digest retry ID, or --all")
    config = load_config(args.config)
    with open_migrated(config.database_url) as db, db.session() as session:
        ids = retry_digests(session, None if args.all else args.id, wall_clock())
    out(f"{len(ids)} digests due now" + "".join(f"\n  {i}" for i in ids))
    return 0


def resend(args: argparse.Namespace) -> int:
    """Sends an uncertain or sent digest again, with the same Message-ID / webhook-id.

    Example: newswatch digest resend 3f2a9c0d1e2b4a5c6d7e
    """
    config = load_config(args.config)
    with open_migrated(config.database_url) as db, db.session() as session:
        resend_digest(session, args.id, wall_clock())
    out(f"digest {args.id} queued to be sent again by the next cycle")
    return 0
