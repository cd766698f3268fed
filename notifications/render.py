"""Rendering digests: the one Jinja2 Environment, the email message, the webhook payloads.

Feed and rule text only ever reach a template as variables, so `{{ 7*7 }}` in a title shows as
written; HTML templates are autoescaped and `.txt` ones are not (select_autoescape(["html"])).
"""

from __future__ import annotations

import email.policy
import functools
import re
from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from notifications.digest import DigestView, Entry, Segment, clean_header_text
from storage.outbox import iso

SLACK_MAX_BLOCKS = 50
SLACK_MAX_TEXT = 2900  # a section's text may hold 3000 characters
_DOMAIN_JUNK = re.compile(r"[^A-Za-z0-9.-]")
UTC_ZONE = ZoneInfo("UTC")
# 7-bit bodies (quoted-printable or base64, whichever is shorter): safe through any relay.
MAIL_POLICY = email.policy.SMTP.clone(cte_type="7bit")


@functools.cache
def environment() -> Environment:
    """The one Environment of newswatch: templates from notifications/templates."""
    return Environment(
        loader=PackageLoader("notifications", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def message_id(digest_id: str, from_addr: str) -> str:
    """`<digest-id@from-domain>`: the same on every attempt, so receivers can deduplicate."""
    address = parseaddr(from_addr)[1]
    domain = address.rpartition("@")[2] if "@" in address else ""
    domain = _DOMAIN_JUNK.sub("", domain).strip(".") or "localhost"
    return f"<{digest_id}@{domain}>"


def check_address(value: str, what: str) -> str:
    """A configured address, refused if it holds characters that could break a header.

    Raises:
        ValueError: the address contains control characters or no address.
    """
    if any(ord(c) < 32 or ord(c) == 127 for c in value) or not parseaddr(value)[1]:
        raise ValueError(f"{what} {value!r} is not a valid email address")
    return value


class Renderer:
    """Renders one digest as text, HTML, an email message or a webhook payload.

    `tz` is the configured timezone that entry times are shown in.
    """

    def __init__(self, *, tz: ZoneInfo = UTC_ZONE) -> None:
        self.tz = tz
        self.env = environment()

    def local_time(self, when: datetime) -> str:
        return when.astimezone(self.tz).strftime("%Y-%m-%d %H:%M %Z")

    def _context(self, view: DigestView) -> dict[str, Any]:
        return {"view": view, "when": self.local_time, "tz_name": self.tz.key}

    def text(self, view: DigestView) -> str:
        return self.env.get_template("digest.txt").render(self._context(view))

    def html(self, view: DigestView) -> str:
        return self.env.get_template("digest.html").render(self._context(view))

    def email(self, view: DigestView, *, from_addr: str, to: Sequence[str]) -> EmailMessage:
        """The multipart/alternative message: honest From/To, Date, Message-ID from the id."""
        msg = EmailMessage(policy=MAIL_POLICY)
        msg["From"] = from_addr
        msg["To"] = ", ".join(to)
        msg["Subject"] = clean_header_text(view.subject)
        msg["Date"] = format_datetime(view.attempted_at)
        msg["Message-ID"] = message_id(view.id, from_addr)
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to a digest
        msg.set_content(self.text(view))
        msg.add_alternative(self.html(view), subtype="html")
        return msg

    def json_payload(self, view: DigestView) -> dict[str, Any]:
        """The Standard Webhooks body: {type, timestamp, data}."""
        return {
            "type": "newswatch.digest",
            "timestamp": iso(view.attempted_at),
            "data": {
                "id": view.id,
                "notifier": view.notifier,
                "subject": view.subject,
                "level": view.level,
                "alert_count": view.alert_count,
                "entry_count": view.entry_count,
                "created_at": iso(view.created_at),
                "rules": [
                    {
                        "id": rule.rule_id,
                        "title": rule.title,
                        "level": rule.level,
                        "places": [
                            {"place": g.place, "entries": [self._entry_json(e) for e in g.entries]}
                            for g in rule.places
                        ],
                    }
                    for rule in view.rules
                ],
            },
        }

    def _entry_json(self, entry: Entry) -> dict[str, Any]:
        return {
            "title": entry.plain_title,
            "snippet": "".join(s.text for s in entry.snippet),
            "feed": entry.feed,
            "link": entry.link,
            "published_at": iso(entry.published_at),
            "published_local": self.local_time(entry.published_at),
            "language": entry.language,
            "places": list(entry.places),
            "terms": list(entry.terms),
            "also_reported_by": [{"feed": s.feed, "link": s.link} for s in entry.also_reported_by],
        }

    def slack_payload(self, view: DigestView) -> dict[str, Any]:
        """A Slack-compatible body: `text` plus `blocks`, feed text escaped (& < >)."""
        blocks: list[dict[str, Any]] = [_section(f"*{slack_escape(view.subject)}*")]
        entries = [
            (rule, group, e) for rule in view.rules for group in rule.places for e in group.entries
        ]
        shown = 0
        last_place = None
        for _rule, group, entry in entries:
            if len(blocks) >= SLACK_MAX_BLOCKS - 2:
                break
            if group.place != last_place:
                blocks.append(_section(f"*{slack_escape(group.place)}*"))
                last_place = group.place
            blocks.append(_section(self._slack_entry(entry)))
            shown += 1
        if shown < len(entries):
            more = len(entries) - shown
            blocks.append(_section(f"… and {more} more in digest {view.id}"))
        return {"text": slack_escape(view.subject), "blocks": blocks}

    def _slack_entry(self, entry: Entry) -> str:
        title = slack_escape(entry.plain_title) or "(no title)"
        head = f"<{slack_link(entry.link)}|{title}>" if entry.link else f"*{title}*"
        meta = f"{slack_escape(entry.feed)} · {self.local_time(entry.published_at)}"
        lines = [head, meta]
        if entry.snippet:
            lines.append("> " + _slack_marked(entry.snippet))
        if entry.also_reported_by:
            feeds = ", ".join(slack_escape(s.feed) for s in entry.also_reported_by)
            lines.append(f"_also reported by {feeds}_")
        return "\n".join(lines)[:SLACK_MAX_TEXT]


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:SLACK_MAX_TEXT]}}


def _slack_marked(segments: Sequence[Segment]) -> str:
    return "".join(
        f"*{slack_escape(s.text.strip())}*" if s.hit and s.text.strip() else slack_escape(s.text)
        for s in segments
    )


def slack_escape(text: str) -> str:
    """Slack's three escapes, so feed text cannot write `<!channel>` or a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_link(url: str) -> str:
    """A URL inside `<url|text>`: escaped, and `|` encoded so it cannot end the URL."""
    return slack_escape(url).replace("|", "%7C")
