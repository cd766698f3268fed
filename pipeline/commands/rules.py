"""`newswatch rules check|test|explain` and `newswatch places list`."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from pipeline.assemble import wall_clock
from pipeline.config import Config, load_config
from pipeline.errors import ConfigError, RuleError
from pipeline.match import CompiledRules, Hit, Match, compile_rules
from pipeline.output import err, out, out_json
from pipeline.ruletypes import Place, RuleSet
from pipeline.status import load_config_rules
from storage.articles import count_articles, get_article, iter_articles
from storage.migrate import open_migrated
from storage.models import Article, Feed

_AGE = re.compile(r"^(\d+)([hdw])$")


def check(args: argparse.Namespace) -> int:
    """Validates every rule and place file; exit 1 with file:line:col messages.

    Example: newswatch rules check
    """
    ruleset = load_config_rules(load_config(args.config))
    for problem in ruleset.problems:
        (err if problem.severity == "error" else out)(f"{problem} [{problem.severity}]")
    errors = len(ruleset.errors)
    out(
        f"{len(ruleset.rules)} rules, {len(ruleset.places)} places, {errors} errors, "
        f"{len(ruleset.problems) - errors} warnings"
    )
    return 1 if errors else 0


def _one_rule(config: Config, rule_id: str) -> tuple[RuleSet, CompiledRules]:
    ruleset = load_config_rules(config)
    rule = ruleset.rule(rule_id)
    if rule is None:
        known = ", ".join(r.id for r in ruleset.rules) or "none"
        bad = [str(p) for p in ruleset.errors]
        raise RuleError(
            f"no rule {rule_id!r} loaded",
            hint=f"loaded rules: {known}" + "".join("\n" + b for b in bad),
        )
    return ruleset, compile_rules((rule,), ruleset.places)


def hit_json(hit: Hit) -> dict[str, Any]:
    return {
        "selection": hit.selection,
        "term": hit.term,
        "place": hit.place,
        "start": hit.start,
        "end": hit.end,
        "text": hit.text,
    }


def test_text(matcher: CompiledRules, rule_id: str, text: str) -> dict[str, Any]:
    """The `rules test --text` object for one text."""
    explanation = matcher.explain(rule_id, text)
    return {
        "rule": rule_id,
        "matched": explanation.matched,
        "hits": [hit_json(h) for h in explanation.hits] if explanation.matched else [],
        "snippet": explanation.snippet,
    }


def test(args: argparse.Namespace) -> int:
    """What a rule matches in stored history (--since) or in a text (--text, --jsonl).

    Example: newswatch rules test border-security --since 30d
    """
    config = load_config(args.config)
    _, matcher = _one_rule(config, args.rule)
    if args.text:
        result = test_text(matcher, args.rule, _read(args.text))
        if args.json:
            out(json.dumps(result, ensure_ascii=False))
        else:
            _print_result(result)
        return 0
    if args.jsonl:
        for line_no, item in _jsonl(args.jsonl):
            result = {"id": item.get("id", line_no), **test_text(matcher, args.rule, item["text"])}
            out(json.dumps(result, ensure_ascii=False) if args.json else _line(result))
        return 0
    return _test_history(config, matcher, args)


def _read(path: Path) -> str:
    """The file's text exactly (no newline translation), so hit offsets point into it."""
    try:
        return path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        bad = f"byte 0x{exc.object[exc.start]:02x} at offset {exc.start}"
        raise ConfigError(f"{path}: not UTF-8 ({bad})", hint="save the file as UTF-8") from None


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for line_no, line in enumerate(_read(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{line_no}: not JSON: {exc.msg}") from None
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise ConfigError(f'{path}:{line_no}: each line must be {{"id": …, "text": "…"}}')
        yield line_no, item


def _line(result: dict[str, Any]) -> str:
    words = _matched_words(result["hits"])
    return f"{result['id']}: {'MATCH' if result['matched'] else 'no match'} {words}".rstrip()


def _matched_words(hits: list[dict[str, Any]]) -> str:
    return ", ".join(sorted({h["text"] for h in hits}))


def _print_result(result: dict[str, Any]) -> None:
    out(f"{result['rule']}: {'MATCH' if result['matched'] else 'no match'}")
    for hit in result["hits"]:
        place = f" place={hit['place']}" if hit["place"] else ""
        out(
            f"  {hit['selection']}: {hit['text']!r} [{hit['start']}:{hit['end']}] "
            f"term={hit['term']!r}{place}"
        )
    if result["snippet"]:
        out(f"  snippet: {result['snippet']}")


def parse_age(text: str) -> timedelta:
    found = _AGE.match(text.strip())
    if not found:
        raise ConfigError(f"--since {text!r} is not an age", hint="write e.g. 12h, 30d or 4w")
    n, unit = int(found.group(1)), found.group(2)
    return timedelta(hours=n) if unit == "h" else timedelta(days=n * (7 if unit == "w" else 1))


def history_matches(
    config: Config, matcher: CompiledRules, *, since: str, progress: bool = False
) -> list[dict[str, Any]]:
    """Runs the compiled rule over stored articles: what the service would have queued.

    Syndicated copies are skipped and each article is matched as the feed it came from, as the
    service does. `progress` draws a bar on stderr when it is a terminal.

    Raises:
        ConfigError: `since` is not an age such as 30d.
    """
    start = wall_clock() - parse_age(since)
    found: list[dict[str, Any]] = []
    with (
        open_migrated(config.database_url) as db,
        db.session(write=False) as session,
        _progress(progress) as bar,
    ):
        task = bar.add_task("matching stored articles", total=count_articles(session, since=start))
        for article, feed in iter_articles(session, since=start):
            tags = feed.tags.split()
            matches = matcher.match(article.document, feed=feed.name, feed_tags=tags)
            found.extend(_history_item(article, feed, match) for match in matches)
            bar.advance(task)
    return found


def _progress(enabled: bool) -> Progress:
    """A progress bar on stderr (stdout stays clean for the results); none off a terminal."""
    return Progress(console=Console(stderr=True), transient=True, disable=not enabled)


def _history_item(article: Article, feed: Feed, match: Match) -> dict[str, Any]:
    return {
        "article_id": article.id,
        "feed": feed.name,
        "title": article.title,
        "link": article.link,
        "published_at": article.published_at.isoformat(),
        "rule": match.rule_id,
        "hits": [hit_json(h) for h in match.hits],
        "snippet": match.snippet,
    }


def _test_history(config: Config, matcher: CompiledRules, args: argparse.Namespace) -> int:
    found = history_matches(config, matcher, since=args.since or "30d", progress=True)
    if args.json:
        out_json(found)
        return 0
    for item in found:
        out(f"#{item['article_id']} {item['published_at'][:16]} [{item['feed']}] {item['title']}")
        out(f"    matched: {_matched_words(item['hits'])}")
        if item["link"]:
            out(f"    {item['link']}")
    out(f"{len(found)} articles would have alerted for {args.rule}")
    return 0


def explain(args: argparse.Namespace) -> int:
    """Why an article matched a rule or didn't: hits, dropped ambiguous places, condition.

    Example: newswatch rules explain border-security --article 42
    """
    config = load_config(args.config)
    ruleset, matcher = _one_rule(config, args.rule)
    document = _stored_document(config, args.article)
    explanation = matcher.explain(args.rule, document)
    rule = ruleset.rule(args.rule)
    doc = {
        "rule": args.rule,
        "article": args.article,
        "matched": explanation.matched,
        "condition": rule.condition if rule else "",
        "selections": dict(explanation.selections),
        "hits": [{**hit_json(h), "context": h.context} for h in explanation.hits],
        "dropped": [asdict(d) for d in explanation.dropped],
        "snippet": explanation.snippet,
    }
    if args.json:
        out_json(doc)
    else:
        _print_explanation(doc)
    return 0


def _stored_document(config: Config, article_id: int) -> str:
    with open_migrated(config.database_url) as db, db.session(write=False) as session:
        row = get_article(session, article_id)
        document = None if row is None else row[0].document
    if document is None:
        raise ConfigError(
            f"no stored article #{article_id}",
            hint="`newswatch rules test RULE --since 30d` lists stored articles by id",
        )
    return document


def _print_explanation(doc: dict[str, Any]) -> None:
    out(f"{doc['rule']} on article #{doc['article']}: {'MATCH' if doc['matched'] else 'no match'}")
    out(f"  condition: {doc['condition']}")
    for name, value in doc["selections"].items():
        out(f"  selection {name}: {'true' if value else 'false'}")
        for hit in (h for h in doc["hits"] if h["selection"] == name):
            place = f", place {hit['place']}" if hit["place"] else ""
            context = f", context {hit['context']!r}" if hit["context"] else ""
            out(
                f"    hit {hit['text']!r} [{hit['start']}:{hit['end']}] "
                f"(term {hit['term']!r}{place}{context})"
            )
        for dropped in (d for d in doc["dropped"] if d["selection"] == name):
            out(
                f"    dropped {dropped['text']!r} [{dropped['start']}:{dropped['end']}] "
                f"(place {dropped['place']}): {dropped['reason']}"
            )
    if doc["snippet"]:
        out(f"  snippet: {doc['snippet']}")


def place_json(place: Place) -> dict[str, Any]:
    return {
        "id": place.id,
        "kind": place.kind,
        "country": place.country,
        "region": place.region,
        "coords": list(place.coords),
        "groups": list(place.groups),
        "names": {lang: list(names) for lang, names in place.names.items()},
        "ambiguous": place.ambiguous,
        "context": list(place.context),
        "source": list(place.source),
    }


def places_list(args: argparse.Namespace) -> int:
    """The gazetteer, optionally one group.

    Example: newswatch places list --group panj-crossings --json
    """
    ruleset = load_config_rules(load_config(args.config))
    places = [p for p in ruleset.places if not args.group or args.group in p.groups]
    if args.group and not places:
        raise ConfigError(
            f"no place in group {args.group!r}",
            hint="groups: " + ", ".join(sorted(ruleset.groups())),
        )
    if args.json:
        out_json([place_json(p) for p in places])
        return 0
    for p in places:
        names = ", ".join(dict.fromkeys(p.all_names()))
        out(f"{p.id:<40} {p.kind:<9} {p.country}  {names}")
    out(f"{len(places)} places")
    return 0
