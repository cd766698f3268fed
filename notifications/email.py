"""Email delivery: `.eml` files in the outbox folder, or SMTP with TLS, AUTH and careful timeouts.

The SMTP conversation tells apart "definitely not accepted" (retry or fail) from "the server may
have accepted it" (the connection was lost, or the reply never came, after the final `.` of
DATA: `uncertain`, never resent by itself; RFC 1047). Just before that `.`, `handover()` lets
delivery commit a mark, so a crash before it is known to have sent nothing.
"""

from __future__ import annotations

import contextlib
import email.policy
import logging
import os
import re
import smtplib
import ssl
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from notifications.delivery import OUTBOX_RETRY, SMTP_RETRY, Checkpoint, no_checkpoint
from notifications.digest import DigestView
from notifications.errors import DeliveryError
from notifications.render import UTC_ZONE, Renderer, check_address

logger = logging.getLogger(__name__)

SECURITY_MODES = ("starttls", "tls", "none")
_DIGEST_ID = re.compile(r"[0-9a-f]{1,64}")


def _message_bytes(
    renderer: Renderer, view: DigestView, from_addr: str, to: Sequence[str]
) -> bytes:
    msg = renderer.email(view, from_addr=from_addr, to=to)
    return msg.as_bytes(policy=email.policy.SMTP)


class OutboxNotifier:
    """Writes each digest once to `outbox_dir/digest-<id>.eml` (tmp/ → fsync → rename).

    A digest whose file already exists is reconciled as sent, never written twice; the file
    name comes from the digest id only (RELIABILITY O1–O3). `checkpoint("outbox-write")` is
    called half-way through writing the temporary file (a no-op but in the crash tests).
    """

    retry_policy = OUTBOX_RETRY

    def __init__(
        self,
        name: str,
        outbox_dir: Path,
        from_addr: str = "newswatch@localhost",
        to: Sequence[str] = ("analyst@localhost",),
        tz: ZoneInfo = UTC_ZONE,
        *,
        renderer: Renderer | None = None,
        checkpoint: Checkpoint = no_checkpoint,
    ) -> None:
        self.name = name
        self.outbox_dir = Path(outbox_dir)
        self.checkpoint = checkpoint
        self.from_addr = check_address(from_addr, f"notifier {name}: from")
        self.to = tuple(check_address(a, f"notifier {name}: to") for a in to)
        self.renderer = renderer or Renderer(tz=tz)

    def path_for(self, digest_id: str) -> Path:
        """Where a digest's file goes; only a hex digest id can name a file."""
        if not _DIGEST_ID.fullmatch(digest_id):
            raise ValueError(f"not a digest id: {digest_id!r}")
        path = self.outbox_dir / f"digest-{digest_id}.eml"
        assert path.parent == self.outbox_dir
        return path

    def send(self, digest: DigestView) -> str:
        """Writes the digest's .eml; returns its path.

        Raises:
            DeliveryError: the file could not be written (retried; nothing partial is left).
        """
        final = self.path_for(digest.id)
        if final.exists():
            logger.info("outbox file exists; digest reconciled as sent digest=%s", digest.id)
            return str(final)
        data = _message_bytes(self.renderer, digest, self.from_addr, self.to)
        try:
            self._write(final, data)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise DeliveryError(
                f"outbox write failed: {reason}: {self.outbox_dir}",
                hint="free space or fix the permissions of outbox_dir; the digest is retried",
            ) from exc
        logger.info("outbox file written digest=%s path=%s", digest.id, final)
        return str(final)

    def _write(self, final: Path, data: bytes) -> None:
        tmp_dir = self.outbox_dir / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        for stale in tmp_dir.glob(f"{final.stem}.*.tmp"):  # left by an interrupted attempt
            stale.unlink(missing_ok=True)
        tmp = tmp_dir / f"{final.stem}.{uuid.uuid4().hex[:8]}.tmp"
        half = len(data) // 2
        try:
            with open(tmp, "xb") as handle:
                handle.write(data[:half])
                handle.flush()
                self.checkpoint("outbox-write")
                handle.write(data[half:])
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        _fsync_dir(self.outbox_dir)


def _fsync_dir(folder: Path) -> None:
    """Makes the rename durable; some file systems cannot open a folder, which is fine."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass(frozen=True, slots=True)
class SmtpTimeouts:
    """Seconds: connecting, each command, and waiting for the reply to the end of DATA
    (Postfix's defaults: 30, 300, 600)."""

    connect: float = 30.0
    command: float = 300.0
    data_done: float = 600.0


class SmtpNotifier:
    """Sends digests through an SMTP server (STARTTLS, implicit TLS or plain) with AUTH."""

    retry_policy = SMTP_RETRY

    def __init__(
        self,
        name: str,
        host: str,
        port: int = 587,
        security: str = "starttls",
        username: str | None = None,
        password: str | None = None,
        from_addr: str = "newswatch@localhost",
        to: Sequence[str] = ("analyst@localhost",),
        *,
        password_env: str | None = None,
        timeouts: SmtpTimeouts | None = None,
        ssl_context: ssl.SSLContext | None = None,
        tz: ZoneInfo = UTC_ZONE,
        renderer: Renderer | None = None,
        local_hostname: str | None = None,
    ) -> None:
        if security not in SECURITY_MODES:
            raise ValueError(f"notifier {name}: security must be starttls, tls or none")
        self.name = name
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self._password = password
        self.password_env = password_env
        self.from_addr = check_address(from_addr, f"notifier {name}: from")
        self.to = tuple(check_address(a, f"notifier {name}: to") for a in to)
        self.timeouts = timeouts or SmtpTimeouts()
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.renderer = renderer or Renderer(tz=tz)
        self.local_hostname = local_hostname

    def __repr__(self) -> str:  # never shows the password
        return f"SmtpNotifier(name={self.name!r}, host={self.host!r}, port={self.port})"

    @property
    def where(self) -> str:
        return f"smtp {self.host}:{self.port}"

    def send(self, digest: DigestView) -> str:
        """Sends the digest; returns `smtp host:port`. See `send_staged`."""
        return self.send_staged(digest, _no_handover)

    def send_staged(self, digest: DigestView, handover: Callable[[], None]) -> str:
        """Sends the digest, calling `handover()` just before the final `.` of DATA; returns
        `smtp host:port`.

        Raises:
            DeliveryError: permanent on 5xx and refused credentials; uncertain when the
                connection was lost or timed out after the end of DATA; else retryable (also
                what `handover()` raises: the `.` is then never sent).
        """
        payload = _message_bytes(self.renderer, digest, self.from_addr, self.to)
        smtp = self._connect()
        try:
            refused = self._transact(smtp, payload, handover)
        finally:
            _quit(smtp)
        if refused:
            return f"{self.where} (refused: {'; '.join(refused)})"
        return self.where

    def _connect(self) -> smtplib.SMTP:
        try:
            if self.security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host,
                    self.port,
                    local_hostname=self.local_hostname,
                    timeout=self.timeouts.connect,
                    context=self.ssl_context,
                )
            else:
                smtp = smtplib.SMTP(
                    self.host,
                    self.port,
                    local_hostname=self.local_hostname,
                    timeout=self.timeouts.connect,
                )
        except smtplib.SMTPConnectError as exc:
            raise _reply_error(self.where, "the greeting", exc.smtp_code, exc.smtp_error) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"cannot connect to {self.where}: {_describe(exc)}") from exc
        _set_timeout(smtp, self.timeouts.command)
        return smtp

    def _transact(
        self, smtp: smtplib.SMTP, payload: bytes, handover: Callable[[], None]
    ) -> list[str]:
        try:
            self._hello(smtp)
            refused = self._envelope(smtp)
            _send_data(smtp, payload, self.where, self.timeouts.data_done, handover)
        except smtplib.SMTPResponseException as exc:
            raise _reply_error(self.where, "a command", exc.smtp_code, exc.smtp_error) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(
                f"SMTP with {self.where} failed before the message was sent: {_describe(exc)}"
            ) from exc
        return refused

    def _hello(self, smtp: smtplib.SMTP) -> None:
        code, reply = smtp.ehlo()
        if code != 250:
            code, reply = smtp.helo()
            if code != 250:
                raise _reply_error(self.where, "EHLO", code, reply)
        if self.security == "starttls":
            if not smtp.has_extn("starttls"):
                raise DeliveryError(
                    f"{self.where} does not offer STARTTLS; not sending in clear",
                    hint='fix the server\'s TLS, or set security = "tls" for port 465',
                )
            smtp.starttls(context=self.ssl_context)
            _set_timeout(smtp, self.timeouts.command)
            smtp.ehlo()
        if self.username:
            self._login(smtp)

    def _login(self, smtp: smtplib.SMTP) -> None:
        if not smtp.has_extn("auth"):
            raise DeliveryError(
                f"{self.where} does not offer AUTH, but a username is configured",
                permanent=True,
                hint="remove username_env for this notifier, or use the server's submission port",
            )
        assert self.username is not None
        try:
            smtp.login(self.username, self._password or "")
        except smtplib.SMTPAuthenticationError as exc:
            where = f" in ${self.password_env}" if self.password_env else ""
            raise DeliveryError(
                f"{self.where} refused the credentials ({exc.smtp_code}); "
                f"check the user name and the password{where}",
                permanent=True,
            ) from None  # the exception chain holds nothing secret, but keep logs short

    def _envelope(self, smtp: smtplib.SMTP) -> list[str]:
        code, reply = smtp.mail(self.from_addr)
        if code != 250:
            raise _reply_error(self.where, "MAIL FROM", code, reply)
        refusals: list[tuple[str, int, bytes]] = []
        for address in self.to:
            code, reply = smtp.rcpt(address)
            if code not in (250, 251):
                refusals.append((address, code, reply))
        if len(refusals) == len(self.to):
            _address, code, reply = refusals[0]
            raise _reply_error(self.where, "RCPT TO", code, reply)
        return [f"{a} {c} {r.decode(errors='replace')}" for a, c, r in refusals]


def _no_handover() -> None:
    """`send` without a delivery state machine: nothing to record."""


def _send_data(
    smtp: smtplib.SMTP,
    payload: bytes,
    where: str,
    data_done: float,
    handover: Callable[[], None],
) -> None:
    """DATA with our own end: after the final `.`, a lost connection or a missing reply within
    the data-done timeout means the server may have the message."""
    code, reply = smtp.docmd("DATA")
    if code != 354:
        raise _reply_error(where, "DATA", code, reply)
    body = _dot_stuffed(payload)
    try:
        handover()  # from here on the server may have the message
    except BaseException:
        smtp.close()  # hang up mid-DATA: the server drops the message (QUIT would be data)
        raise
    smtp.send(body + b".\r\n")
    _set_timeout(smtp, data_done)
    try:
        code, reply = smtp.getreply()
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(
            f"{where} did not confirm the message after the end of DATA: {_describe(exc)}",
            uncertain=True,
        ) from exc
    if code != 250:
        raise _reply_error(where, "the end of DATA", code, reply)


def _dot_stuffed(payload: bytes) -> bytes:
    data = re.sub(rb"(?m)^\.", b"..", payload)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def _set_timeout(smtp: smtplib.SMTP, seconds: float) -> None:
    if smtp.sock is not None:
        smtp.sock.settimeout(seconds)


def _quit(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _reply_error(where: str, step: str, code: int, reply: bytes | str) -> DeliveryError:
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    message = f"{where} answered {code} {' '.join(text.split())} to {step}"
    return DeliveryError(message, permanent=500 <= code < 600)


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
