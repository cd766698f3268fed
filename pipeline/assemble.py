"""The composition root: builds the database, notifiers and Service from a Config."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from notifications.delivery import Checkpoint, Notifier, no_checkpoint
from notifications.email import OutboxNotifier, SmtpNotifier
from notifications.webhook import WebhookNotifier
from pipeline.config import Config, NotifierConfig
from pipeline.service import Service
from storage.engine import Database, open_database

logger = logging.getLogger(__name__)

# The crash tests' hook (tests/test_crash_delivery.py, RELIABILITY D3, D4, O1). With both set,
#   NEWSWATCH_TEST_HOOKS=1 NEWSWATCH_TEST_KILL_AT=<step>[:<n>]
# the process SIGKILLs itself the n-th time (default 1st) it reaches <step>: fetched, stored,
# closed (digests created), sending (committed), handover (SMTP: just before the final `.`),
# accepted (server said 250 / .eml renamed; `sent` not yet committed), sent (committed), or
# outbox-write (half of a .eml written to outbox/tmp). Either variable alone does nothing, and
# without them every checkpoint is `no_checkpoint`, an empty function call.
TEST_HOOKS_ENV = "NEWSWATCH_TEST_HOOKS"
KILL_AT_ENV = "NEWSWATCH_TEST_KILL_AT"


def wall_clock() -> datetime:
    """The only reader of the wall clock in newswatch."""
    return datetime.now(UTC)  # noqa: TID251 - the composition root reads the clock


def crash_checkpoint(environ: Mapping[str, str]) -> Checkpoint:
    """The checkpoint the crash tests ask for through the environment (see above)."""
    target = environ.get(KILL_AT_ENV, "") if environ.get(TEST_HOOKS_ENV) == "1" else ""
    if not target:
        return no_checkpoint
    step, _, nth = target.partition(":")
    remaining = [int(nth or "1")]

    def kill_at(reached: str) -> None:
        if reached != step:
            return
        remaining[0] -= 1
        if remaining[0] == 0:
            os.write(2, f"test hook: SIGKILL at {target}\n".encode())
            os.kill(os.getpid(), signal.SIGKILL)

    logger.warning("test hook armed: this process will kill itself at %s", target)
    return kill_at


def build_notifier(
    config: Config, nc: NotifierConfig, checkpoint: Checkpoint = no_checkpoint
) -> Notifier:
    """One notifier from its config section; email with no SMTP host writes the outbox."""
    if nc.type == "webhook":
        assert nc.url is not None
        return WebhookNotifier(
            name=nc.name,
            url=nc.url,
            format=nc.format,
            secret=nc.secret,
            timeout_s=nc.timeout_s or 15.0,
            tz=config.tz,
            clock=wall_clock,
        )
    to = nc.to or ("analyst@localhost",)
    if nc.type == "email" and nc.smtp_host:
        return SmtpNotifier(
            name=nc.name,
            host=nc.smtp_host,
            port=nc.smtp_port or (465 if nc.security == "tls" else 587),
            security=nc.security,
            username=nc.username,
            password=nc.password,
            password_env=nc.password_env,
            from_addr=nc.from_addr,
            to=to,
            tz=config.tz,
        )
    return OutboxNotifier(
        name=nc.name,
        outbox_dir=config.outbox_dir,
        from_addr=nc.from_addr,
        to=to,
        tz=config.tz,
        checkpoint=checkpoint,
    )


def build_notifiers(config: Config, checkpoint: Checkpoint = no_checkpoint) -> dict[str, Notifier]:
    return {name: build_notifier(config, nc, checkpoint) for name, nc in config.notifiers.items()}


def build_service(
    config: Config,
    *,
    clock: Callable[[], datetime] = wall_clock,
    db: Database | None = None,
    notifiers: Mapping[str, Notifier] | None = None,
) -> Service:
    """A Service with real parts: the configured database, notifiers and HTTP."""
    checkpoint = crash_checkpoint(os.environ)
    return Service(
        config,
        clock=clock,
        db=db or open_database(config.database_url),
        notifiers=build_notifiers(config, checkpoint) if notifiers is None else notifiers,
        checkpoint=checkpoint,
    )
