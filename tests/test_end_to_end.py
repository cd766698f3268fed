"""The whole pipeline through the CLI: loopback feeds → run --once → .eml files in the outbox."""

from __future__ import annotations

import email
import json
import os
import subprocess
import sys
from email.message import Message
from pathlib import Path

import pytest

from pipeline.cli import main
from tests.loopback import FeedServer, Route, feed_server

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "pipeline" / "samples"
BROKEN_XML = b"<?xml version='1.0'?><rss><channel><title>Broken</title><item><title>oops</chan"


def _routes() -> dict[str, Route]:
    routes = {
        f"/{p.name}": Route(
            p.read_bytes(),
            content_type="application/atom+xml" if p.suffix == ".atom" else "application/rss+xml",
        )
        for p in sorted(SAMPLES.iterdir())
        if p.suffix in (".rss", ".atom")
    }
    routes["/broken.xml"] = Route(BROKEN_XML)
    routes["/not-a-feed.html"] = Route(
        b"<!doctype html><html><body><p>Service page</p></body></html>", content_type="text/html"
    )
    return routes


def _config(tmp_path: Path, server: FeedServer, *, rules_dir: Path = REPO / "rules") -> Path:
    feeds = "".join(
        f'[[feeds]]\nname = "{path.strip("/").rsplit(".", 1)[0]}"\nurl = "{server.url(path)}"\n'
        f'tags = ["sample"]\n\n'
        for path in server.routes
    )
    config = tmp_path / "config.toml"
    config.write_text(
        f'rules_dir = "{rules_dir}"\noutbox_dir = "outbox"\n'
        f'[database]\nurl = "sqlite:///newswatch.db"\n[fetch]\ntimeout = "10s"\n\n{feeds}'
        '[notifiers.outbox]\ntype = "outbox"\nto = ["analyst@example.org"]\n'
        'from = "newswatch@example.org"\n',
        encoding="utf-8",
    )
    return config


def _status(config: Path, capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    capsys.readouterr()
    assert main(["status", "--json", "--config", str(config)]) == 0
    return json.loads(capsys.readouterr().out)


def _parts(path: Path) -> tuple[Message, str, str]:
    msg = email.message_from_bytes(path.read_bytes())
    assert msg.get_content_type() == "multipart/alternative"
    text = html = ""
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            text = part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
        elif part.get_content_type() == "text/html":
            html = part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
    assert text and html
    return msg, text, html


def test_run_once_delivers_digests_reports_broken_feeds_and_never_repeats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with feed_server(_routes()) as server:
        config = _config(tmp_path, server)
        assert main(["run", "--once", "--config", str(config)]) == 0
        first = sorted((tmp_path / "outbox").glob("*.eml"))
        assert first, "the first cycle must write at least one digest"
        for path in first:
            _msg, text, html = _parts(path)
            assert "https://" in text and "href=" in html and "<mark" in html

        status = _status(config, capsys)
        feeds = {f["name"]: f for f in status["feeds"]}
        # Invalid XML: what feedparser could read, plus a warning; an HTML page: a failing feed.
        assert feeds["broken"]["health"] == "warning" and feeds["broken"]["last_warning"]
        assert feeds["not-a-feed"]["health"] == "failing"
        assert feeds["not-a-feed"]["error_count"] == 1
        assert feeds["not-a-feed"]["last_error"].startswith("not a feed")
        others = [f for name, f in feeds.items() if name not in ("broken", "not-a-feed")]
        assert all(
            f["last_status"] == 200 and f["articles"] > 0 and not f["last_error"] for f in others
        )
        assert status["digests"]["counts"]["sent"] == len(first)

        # Second cycle: all feeds due again (refresh); the server answers 304; nothing is sent.
        assert main(["feeds", "refresh", "--config", str(config)]) == 0
        assert main(["run", "--once", "--config", str(config)]) == 0
        assert sorted((tmp_path / "outbox").glob("*.eml")) == first
        assert all(
            server.not_modified[path] == 1 for path in server.routes if path.startswith("/sample")
        )
        status = _status(config, capsys)
        assert {f["name"]: f["last_status"] for f in status["feeds"]}["sample-en"] == 304


def test_a_broken_rule_file_is_reported_and_the_good_rules_still_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules"
    (rules / "places").mkdir(parents=True)
    for path in (REPO / "rules" / "places").glob("*.yaml"):
        (rules / "places" / path.name).write_bytes(path.read_bytes())
    (rules / "border-security.yaml").write_bytes(
        (REPO / "rules" / "border-security.yaml").read_bytes()
    )
    (rules / "bad-yaml.yaml").write_text("id: bad\ntitle: [unclosed\n", encoding="utf-8")
    (rules / "bad-key.yaml").write_text(
        "id: bad-key\ntitle: T\nlevel: high\nnotfy: [outbox]\ndigest: immediate\nfeeds: ['*']\n"
        "detection:\n  a:\n    terms: [attack]\n  condition: a\n",
        encoding="utf-8",
    )
    (rules / "bad-condition.yaml").write_text(
        "id: bad-condition\ntitle: T\nlevel: high\nnotify: [outbox]\ndigest: immediate\n"
        "feeds: ['*']\ndetection:\n  violence:\n    terms: [attack]\n  condition: violnce\n",
        encoding="utf-8",
    )
    with feed_server(_routes()) as server:
        config = _config(tmp_path, server, rules_dir=rules)
        capsys.readouterr()
        assert main(["rules", "check", "--config", str(config)]) == 1
        errors = capsys.readouterr().err
        assert "rules/bad-yaml.yaml:2:8: this [ is not closed" in errors
        assert "rules/bad-key.yaml:4:1: unknown key 'notfy' (did you mean 'notify'?)" in errors
        assert "rules/bad-condition.yaml:10:14:" in errors and "did you mean 'violence'?" in errors
        assert main(["run", "--once", "--config", str(config)]) == 0
        digests = sorted((tmp_path / "outbox").glob("*.eml"))
        assert digests
        assert all("border-security" in _parts(p)[1] for p in digests)


def test_the_console_script_runs_once_in_a_real_process(tmp_path: Path) -> None:
    with feed_server(_routes()) as server:
        config = _config(tmp_path, server)
        env = {**os.environ, "NEWSWATCH_CONFIG": str(config), "PYTHONPATH": str(REPO)}
        done = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "run", "--once"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert "new articles:" in done.stdout
    assert list((tmp_path / "outbox").glob("*.eml"))


def test_rules_check_passes_on_the_shipped_rules_and_places(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["rules", "check", "--config", str(REPO / "config.toml")]) == 0
    summary = capsys.readouterr().out.splitlines()[-1]
    assert summary.startswith("5 rules, ") and ", 0 errors, " in summary


def test_digest_verbs_report_what_they_did(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with feed_server(_routes()) as server:
        config = _config(tmp_path, server)
        assert main(["run", "--once", "--config", str(config)]) == 0
    sent = _status(config, capsys)["digests"]["digests"]
    assert sent and all(d["state"] == "sent" for d in sent)
    assert main(["digest", "preview", "border-security", "--config", str(config)]) == 0
    assert "nothing waits for border-security" in capsys.readouterr().out
    assert main(["digest", "retry", "--config", str(config)]) == 1
    assert "say which digest to retry" in capsys.readouterr().err
    assert main(["digest", "retry", "--all", "--config", str(config)]) == 0
    assert capsys.readouterr().out.startswith("0 digests due now")
    assert main(["digest", "resend", "no-such-digest", "--config", str(config)]) == 1
    assert "no-such-digest" in capsys.readouterr().err
