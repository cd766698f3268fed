"""bench/rules_report.py: the default rules match no real feed that is not about the region."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.rules_report import (
    default_matcher,
    false_alarms,
    markdown_table,
    report,
    sample_sources,
    shared_sources,
)
from pipeline.match import CompiledRules

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO / ".." / "shared" / "data"


@pytest.fixture(scope="module")
def matcher() -> CompiledRules:
    return default_matcher(REPO)


def test_no_rule_matches_a_real_feed_not_about_the_region(matcher: CompiledRules) -> None:
    if not (SHARED_DATA / "feeds").is_dir():
        pytest.skip(f"../shared/data not present: {SHARED_DATA}")
    sources = shared_sources(SHARED_DATA)
    assert len(sources) >= 15  # every feed document, the README and oren's .gz copy left out
    reports = report(sources, matcher)
    assert [r.source.name for r in reports if r.error] == []
    assert sum(r.articles for r in reports) > 300
    assert false_alarms(reports) == []


def test_the_samples_about_the_region_match(matcher: CompiledRules) -> None:
    reports = report(sample_sources(REPO), matcher)
    assert false_alarms(reports) == []  # the samples are about the region
    for r in reports:  # each sample has matches and, on purpose, articles that match nothing
        assert 0 < r.matched_articles < r.articles, r.source.name
    table = markdown_table(reports, [rule.id for rule in matcher.rules])
    header = table.splitlines()[0]
    assert header.startswith("| Feed | About the region | Articles |")
    assert all(f" {rule.id} |" in header for rule in matcher.rules)
    assert "| **total, samples** |" in table
