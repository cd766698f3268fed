"""pipeline/commands/rules.py: `rules test` (--since, --text, --jsonl) and `rules explain`.

`rules test --since` must say exactly what the service queued: the same articles (syndicated
copies skipped, each matched as its own feed) and the same hits. The 50,000 stored articles are
built by the service's own ingest path after fetch and parse (`Service.store`: store, match and
queue in one transaction per feed document), once for the module.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from pipeline.assemble import build_service, wall_clock
from pipeline.cli import main
from pipeline.config import load_config
from pipeline.parse import ParsedArticle, ParsedFeed, content_hash
from pipeline.service import CycleReport, Service
from storage.engine import open_database
from storage.models import Alert, Article, Feed, Match

REPO = Path(__file__).resolve().parents[2]
TOTAL_ARTICLES = 50_000
BATCH = 1_000  # articles per feed document
COPIES = 100  # syndicated copies of stored articles, in another feed

TAGGED = """\
id: tagged
title: Militants, in Russian-language feeds only
level: medium
notify: [outbox]
digest: immediate
feeds: ["tag:ru"]
detection:
  militants:
    terms: [боевик*, militant*]
  condition: militants
"""
CONFIG = """\
rules_dir = "rules"
outbox_dir = "outbox"
[database]
url = "sqlite:///newswatch.db"

[[feeds]]
name = "en-news"
url = "http://127.0.0.1:9/en"
tags = ["en"]

[[feeds]]
name = "ru-news"
url = "http://127.0.0.1:9/ru"
tags = ["ru"]

[[feeds]]
name = "ru-wire"
url = "http://127.0.0.1:9/ru-wire"
tags = ["ru"]

[notifiers.outbox]
type = "outbox"
to = ["analyst@example.org"]
from = "newswatch@example.org"
"""
# Sentences articles are made of: some alert (a place of the border region near violence, a
# crossing closed, militants), some must not (football, crime without a place, nothing at all).
HOT = (
    "Militants attacked a border post near Khorog overnight.",
    "Gunfire was heard on the Panj river near Ishkashim.",
    "The Ishkashim bridge was closed to traffic on Monday.",
    "Боевики напали на погранзаставу в Дарвазе.",
    "В Хороге произошла перестрелка.",
    "حمله بر پاسگاه مرزی در ولسوالی شغنان بدخشان",
    "Militant groups were reported in the south.",
)
COLD = (
    "The market in Kulob reopened after the holidays.",
    "Khorog hosted a football tournament; the attack of the home side was praised.",
    "افزایش جرم در شهر کابل نگرانی ایجاد کرده است",
    "Prices of flour rose again this week.",
    "The city council met to discuss the new school.",
    "Погода в Душанбе будет солнечной.",
)
FILLER = ["the", "report", "said", "officials", "met", "on", "tuesday", "to", "discuss", "water",
          "roads", "schools", "and", "prices"]  # fmt: skip


@dataclass(frozen=True, slots=True)
class History:
    config: Path
    old_ids: frozenset[int]  # published 40 days ago: matched then, not in `--since 30d`
    crime_id: int  # Persian جرم "crime", no place near: the ambiguous name is dropped
    jurm_id: int  # جرم with its province and a district word: the place counts


def _text(rng: random.Random, hot: float) -> str:
    words = [rng.choice(FILLER) for _ in range(rng.randrange(20, 60))]
    sentences = [" ".join(words).capitalize() + "."]
    if rng.random() < hot:
        sentences.append(rng.choice(HOT))
    if rng.random() < 0.2:
        sentences.append(rng.choice(COLD))
    rng.shuffle(sentences)
    return " ".join(sentences)


def _article(index: int, title: str, text: str, published: datetime) -> ParsedArticle:
    link = f"https://news.example.org/{index}"
    return ParsedArticle(
        guid=link,
        title=title,
        link=link,
        canonical_url=link,
        published_at=published,
        text=text,
        language=None,
        content_hash=content_hash(title, text),
    )


def _store(service: Service, feed_name: str, articles: list[ParsedArticle], now: datetime) -> None:
    """The service's ingest path after fetch and parse: store, match, queue, in one transaction."""
    with service.db.session() as session:
        feed = session.exec(select(Feed).where(Feed.name == feed_name)).one()
        service.store(
            session, feed, ParsedFeed(feed_name, tuple(articles), None), now, CycleReport()
        )


def _ids(service: Service, links: list[str]) -> list[int]:
    with service.db.session(write=False) as session:
        query = select(col(Article.id), col(Article.link)).where(
            col(Article.link).in_(links), col(Article.duplicate_of).is_(None)
        )
        by_link = {link: article_id for article_id, link in session.exec(query)}
    return [int(by_link[link] or 0) for link in links]


def _ingest_through_the_service(service: Service, now: datetime) -> History:
    rng = random.Random(7)
    feeds = ("en-news", "ru-news", "ru-wire")
    originals = TOTAL_ARTICLES - COPIES - 2
    first: list[ParsedArticle] = []
    old: list[str] = []
    for start in range(0, originals, BATCH):
        batch = []
        for index in range(start, min(start + BATCH, originals)):
            published = now - timedelta(minutes=index % 20_000)
            if index % 97 == 0:
                published = now - timedelta(days=40)  # outside `--since 30d`
                old.append(f"https://news.example.org/{index}")
            batch.append(_article(index, f"Report {index}", _text(rng, hot=0.1), published))
        _store(service, feeds[start // BATCH % len(feeds)], batch, now)
        first = first or batch
    crime = "افزایش جرم در شهر کابل نگرانی ایجاد کرده است"
    jurm = "حمله مسلحانه در ولسوالی جرم ولایت بدخشان"
    explained = [_article(90_001, "گزارش", crime, now), _article(90_002, "خبر", jurm, now)]
    _store(service, "en-news", explained, now)
    # Syndicated copies (the same links) in another feed: stored, linked, never matched again.
    _store(service, "ru-news", first[:COPIES], now)
    crime_id, jurm_id = _ids(service, [a.link or "" for a in explained])
    return History(
        config=service.config.path,
        old_ids=frozenset(_ids(service, old)),
        crime_id=crime_id,
        jurm_id=jurm_id,
    )


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    root = tmp_path_factory.mktemp("history")
    shutil.copytree(REPO / "rules" / "places", root / "rules" / "places")
    for name in ("border-security.yaml", "crossings-status.yaml"):
        shutil.copy(REPO / "rules" / name, root / "rules" / name)
    (root / "rules" / "tagged.yaml").write_text(TAGGED, encoding="utf-8")
    (root / "config.toml").write_text(CONFIG, encoding="utf-8")
    now = wall_clock()  # `rules test --since` counts back from the wall clock
    service = build_service(load_config(root / "config.toml"), clock=lambda: now)
    service.start()
    assert not service.ruleset.errors
    built = _ingest_through_the_service(service, now)
    with service.db.session(write=False) as session:
        copies = session.exec(select(col(Article.duplicate_of))).all()
    assert len(copies) == TOTAL_ARTICLES and len([c for c in copies if c]) == COPIES
    service.db.dispose()
    yield built


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _queued(history: History, rule: str) -> dict[int, list[dict[str, Any]]]:
    """What the service queued for `rule`: article id → the hits it stored with the match."""
    rows = _select(
        history,
        select(col(Alert.article_id), col(Match.hits))
        .join(Match, col(Match.id) == col(Alert.match_id))
        .where(col(Alert.rule_id) == rule),
    )
    return {article_id: json.loads(hits) for article_id, hits in rows}


def _select(history: History, query: Any) -> list[Any]:
    """The rows of a query on the test's database."""
    db = open_database(f"sqlite:///{history.config.parent / 'newswatch.db'}")
    try:
        with db.session(write=False) as session:
            return list(session.exec(query))
    finally:
        db.dispose()


def _document(history: History, article_id: int) -> str:
    [article] = _select(history, select(Article).where(col(Article.id) == article_id))
    return str(article.document)


# -- rules test --since ---------------------------------------------------------------------------


@pytest.mark.parametrize("rule", ["border-security", "tagged"])
def test_since_over_50000_articles_says_what_the_service_queued(
    history: History, capsys: pytest.CaptureFixture[str], rule: str
) -> None:
    code, out, _ = _run(capsys, "rules", "test", rule, "--since", "30d", "--json", "--config",
                        str(history.config))  # fmt: skip
    assert code == 0
    found = json.loads(out)
    assert len({item["article_id"] for item in found}) == len(found)  # one line per article
    pairs = {(item["article_id"], item["rule"]) for item in found}

    queued = _queued(history, rule)
    in_window = {i for i in queued if i not in history.old_ids}
    assert len(in_window) > 500 and queued.keys() - in_window  # many, and some too old
    assert pairs == {(i, rule) for i in in_window}
    hits = {item["article_id"]: item["hits"] for item in found}
    assert all(hits[i] == queued[i] for i in in_window)  # the same words at the same offsets

    if rule == "tagged":  # only the Russian-language feeds' articles, as the service did
        query = select(col(Article.id), col(Feed.name)).join(
            Feed, col(Feed.id) == col(Article.feed_id)
        )
        feeds = dict(_select(history, query))
        assert {feeds[article_id] for article_id, _ in pairs} == {"ru-news", "ru-wire"}
    else:
        assert len(pairs) > 2_000


def test_since_prints_each_article_then_a_count(
    history: History, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "rules", "test", "border-security", "--since", "12h",
                          "--config", str(history.config))  # fmt: skip
    assert code == 0
    lines = out.splitlines()
    count = int(lines[-1].split()[0])
    assert lines[-1] == f"{count} articles would have alerted for border-security"
    articles = [line for line in lines if line.startswith("#")]
    assert count > 30 and len(articles) == count
    # "#id published [feed] title", then the matched words and the link
    first = re.fullmatch(r"#(\d+) (\S+) \[(\S+)\] Report (\d+)", articles[0])
    assert first and first[3] in ("en-news", "ru-news", "ru-wire")
    cutoff = wall_clock() - timedelta(hours=12)
    assert all(
        datetime.fromisoformat(line.split()[1]).replace(tzinfo=UTC) >= cutoff - timedelta(minutes=1)
        for line in articles
    )
    assert lines[lines.index(articles[0]) + 1].startswith("    matched: ")
    assert lines[lines.index(articles[0]) + 2] == f"    https://news.example.org/{first[4]}"
    assert "matching stored articles" not in out + err  # no progress bar off a terminal


def test_since_refuses_what_is_not_an_age(
    history: History, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "rules", "test", "border-security", "--since", "30 days",
                        "--config", str(history.config))  # fmt: skip
    assert code == 1
    assert err == "error: --since '30 days' is not an age\nhint: write e.g. 12h, 30d or 4w\n"


# -- rules explain --------------------------------------------------------------------------------


def test_explain_shows_a_dropped_ambiguous_place_and_why(
    history: History, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["rules", "explain", "border-security", "--article", str(history.crime_id)]
    code, out, _ = _run(capsys, *args, "--config", str(history.config))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"border-security on article #{history.crime_id}: no match"
    assert "  selection place: false" in lines
    dropped = [line for line in lines if line.startswith("    dropped ")]
    assert len(dropped) == 1
    assert dropped[0].startswith("    dropped 'جرم' [")
    assert (
        "(place af-badakhshan-jurm): ambiguous name of af-badakhshan-jurm: no context word ("
        in (dropped[0])
    )

    code, out, _ = _run(capsys, *args, "--json", "--config", str(history.config))
    assert code == 0
    doc = json.loads(out)
    assert doc["matched"] is False and doc["selections"]["place"] is False
    assert doc["condition"].startswith("((place near/40 violence)")
    [drop] = doc["dropped"]
    assert set(drop) == {"selection", "place", "term", "start", "end", "text", "reason"}
    assert (drop["selection"], drop["place"], drop["term"], drop["text"]) == (
        "place",
        "af-badakhshan-jurm",
        "جرم",
        "جرم",
    )
    assert _document(history, history.crime_id)[drop["start"] : drop["end"]] == "جرم"
    assert drop["reason"].startswith("ambiguous name of af-badakhshan-jurm: no context word")


def test_explain_counts_the_ambiguous_place_with_its_context(
    history: History, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["rules", "explain", "border-security", "--article", str(history.jurm_id), "--json"]
    code, out, _ = _run(capsys, *args, "--config", str(history.config))
    assert code == 0
    doc = json.loads(out)
    assert doc["matched"] is True and doc["dropped"] == []
    places = {h["place"] for h in doc["hits"] if h["selection"] == "place"}
    assert "af-badakhshan-jurm" in places
    jurm = [h for h in doc["hits"] if h["place"] == "af-badakhshan-jurm"]
    assert [(h["text"], h["context"]) for h in jurm] == [("جرم", "ولسوالی")]  # the nearest
    document = _document(history, history.jurm_id)
    assert all(document[h["start"] : h["end"]] == h["text"] for h in doc["hits"])


def test_explain_of_an_article_not_stored(
    history: History, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "rules", "explain", "border-security", "--article", "999999",
                        "--config", str(history.config))  # fmt: skip
    assert code == 1
    assert err.startswith("error: no stored article #999999\n")


# -- rules test --text and --jsonl ----------------------------------------------------------------

HIT_KEYS = {"selection", "term", "place", "start", "end", "text"}


def test_text_json_shape_and_offsets_into_the_file_as_written(
    history: History, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = "Border news\r\n\r\nMilitants attacked a border post near Khorog;\r\nгибель в Хороге."
    article = tmp_path / "article.txt"
    article.write_bytes(text.encode("utf-8"))
    code, out, _ = _run(capsys, "rules", "test", "border-security", "--text", str(article),
                        "--json", "--config", str(history.config))  # fmt: skip
    assert code == 0
    result = json.loads(out)
    assert set(result) == {"rule", "matched", "hits", "snippet"}
    assert result["rule"] == "border-security" and result["matched"] is True
    assert result["hits"] and all(set(h) == HIT_KEYS for h in result["hits"])
    assert all(text[h["start"] : h["end"]] == h["text"] for h in result["hits"])
    assert {h["text"] for h in result["hits"]} >= {"Militants", "attacked", "Khorog", "Хороге"}
    assert {h["place"] for h in result["hits"] if h["text"] == "Хороге"} == {"tj-gbao-khorog"}
    assert "Militants attacked" in result["snippet"]

    code, out, _ = _run(capsys, "rules", "test", "border-security", "--text", str(article),
                        "--config", str(history.config))  # fmt: skip
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "border-security: MATCH"
    assert "  place: 'Хороге' [" in out and "term='Хорог' place=tj-gbao-khorog" in out
    assert lines[-1].startswith("  snippet: Border news Militants attacked")


def test_jsonl_json_shape_ids_and_offsets(
    history: History, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    items: list[dict[str, Any]] = [
        {"id": "a", "text": "Gunfire on the Panj river near Ishkashim."},
        {"text": "Prices of flour rose again this week."},
        {"id": 7, "text": "افزایش جرم در شهر کابل"},
    ]
    jsonl = tmp_path / "items.jsonl"
    jsonl.write_text("\n".join(json.dumps(i, ensure_ascii=False) for i in items) + "\n", "utf-8")
    code, out, _ = _run(capsys, "rules", "test", "border-security", "--jsonl", str(jsonl),
                        "--json", "--config", str(history.config))  # fmt: skip
    assert code == 0
    results = [json.loads(line) for line in out.splitlines()]
    assert [(r["id"], r["matched"]) for r in results] == [("a", True), (2, False), (7, False)]
    for item, result in zip(items, results, strict=True):
        assert set(result) == {"id", "rule", "matched", "hits", "snippet"}
        assert result["rule"] == "border-security"
        assert all(set(h) == HIT_KEYS for h in result["hits"])
        assert all(item["text"][h["start"] : h["end"]] == h["text"] for h in result["hits"])
    assert {h["text"] for h in results[0]["hits"]} >= {"Gunfire", "Panj", "Ishkashim"}
    assert results[1]["hits"] == [] and results[2]["hits"] == []

    code, out, _ = _run(capsys, "rules", "test", "border-security", "--jsonl", str(jsonl),
                        "--config", str(history.config))  # fmt: skip
    assert code == 0
    assert out.splitlines()[1:] == ["2: no match", "7: no match"]
    assert out.startswith("a: MATCH ")


def test_text_and_jsonl_input_errors(
    history: History, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = str(history.config)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Khorog café".encode("latin-1"))
    code, _, err = _run(capsys, "rules", "test", "border-security", "--text", str(latin1),
                        "--config", config)  # fmt: skip
    assert (code, err) == (
        1,
        f"error: {latin1}: not UTF-8 (byte 0xe9 at offset 10)\nhint: save the file as UTF-8\n",
    )

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "text": "ok"}\n{"id": 2, text}\n', encoding="utf-8")
    code, out, err = _run(capsys, "rules", "test", "border-security", "--jsonl", str(bad),
                          "--config", config)  # fmt: skip
    assert code == 1 and out == "1: no match\n"
    assert err.startswith(f"error: {bad}:2: not JSON: ")

    code, _, err = _run(capsys, "rules", "test", "no-such-rule", "--text", str(latin1),
                        "--config", config)  # fmt: skip
    assert code == 1
    assert err.startswith("error: no rule 'no-such-rule' loaded\n")
