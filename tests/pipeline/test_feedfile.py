"""Editing [[feeds]] in config.toml text with comments kept; OPML parsing, planning, rendering."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest
from tomlkit.toml_document import TOMLDocument

from pipeline.config import FeedConfig, load_config
from pipeline.errors import ConfigError
from pipeline.feedfile import (
    FeedEntry,
    OpmlOutline,
    _edited,
    append_feed_tables,
    feed_name,
    parse_opml,
    plan_import,
    read_opml,
    remove_feed_table,
    render_opml,
    save_config_text,
    tag_slug,
    url_key,
    write_atomic,
)

HEAD = '# test configuration\ntimezone = "UTC"  # tests run in UTC\n\n'
ALPHA = (
    '[[feeds]]\nname = "alpha"           # the first feed\n'
    'url = "http://127.0.0.1:9/alpha.xml"\ntags = ["one"]\n'
)
BETA = '[[feeds]]\n# inside beta\nname = "beta"\nurl = "http://127.0.0.1:9/beta.xml"\n'
GAMMA = '[[feeds]]\nname = "gamma"\nurl = "http://127.0.0.1:9/gamma.xml"\nlanguage = "ru"\n'
TAIL = '# --- notifiers ---\n[notifiers.outbox]\ntype = "outbox"  # writes .eml files\n'
TEXT = (
    HEAD
    + "# --- group one ---\n\n"
    + ALPHA
    + "\n"
    + BETA
    + "\n# --- group two ---\n\n"
    + GAMMA
    + "\n"
    + TAIL
)


# --- removing ------------------------------------------------------------------------------


def test_removing_a_middle_feed_keeps_the_section_comment_after_it() -> None:
    assert remove_feed_table(TEXT, "beta") == (
        HEAD + "# --- group one ---\n\n" + ALPHA + "\n# --- group two ---\n\n" + GAMMA + "\n" + TAIL
    )


def test_removing_the_first_feed_keeps_the_comment_before_the_next_header() -> None:
    assert remove_feed_table(TEXT, "alpha") == (
        HEAD + "# --- group one ---\n\n" + BETA + "\n# --- group two ---\n\n" + GAMMA + "\n" + TAIL
    )


def test_removing_the_last_feed_keeps_what_follows_the_feeds() -> None:
    assert remove_feed_table(TEXT, "gamma") == (
        HEAD + "# --- group one ---\n\n" + ALPHA + "\n" + BETA + "\n# --- group two ---\n\n" + TAIL
    )


def test_removing_every_feed_leaves_every_other_comment() -> None:
    text = TEXT
    for name in ("beta", "gamma", "alpha"):
        text = remove_feed_table(text, name)
    assert text == HEAD + "# --- group one ---\n\n# --- group two ---\n\n" + TAIL


def test_removing_the_first_table_of_a_file_with_no_table_before_it() -> None:
    text = 'x = 1\n\n[[feeds]]\nname = "a"\nurl = "https://a.org/"\n\n# b below\n[[feeds]]\n'
    text += 'name = "b"\nurl = "https://b.org/"\n'
    assert remove_feed_table(text, "a") == (
        'x = 1\n\n# b below\n[[feeds]]\nname = "b"\nurl = "https://b.org/"\n'
    )


def test_removing_from_an_inline_array() -> None:
    text = 'feeds = [{name = "a", url = "https://a.org/"}, {name = "b", url = "https://b.org/"}]\n'
    assert remove_feed_table(text, "a") == 'feeds = [{name = "b", url = "https://b.org/"}]\n'


def test_removing_an_unknown_feed_suggests_the_closest_name() -> None:
    with pytest.raises(ConfigError) as caught:
        remove_feed_table(TEXT, "betta")
    assert str(caught.value) == (
        "no feed named 'betta' in config.toml (did you mean 'beta'?)\n"
        "hint: `newswatch feeds list` shows the feeds"
    )


# --- adding --------------------------------------------------------------------------------


def test_a_new_feed_goes_after_the_last_feed_and_before_the_comments_that_follow() -> None:
    entry = FeedEntry("delta", "https://d.org/rss", ("x", "y"), "fa", "10m")
    new = (
        '[[feeds]]\nname = "delta"\nurl = "https://d.org/rss"\ntags = ["x", "y"]\n'
        'language = "fa"\ninterval = "10m"\n'
    )
    assert append_feed_tables(TEXT, [entry]) == TEXT.replace(GAMMA, GAMMA + "\n" + new)


def test_several_new_feeds_are_separated_by_blank_lines() -> None:
    entries = [FeedEntry("d", "https://d.org/"), FeedEntry("e", "https://e.org/")]
    added = '[[feeds]]\nname = "d"\nurl = "https://d.org/"\n\n'
    added += '[[feeds]]\nname = "e"\nurl = "https://e.org/"\n'
    assert append_feed_tables(TEXT, entries) == TEXT.replace(GAMMA, GAMMA + "\n" + added)


def test_the_first_feed_of_a_file_without_feeds_goes_at_its_end() -> None:
    assert append_feed_tables(HEAD + TAIL, [FeedEntry("a", "https://a.org/")]) == (
        HEAD + TAIL + '\n[[feeds]]\nname = "a"\nurl = "https://a.org/"\n'
    )


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("", '[[feeds]]\nname = "a"\nurl = "https://a.org/"\n'),
        ("x = 1\n\n", 'x = 1\n\n[[feeds]]\nname = "a"\nurl = "https://a.org/"\n'),
        ("x = 1", 'x = 1\n\n[[feeds]]\nname = "a"\nurl = "https://a.org/"\n'),
    ],
)
def test_the_first_feed_is_set_off_by_one_blank_line(text: str, result: str) -> None:
    assert append_feed_tables(text, [FeedEntry("a", "https://a.org/")]) == result


def test_removing_from_a_file_without_feeds_says_so() -> None:
    with pytest.raises(ConfigError, match=r"^no feed named 'a' in config.toml\nhint: "):
        remove_feed_table("x = 1\n", "a")


def test_an_edit_that_touches_anything_but_the_feeds_is_refused() -> None:
    def edit(doc: TOMLDocument) -> str:
        return doc.as_string().replace('"UTC"', '"Asia/Dushanbe"')

    with pytest.raises(ConfigError) as caught:
        _edited(TEXT, [dict(f) for f in tomllib.loads(TEXT)["feeds"]], edit)
    assert str(caught.value) == (
        "could not edit config.toml safely (its layout confused the TOML editor); "
        "nothing was written\nhint: edit the [[feeds]] tables by hand"
    )


def test_adding_to_an_inline_array() -> None:
    text = 'feeds = [{name = "a", url = "https://a.org/"}]\n'
    assert append_feed_tables(text, [FeedEntry("b", "https://b.org/")]) == (
        'feeds = [{name = "a", url = "https://a.org/"}, {name = "b", url = "https://b.org/"}]\n'
    )


def test_crlf_line_ends_survive_an_edit() -> None:
    crlf = TEXT.replace("\n", "\r\n")
    assert remove_feed_table(crlf, "beta") == remove_feed_table(TEXT, "beta").replace("\n", "\r\n")
    entries = [FeedEntry("d", "https://d.org/")]
    added = append_feed_tables(TEXT, entries).replace("\n", "\r\n")
    assert append_feed_tables(crlf, entries) == added


# --- writing -------------------------------------------------------------------------------


def _config_file(tmp_path: Path, text: str = TEXT) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_an_invalid_result_is_never_written_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = _config_file(tmp_path)
    bad = append_feed_tables(TEXT, [FeedEntry("d", "https://d.org/", interval="5x")])
    with pytest.raises(ConfigError) as caught:
        save_config_text(path, TEXT, bad)
    assert str(caught.value) == (
        f"{path}: feeds[3].interval: '5x' is not a duration (config.toml was not changed)\n"
        'hint: write e.g. "30s", "15m", "2h" or "1d"'
    )
    assert path.read_text(encoding="utf-8") == TEXT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]


def test_a_file_changed_by_someone_else_meanwhile_is_not_overwritten(tmp_path: Path) -> None:
    path = _config_file(tmp_path)
    stale = TEXT.replace("alpha", "omega")
    with pytest.raises(ConfigError, match="changed while newswatch was editing it"):
        save_config_text(path, stale, append_feed_tables(stale, [FeedEntry("d", "https://d/")]))
    assert path.read_text(encoding="utf-8") == TEXT


def test_a_valid_result_replaces_the_file_keeping_its_mode(tmp_path: Path) -> None:
    path = _config_file(tmp_path)
    os.chmod(path, 0o600)
    config = save_config_text(path, TEXT, remove_feed_table(TEXT, "beta"))
    assert config.path == path
    assert [f.name for f in config.feeds] == ["alpha", "gamma"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_config(path).feeds == config.feeds


def test_write_atomic_into_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot write .*/nowhere/feeds.opml: No such file"):
        write_atomic(tmp_path / "nowhere" / "feeds.opml", "x")


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    with pytest.raises(UnicodeEncodeError):
        write_atomic(tmp_path / "feeds.opml", "a lone surrogate \ud800")
    assert list(tmp_path.iterdir()) == []


# --- OPML ----------------------------------------------------------------------------------

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


def test_url_keys_ignore_scheme_www_default_port_and_fragment() -> None:
    assert url_key("http://www.A.org:80/rss#x") == url_key("https://a.org/rss") == "a.org/rss"
    assert url_key("https://a.org:8443") == "a.org:8443/"
    assert url_key("https://a.org/?q=1") != url_key("https://a.org/")


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
