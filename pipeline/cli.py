"""The command line: argv → one command function → exit code (0 ok, 1 user error, 3 bug, 130 ^C)."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline.output import err
from storage.errors import NewswatchError

Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's default must not overwrite --config given before its verb.
    common.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        help="config.toml to use (default: $NEWSWATCH_CONFIG or ./config.toml)",
    )
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log debug details and tracebacks",
    )
    parser = argparse.ArgumentParser(
        prog="newswatch", description="Watches news feeds and sends digests.", parents=[common]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str,
        func: str,
        doc: str,
        target: argparse._SubParsersAction[argparse.ArgumentParser] = sub,
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = target.add_parser(
            name, help=doc.splitlines()[0], description=doc, parents=[common]
        )
        p.set_defaults(func=func)
        return p

    run = add("run", "run:run", "Run the service.\n\nExample: newswatch run --once")
    run.add_argument("--once", action="store_true", help="one cycle, then exit")
    run.add_argument("--tick", type=float, default=30.0, help="seconds between cycles (default 30)")
    add(
        "demo",
        "run:demo",
        "Serve the bundled sample feeds on 127.0.0.1, run one cycle, "
        "write the digest to the outbox and print its path.\n\nExample: newswatch demo",
    )
    status = add(
        "status",
        "status:status",
        "Feeds, rules, queued and failed digests.\n\nExample: newswatch status --json",
    )
    status.add_argument("--json", action="store_true")

    feeds = add("feeds", "", "List and edit feeds.").add_subparsers(
        dest="feeds_command", required=True, metavar="VERB"
    )
    add("list", "feeds:list_", "List feeds.\n\nExample: newswatch feeds list", feeds).add_argument(
        "--json", action="store_true"
    )
    refresh = add(
        "refresh",
        "feeds:refresh",
        "Make feeds due now (except held ones).\n\nExample: newswatch feeds refresh ozodi-tg",
        feeds,
    )
    refresh.add_argument("names", nargs="*")
    feed_add = add(
        "add",
        "feeds:add",
        "Add a feed to config.toml.\n\n"
        "Example: newswatch feeds add ozodi-tg https://www.ozodi.org/api/x --tag tg",
        feeds,
    )
    feed_add.add_argument("name")
    feed_add.add_argument("url")
    feed_add.add_argument("--tag", action="append", default=[])
    feed_add.add_argument("--language")
    feed_add.add_argument("--interval")
    add("remove", "feeds:remove", "Remove a feed from config.toml.", feeds).add_argument("name")
    imp = add("import-opml", "feeds:import_opml", "Add the feeds of an OPML file.", feeds)
    imp.add_argument("file", type=Path)
    exp = add("export-opml", "feeds:export_opml", "Write the feeds as OPML.", feeds)
    exp.add_argument("file", type=Path, nargs="?")

    rules = add("rules", "", "Check and test rules.").add_subparsers(
        dest="rules_command", required=True, metavar="VERB"
    )
    add(
        "check",
        "rules:check",
        "Validate every rule and place file.\n\nExample: newswatch rules check",
        rules,
    )
    test = add(
        "test",
        "rules:test",
        "What a rule matches in stored history or a text.\n\n"
        "Example: newswatch rules test border-security --text article.txt --json",
        rules,
    )
    test.add_argument("rule")
    test.add_argument("--since", default=None, help="stored articles of this age, e.g. 30d")
    test.add_argument("--text", type=Path, help="a text file to match")
    test.add_argument("--jsonl", type=Path, help='lines of {"id": …, "text": …}')
    test.add_argument("--json", action="store_true")
    explain = add(
        "explain",
        "rules:explain",
        "Why an article matched a rule, or didn't.\n\n"
        "Example: newswatch rules explain border-security --article 42",
        rules,
    )
    explain.add_argument("rule")
    explain.add_argument("--article", type=int, required=True)
    explain.add_argument("--json", action="store_true")

    places = add("places", "", "The gazetteer.").add_subparsers(
        dest="places_command", required=True, metavar="VERB"
    )
    plist = add(
        "list",
        "rules:places_list",
        "List places.\n\nExample: newswatch places list --group panj-crossings --json",
        places,
    )
    plist.add_argument("--group")
    plist.add_argument("--json", action="store_true")

    digest = add("digest", "", "Preview, retry and resend digests.").add_subparsers(
        dest="digest_command", required=True, metavar="VERB"
    )
    preview = add(
        "preview",
        "digest:preview",
        "Render the next digest without sending it.\n\n"
        "Example: newswatch digest preview border-security --html next.html",
        digest,
    )
    preview.add_argument("rule")
    preview.add_argument("--html", type=Path)
    retry = add("retry", "digest:retry", "Make deferred and failed deliveries due now.", digest)
    retry.add_argument("id", nargs="?")
    retry.add_argument("--all", action="store_true")
    add("resend", "digest:resend", "Send an uncertain or sent digest again.", digest).add_argument(
        "id"
    )
    return parser


def _resolve(spec: str) -> Command:
    import importlib

    module, func = spec.split(":")
    command: Command = getattr(importlib.import_module(f"pipeline.commands.{module}"), func)
    return command


def _log_level(args: argparse.Namespace) -> int:
    return logging.INFO if args.func == "run:run" and not args.once else logging.WARNING


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `newswatch` console script."""
    args = build_parser().parse_args(argv)
    args.config = getattr(args, "config", None)
    args.debug = getattr(args, "debug", False)
    logging.basicConfig(
        # The service logs what it does; one-shot commands print only their result and problems.
        level=logging.DEBUG if args.debug else _log_level(args),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "httpcore", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return _resolve(args.func)(args)
    except NewswatchError as exc:
        if args.debug:
            traceback.print_exc()
        err(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        err("interrupted")
        return 130
    except Exception:
        traceback.print_exc()
        err("newswatch hit a bug; please report it with the traceback above")
        return 3


if __name__ == "__main__":
    sys.exit(main())
