"""`newswatch feeds …` through the command line: config.toml edits, output and exit codes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main
from pipeline.config import load_config
from storage.engine import open_database
from storage.feeds import FetchOutcome, feed_by_name, record_fetch

CONFIG = """\
# newswatch test configuration
timezone = "UTC"                  # tests run in UTC

[database]
url = "sqlite:///nw.db"           # beside this file

# --- group one ---

[[feeds]]
name = "alpha"                    # the first feed
url = "http://127.0.0.1:9/alpha.xml"
tags = ["one", "tj"]

[[feeds]]
# beta has its own interval
name = "beta"
url = "http://127.0.0.1:9/beta.xml"
interval = "10m"

# --- group two ---

[[feeds]]
name = "gamma"
url = "http://127.0.0.1:9/gamma.xml"
language = "ru"

# --- notifiers ---
[notifiers.outbox]
type = "outbox"                   # writes .eml files
"""

OPML = """<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>subscriptions</title></head>
  <body>
    <outline text="Tajikistan">
      <outline text="Радио Озоди" xmlUrl="https://rus.ozodi.org/api/z" language="ru"/>
      <outline text="Alpha again" xmlUrl="http://127.0.0.1:9/alpha.xml"/>
    </outline>
    <outline text="Broken" xmlUrl="feed://example.org/rss"/>
  </body>
</opml>
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def run(config: Path, *argv: str) -> int:
    return main(["feeds", *argv, "--config", str(config)])


# --- add and remove ------------------------------------------------------------------------


def test_add_appends_a_table_after_the_last_feed_keeping_every_comment(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(
        config,
        "add",
        "ozodi-tg",
        "https://www.ozodi.org/api/x",
        "--tag",
        "tg",
        "--tag",
        "tj",
        "--language",
        "tg",
        "--interval",
        "5m",
    )
    assert code == 0
    assert capsys.readouterr().out == f"added ozodi-tg (https://www.ozodi.org/api/x) to {config}\n"
    new = (
        '\n[[feeds]]\nname = "ozodi-tg"\nurl = "https://www.ozodi.org/api/x"\n'
        'tags = ["tg", "tj"]\nlanguage = "tg"\ninterval = "5m"\n'
    )
    assert config.read_text(encoding="utf-8") == CONFIG.replace(
        'language = "ru"\n', 'language = "ru"\n' + new
    )
    assert load_config(config).feeds[-1].interval_s == 300


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["alpha", "https://a.org/"],
            "error: {config}: a feed named 'alpha' already exists (http://127.0.0.1:9/alpha.xml)\n"
            "hint: choose another name, or `newswatch feeds remove` the old one first\n",
        ),
        (
            ["alpha2", "http://127.0.0.1:9/alpha.xml"],
            "error: {config}: feed 'alpha' already has this URL (http://127.0.0.1:9/alpha.xml)\n",
        ),
        (
            ["x", "ftp://a.org/rss"],
            "error: 'ftp://a.org/rss': ftp scheme in URL; only http and https are allowed\n"
            "hint: write a URL starting with https://\n",
        ),
        (
            ["a b", "https://a.org/"],
            "error: 'a b' is not a valid feed name\n"
            "hint: use letters, digits, '.', '-' and '_', starting with a letter or digit\n",
        ),
        (
            ["delta", "https://d.org/", "--tag", "Two words"],
            "error: tag 'Two words' is empty or has spaces\nhint: write e.g. 'two-words'\n",
        ),
        (
            ["delta", "https://d.org/", "--interval", "5x"],
            "error: feed 'delta' not added: {config}: feeds[3].interval: '5x' is not a duration "
            '(config.toml was not changed)\nhint: write e.g. "30s", "15m", "2h" or "1d"\n',
        ),
    ],
)
def test_add_refuses_a_bad_feed_and_leaves_the_file_alone(
    config: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert run(config, "add", *argv) == 1
    assert capsys.readouterr().err == message.format(config=config)
    assert config.read_text(encoding="utf-8") == CONFIG


def test_remove_drops_only_that_table(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(config, "remove", "beta") == 0
    assert capsys.readouterr().out == (
        f"removed beta from {config} (its stored articles are kept)\n"
    )
    beta = (
        '[[feeds]]\n# beta has its own interval\nname = "beta"\n'
        'url = "http://127.0.0.1:9/beta.xml"\ninterval = "10m"\n\n'
    )
    assert config.read_text(encoding="utf-8") == CONFIG.replace(beta, "")
    assert [f.name for f in load_config(config).feeds] == ["alpha", "gamma"]


def test_removing_every_feed_keeps_every_other_comment(config: Path) -> None:
    for name in ("alpha", "beta", "gamma"):
        assert run(config, "remove", name) == 0
    text = config.read_text(encoding="utf-8")
    assert "[[feeds]]" not in text
    kept = [line for line in CONFIG.splitlines() if line.startswith("#") and "beta" not in line]
    assert [line for line in text.splitlines() if line.startswith("#")] == kept
    assert "# writes .eml files" in text


def test_remove_of_an_unknown_feed_suggests_one(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(config, "remove", "gama") == 1
    assert capsys.readouterr().err == (
        "error: no feed named 'gama' in config.toml (did you mean 'gamma'?)\n"
        "hint: `newswatch feeds list` shows the feeds\n"
    )
    assert config.read_text(encoding="utf-8") == CONFIG


# --- list and refresh ----------------------------------------------------------------------


def test_list_without_a_database_shows_new_feeds_and_creates_nothing(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(config, "list") == 0
    assert capsys.readouterr().out == (
        "FEED   HEALTH   ARTICLES  LAST FETCH        TAGS\n"
        "alpha  new             0  never             one tj\n"
        "beta   new             0  never\n"
        "gamma  new             0  never\n"
        f"3 feeds in {config}\n"
    )
    assert not (config.parent / "nw.db").exists()
    assert run(config, "list", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["health"], r["articles"], r["tags"]) for r in rows] == [
        ("alpha", "new", 0, ["one", "tj"]),
        ("beta", "new", 0, []),
        ("gamma", "new", 0, []),
    ]
    assert [r["interval_s"] for r in rows] == [900.0, 600.0, 900.0]


def _record(config: Path, name: str, **outcome: Any) -> None:
    db = open_database(f"sqlite:///{config.parent / 'nw.db'}")
    now = datetime.now(UTC)
    try:
        with db.session() as session:
            feed = feed_by_name(session, name)
            assert feed is not None
            record_fetch(session, feed, FetchOutcome(at=now, **outcome))
    finally:
        db.dispose()


def test_refresh_says_which_feeds_are_due_and_why_the_others_are_held(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(config, "refresh") == 0
    assert capsys.readouterr().out == "alpha: due now\nbeta: due now\ngamma: due now\n"
    later = datetime.now(UTC) + timedelta(hours=2)
    _record(
        config,
        "alpha",
        next_fetch_at=later,
        success=False,
        status=503,
        error="HTTP 503",
        hold_reason="retry-after",
    )
    _record(
        config,
        "gamma",
        next_fetch_at=later,
        success=False,
        status=410,
        error="HTTP 410 Gone",
        gone=True,
    )
    assert run(config, "refresh", "alpha", "beta", "gamma") == 0
    assert capsys.readouterr().out == (
        f"alpha: held: retry-after until {later.isoformat()}\n"
        "beta: due now\n"
        "gamma: held: disabled (410 Gone)\n"
    )
    assert run(config, "list", "--json") == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert (rows["alpha"]["health"], rows["alpha"]["last_status"]) == ("failing", 503)
    assert (rows["gamma"]["health"], rows["gamma"]["disabled_reason"]) == ("disabled", "410 Gone")
    assert run(config, "list") == 0
    listing = capsys.readouterr().out
    assert "\n       error: HTTP 503\n       held: retry-after\n" in listing
    assert "\n       disabled: 410 Gone\n" in listing


def test_refresh_of_an_unknown_feed_suggests_one(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(config, "refresh", "alpha", "betta") == 1
    assert capsys.readouterr().err == (
        f"error: {config}: no feed named 'betta' (did you mean 'beta'?)\n"
        "hint: `newswatch feeds list` shows the feeds\n"
    )


def test_a_removed_feed_stays_listed_as_removed(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(config, "refresh") == 0
    assert run(config, "remove", "beta") == 0
    assert run(config, "refresh") == 0
    capsys.readouterr()
    assert run(config, "list", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["health"]) for r in rows] == [
        ("alpha", "new"),
        ("gamma", "new"),
        ("beta", "removed"),
    ]


# --- OPML ----------------------------------------------------------------------------------


def test_import_adds_new_feeds_with_folder_tags_and_reports_the_rest(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    opml = tmp_path / "subs.opml"
    opml.write_text(OPML, encoding="utf-8")
    assert run(config, "import-opml", str(opml)) == 0
    assert capsys.readouterr().out == (
        f"skipped {opml}:7: Alpha again: already in config.toml as 'alpha'\n"
        f"skipped {opml}:9: Broken: xmlUrl 'feed://example.org/rss': feed scheme in URL; "
        "only http and https are allowed\n"
        "added radio-ozodi (https://rus.ozodi.org/api/z) #tajikistan\n"
        "1 feeds added, 2 skipped\n"
    )
    new = (
        '\n[[feeds]]\nname = "radio-ozodi"\nurl = "https://rus.ozodi.org/api/z"\n'
        'tags = ["tajikistan"]\nlanguage = "ru"\n'
    )
    assert config.read_text(encoding="utf-8") == CONFIG.replace(
        'language = "ru"\n', 'language = "ru"\n' + new
    )
    before = config.read_text(encoding="utf-8")
    assert run(config, "import-opml", str(opml)) == 0
    assert capsys.readouterr().out.endswith("0 feeds added, 3 skipped\n")
    assert config.read_text(encoding="utf-8") == before


def test_a_malformed_opml_changes_nothing(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    opml = tmp_path / "bad.opml"
    opml.write_text(OPML.replace("Broken", "Broken & bent"), encoding="utf-8")
    assert run(config, "import-opml", str(opml)) == 1
    assert capsys.readouterr().err.startswith(
        f"error: {opml}:9:28: not well-formed XML: not well-formed (invalid token)\n"
    )
    assert config.read_text(encoding="utf-8") == CONFIG


def test_export_to_stdout_and_to_a_file(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(config, "export-opml") == 0
    text = capsys.readouterr().out
    assert text == (
        '<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0">\n'
        "  <head>\n    <title>newswatch feeds</title>\n  </head>\n  <body>\n"
        '    <outline type="rss" text="alpha" title="alpha" '
        'xmlUrl="http://127.0.0.1:9/alpha.xml" category="one,tj"/>\n'
        '    <outline type="rss" text="beta" title="beta" xmlUrl="http://127.0.0.1:9/beta.xml"/>\n'
        '    <outline type="rss" text="gamma" title="gamma" '
        'xmlUrl="http://127.0.0.1:9/gamma.xml" language="ru"/>\n'
        "  </body>\n</opml>\n"
    )
    target = tmp_path / "out.opml"
    assert run(config, "export-opml", str(target)) == 0
    assert capsys.readouterr().out == f"wrote 3 feeds to {target}\n"
    assert target.read_text(encoding="utf-8") == text


def test_every_shared_opml_imports_without_a_bug_and_round_trips(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = sorted((shared_data / "opml").glob("*.opml"))
    files += sorted((shared_data / "hostile" / "malformed").glob("*.opml"))
    for opml in files:
        first = tmp_path / opml.stem / "config.toml"
        first.parent.mkdir()
        first.write_text(CONFIG, encoding="utf-8")
        code = run(first, "import-opml", str(opml))
        assert code in (0, 1), opml.name  # 3 would be a bug
        if code == 1:
            assert first.read_text(encoding="utf-8") == CONFIG
            continue
        urls = {f.url for f in load_config(first).feeds}
        exported = tmp_path / opml.stem / "export.opml"
        assert run(first, "export-opml", str(exported)) == 0
        second = tmp_path / opml.stem / "second.toml"
        second.write_text('timezone = "UTC"\n', encoding="utf-8")
        assert run(second, "import-opml", str(exported)) == 0
        assert {f.url for f in load_config(second).feeds} == urls, opml.name
        assert _described(second) == _described(first)
    capsys.readouterr()


def _described(path: Path) -> list[tuple[str, str, tuple[str, ...], str | None]]:
    return [(f.name, f.url, f.tags, f.language) for f in load_config(path).feeds]
