"""Report of the default rules on real feeds: feed × rule → articles matched, and false alarms.

Run from the repository: `python bench/rules_report.py [--shared ../shared/data]`. Never part of
the tests (tests/test_rules_report.py calls `report` and asserts no false alarm).

Every rule of the repository's `rules/` (with its gazetteer, `rules/places/`) runs over the
bundled sample feeds (`pipeline/samples/*`, written about the Tajik–Afghan border region) and
over every feed document of `../shared/data/feeds/` (real news snapshots, gunzipped when `.gz`;
none is about the region, Meduza's Central Asia items included). The text matched is the
article's `storage.models.document_text(title, text)`, as the service stores it.

Prints a markdown table (feed × rule → number of articles matched, plus totals), then every
match on a feed that is not about the region with its title and the words hit, for a human to
judge, and the ambiguous place names those feeds mention that were dropped for want of context
(no match: they show the context rule at work). Exits 1 when there is a match on a feed not
about the region (a false alarm), else 0.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.errors import FetchError
from pipeline.match import CompiledRules, compile_rules
from pipeline.parse import parse_feed
from pipeline.rules import load_rules
from storage.models import document_text

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO / ".." / "shared" / "data"
FEED_SUFFIXES = (".xml", ".rss", ".atom", ".json", ".rdf")
# parse_feed resolves links against the URL and replaces future dates by `now`: fixed for a
# reproducible report
NOW = datetime(2026, 11, 26, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class FeedSource:
    """One feed document to run the rules over."""

    name: str
    path: Path
    region: bool  # written about the Tajik–Afghan border region (the bundled samples)
    language: str | None = None


@dataclass(frozen=True, slots=True)
class ArticleMatch:
    """One rule matching one article."""

    rule: str
    title: str
    words: tuple[str, ...]  # the hit words as written in the article, sorted


@dataclass(frozen=True, slots=True)
class Dropped:
    """An ambiguous place name found without context in an article, so not counted."""

    title: str
    text: str  # as written in the article
    places: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FeedReport:
    """What the rules matched in one feed document (`error`: it did not parse)."""

    source: FeedSource
    articles: int
    matches: tuple[ArticleMatch, ...]
    dropped: tuple[Dropped, ...] = ()
    error: str | None = None

    def count(self, rule: str) -> int:
        return sum(1 for m in self.matches if m.rule == rule)

    @property
    def matched_articles(self) -> int:
        return len({m.title for m in self.matches})


def default_matcher(repo: Path = REPO) -> CompiledRules:
    """The repository's rules and gazetteer, compiled; raises SystemExit on an error problem."""
    ruleset = load_rules(repo / "rules")
    errors = [p for p in ruleset.problems if p.severity == "error"]
    if errors:
        raise SystemExit("\n".join(f"{p.path}:{p.line}:{p.col}: {p.message}" for p in errors))
    return compile_rules(ruleset.rules, ruleset.places)


def sample_sources(repo: Path = REPO) -> list[FeedSource]:
    """The bundled samples (`sample-en.rss` → feed `sample-en`, language `en`)."""
    folder = repo / "pipeline" / "samples"
    return [
        FeedSource(p.stem, p, region=True, language=p.stem.rsplit("-", 1)[-1])
        for p in sorted(folder.iterdir())
        if p.suffix in FEED_SUFFIXES
    ]


def shared_sources(shared_data: Path = SHARED_DATA) -> list[FeedSource]:
    """Every feed document of `shared_data/feeds` (not the README), none about the region.

    A `.gz` whose content equals a feed already listed (oren's compressed copy) is left out.
    """
    sources: list[FeedSource] = []
    seen: set[bytes] = set()
    for path in sorted((shared_data / "feeds").iterdir()):
        inner = path.name.removesuffix(".gz")
        if not inner.endswith(FEED_SUFFIXES):
            continue
        body = read_body(path)
        if body in seen:
            continue
        seen.add(body)
        name = inner.rsplit(".", 1)[0]
        sources.append(FeedSource(name, path, region=False))
    return sources


def read_body(path: Path) -> bytes:
    body = path.read_bytes()
    return gzip.decompress(body) if path.suffix == ".gz" else body


def report(sources: Iterable[FeedSource], matcher: CompiledRules) -> list[FeedReport]:
    """Parse each feed and match every article against every rule."""
    return [_feed_report(source, matcher) for source in sources]


def _feed_report(source: FeedSource, matcher: CompiledRules) -> FeedReport:
    url = f"https://feeds.example.org/{source.name}"
    try:
        parsed = parse_feed(
            read_body(source.path), headers={}, url=url, now=NOW, language=source.language
        )
    except FetchError as exc:
        return FeedReport(source, 0, (), error=str(exc))
    matches: list[ArticleMatch] = []
    dropped: list[Dropped] = []
    for article in parsed.articles:
        text = document_text(article.title, article.text)
        matches += [
            ArticleMatch(m.rule_id, article.title, tuple(sorted({h.text for h in m.hits})))
            for m in matcher.match(text)
        ]
        dropped += _dropped(matcher, article.title, text)
    return FeedReport(source, len(parsed.articles), tuple(matches), tuple(dropped))


def _dropped(matcher: CompiledRules, title: str, text: str) -> list[Dropped]:
    """Ambiguous names of the article that some rule dropped, once per name and offset."""
    places: dict[tuple[int, str], set[str]] = {}
    for rule in matcher.rules:
        for d in matcher.explain(rule.id, text).dropped:
            places.setdefault((d.start, d.text), set()).add(d.place)
    return [Dropped(title, written, tuple(sorted(ids))) for (_, written), ids in places.items()]


def false_alarms(reports: Iterable[FeedReport]) -> list[tuple[str, ArticleMatch]]:
    """(feed, match) for every match on a feed that is not about the region."""
    return [(r.source.name, m) for r in reports if not r.source.region for m in r.matches]


def markdown_table(reports: Sequence[FeedReport], rule_ids: Sequence[str]) -> str:
    """Feed × rule → articles matched; 'any' counts articles matched by at least one rule."""
    header = ["Feed", "About the region", "Articles", *rule_ids, "any"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in reports:
        about = "yes (sample)" if r.source.region else "no"
        counts = [str(r.count(rule)) for rule in rule_ids]
        articles = f"not a feed: {r.error}" if r.error else str(r.articles)
        row = [f"`{r.source.name}`", about, articles, *counts, str(r.matched_articles)]
        lines.append("| " + " | ".join(row) + " |")
    for label, group in (
        ("samples", [r for r in reports if r.source.region]),
        ("real feeds", [r for r in reports if not r.source.region]),
    ):
        counts = [str(sum(r.count(rule) for r in group)) for rule in rule_ids]
        total = [str(sum(r.articles for r in group)), *counts]
        total.append(str(sum(r.matched_articles for r in group)))
        lines.append("| " + " | ".join([f"**total, {label}**", "", *total]) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=SHARED_DATA, help="the shared data folder")
    args = parser.parse_args(argv)
    matcher = default_matcher()
    sources = sample_sources()
    if (args.shared / "feeds").is_dir():
        sources += shared_sources(args.shared)
    else:
        print(f"{args.shared / 'feeds'} not present: samples only\n")
    reports = report(sources, matcher)
    print(markdown_table(reports, [rule.id for rule in matcher.rules]))
    alarms = false_alarms(reports)
    print(f"\nMatches on feeds not about the region: {len(alarms)}")
    for feed, m in alarms:
        print(f"- {feed} · {m.rule} · «{m.title}» · hits: {', '.join(m.words)}")
    dropped = [(r.source.name, d) for r in reports if not r.source.region for d in r.dropped]
    print(f"\nAmbiguous names dropped for want of context on those feeds: {len(dropped)}")
    for feed, d in dropped:
        print(f"- {feed} · «{d.title}» · «{d.text}» ({', '.join(d.places)})")
    return 1 if alarms else 0


if __name__ == "__main__":
    sys.exit(main())
