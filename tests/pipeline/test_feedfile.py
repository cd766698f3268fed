"""Editing [[feeds]] in config.toml text with comments kept, writing it safely, URL keys."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest
from tomlkit.toml_document import TOMLDocument

from pipeline.config import load_config
from pipeline.errors import ConfigError
from pipeline.feedfile import (
    FeedEntry,
    _edited,
    append_feed_tables,
    remove_feed_table,
    save_config_text,
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


# --- checking a new feed -----------------------------------------------------------------


def test_url_keys_ignore_scheme_www_default_port_and_fragment() -> None:
    assert url_key("http://www.A.org:80/rss#x") == url_key("https://a.org/rss") == "a.org/rss"
    assert url_key("https://a.org:8443") == "a.org:8443/"
    assert url_key("https://a.org/?q=1") != url_key("https://a.org/")
