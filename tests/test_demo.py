"""`newswatch demo`: offline, one real digest with matches in four languages, never twice."""

from __future__ import annotations

import email
from pathlib import Path

import pytest

from pipeline.cli import main

REPO = Path(__file__).resolve().parents[1]


def _text_and_html(path: Path) -> tuple[str, str]:
    msg = email.message_from_bytes(path.read_bytes())
    assert msg.get_content_type() == "multipart/alternative"
    parts = {
        part.get_content_type(): part.get_payload(decode=True).decode(
            part.get_content_charset() or "utf-8"
        )
        for part in msg.walk()
        if part.get_content_maintype() == "text"
    }
    return parts["text/plain"], parts["text/html"]


def test_demo_writes_a_digest_with_all_four_languages_then_nothing_new(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        (REPO / "config.toml")
        .read_text(encoding="utf-8")
        .replace('rules_dir = "rules"', f'rules_dir = "{REPO / "rules"}"'),
        encoding="utf-8",
    )
    assert main(["demo", "--config", str(config)]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.endswith(".eml")]
    assert printed, "the demo prints the path of the digest it wrote"
    texts = [_text_and_html(Path(p)) for p in printed]
    all_text = "\n".join(t for t, _ in texts)
    for feed in ("sample-en", "sample-ru", "sample-tg", "sample-fa"):
        assert feed in all_text, f"no matched article from {feed}"
    assert all("<mark" in html and 'href="https://' in html for _, html in texts)

    assert main(["demo", "--config", str(config)]) == 0
    again = capsys.readouterr().out
    assert "no new digest" in again
    assert not [line for line in again.splitlines() if line.endswith(".eml")]
