"""Tests for notifications/email.py through deliver_due: a real aiosmtpd server on loopback
(RELIABILITY S1–S5, H8, D4) and the outbox folder (O1–O3)."""

from __future__ import annotations

import email
import email.policy
import json
import logging
import os
import random
import ssl
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from notifications.delivery import DeliveryOutcome, Notifier, deliver_due
from notifications.email import OutboxNotifier, SmtpNotifier, SmtpTimeouts
from pipeline.schedules import close_due_digests
from storage import outbox

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 10, 8, 0, tzinfo=ZoneInfo("UTC"))  # the world fixture's default time
World = Any  # the `world` fixture (tests/notifications/conftest.py)
SmtpServer = Any  # what the `smtp` fixture returns
UTC_ZONE = ZoneInfo("UTC")
PLACES = {"Jurm": "af-badakhshan-jurm"}
EXPECTED_HEADERS = {
    "From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted", "MIME-Version", "Content-Type",
}  # fmt: skip
FAST = SmtpTimeouts(connect=5, command=5, data_done=5)


def mailer(port: int, **kwargs: Any) -> SmtpNotifier:
    kwargs.setdefault("security", "none")
    kwargs.setdefault("timeouts", FAST)
    return SmtpNotifier(
        "mail",
        "127.0.0.1",
        port,
        from_addr="newswatch@example.org",
        to=["analyst@example.org"],
        **kwargs,
    )


def cycle(
    world: World, notifiers: dict[str, Notifier], now: datetime = T0
) -> list[DeliveryOutcome]:
    close_due_digests(world.db, {"panj-crossings": "immediate"}, now=now, tz=UTC_ZONE)
    return deliver_due(world.db, notifiers, now=now, rng=random.Random(7))


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


# ---------------------------------------------------------------------------------------------
# SMTP


def test_sent_after_250_with_message_id_and_both_parts(world: World, smtp: SmtpServer) -> None:
    """RELIABILITY S1."""
    world.alert(words=("Jurm",), places=PLACES)
    [out] = cycle(world, {"mail": mailer(smtp.port)})
    assert (out.state, out.delivered_to) == ("sent", f"smtp 127.0.0.1:{smtp.port}")
    [raw] = smtp.handler.messages
    msg = parse(raw)
    assert set(msg.keys()) == EXPECTED_HEADERS
    assert msg["Message-ID"] == f"<{out.digest_id}@example.org>"
    assert msg["Subject"] == "[newswatch] 1 high: Jurm — panj-crossings"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    digest = world.digest(out.digest_id)
    assert (digest.state, digest.sent_at, digest.attempts) == ("sent", T0, 1)


def test_451_at_rcpt_retries_with_backoff_and_the_same_message_id(
    world: World, smtp: SmtpServer
) -> None:
    """RELIABILITY S2: definitely not accepted, so retried; never uncertain."""
    smtp.handler.rcpt = ["451 4.3.0 try later", "451 4.3.0 try later"]
    world.alert()
    notifiers: dict[str, Notifier] = {"mail": mailer(smtp.port)}
    [first] = cycle(world, notifiers)
    assert first.state == "failed" and first.next_attempt_at is not None
    assert first.detail == f"smtp 127.0.0.1:{smtp.port} answered 451 4.3.0 try later to RCPT TO"
    assert timedelta(seconds=54) <= first.next_attempt_at - T0 <= timedelta(seconds=66)
    assert deliver_due(world.db, notifiers, now=T0 + timedelta(seconds=30)) == []
    [second] = deliver_due(world.db, notifiers, now=first.next_attempt_at, rng=random.Random(1))
    assert second.state == "failed" and second.next_attempt_at is not None
    wait = second.next_attempt_at - first.next_attempt_at
    assert timedelta(minutes=4.5) <= wait <= timedelta(minutes=5.5)
    status = world.status()
    assert status["digests"][0]["last_error"] == second.detail
    assert status["digests"][0]["next_attempt_at"] is not None
    [third] = deliver_due(world.db, notifiers, now=second.next_attempt_at)
    assert third.state == "sent"
    [raw] = smtp.handler.messages
    assert parse(raw)["Message-ID"] == f"<{first.digest_id}@example.org>"
    assert world.digest(first.digest_id).attempts == 3


def test_451_after_end_of_data_is_retried_not_uncertain(world: World, smtp: SmtpServer) -> None:
    smtp.handler.data = ["451 4.3.0 queue full"]
    world.alert()
    [first] = cycle(world, {"mail": mailer(smtp.port)})
    assert first.state == "failed" and first.next_attempt_at is not None
    assert "451 4.3.0 queue full to the end of DATA" in first.detail
    [second] = deliver_due(world.db, {"mail": mailer(smtp.port)}, now=first.next_attempt_at)
    assert second.state == "sent"
    assert len(smtp.handler.messages) == 1


def test_421_at_greeting_and_at_mail_are_temporary(
    world: World, smtp: SmtpServer, greeting_421: int
) -> None:
    world.alert()
    [out] = cycle(world, {"mail": mailer(greeting_421)})
    assert out.state == "failed" and out.next_attempt_at is not None
    assert out.detail == (
        f"smtp 127.0.0.1:{greeting_421} answered 421 4.3.2 service not available, try later "
        "to the greeting"
    )
    smtp.handler.mail = ["421 4.3.2 shutting down"]
    [again] = deliver_due(world.db, {"mail": mailer(smtp.port)}, now=out.next_attempt_at)
    assert again.state == "failed" and again.next_attempt_at is not None
    assert "421 4.3.2 shutting down to MAIL FROM" in again.detail


def test_connection_refused_for_days_backs_off_then_fails_visibly(
    world: World, unused_port: int
) -> None:
    """RELIABILITY S2: retries 1 min, 5 min, 30 min, 2 h, then every 6 h; gives up after 2 days."""
    port = unused_port
    notifiers: dict[str, Notifier] = {"mail": mailer(port)}
    world.alert()
    [out] = cycle(world, notifiers)
    waits = []
    now = T0
    while out.next_attempt_at is not None:
        waits.append(out.next_attempt_at - now)
        now = out.next_attempt_at
        [out] = deliver_due(world.db, notifiers, now=now, rng=random.Random(len(waits)))
    expected = [60, 300, 1800, 7200] + [21600] * (len(waits) - 4)
    assert len(waits) >= 10
    for wait, base in zip(waits, expected, strict=True):
        assert base * 0.9 <= wait.total_seconds() <= base * 1.1
    assert timedelta(days=2) <= now - T0 <= timedelta(days=2, hours=7)
    assert out.state == "failed"
    assert out.detail.startswith(
        f"failed permanently: gave up after 2 days: cannot connect to smtp 127.0.0.1:{port}: "
    )
    assert "Connection refused" in out.detail
    assert world.status()["counts"]["failed"] == 1
    assert deliver_due(world.db, notifiers, now=now + timedelta(days=1)) == []


def test_550_fails_permanently_and_other_notifiers_still_deliver(
    world: World, smtp: SmtpServer, tmp_path: Path
) -> None:
    """RELIABILITY S3."""
    smtp.handler.rcpt = ["550 5.1.1 no such user"]
    world.alert(notifiers=("mail", "files"))
    outcomes = cycle(
        world, {"mail": mailer(smtp.port), "files": OutboxNotifier("files", tmp_path / "out")}
    )
    by_notifier = {o.notifier: o for o in outcomes}
    assert by_notifier["files"].state == "sent"
    failed = by_notifier["mail"]
    assert (failed.state, failed.next_attempt_at) == ("failed", None)
    assert failed.detail == (
        f"failed permanently: smtp 127.0.0.1:{smtp.port} answered 550 5.1.1 no such user to RCPT TO"
    )
    assert deliver_due(world.db, {"mail": mailer(smtp.port)}, now=T0 + timedelta(days=1)) == []
    assert smtp.handler.messages == []


def test_connection_dropped_after_data_is_uncertain_and_not_resent(
    world: World, smtp: SmtpServer
) -> None:
    """RELIABILITY S4: the server stored the message, then dropped the connection."""
    smtp.handler.data = ["close"]
    world.alert()
    [out] = cycle(world, {"mail": mailer(smtp.port)})
    assert out.state == "uncertain"
    assert out.detail.startswith(
        f"may have been delivered at 2026-03-10T08:00:00Z; not resent; "
        f"run `newswatch digest resend {out.digest_id}` to send it again ("
    )
    for hours in (1, 30, 100):
        assert (
            deliver_due(world.db, {"mail": mailer(smtp.port)}, now=T0 + timedelta(hours=hours))
            == []
        )
    assert len(smtp.handler.messages) == 1
    status = world.status()
    assert status["counts"]["uncertain"] == 1
    assert status["digests"][0]["last_error"] == out.detail
    with world.db.session() as s:  # the user decides to send it again
        outbox.resend(s, out.digest_id, T0)
    [again] = deliver_due(world.db, {"mail": mailer(smtp.port)}, now=T0 + timedelta(hours=101))
    assert again.state == "sent"
    assert len(smtp.handler.messages) == 2
    ids = {parse(m)["Message-ID"] for m in smtp.handler.messages}
    assert ids == {f"<{out.digest_id}@example.org>"}


def test_hang_after_data_is_bounded_by_the_data_done_timeout(
    world: World, smtp: SmtpServer
) -> None:
    """RELIABILITY S4: a server that never answers the end of DATA."""
    smtp.handler.data = ["hang"]
    world.alert()
    quick = SmtpTimeouts(connect=5, command=5, data_done=0.3)
    [out] = cycle(world, {"mail": mailer(smtp.port, timeouts=quick)})
    assert out.state == "uncertain"
    assert "did not confirm the message after the end of DATA" in out.detail
    smtp.handler.release.set()
    assert deliver_due(world.db, {"mail": mailer(smtp.port)}, now=T0 + timedelta(hours=2)) == []
    assert len(smtp.handler.messages) == 1


def test_sending_row_left_by_a_dead_worker_before_the_handover_is_sent_again(
    world: World, smtp: SmtpServer
) -> None:
    """Killed after `sending` was committed, before the final `.`: the server has nothing."""
    world.alert()
    [digest_id] = close_due_digests(world.db, {"panj-crossings": "immediate"}, now=T0, tz=UTC_ZONE)
    with world.db.session() as s:  # what the dead worker committed before it contacted the server
        outbox.claim_next_digest(
            s, notifiers=["mail"], now=T0, token="dead:1", lease=timedelta(minutes=5)
        )
    assert deliver_due(world.db, {"mail": mailer(smtp.port)}, now=T0 + timedelta(minutes=1)) == []
    [settled, out] = deliver_due(
        world.db, {"mail": mailer(smtp.port)}, now=T0 + timedelta(minutes=6)
    )
    assert (settled.state, settled.detail) == (
        "queued",
        "interrupted before the server was given the message; sending again",
    )
    assert (out.digest_id, out.state) == (digest_id, "sent")
    assert len(smtp.handler.messages) == 1


def test_sending_row_left_by_a_dead_worker_after_the_handover_becomes_uncertain(
    world: World, smtp: SmtpServer
) -> None:
    """RELIABILITY D4: killed after the final `.` (or the 250): uncertain, not resent."""
    world.alert()
    [digest_id] = close_due_digests(world.db, {"panj-crossings": "immediate"}, now=T0, tz=UTC_ZONE)
    with world.db.session() as s:  # what the dead worker committed before its final `.`
        claim = outbox.claim_next_digest(
            s, notifiers=["mail"], now=T0, token="dead:1", lease=timedelta(minutes=5)
        )
    assert claim is not None
    with world.db.session() as s:
        assert outbox.mark_handover(s, claim, now=T0)
    assert deliver_due(world.db, {"mail": mailer(smtp.port)}, now=T0 + timedelta(minutes=1)) == []
    [out] = deliver_due(world.db, {"mail": mailer(smtp.port)}, now=T0 + timedelta(minutes=6))
    assert (out.digest_id, out.state) == (digest_id, "uncertain")
    assert out.detail == (
        f"may have been delivered at 2026-03-10T08:00:00Z; not resent; run `newswatch digest "
        f"resend {digest_id}` to send it again (the worker stopped while sending)"
    )
    assert smtp.handler.messages == []
    assert world.status()["counts"]["uncertain"] == 1
    assert deliver_due(world.db, {"mail": mailer(smtp.port)}, now=T0 + timedelta(hours=1)) == []


def test_starttls_required_but_not_offered_refuses_to_send_in_clear(
    world: World, smtp: SmtpServer
) -> None:
    """RELIABILITY S5."""
    world.alert()
    [out] = cycle(world, {"mail": mailer(smtp.port, security="starttls")})
    assert out.state == "failed"
    assert out.detail == f"smtp 127.0.0.1:{smtp.port} does not offer STARTTLS; not sending in clear"
    assert smtp.handler.messages == []


def test_starttls_and_auth(
    world: World,
    smtp_factory: Any,
    server_tls: ssl.SSLContext,
    client_tls: ssl.SSLContext,
    smtp_credentials: tuple[str, str],
) -> None:
    server = smtp_factory(tls_context=server_tls, auth=True)
    world.alert()
    user, password = smtp_credentials
    notifier = mailer(
        server.port, security="starttls", ssl_context=client_tls, username=user, password=password
    )
    [out] = cycle(world, {"mail": notifier})
    assert out.state == "sent"
    assert len(server.handler.messages) == 1


def test_implicit_tls(
    world: World, smtp_factory: Any, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    server = smtp_factory(implicit_tls=server_tls)
    world.alert()
    [out] = cycle(world, {"mail": mailer(server.port, security="tls", ssl_context=client_tls)})
    assert out.state == "sent" and len(server.handler.messages) == 1


def test_535_is_permanent_names_the_env_var_and_never_the_password(
    world: World,
    smtp_factory: Any,
    server_tls: ssl.SSLContext,
    client_tls: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    smtp_credentials: tuple[str, str],
) -> None:
    """RELIABILITY S5."""
    caplog.set_level(logging.DEBUG)
    server = smtp_factory(tls_context=server_tls, auth=True)
    wrong = "wrong-Pa55word-plugh"
    world.alert()
    notifier = mailer(
        server.port,
        security="starttls",
        ssl_context=client_tls,
        username=smtp_credentials[0],
        password=wrong,
        password_env="NW_TEST_SMTP_PASSWORD",
    )
    [out] = cycle(world, {"mail": notifier})
    assert (out.state, out.next_attempt_at) == ("failed", None)
    assert out.detail == (
        f"failed permanently: smtp 127.0.0.1:{server.port} refused the credentials (535); "
        "check the user name and the password in $NW_TEST_SMTP_PASSWORD"
    )
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("mail"))
    assert wrong not in ours and "NW_TEST_SMTP_PASSWORD" in ours
    assert wrong not in repr(notifier)
    assert wrong not in json.dumps(world.status())
    for path in tmp_path.glob("newswatch.db*"):
        assert wrong.encode() not in path.read_bytes()
    assert server.handler.messages == []


@pytest.mark.parametrize(
    "title",
    [
        "\r\nBcc: x@evil.example",
        "x\nBcc: x@evil.example",
        "nul\x00",
        "=?UTF-8?Q?=0A?=Bcc: x@evil.example",
        "trailing\n",
        "J" * 5000,
    ],
)
def test_hostile_titles_cannot_inject_headers(
    world: World, smtp: SmtpServer, tmp_path: Path, title: str
) -> None:
    """RELIABILITY H8, over SMTP and in the outbox .eml."""
    world.alert(title=title, rule_title=title, words=(), feed=f"feed {title[:40]}")
    notifiers: dict[str, Notifier] = {"mail": mailer(smtp.port)}
    [out] = cycle(world, notifiers)
    assert out.state == "sent"
    [raw] = smtp.handler.messages
    msg = parse(raw)
    assert set(msg.keys()) == EXPECTED_HEADERS
    assert len(str(msg["Subject"])) <= 200 and "\n" not in str(msg["Subject"])
    files = OutboxNotifier("files", tmp_path / "out", from_addr="n@example.org")
    with world.db.session() as s:
        outbox.resend(s, out.digest_id, T0)
    [again] = deliver_due(world.db, {"mail": files}, now=T0)
    assert set(parse(Path(again.delivered_to or "").read_bytes()).keys()) == EXPECTED_HEADERS


# ---------------------------------------------------------------------------------------------
# outbox


def test_outbox_writes_one_complete_file_named_by_the_digest_id(
    world: World, tmp_path: Path
) -> None:
    """RELIABILITY O1, O3: hostile rule names never reach the file name."""
    box = tmp_path / "missing" / "outbox"
    hostile = "../../x\x00\u202e" + "r" * 300
    world.alert(rule_id=hostile, notifiers=("files",))
    close_due_digests(world.db, {hostile: "immediate"}, now=T0, tz=UTC_ZONE)
    [out] = deliver_due(world.db, {"files": OutboxNotifier("files", box)}, now=T0)
    assert out.state == "sent"
    path = Path(out.delivered_to or "")
    assert path == box / f"digest-{out.digest_id}.eml"
    assert path.resolve().parent == box.resolve()
    assert sorted(p.name for p in box.iterdir()) == [path.name, "tmp"]
    assert list((box / "tmp").iterdir()) == []
    msg = parse(path.read_bytes())
    assert msg["Message-ID"] == f"<{out.digest_id}@localhost>"
    assert msg["To"] == "analyst@localhost"


def test_existing_outbox_file_is_reconciled_not_rewritten(world: World, tmp_path: Path) -> None:
    """RELIABILITY O1: a file already there for a queued digest means it was written."""
    box = tmp_path / "outbox"
    world.alert(notifiers=("files",))
    [digest_id] = close_due_digests(world.db, {"panj-crossings": "immediate"}, now=T0, tz=UTC_ZONE)
    box.mkdir()
    existing = box / f"digest-{digest_id}.eml"
    existing.write_bytes(b"written before the crash")
    [out] = deliver_due(world.db, {"files": OutboxNotifier("files", box)}, now=T0)
    assert (out.state, out.delivered_to) == ("sent", str(existing))
    assert existing.read_bytes() == b"written before the crash"


@pytest.mark.parametrize("file_exists", [True, False])
def test_outbox_send_cut_off_by_a_crash_is_reconciled(
    world: World, tmp_path: Path, file_exists: bool
) -> None:
    box = tmp_path / "outbox"
    notifier = OutboxNotifier("files", box)
    world.alert(notifiers=("files",))
    [digest_id] = close_due_digests(world.db, {"panj-crossings": "immediate"}, now=T0, tz=UTC_ZONE)
    with world.db.session() as s:
        outbox.claim_next_digest(
            s, notifiers=["files"], now=T0, token="dead:1", lease=timedelta(minutes=5)
        )
    (box / "tmp").mkdir(parents=True)
    (box / "tmp" / f"digest-{digest_id}.dead.tmp").write_bytes(b"half")  # left by the crash
    if file_exists:
        notifier.path_for(digest_id).write_bytes(b"complete")
    outcomes = deliver_due(world.db, {"files": notifier}, now=T0 + timedelta(minutes=6))
    assert [o.state for o in outcomes] == ["queued", "sent"]
    content = notifier.path_for(digest_id).read_bytes()
    assert (content == b"complete") is file_exists
    assert world.digest(digest_id).attempts == 2


def test_outbox_folder_that_cannot_be_created_stays_queued_and_visible(
    world: World, tmp_path: Path
) -> None:
    """RELIABILITY O2, in process: the outbox path runs through a regular file."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    box = blocker / "outbox"
    world.alert(notifiers=("files",))
    [out] = cycle(world, {"files": OutboxNotifier("files", box)})
    assert out.state == "failed" and out.next_attempt_at is not None
    assert out.detail == f"outbox write failed: Not a directory: {box}"
    [row] = world.status()["digests"]
    assert (row["state"], row["last_error"]) == ("failed", out.detail)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_outbox_folder_not_writable(world: World, tmp_path: Path) -> None:
    box = tmp_path / "outbox"
    box.mkdir()
    box.chmod(0o500)
    try:
        world.alert(notifiers=("files",))
        [out] = cycle(world, {"files": OutboxNotifier("files", box)})
    finally:
        box.chmod(0o700)
    assert out.detail == f"outbox write failed: Permission denied: {box}"


CHILD = textwrap.dedent(
    """
    import resource, signal, sys
    from datetime import UTC, datetime
    from pathlib import Path
    from notifications.digest import build_digest
    from notifications.email import OutboxNotifier
    from notifications.errors import DeliveryError
    from storage.outbox import AlertEntry, DigestData, DigestHeader

    T0 = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
    alert = AlertEntry(
        1, "r", "R" * 20000, "high", 1, 1, "feed", "title", "text", None, "en", T0, (), ()
    )
    header = DigestHeader("ab12", "r", "R", "high", "files", "p", 1, T0)
    view = build_digest(DigestData(header, (alert,)), now=T0)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))
    try:
        print(OutboxNotifier("files", Path(sys.argv[1])).send(view))
    except DeliveryError as exc:
        print("error:", exc.message, exc.permanent)
    """
)


def test_outbox_file_too_large_leaves_nothing_partial(tmp_path: Path) -> None:
    """RELIABILITY O2: EFBIG from RLIMIT_FSIZE in a child process."""
    box = tmp_path / "outbox"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(box)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == f"error: outbox write failed: File too large: {box} False"
    assert sorted(p.name for p in box.iterdir()) == ["tmp"]
    assert list((box / "tmp").iterdir()) == []
