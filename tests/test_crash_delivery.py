"""kill -9 at each step of the pipeline and of a delivery, then restart (RELIABILITY D3, D4, O1).

A real `python -m pipeline.cli run --once` fetches the bundled sample feeds from a loopback
server and SIGKILLs itself at one step (the test hook of pipeline/assemble.py:
NEWSWATCH_TEST_HOOKS=1 NEWSWATCH_TEST_KILL_AT=<step>); `run --once` then runs again. Whatever
the step: every (article, rule version) is matched once and alerted once, every digest reaches a
real aiosmtpd sink (or the outbox folder) exactly once, except a digest the server may have
accepted before the crash: that one is `uncertain` in `status --json` and never sent again.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from pipeline.cli import main
from tests.loopback import FeedServer, Route, feed_server

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "pipeline" / "samples"
IMMEDIATE_RULES = ("border-security", "crossings-status")  # the default rules sent at once


# ---------------------------------------------------------------------------------------------
# parts: the feeds, the SMTP sink, a configured folder, the killed run and the restart


@pytest.fixture(scope="module")
def feeds() -> Iterator[FeedServer]:
    routes = {
        f"/{p.name}": Route(
            p.read_bytes(),
            content_type="application/atom+xml" if p.suffix == ".atom" else "application/rss+xml",
        )
        for p in sorted(SAMPLES.iterdir())
        if p.suffix in (".rss", ".atom")
    }
    with feed_server(routes) as server:
        yield server


@dataclass
class Sink:
    """Every message the SMTP server accepted (250 after DATA)."""

    messages: list[bytes] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.original_content)
        return "250 OK"

    def copies(self) -> Counter[str]:
        """Accepted messages per digest id (the Message-ID is `<digest-id@domain>`)."""
        ids = [email.message_from_bytes(m)["Message-ID"] for m in self.messages]
        return Counter(i.strip("<>").split("@")[0] for i in ids)


@pytest.fixture
def smtp() -> Iterator[tuple[Sink, int]]:
    with socket.socket() as sock:  # aiosmtpd cannot take port 0 (aio-libs/aiosmtpd#388)
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink, port
    controller.stop()


def configure(folder: Path, feeds: FeedServer, notifier: str, rules: Path = REPO / "rules") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    listed = "".join(
        f'[[feeds]]\nname = "{path.strip("/").rsplit(".", 1)[0]}"\nurl = "{feeds.url(path)}"\n\n'
        for path in feeds.routes
    )
    config = folder / "config.toml"
    config.write_text(
        f'timezone = "Asia/Dushanbe"\nrules_dir = "{rules}"\noutbox_dir = "outbox"\n'
        f'[database]\nurl = "sqlite:///newswatch.db"\n[fetch]\ntimeout = "10s"\n\n'
        f"{listed}{notifier}",
        encoding="utf-8",
    )
    return config


OUTBOX = '[notifiers.outbox]\ntype = "outbox"\nto = ["analyst@example.org"]\n'


def mail_notifier(port: int) -> str:
    return (
        '[notifiers.mail]\ntype = "email"\nto = ["analyst@example.org"]\n'
        f'from = "newswatch@example.org"\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}\n'
        'security = "none"\n'
    )


def mail_rules(folder: Path) -> Path:
    """The default rules and places, notifying `mail` instead of `outbox`."""
    rules = folder / "rules"
    (rules / "places").mkdir(parents=True)
    for path in (REPO / "rules" / "places").glob("*.yaml"):
        (rules / "places" / path.name).write_bytes(path.read_bytes())
    for path in (REPO / "rules").glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        assert "notify: [outbox]" in text, path
        (rules / path.name).write_text(text.replace("[outbox]", "[mail]"), encoding="utf-8")
    return rules


def killed_run(config: Path, step: str) -> None:
    """`run --once` in a real process that SIGKILLs itself at `step`."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "NEWSWATCH_TEST_HOOKS": "1",
        "NEWSWATCH_TEST_KILL_AT": step,
    }
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", "--once", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        cwd=config.parent,
        timeout=120,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stdout, done.stderr)
    assert f"test hook: SIGKILL at {step}\n" in done.stderr


def run_once(config: Path) -> None:
    """The restart: `run --once` again, with no test hook."""
    assert main(["run", "--once", "--config", str(config)]) == 0


def status(config: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["status", "--json", "--config", str(config)]) == 0
    found: dict[str, Any] = json.loads(capsys.readouterr().out)
    return found


def digests_of(config: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, Any]]:
    return {d["id"]: d for d in status(config, capsys)["digests"]["digests"]}


def rows(config: Path, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(config.parent / "newswatch.db") as db:
        return sorted(db.execute(query).fetchall())


MATCHES = """SELECT f.name, a.guid, m.rule_id, m.rule_version FROM matches m
JOIN articles a ON a.id = m.article_id JOIN feeds f ON f.id = a.feed_id"""
ALERTS = """SELECT f.name, a.guid, al.rule_id, al.rule_version, al.notifier FROM alerts al
JOIN articles a ON a.id = al.article_id JOIN feeds f ON f.id = a.feed_id"""
SENT = f"""SELECT rule_id, notifier, alert_count, state FROM digests
WHERE rule_id IN {IMMEDIATE_RULES!r}"""


# ---------------------------------------------------------------------------------------------
# SMTP (RELIABILITY D4; S4's outcome)

# step → copies the server holds of the digest the process was sending when it died
SMTP_STEPS = {
    "closed": None,  # digests created and committed, nothing claimed: all sent after restart
    "sending": None,  # `sending` committed, server not reached: sent again, once
    "handover": 0,  # hand-over committed, final `.` never sent: uncertain (at most once)
    "accepted": 1,  # server said 250, `sent` not committed: uncertain, one copy (D4)
    "sent": None,  # `sent` committed: nothing to redo
}


@pytest.mark.parametrize("step", SMTP_STEPS)
def test_smtp_delivery_killed_at_each_step_delivers_once_or_says_uncertain(
    step: str,
    tmp_path: Path,
    feeds: FeedServer,
    smtp: tuple[Sink, int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    sink, port = smtp
    config = configure(tmp_path / "run", feeds, mail_notifier(port), mail_rules(tmp_path))
    killed_run(config, step)
    before = Counter(sink.copies())
    run_once(config)
    run_once(config)  # and again: nothing is ever sent twice
    digests = digests_of(config, capsys)
    copies = sink.copies()

    immediate = {i: d for i, d in digests.items() if d["rule"] in IMMEDIATE_RULES}
    assert len(immediate) == len(IMMEDIATE_RULES)
    assert set(copies) <= set(digests), "the sink holds only digests newswatch knows"
    uncertain = {i: d for i, d in digests.items() if d["state"] == "uncertain"}
    expected = SMTP_STEPS[step]
    if expected is None:
        assert uncertain == {}
    else:
        [(digest_id, digest)] = uncertain.items()
        assert copies[digest_id] == before[digest_id] == expected
        assert digest["last_error"].startswith("may have been delivered at ")
        assert f"not resent; run `newswatch digest resend {digest_id}`" in digest["last_error"]
    for digest_id, digest in digests.items():
        if digest_id not in uncertain:
            assert (digest["state"], copies[digest_id]) == ("sent", 1), digest
    assert sum(copies.values()) == len(sink.messages)


# ---------------------------------------------------------------------------------------------
# the outbox folder (RELIABILITY O1)


def eml_files(config: Path) -> list[Path]:
    return sorted((config.parent / "outbox").glob("*.eml"))


def assert_complete(path: Path) -> None:
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert msg.get_content_type() == "multipart/alternative"
    html = msg.get_body(preferencelist=("html",))
    assert html is not None and html.get_content().rstrip().endswith("</html>")


def test_outbox_killed_mid_write_leaves_no_partial_file_and_writes_it_once(
    tmp_path: Path, feeds: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    config = configure(tmp_path, feeds, OUTBOX)
    killed_run(config, "outbox-write")
    assert eml_files(config) == [], "no .eml is visible before it is complete"
    [partial] = (tmp_path / "outbox" / "tmp").iterdir()
    partial_size = partial.stat().st_size
    run_once(config)
    files = eml_files(config)
    digests = digests_of(config, capsys)
    sent = {i for i, d in digests.items() if d["state"] == "sent"}
    assert {p.name for p in files} == {f"digest-{i}.eml" for i in sent}
    assert len(sent) == len(IMMEDIATE_RULES) and len(digests) == len(sent)
    for path in files:
        assert_complete(path)
    [rewritten] = [p for p in files if p.stem == partial.stem.split(".")[0]]
    assert 0 < partial_size < rewritten.stat().st_size
    assert list((tmp_path / "outbox" / "tmp").iterdir()) == [], "the partial file is cleared"


def test_outbox_killed_after_the_rename_reconciles_the_file_without_writing_it_again(
    tmp_path: Path, feeds: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    config = configure(tmp_path, feeds, OUTBOX)
    killed_run(config, "accepted")
    [written] = eml_files(config)
    first = written.stat()
    run_once(config)
    again = written.stat()
    assert (again.st_ino, again.st_mtime_ns, again.st_size) == (
        first.st_ino,
        first.st_mtime_ns,
        first.st_size,
    )
    digests = digests_of(config, capsys)
    assert {d["state"] for d in digests.values()} == {"sent"}
    assert len(eml_files(config)) == len(digests) == len(IMMEDIATE_RULES)


# ---------------------------------------------------------------------------------------------
# the pipeline's stages (RELIABILITY D3)


@pytest.fixture(scope="module")
def reference(feeds: FeedServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Matches, alerts and immediate digests of one uninterrupted run."""
    config = configure(tmp_path_factory.mktemp("reference"), feeds, OUTBOX)
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("NEWSWATCH_")]:
            patch.delenv(name)
        run_once(config)
    return {
        "matches": rows(config, MATCHES),
        "alerts": rows(config, ALERTS),
        "digests": rows(config, SENT),
        "files": len(eml_files(config)),
    }


@pytest.mark.parametrize("step", ["fetched", "stored", "closed", "sending"])
def test_killed_at_each_stage_every_article_is_matched_and_alerted_exactly_once(
    step: str, tmp_path: Path, feeds: FeedServer, reference: dict[str, Any]
) -> None:
    """fetched: nothing stored yet; stored: one feed's articles, matches and alerts committed
    (one transaction), the other feeds still leased; closed: digests created, none sent;
    sending: the first digest claimed. Killing between store, match and queue is killing
    before that one commit."""
    assert reference["matches"] and reference["alerts"]
    config = configure(tmp_path, feeds, OUTBOX)
    killed_run(config, step)
    run_once(config)
    assert rows(config, MATCHES) == reference["matches"]
    assert rows(config, ALERTS) == reference["alerts"]
    assert rows(config, SENT) == reference["digests"]
    assert len(eml_files(config)) == reference["files"] == len(IMMEDIATE_RULES)
    assert list((tmp_path / "outbox" / "tmp").iterdir()) == []
