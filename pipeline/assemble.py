"""The composition root: builds the database, notifiers and Service from a Config."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from notifications.delivery import Notifier
from notifications.email import OutboxNotifier, SmtpNotifier
from notifications.webhook import WebhookNotifier
from pipeline.config import Config, NotifierConfig
from pipeline.service import Service
from storage.engine import Database, open_database


def wall_clock() -> datetime:
    """The only reader of the wall clock in newswatch."""
    return datetime.now(UTC)  # noqa: TID251 - the composition root reads the clock


def build_notifier(config: Config, nc: NotifierConfig) -> Notifier:
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
        name=nc.name, outbox_dir=config.outbox_dir, from_addr=nc.from_addr, to=to, tz=config.tz
    )


def build_notifiers(config: Config) -> dict[str, Notifier]:
    return {name: build_notifier(config, nc) for name, nc in config.notifiers.items()}


def build_service(
    config: Config,
    *,
    clock: Callable[[], datetime] = wall_clock,
    db: Database | None = None,
    notifiers: Mapping[str, Notifier] | None = None,
) -> Service:
    """A Service with real parts: the configured database, notifiers and HTTP."""
    return Service(
        config,
        clock=clock,
        db=db or open_database(config.database_url),
        notifiers=build_notifiers(config) if notifiers is None else notifiers,
    )
