"""OPML: parsing safely with file:line:col errors, planning an import, rendering an export."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import FeedConfig
from pipeline.errors import ConfigError
from pipeline.feedfile import FeedEntry
from pipeline.opml import (
    OpmlOutline,
    feed_name,
    parse_opml,
    plan_import,
    read_opml,
    render_opml,
    tag_slug,
)

OPML = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>t</title></head>
  <body>
    <outline text="Central Asia">
      <outline title="Tajik">
        <outline text="Ozodi" xmlUrl="https://www.ozodi.org/api/x" language="tg-TJ"/>
      </outline>
      <outline text="Lenta" xmlUrl=" http://lenta.ru/rss " category="/News/Russia,/Daily"/>
    </outline>
    <outline text="No title attribute" xmlURL="https://example.org/feed"/>
    <outline text="Folder without feeds"/>
  </body>
</opml>
"""


def test_outlines_carry_their_folders_title_language_and_line() -> None:
    assert parse_opml(OPML, source="f.opml") == (
        OpmlOutline(7, "Ozodi", "https://www.ozodi.org/api/x", ("Central Asia", "Tajik"), "tg-TJ"),
        OpmlOutline(9, "Lenta", "http://lenta.ru/rss", ("Central Asia", "News", "Russia", "Daily")),
        OpmlOutline(11, "No title attribute", "https://example.org/feed"),
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b'<?xml version="1.0"?>\n<!DOCTYPE opml [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
            b'<opml><body><outline text="&x;" xmlUrl="https://a/"/></body></opml>',
            "f.opml:2:1: OPML declares a DOCTYPE; refused (its entities could read local files "
            "or expand without bound)",
        ),
        (
            b"<rss><channel/></rss>",
            "f.opml:1:1: root element is <rss>, not <opml>: not an OPML file",
        ),
        (
            b"<opml><head/></opml>",
            "f.opml: no <body> in <opml>: not an OPML subscription list\n"
            "hint: export the subscriptions from the feed reader again",
        ),
        (
            b'<opml><body>\n<outline text="a & b" xmlUrl="https://a/"/></body></opml>',
            "f.opml:2:19: not well-formed XML: not well-formed (invalid token)\n"
            '  near: <outline text="a & b" xmlUrl="https://a\n'
            "hint: a raw '&' must be written &amp;, and a '\"' inside an attribute &quot;; "
            "fix the file and import it again (config.toml was not changed)",
        ),
        (
            b"<opml><body></opml>",
            "f.opml:1:15: not well-formed XML: mismatched tag\n  near: <opml><body></opml>\n"
            "hint: fix the file and import it again (config.toml was not changed)",
        ),
        (b"", "f.opml:1:1: not well-formed XML: no element found"),
    ],
)
def test_bad_opml_is_refused_with_file_line_and_column(data: bytes, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_opml(data, source="f.opml")
    assert str(caught.value).startswith(message)


def test_a_doctype_is_refused_in_any_encoding() -> None:
    data = '<?xml version="1.0" encoding="UTF-16"?>\n<!DOCTYPE o [<!ENTITY a "b">]><opml/>'
    with pytest.raises(ConfigError, match=r"^f.opml:2:\d+: OPML declares a DOCTYPE; refused"):
        parse_opml(data.encode("utf-16"), source="f.opml")


def test_read_opml_refuses_a_file_too_large(tmp_path: Path) -> None:
    path = tmp_path / "big.opml"
    path.write_bytes(b"<opml><body/></opml>")
    assert read_opml(path, max_bytes=20) == ()
    with pytest.raises(ConfigError) as caught:
        read_opml(path, max_bytes=19)
    assert str(caught.value) == f"{path}: OPML file larger than 19 bytes; refused"


def test_read_opml_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing.opml: cannot read the OPML file: No such"):
        read_opml(tmp_path / "missing.opml")


def test_the_plan_skips_bad_known_and_repeated_urls_and_makes_unique_names() -> None:
    existing = [FeedConfig("lenta-2", "https://www.lenta.ru/rss")]
    outlines = [
        OpmlOutline(3, "Ozodi", "https://www.ozodi.org/api/x", ("Central Asia",), "tg-TJ"),
        OpmlOutline(4, "Лента", "http://lenta.ru/rss"),
        OpmlOutline(5, "Ozodi", "https://OZODI.org/api/y"),
        OpmlOutline(6, "Ozodi again", "https://www.ozodi.org/api/x#top"),
        OpmlOutline(7, "بیگ بنگ", "hhttps://bigbangpage.com/?feed=rss2"),
        OpmlOutline(8, "قومی خبریں", "https://www.express.pk/feed/", ("Pakistan", "Pakistan")),
        OpmlOutline(9, "Bad port", "https://a.org:99999/"),
    ]
    plan = plan_import(outlines, existing)
    assert plan.added == (
        FeedEntry("ozodi", "https://www.ozodi.org/api/x", ("central-asia",), "tg"),
        FeedEntry("ozodi-2", "https://OZODI.org/api/y"),
        FeedEntry("express-pk", "https://www.express.pk/feed/", ("pakistan",)),
    )
    assert [(s.line, s.reason) for s in plan.skipped] == [
        (4, "already in config.toml as 'lenta-2'"),
        (6, "same URL as line 3"),
        (
            7,
            "xmlUrl 'hhttps://bigbangpage.com/?feed=rss2': hhttps scheme in URL; "
            "only http and https are allowed",
        ),
        (9, "xmlUrl 'https://a.org:99999/': not a valid URL (Port out of range 0-65535)"),
    ]


@pytest.mark.parametrize(
    ("title", "url", "name"),
    [
        ("Газета «Коммерсантъ». Главное", "https://kommersant.ru/", "gazeta-kommersant-glavnoe"),
        ("Радиои Озодӣ — Ҳафтаи ҷорӣ", "https://ozodi.org/", "radioi-ozodi-haftai-jori"),
        ("Le Monde : À la une", "https://lemonde.fr/", "le-monde-a-la-une"),
        ("ایکسپریس اردو", "https://www.express.pk/feed/", "express-pk"),
        ("", "https://[::1]/", "1"),
        ("***", "https://[::1]/", "1"),
        ("x" * 200, "https://a/", "x" * 60),
    ],
)
def test_feed_names_are_ascii_slugs_valid_in_config(title: str, url: str, name: str) -> None:
    assert feed_name(title, url, set()) == name


def test_tags_keep_their_script() -> None:
    assert tag_slug("Podcasts & Music") == "podcasts-music"
    assert tag_slug("خوراک‌های نمونه") == "خوراک‌های-نمونه"
    assert tag_slug(" Новости ") == "новости"


def test_rendered_opml_escapes_and_parses_back() -> None:
    feeds = [
        FeedConfig("a", 'https://a.org/rss?x=1&y="2"', ("tj", "news"), "tg"),
        FeedConfig("b", "https://b.org/"),
    ]
    text = render_opml(feeds)
    assert (
        '<outline type="rss" text="a" title="a" xmlUrl="https://a.org/rss?x=1&amp;y=&quot;2&quot;"'
        in text
    )
    assert 'language="tg" category="tj,news"/>' in text
    back = parse_opml(text.encode(), source="x")
    assert [(o.title, o.url, o.categories, o.language) for o in back] == [
        ("a", 'https://a.org/rss?x=1&y="2"', ("tj", "news"), "tg"),
        ("b", "https://b.org/", (), None),
    ]


# --- the shared OPML corpus ----------------------------------------------------------------


def _opml_files(shared: Path) -> list[Path]:
    return sorted((shared / "opml").glob("*.opml")) + sorted(
        (shared / "hostile" / "malformed").glob("*.opml")
    )


def test_every_shared_opml_parses_or_is_refused_with_a_position(shared_data: Path) -> None:
    refused = {}
    for path in _opml_files(shared_data):
        try:
            outlines = read_opml(path)
        except ConfigError as exc:
            refused[path.name] = exc.message.removeprefix(str(path)).split("\n")[0]
            continue
        assert outlines, path
        plan = plan_import(outlines, [])
        assert len(plan.added) + len(plan.skipped) == len(outlines)
        assert len({e.name for e in plan.added}) == len(plan.added)
    invalid = "not well-formed XML: not well-formed (invalid token)"
    assert refused == {
        "awesome-rss-feeds-News.opml": f":21:45: {invalid}",
        "awesome-rss-feeds-Russia.opml": f":20:27: {invalid}",
        "newsboat-body-element-missing.opml": ": no <body> in <opml>: "
        "not an OPML subscription list",
        "newsboat-opml-element-missing.opml": ":2:1: root element is <not-opml>, not <opml>: "
        "not an OPML file",
    }


def test_liferea_folders_become_tags_and_its_typo_and_search_folders_are_skipped(
    shared_data: Path,
) -> None:
    plan = plan_import(read_opml(shared_data / "opml" / "liferea-feedlist_fa.opml"), [])
    bbc = next(e for e in plan.added if e.name == "bbc")
    assert bbc.tags == ("خوراک‌های-نمونه", "international", "news")
    assert [s.url for s in plan.skipped] == [
        "hhttps://bigbangpage.com/?feed=rss2",
        "vfolder",
        "vfolder",
    ]


def test_titles_fall_back_to_text(shared_data: Path) -> None:
    with_titles = read_opml(shared_data / "opml" / "netnewswire-Subs.opml")
    text_only = read_opml(shared_data / "opml" / "netnewswire-SubsNoTitleAttributes.opml")
    assert with_titles[0].title == text_only[0].title == "Daring Fireball"


def test_export_then_import_keeps_every_url(shared_data: Path) -> None:
    for path in _opml_files(shared_data):
        try:
            plan = plan_import(read_opml(path), [])
        except ConfigError:
            continue
        feeds = [FeedConfig(e.name, e.url, e.tags, e.language) for e in plan.added]
        back = plan_import(parse_opml(render_opml(feeds).encode(), source="x"), [])
        assert back.added == plan.added, path.name
        assert back.skipped == ()


@pytest.mark.parametrize("folder", ["defusedxml", "payloadsallthethings-xxe"])
def test_every_entity_payload_is_refused(shared_data: Path, folder: str) -> None:
    for path in sorted((shared_data / "hostile" / folder).glob("*.xml")):
        with pytest.raises(ConfigError) as caught:
            read_opml(path)
        message = str(caught.value).removeprefix(str(path))
        if path.name.startswith("simple"):
            assert message.endswith("root element is <root>, not <opml>: not an OPML file")
        elif path.name.startswith("xxe-oob"):  # a write-up, not one XML document
            assert message.startswith(":1:1: not well-formed XML: syntax error")
        else:
            assert "OPML declares a DOCTYPE; refused" in message, path.name
