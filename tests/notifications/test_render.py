"""Tests for notifications/render.py: escaping (H7), no template expansion (R8), the email message,
header injection (H8, property), Slack and JSON payloads."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifications.digest import DigestView, build_digest
from notifications.render import MAIL_POLICY, Renderer, environment, message_id, slack_escape
from storage.outbox import AlertEntry, ArticleCopy, DigestData, DigestHeader

T0 = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
HEADERS = {
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Auto-Submitted",
    "MIME-Version",
    "Content-Type",
}
HOSTILE_TITLE = (
    "Feed <script>alert(1)</script> <img src=x onerror=alert(2)> {{ 7*7 }} {% for x in y %}"
)
HOSTILE_TEXT = (
    "\"><svg onload=alert(3)> <iframe src=//evil> <form action=//evil> {{ ''.__class__ }} "
    "$NEWSWATCH_SMTP_PASSWORD ${HOME} <!channel> a & b"
)


def view_of(
    title: str = HOSTILE_TITLE,
    text: str = HOSTILE_TEXT,
    *,
    link: str | None = "javascript:alert(1)",
    feed: str = 'Feed <b onclick="x">',
    rule_title: str = "Rule {{ 7*7 }} $NEWSWATCH_SMTP_PASSWORD",
    place: str | None = "af-badakhshan-jurm",
    copies: tuple[ArticleCopy, ...] = (),
) -> DigestView:
    hits: tuple[dict[str, Any], ...] = ()
    if title:
        hits = (
            {
                "selection": "s",
                "term": "t",
                "place": place,
                "start": 0,
                "end": min(4, len(title)),
                "text": title[:4],
            },
        )
    alert = AlertEntry(
        alert_id=1,
        rule_id="panj-crossings",
        rule_title=rule_title,
        level="high",
        article_id=1,
        story_id=1,
        feed=feed,
        title=title,
        text=text,
        link=link,
        language="ru",
        published_at=T0,
        hits=hits,
        copies=copies,
    )
    header = DigestHeader(
        "0123456789abcdef0123", "panj-crossings", rule_title, "high", "mail", "p", 1, T0
    )
    return build_digest(DigestData(header, (alert,)), now=T0)


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.hrefs: list[str] = []
        self.attrs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [name for name, _ in attrs]
        self.hrefs += [value or "" for name, value in attrs if name == "href"]


def test_html_escapes_feed_text_and_links_only_http() -> None:
    """RELIABILITY H7."""
    copies = (ArticleCopy(1, "a", "javascript:x"), ArticleCopy(2, "b <i>", "https://example.org/b"))
    html = Renderer().html(view_of(copies=copies))
    parser = Tags()
    parser.feed(html)
    assert not {"script", "img", "svg", "iframe", "form", "b", "i", "link", "style"} & set(
        parser.tags
    )
    assert not [a for a in parser.attrs if a.startswith("on")]
    assert parser.hrefs == ["https://example.org/b"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "javascript:" not in html


def test_no_template_expansion_of_feed_or_rule_text() -> None:
    """RELIABILITY R8: `{{ 7*7 }}` stays `{{ 7*7 }}`; no environment variables expanded."""
    view = view_of()
    renderer = Renderer()
    for out in (renderer.text(view), renderer.html(view)):
        assert "{{ 7*7 }}" in out and "49" not in out
        assert "{% for x in y %}" in out
        assert "$NEWSWATCH_SMTP_PASSWORD" in out and "${HOME}" in out
        assert "__class__" in out and "<class" not in out


def test_text_part_is_literal() -> None:
    text = Renderer().text(view_of())
    assert "<script>alert(1)</script>" in text
    assert "&lt;" not in text
    assert "javascript:" not in text


def test_one_environment_autoescapes_html_only() -> None:
    env = environment()
    assert env is environment() and env is Renderer().env
    assert env.autoescape("digest.html") is True  # type: ignore[operator]
    assert env.autoescape("digest.txt") is False  # type: ignore[operator]


def test_email_is_multipart_alternative_with_honest_headers() -> None:
    msg = Renderer(tz=ZoneInfo("Asia/Dushanbe")).email(
        view_of(),
        from_addr="newswatch <newswatch@example.org>",
        to=["a@example.org", "b@example.org"],
    )
    parsed = email.message_from_bytes(
        msg.as_bytes(policy=email.policy.SMTP), policy=email.policy.default
    )
    assert set(parsed.keys()) == HEADERS
    assert parsed["Message-ID"] == "<0123456789abcdef0123@example.org>"
    assert parsed["To"] == "a@example.org, b@example.org"
    assert parsed["Date"] == "Tue, 10 Mar 2026 08:00:00 +0000"
    assert parsed.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in parsed.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    html = parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "max-width:600px" in html and "<style" not in html and "<img" not in html
    assert "2026-03-10 13:00 +05" in html
    assert all(
        p["Content-Transfer-Encoding"] in ("quoted-printable", "base64", "7bit")
        for p in parsed.iter_parts()
    )


def test_message_id_uses_the_from_domain() -> None:
    assert message_id("abc", "newswatch@example.org") == "<abc@example.org>"
    assert message_id("abc", "Name <x@mail.example.org>") == "<abc@mail.example.org>"
    assert message_id("abc", "no-domain") == "<abc@localhost>"
    assert message_id("abc", "x@ev il>\r\n") == "<abc@evil>"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=st.text(max_size=300), rule_title=st.text(max_size=50), place=st.text(max_size=30))
def test_any_title_gives_exactly_the_expected_headers(
    title: str, rule_title: str, place: str
) -> None:
    """RELIABILITY H8 property: header names never depend on feed or rule text."""
    view = view_of(title=title, text="", rule_title=rule_title, place=place or None)
    msg = Renderer().email(view, from_addr="newswatch@example.org", to=["analyst@example.org"])
    raw = msg.as_bytes(policy=email.policy.SMTP)
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert set(parsed.keys()) == HEADERS
    subject = str(parsed["Subject"])
    assert "\n" not in subject and "\r" not in subject
    assert len(subject) <= 200


def test_hostile_subjects_cannot_add_headers() -> None:
    for title in (
        "\r\nBcc: x@evil",
        "x\nBcc: x@evil",
        "\x00",
        "=?UTF-8?Q?=0A?=Bcc: x@evil",
        "t\n",
        "J" * 5000,
    ):
        msg = Renderer().email(
            view_of(title=title, place="Jurm"), from_addr="n@example.org", to=["a@example.org"]
        )
        parsed = email.message_from_bytes(
            msg.as_bytes(policy=email.policy.SMTP), policy=email.policy.default
        )
        assert set(parsed.keys()) == HEADERS
        assert "Bcc" not in parsed
        assert len(str(parsed["Subject"])) <= 200


def test_mail_policy_keeps_bodies_7bit() -> None:
    assert MAIL_POLICY.cte_type == "7bit" and MAIL_POLICY.linesep == "\r\n"


def test_slack_payload_escapes_feed_text() -> None:
    payload = Renderer().slack_payload(view_of(link="https://example.org/a?x=1&y=<2>|z"))
    blob = str(payload)
    assert "<!channel>" not in blob and "&lt;!channel&gt;" in blob
    assert "<script>" not in blob and "&lt;script&gt;" in blob
    assert payload["text"].startswith("[newswatch] 1 high")
    entry_text = payload["blocks"][2]["text"]["text"]
    assert entry_text.startswith("<https://example.org/a?x=1&amp;y=&lt;2&gt;%7Cz|")
    assert "a &amp; b" in entry_text


def test_slack_payload_stays_within_block_limits() -> None:
    alerts = tuple(
        AlertEntry(
            n,
            "r",
            "R",
            "low",
            n,
            n,
            "f",
            f"title {n}",
            "body",
            "https://example.org/",
            "en",
            T0,
            (),
            (),
        )
        for n in range(1, 80)
    )
    header = DigestHeader("ab", "r", "R", "low", "chat", "p", len(alerts), T0)
    payload = Renderer().slack_payload(build_digest(DigestData(header, alerts), now=T0))
    assert len(payload["blocks"]) <= 50
    assert payload["blocks"][-1]["text"]["text"].startswith("… and ")


def test_json_payload() -> None:
    body = Renderer(tz=ZoneInfo("Asia/Dushanbe")).json_payload(
        view_of(link="https://example.org/a")
    )
    assert body["type"] == "newswatch.digest"
    assert body["timestamp"] == "2026-03-10T08:00:00Z"
    data = body["data"]
    assert (data["id"], data["alert_count"], data["entry_count"]) == ("0123456789abcdef0123", 1, 1)
    [rule] = data["rules"]
    [place] = rule["places"]
    [entry] = place["entries"]
    assert place["place"] == "Jurm"
    assert entry["link"] == "https://example.org/a"
    assert entry["published_local"] == "2026-03-10 13:00 +05"
    assert entry["title"].startswith("Feed <script>")  # JSON carries text; receivers escape


def test_slack_escape() -> None:
    assert slack_escape("<@U123> & <!here>") == "&lt;@U123&gt; &amp; &lt;!here&gt;"
