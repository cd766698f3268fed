"""`newswatch status`: a table for people, a stable JSON document for scripts."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from pipeline.assemble import wall_clock
from pipeline.config import load_config
from pipeline.output import out_json
from pipeline.status import collect_status


def status(args: argparse.Namespace) -> int:
    """Feeds (health, last fetch, errors), rules, queued and failed digests.

    Example: newswatch status --json
    """
    doc = collect_status(load_config(args.config), now=wall_clock())
    if args.json:
        out_json(doc)
    else:
        print_tables(doc)
    return 0


def print_tables(doc: dict[str, Any]) -> None:
    console = Console(highlight=False)
    feeds = Table(title="Feeds", title_justify="left")
    for column in ("feed", "health", "last fetch", "HTTP", "articles", "next", "error"):
        feeds.add_column(column)
    for f in doc["feeds"]:
        feeds.add_row(
            f["name"],
            f["health"],
            (f["last_fetch_at"] or "never")[:16],
            str(f["last_status"] or ""),
            str(f["articles"]),
            (f["next_fetch_at"] or "")[:16]
            + (f" ({f['hold_reason']})" if f["hold_reason"] else ""),
            (f["message"] or f["last_error"] or f["last_warning"] or "")[:80],
        )
    console.print(feeds)
    rules = doc["rules"]
    console.print(f"Rules: {len(rules['loaded'])} loaded, {rules['places']} places")
    for problem in rules["problems"]:
        console.print(f"  {problem['text']}", markup=False)
    counts = doc["digests"]["counts"]
    console.print("Digests: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for d in doc["digests"]["digests"]:
        if d["state"] != "sent":
            detail = d["last_error"] or ""
            console.print(
                f"  {d['id']} {d['rule']} → {d['notifier']}: {d['state']} {detail}", markup=False
            )
    for held in doc["digests"].get("held", []):
        console.print(f"  rule {held['rule']} removed; {held['alerts']} alerts held", markup=False)
    for w in doc.get("workers", []):
        console.print(
            f"Worker {w['id']}: last heartbeat {(w['last_heartbeat'] or '')[:19]}"
            f"{' (stale)' if w['stale'] else ''}, "
            f"leases: {w['feeds_held']} feeds, {w['digests_held']} digests",
            markup=False,
        )
