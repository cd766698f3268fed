"""pipeline.parse (with xmlguard and jsonfeed): real feeds, peer corpora, hostile documents."""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import FetchError
from pipeline.parse import (
    ParsedFeed,
    content_hash,
    guess_language,
    html_to_text,
    parse_feed,
)
from pipeline.urls import canonical_url, redact_url
from tests.pipeline.conftest import ScriptedServer

NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
URL = "https://news.example/feeds/rss.xml"
RSS = "application/rss+xml; charset=utf-8"


def parse(body: bytes, content_type: str = RSS, **kw: object) -> ParsedFeed:
    return parse_feed(body, headers={"Content-Type": content_type}, url=URL, now=NOW, **kw)  # type: ignore[arg-type]


def rss(items: str, *, head: str = "", channel: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>{head}<rss version="2.0"><channel>'
        f"<title>Feed</title>{channel}{items}</channel></rss>"
    ).encode()


def item(title: str = "T", link: str = "https://news.example/a", extra: str = "") -> str:
    return f"<item><title>{title}</title><link>{link}</link>{extra}</item>"


def read(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


# --- real feeds and peer corpora ---------------------------------------------------------------


def test_every_real_feed_yields_clean_articles(shared_data: Path) -> None:
    files = sorted(p for p in (shared_data / "feeds").iterdir() if not p.name.endswith(".txt"))
    assert len(files) >= 16
    for path in files:
        content_type = "application/json" if path.suffix == ".json" else "application/xml"
        feed = parse(read(path), content_type)
        assert feed.articles, path.name
        assert feed.warning is None, (path.name, feed.warning)
        for article in feed.articles:
            assert article.title and len(article.title) <= 1000, path.name
            assert not re.search(r"<[A-Za-z/]|[\x00-\x1f\x7f]", article.title), article.title
            assert article.link is None or re.match(r"https?://[^/\s]+", article.link)
            assert article.published_at.utcoffset() is not None
            assert article.published_at.tzinfo == UTC and article.published_at <= NOW
            assert article.guid and len(article.content_hash) == 64
            assert len(article.text) <= 100_000 and "<p>" not in article.text


def test_every_peer_corpus_file_parses_or_says_why(shared_data: Path) -> None:
    """2,100 files of feedparser's and miniflux's corpora: only FetchError may escape."""
    files = [p for p in (shared_data / "peer-feeds").rglob("*") if p.suffix in (".xml", ".json")]
    assert len(files) > 2000
    refused = []
    for path in files:
        data = path.read_bytes()
        headers = dict(
            re.findall(r"^Header:\s*([\w-]+):\s*(.*?)\s*$", data[:4000].decode("latin-1"), re.M)
        )
        try:
            parse_feed(data, headers=headers, url="http://example.org/feed", now=NOW)
        except FetchError as exc:
            refused.append((path.name, str(exc)))
    assert len(refused) < 20, refused


@pytest.mark.parametrize(
    ("name", "language"),
    [
        ("hoder-fa-2005.xml", "fa"),  # declares en-us, written in Persian
        ("meduza-ru-2020-10.xml.gz", "ru"),
        ("suspilne-uk-2023-12.xml", "uk"),
        ("theguardian-en-2018-01.rss", "en"),
        ("bbc-chinese-zh-2013-01.atom", "zh"),  # xml:lang="zh-Hans"
        ("fboes-de-jsonfeed-1.1.json", "de"),
    ],
)
def test_language_of_real_feeds(shared_data: Path, name: str, language: str) -> None:
    feed = parse(read(shared_data / "feeds" / name), "application/octet-stream")
    assert {a.language for a in feed.articles} == {language}


def test_html_titles_are_decoded_exactly_once(shared_data: Path) -> None:
    feed = parse(read(shared_data / "feeds" / "hnapp-en-2018-02-atom-html-titles.xml"))
    assert feed.articles[0].title == "37 – Spectre Mitigations in Microsoft's C/C++ Compiler"
    assert feed.title.startswith("type:story score>36")


def test_legacy_encodings_and_link_ids(shared_data: Path) -> None:
    feed = parse(read(shared_data / "feeds" / "oren-ru-2014-01-windows-1251.xml"), "text/xml")
    first = feed.articles[0]
    assert first.title == "В Бузулуке главные стройплощадки – детсад и Ледовый дворец"
    assert first.guid == first.link == "http://www.oren.ru/news/2743422/"


# --- hostile documents -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("quadratic.xml", "feed declares an entity of 100000 bytes (limit 1024); refused"),
        ("xmlbomb.xml", "feed declares nested entity references; refused"),
        ("cyclic.xml", "feed declares nested entity references; refused"),
        ("external.xml", "feed declares external entities; refused"),
        ("external_file.xml", "feed declares external entities; refused"),
        ("xmlbomb2.xml", "not a feed: no RSS, Atom or JSON Feed content (root element <root>)"),
    ],
)
def test_defusedxml_bombs_are_refused(shared_data: Path, name: str, message: str) -> None:
    with pytest.raises(FetchError) as caught:
        parse((shared_data / "hostile" / "defusedxml" / name).read_bytes())
    assert str(caught.value) == message


def test_xxe_payload_files_are_refused(shared_data: Path) -> None:
    folder = shared_data / "hostile" / "payloadsallthethings-xxe"
    for path in sorted(folder.glob("*.xml")):
        with pytest.raises(FetchError):
            parse(path.read_bytes())


def test_xxe_payload_lines_never_touch_the_network(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*args: object) -> None:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    folder = shared_data / "hostile" / "payloadsallthethings-xxe"
    lines = [
        line
        for name in ("XXE_Fuzzing.txt", "xml-attacks.txt")
        for line in (folder / name).read_bytes().splitlines()
        if b"<" in line
    ]
    assert len(lines) > 20
    for line in lines:
        with contextlib.suppress(FetchError):
            parse(line)


def test_malformed_feeds_warn_or_say_not_a_feed(shared_data: Path) -> None:
    folder = shared_data / "hostile" / "malformed"
    outcomes = {}
    for path in sorted(folder.iterdir()):
        try:
            feed = parse(read(path), "application/octet-stream")
            outcomes[path.name] = (len(feed.articles), feed.warning)
        except FetchError as exc:
            outcomes[path.name] = (0, str(exc))
    ampersands = outcomes["theguardian-world-en-2022-09-raw-ampersands.xml"]
    assert ampersands[0] == 54
    assert ampersands[1] == (
        "malformed feed (XML error at line 35, column 158: not well-formed (invalid token)); "
        "read 54 entries"
    )
    assert outcomes["node-feedparser-saxerror.xml"][0] == 3
    assert "parsed as windows-1252" in str(outcomes["uolnoticias-pt-latin1-undeclared.rss"][1])
    assert str(outcomes["allthis-jsonfeed-truncated.json"][1]).startswith(
        "not a feed: invalid JSON"
    )
    assert outcomes["newsboat-opml-element-missing.opml"] == (
        0,
        "not a feed: no RSS, Atom or JSON Feed content (root element <not-opml>)",
    )
    for name, (count, note) in outcomes.items():
        assert count > 0 or (note or "").startswith("not a feed: "), name


def test_huge_real_feeds_parse(shared_data: Path) -> None:
    feed = parse((shared_data / "hostile" / "huge" / "giantbomb-podcast-1.6MB.rss").read_bytes())
    assert len(feed.articles) == 730
    capped = parse(
        (shared_data / "hostile" / "huge" / "giantbomb-podcast-1.6MB.rss").read_bytes(),
        max_entries=100,
    )
    assert len(capped.articles) == 100
    assert capped.warning == "feed has 730 entries; kept the first 100"
    assert capped.articles == feed.articles[:100]


def quadratic_feed(prefix: str = "") -> bytes:
    """An 88 KiB feed: one 60,000-byte entity referenced 10,000 times (1.7 GB in feedparser)."""
    refs = "&a;" * 10_000
    doctype = f'<!DOCTYPE rss [\n<!ENTITY a "{"B" * 60000}">\n]>\n'
    return f'<?xml version="1.0"?>\n{prefix}{doctype}{rss(item(refs)).decode()[22:]}'.encode()


@pytest.mark.parametrize("prefix", ["", "<!--" + "c" * 70_000 + "-->\n"])
def test_generated_quadratic_blowup_is_refused_before_feedparser(prefix: str) -> None:
    body = quadratic_feed(prefix)
    assert len(body) > 88 * 1024
    with pytest.raises(FetchError) as caught:
        parse(body)
    assert str(caught.value) == "feed declares an entity of 60000 bytes (limit 1024); refused"


@pytest.mark.parametrize(
    ("doctype", "message"),
    [
        # on one line: feedparser's line-anchored pattern would miss it, expat would not
        ('<!DOCTYPE rss [<!ENTITY x SYSTEM "file://{canary}">]>', "external entities"),
        (
            '<!DOCTYPE rss [\n<!ENTITY x PUBLIC "-//x//EN" "file://{canary}">\n]>',
            "external entities",
        ),
        ('<!DOCTYPE rss [\n<!ENTITY % p SYSTEM "file://{canary}">\n%p;\n]>', "external entities"),
        ("<!DOCTYPE rss [\n<!ENTITY % p \"<!ENTITY x 'y'>\">\n%p;\n]>", "parameter entities"),
        ('<!DOCTYPE rss [\n<!ENTITY a "&#38;b;">\n<!ENTITY b "x">\n]>', "nested entity references"),
        # inside a comment: feedparser's DOCTYPE rewrite would re-insert it
        ('<!DOCTYPE rss [\n<!--\n<!ENTITY x "' + "B" * 2000 + '">\n-->\n]>', "2000 bytes"),
        ("<!DOCTYPE rss [\n" + '<!ENTITY e "x">\n' * 33 + "]>", "33 entities (limit 32)"),
    ],
)
def test_entity_tricks_are_refused_and_the_canary_never_appears(
    tmp_path: Path, doctype: str, message: str
) -> None:
    canary = tmp_path / "canary.txt"
    canary.write_text("CANARY-7f3a91")
    body = rss(item("&x; news"), head=doctype.format(canary=canary)).replace(b'"?>', b'"?>\n', 1)
    with pytest.raises(FetchError, match=re.escape(message)):
        parse(body)


def test_external_entity_to_a_private_server_is_refused_without_a_request(
    private_http: ScriptedServer,
) -> None:
    head = f'<!DOCTYPE rss [\n<!ENTITY x SYSTEM "{private_http.url("/secret")}">\n]>'
    with pytest.raises(FetchError, match="external entities"):
        parse(rss(item("&x;"), head=head))
    assert sum(private_http.hits.values()) == 0


def test_entity_declarations_hidden_in_utf16_and_utf7_are_found() -> None:
    body = quadratic_feed().decode()
    with pytest.raises(FetchError, match="60000 bytes"):
        parse(body.encode("utf-16"))
    utf7 = (
        b'<?xml version="1.0" encoding="utf-7"?>+ADw-!DOCTYPE rss +AFs-+ADw-!ENTITY a "'
        + b"A" * 5000
        + b'"+AD4-+AF0-+AD4-<rss version="2.0"><channel><title>&a;</title></channel></rss>'
    )
    with pytest.raises(FetchError, match="5000 bytes"):
        parse(utf7, "application/xml")


def test_small_plain_entities_stay_allowed() -> None:
    head = '\n<!DOCTYPE rss [\n  <!ENTITY id "tag:example.com,">\n]>\n'
    body = rss(
        "<item><guid isPermaLink='false'>&id;2006-05-04:/blog/</guid><title>x</title></item>",
        head=head,
    )
    assert parse(body).articles[0].guid == "tag:example.com,2006-05-04:/blog/"


def test_32_small_entities_are_allowed() -> None:
    head = "\n<!DOCTYPE rss [\n" + "".join(f'<!ENTITY e{i} "x">\n' for i in range(32)) + "]>\n"
    assert parse(rss(item("&e0;"), head=head)).articles[0].title == "x"


# --- not feeds ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"", RSS, "not a feed: empty body"),
        (b"  \r\n\t", RSS, "not a feed: empty body"),
        (
            b"<!DOCTYPE html><html><head><title>Hi</title></head><body>x</body></html>",
            "text/html",
            "not a feed: an HTML page (text/html)",
        ),
        (
            b"<html><body><p>moved</p></body></html>",
            "",
            "not a feed: an HTML page (no Content-Type)",
        ),
        (
            b'{"a": 1}',
            "application/json",
            "not a feed: JSON without a JSON Feed 'version' and 'items'",
        ),
        (
            b'{"items": [\n{"id": "1"',
            "",
            "not a feed: invalid JSON at line 2, column 11 (Expecting ',' delimiter)",
        ),
        (b"[" * 100_000, "application/json", "not a feed: JSON nested too deeply"),
        (b"just text", "text/plain", "not a feed: XML error at line 2, column 0: syntax error"),
    ],
)
def test_not_a_feed(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(FetchError) as caught:
        parse(body, content_type)
    assert str(caught.value) == message


# --- fields ------------------------------------------------------------------------------------


def test_titles_come_out_as_one_line_of_plain_text() -> None:
    items = "".join(
        [
            item("&lt;script&gt;alert(1)&lt;/script&gt;Breaking\r\nBcc: x@evil.example\t&#0;"),
            item("&lt;img src=x onerror=alert(1)&gt;Photo &lt;b&gt;gallery&lt;/b&gt;"),
            item("AT&amp;amp;T &amp;amp; Verizon"),
            item("Rates &lt; 5% \u202eevil\u202c"),
            item("x" * 5_000_000),
        ]
    )
    titles = [a.title for a in parse(rss(items)).articles]
    assert titles[:4] == [
        "Breaking Bcc: x@evil.example",
        "Photo gallery",
        "AT&T & Verizon",
        "Rates < 5% evil",
    ]
    assert titles[4] == "x" * 1000


def test_atom_html_and_xhtml_titles() -> None:
    body = (
        b'<feed xmlns="http://www.w3.org/2005/Atom">'
        b'<title type="html">&lt;b&gt;Site&lt;/b&gt;</title><entry><id>1</id>'
        b'<title type="html">&lt;em&gt;A&lt;/em&gt; &amp;amp;amp; B</title></entry>'
        b'<entry><id>2</id><title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">'
        b"<b>Bold</b> &amp; more</div></title></entry></feed>"
    )
    feed = parse(body, "application/atom+xml")
    assert feed.title == "Site"
    assert [a.title for a in feed.articles] == ["A &amp; B", "Bold & more"]


def test_links_are_absolute_http_only() -> None:
    links = [
        "javascript:alert(1)",
        "data:text/html,x",
        "/world/2026/a?utm_source=rss&amp;id=7#top",
        "//cdn.news.example/b",
        "ftp://news.example/c",
        "https://news.example/d?fbclid=abc&amp;gclid=1&amp;x=2",
    ]
    feed = parse(rss("".join(item(f"t{i}", link) for i, link in enumerate(links))))
    assert [a.link for a in feed.articles] == [
        None,
        None,
        "https://news.example/world/2026/a?utm_source=rss&id=7#top",
        "https://cdn.news.example/b",
        None,
        "https://news.example/d?fbclid=abc&gclid=1&x=2",
    ]
    assert [a.canonical_url for a in feed.articles][2:] == [
        "https://news.example/world/2026/a?id=7",
        "https://cdn.news.example/b",
        None,
        "https://news.example/d?x=2",
    ]


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("<pubDate>Fri, 31 Dec 9999 23:59:59 GMT</pubDate>", NOW),
        ("", NOW),
        ("<pubDate>not a date</pubDate>", NOW),
        ("<pubDate>Mon, 01 Jan 1900 00:00:00 GMT</pubDate>", datetime(1900, 1, 1, tzinfo=UTC)),
        (
            "<pubDate>Wed, 18 Nov 2026 12:00:00 +0500</pubDate>",
            datetime(2026, 11, 18, 7, tzinfo=UTC),
        ),
        ("<dc:date>2026-11-18T12:00:00</dc:date>", datetime(2026, 11, 18, 12, tzinfo=UTC)),
    ],
)
def test_published_times_are_utc_and_never_in_the_future(date: str, expected: datetime) -> None:
    body = rss(item(extra=date)).replace(
        b'<rss version="2.0">', b'<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">'
    )
    published = parse(body).articles[0].published_at
    assert published == expected and published.tzinfo == UTC


def test_stable_ids_fall_back_from_guid_to_link_to_content() -> None:
    items = (
        item(extra="<guid>abc-1</guid>")
        + item("Only link")
        + "<item><title>Bare</title><description>Body</description></item>"
    )
    first = parse(rss(items)).articles
    again = parse(rss(items)).articles
    assert [a.guid for a in first] == [a.guid for a in again]
    assert first[0].guid == "abc-1"
    assert first[1].guid == "https://news.example/a"
    assert first[2].guid.startswith("sha256:") and first[2].link is None


def test_text_is_plain_collapsed_and_capped() -> None:
    html = (
        "&lt;p&gt;One&lt;/p&gt;&lt;p&gt;Two&amp;nbsp;words"
        "&lt;script&gt;evil()&lt;/script&gt;&lt;br&gt;Three&lt;/p&gt;"
    )
    long = "word " * 30_000
    feed = parse(
        rss(
            item(extra=f"<description>{html}</description>")
            + item(extra=f"<description>{long}</description>")
        )
    )
    assert feed.articles[0].text == "One Two words Three"  # &nbsp; collapses like any space
    assert 99_990 <= len(feed.articles[1].text) <= 100_000


def test_content_is_preferred_over_summary() -> None:
    extra = (
        "<description>Short</description>"
        "<content:encoded><![CDATA[<p>Full <b>story</b></p>]]></content:encoded>"
    )
    body = rss(item(extra=extra)).replace(
        b'<rss version="2.0">',
        b'<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">',
    )
    assert parse(body).articles[0].text == "Full story"


def test_language_order_entry_then_config_then_declared_then_guess() -> None:
    atom = (
        '<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="ru"><title>f</title>'
        '<entry xml:lang="tg"><id>1</id><title>Хабар</title></entry>'
        "<entry><id>2</id><title>Новости</title></entry></feed>"
    ).encode()
    assert [a.language for a in parse(atom, "application/atom+xml").articles] == ["tg", "ru"]
    configured = parse(atom, "application/atom+xml", language="tg").articles
    assert [a.language for a in configured] == ["tg", "tg"]
    undeclared = rss(item("Дар вилояти Бадахшон ҳодиса рух дод") + item("Взрыв в Хороге"))
    assert [a.language for a in parse(undeclared).articles] == ["tg", "ru"]
    declared = rss(item("حمله در بدخشان"), channel="<language>en-us</language>")
    assert parse(declared).articles[0].language == "fa"


def test_guess_language_by_script() -> None:
    assert guess_language("پل مرزی اشکاشم") == "fa"
    assert guess_language("سرحد پر کشیدگی ہے") == "ur"
    assert guess_language("Ҷурм ва Хоруғ") == "tg"
    assert guess_language("Пяндж и Хорог") == "ru"
    assert guess_language("Panj river") == "en"
    assert guess_language("12345 !!!") is None


def test_content_hash_ignores_case_width_and_whitespace() -> None:
    assert content_hash("Panj  Bridge", "Closed\nagain") == content_hash(
        "panj bridge", "CLOSED again"
    )
    assert content_hash("ｐａｎｊ", "x") == content_hash("panj", "x")
    assert content_hash("a", "b") != content_hash("a", "c")


def test_html_to_text_keeps_entities_when_told() -> None:
    assert html_to_text("<b>x</b> &amp; y", decode_entities=False) == "x &amp; y"
    assert html_to_text("<p>a</p><p>b</p><style>p{}</style>") == "a b"


def test_fifty_thousand_items_are_capped() -> None:
    items = "".join(item(f"T{i}", f"https://news.example/{i}") for i in range(50_000))
    feed = parse(rss(items))
    assert len(feed.articles) == 1000
    assert feed.articles[-1].title == "T999"
    assert feed.warning == "feed has 50000 entries; kept the first 1000"


# --- JSON Feed ---------------------------------------------------------------------------------


def test_json_feed_items(shared_data: Path) -> None:
    feed = parse(
        read(shared_data / "feeds" / "daringfireball-en-jsonfeed-1.0.json"), "application/json"
    )
    assert feed.title == "Daring Fireball" and len(feed.articles) == 48
    first = feed.articles[0]
    assert first.link and first.link.startswith("https://daringfireball.net/")
    assert first.published_at == datetime(2017, 6, 27, 0, 54, 17, tzinfo=UTC)


def test_generated_json_feed_with_html_caps_and_odd_items() -> None:
    document = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "JF\r\nfeed",
        "language": "ru",
        "items": [
            {
                "id": 7,
                "url": "/a?utm_medium=x",
                "title": "Хорог",
                "content_html": "<p>Текст <i>здесь</i></p>",
                "date_published": "2026-11-18T10:00:00+05:00",
            },
            {
                "id": "b",
                "external_url": "javascript:x",
                "content_text": "plain",
                "date_modified": "3000-01-01T00:00:00Z",
            },
            "not an object",
        ]
        + [{"id": str(i), "title": f"t{i}"} for i in range(5)],
    }
    feed = parse(json.dumps(document).encode(), "application/feed+json", max_entries=3)
    assert feed.title == "JF feed"
    assert (
        feed.warning
        == "1 items are not JSON objects; skipped; feed has 7 entries; kept the first 3"
    )
    first, second, third = feed.articles
    assert (first.guid, first.link, first.canonical_url) == (
        "7",
        "https://news.example/a?utm_medium=x",
        "https://news.example/a",
    )
    assert (first.text, first.language) == ("Текст здесь", "ru")
    assert first.published_at == datetime(2026, 11, 18, 5, tzinfo=UTC)
    assert (second.link, second.text, second.published_at) == (None, "plain", NOW)
    assert third.title == "t0"


# --- URLs --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "HTTPS://News.Example:443/a?utm_source=x&id=1&fbclid=y#frag",
            "https://news.example/a?id=1",
        ),
        ("http://news.example:8080?gclid=1", "http://news.example:8080/"),
        ("https://news.example/a?b=1&UTM_Campaign=z&msclkid=q&c", "https://news.example/a?b=1&c"),
        ("https://news.example/Path%20X?q=a+b", "https://news.example/Path%20X?q=a+b"),
        ("mailto:x@example.org#a", "mailto:x@example.org"),
        ("http://[::1]:80/x", "http://[::1]/x"),
    ],
)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


def test_redact_url_hides_credentials() -> None:
    assert (
        redact_url("https://user:pw@hooks.example/x?token=abc&page=2")
        == "https://***@hooks.example/x?token=***&page=2"
    )


def test_xml_feed_mislabelled_as_json_is_read_as_xml() -> None:
    assert parse(rss(item("Hello")), "application/json").articles[0].title == "Hello"


def test_json_feed_odd_values_fall_back() -> None:
    document = {
        "version": "https://jsonfeed.org/version/1",
        "title": "<b>Site</b>",
        "items": [{"id": "x", "title": "t", "date_published": "9999-12-31T23:59:59-05:00"}],
    }
    feed = parse(json.dumps(document).encode(), "application/json")
    assert feed.title == "Site"
    assert feed.articles[0].published_at == NOW


def test_html_to_text_stays_linear_on_hostile_markup() -> None:
    """Each of these would take minutes with a backtracking tag pattern."""
    assert html_to_text("<a " * 300_000).startswith("<a <a")
    assert html_to_text('<p title="' * 100_000).startswith('<p title="')
    assert html_to_text("<script" * 100_000) == ""


@pytest.mark.parametrize("codec", ["rot13", "base64", "zlib", "hex", "no-such-codec", "utf-7"])
def test_hostile_charset_names_do_not_crash(codec: str) -> None:
    body = rss(item("Hello")).replace(b'encoding="utf-8"', f'encoding="{codec}"'.encode())
    for content_type in (f"application/rss+xml; charset={codec}", "application/rss+xml"):
        try:
            feed = parse(body, content_type)
        except FetchError:
            continue
        assert all(a.title for a in feed.articles)


_FRAGMENTS = [
    b'<?xml version="1.0"?>',
    b"<!DOCTYPE rss [",
    b'<!ENTITY a "x">',
    b"]>",
    b"<!--",
    b"-->",
    b'<rss version="2.0"><channel>',
    b"<item><title>",
    b"</title><link>",
    b"</link></item>",
    b"&a;",
    b"&amp;lt;b&amp;gt;",
    b"<![CDATA[",
    b"]]>",
    b'{"version": "https://jsonfeed.org/version/1", "items": [',
    b"\xff\xfe",
    b"\x00",
    b"\r\n",
    "Ҷурм ва Хоруғ بدخشان".encode(),
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_FRAGMENTS) | st.binary(max_size=20), max_size=30))
def test_parse_fuzz_only_fetch_errors_and_caps_hold(parts: list[bytes]) -> None:
    try:
        feed = parse(b"".join(parts), "application/octet-stream")
    except FetchError:
        return
    for article in feed.articles:
        assert len(article.title) <= 1000 and len(article.text) <= 100_000
        assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", article.title + article.text)
        assert article.published_at <= NOW and article.guid
        assert article.link is None or article.link.startswith(("http://", "https://"))
