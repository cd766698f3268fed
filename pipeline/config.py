"""Loading config.toml into a frozen Config; the only reader of the file and the environment."""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipeline.errors import ConfigError
from pipeline.urls import url_problem

DEFAULT_USER_AGENT = "newswatch/0.1 (+https://github.com/newswatch/newswatch)"
NOTIFIER_TYPES = ("email", "webhook", "outbox")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
FEED_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
FEED_NAME_HINT = "use letters, digits, '.', '-' and '_', starting with a letter or digit"


@dataclass(frozen=True, slots=True)
class FetchConfig:
    user_agent: str = DEFAULT_USER_AGENT
    timeout_s: float = 20.0
    connect_timeout_s: float = 10.0
    max_bytes: int = 10_000_000
    per_host: int = 2
    concurrency: int = 32
    interval_s: float = 900.0
    lease_s: float = 60.0  # a worker's claim on a feed or digest; renewed while it lives


@dataclass(frozen=True, slots=True)
class FeedConfig:
    name: str
    url: str
    tags: tuple[str, ...] = ()
    language: str | None = None
    interval_s: float | None = None


@dataclass(frozen=True, slots=True)
class NotifierConfig:
    """One notifier. Secrets are read from the environment here and never printed."""

    name: str
    type: str
    to: tuple[str, ...] = ()
    from_addr: str = "newswatch@localhost"
    smtp_host: str | None = None
    smtp_port: int | None = None
    security: str = "starttls"
    username_env: str | None = None
    password_env: str | None = None
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    url: str | None = field(default=None, repr=False)
    format: str = "json"
    secret_env: str | None = None
    secret: str | None = field(default=None, repr=False)
    timeout_s: float | None = None
    give_up_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    timezone: str = "Asia/Dushanbe"
    rules_dir: Path = Path("rules")
    outbox_dir: Path = Path("outbox")
    database_url: str = "sqlite:///newswatch.db"
    fetch: FetchConfig = FetchConfig()
    feeds: tuple[FeedConfig, ...] = ()
    notifiers: Mapping[str, NotifierConfig] = field(default_factory=dict)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def root(self) -> Path:
        return self.path.parent

    def feed_interval_s(self, feed: FeedConfig) -> float:
        return feed.interval_s if feed.interval_s is not None else self.fetch.interval_s

    def with_feeds(self, feeds: tuple[FeedConfig, ...]) -> Config:
        return replace(self, feeds=feeds)


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("NEWSWATCH_CONFIG") or "config.toml")


def load_config(path: Path | None = None, *, environ: Mapping[str, str] | None = None) -> Config:
    """Reads and validates config.toml; relative paths become relative to the file.

    Raises:
        ConfigError: the file is missing or invalid; the message names the key and what to write.
    """
    env = os.environ if environ is None else environ
    path = (path or default_config_path(env)).resolve()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: configuration file not found",
            hint="run from the folder that holds config.toml, or pass --config PATH "
            "(or set NEWSWATCH_CONFIG)",
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return _Reader(path, env).config(data)


class _Reader:
    def __init__(self, path: Path, env: Mapping[str, str]) -> None:
        self.path = path
        self.env = env

    def fail(self, key: str, message: str, hint: str | None = None) -> ConfigError:
        return ConfigError(f"{self.path}: {key}: {message}", hint=hint)

    def check_keys(self, table: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
        for key in table:
            if key not in allowed:
                near = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean '{near[0]}'?" if near else "allowed: " + ", ".join(allowed)
                raise self.fail(f"{where}{key}", "unknown key", hint)

    def config(self, data: Mapping[str, Any]) -> Config:
        top = ("timezone", "rules_dir", "outbox_dir", "database", "fetch", "feeds", "notifiers")
        self.check_keys(data, top, "")
        timezone = self.string(data, "timezone", "Asia/Dushanbe")
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise self.fail(
                "timezone",
                f"unknown time zone {timezone!r}",
                'write an IANA name like "Asia/Dushanbe"',
            ) from None
        database = self.table(data, "database")
        self.check_keys(database, ("url",), "database.")
        feeds = tuple(self.feed(i, f) for i, f in enumerate(self.array(data, "feeds")))
        names = [f.name for f in feeds]
        for name in names:
            if names.count(name) > 1:
                raise self.fail(
                    "feeds", f"two feeds are named {name!r}", "feed names must be unique"
                )
        notifiers = {
            name: self.notifier(name, table)
            for name, table in self.table(data, "notifiers").items()
        }
        return Config(
            path=self.path,
            timezone=timezone,
            rules_dir=self.path.parent / self.string(data, "rules_dir", "rules"),
            outbox_dir=self.path.parent / self.string(data, "outbox_dir", "outbox"),
            database_url=self.database_url(self.string(database, "url", "sqlite:///newswatch.db")),
            fetch=self.fetch(self.table(data, "fetch")),
            feeds=feeds,
            notifiers=notifiers,
        )

    def database_url(self, url: str) -> str:
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            rest = url.removeprefix("sqlite:///")
            if rest and rest != ":memory:":
                return "sqlite:///" + str(self.path.parent / rest)
        if not url.startswith(("sqlite:", "postgresql")):
            raise self.fail(
                "database.url",
                "unsupported database",
                "write sqlite:///newswatch.db or postgresql+psycopg://user@host/db",
            )
        return url

    def fetch(self, table: Mapping[str, Any]) -> FetchConfig:
        keys = ("user_agent", "timeout", "connect_timeout", "max_bytes", "per_host", "concurrency")
        self.check_keys(table, (*keys, "interval", "lease"), "fetch.")
        d = FetchConfig()
        return FetchConfig(
            user_agent=self.string(table, "user_agent", d.user_agent, "fetch."),
            timeout_s=self.duration(table, "timeout", d.timeout_s, "fetch."),
            connect_timeout_s=self.duration(
                table, "connect_timeout", d.connect_timeout_s, "fetch."
            ),
            max_bytes=self.integer(table, "max_bytes", d.max_bytes, "fetch."),
            per_host=self.integer(table, "per_host", d.per_host, "fetch."),
            concurrency=self.integer(table, "concurrency", d.concurrency, "fetch."),
            interval_s=self.duration(table, "interval", d.interval_s, "fetch."),
            lease_s=self.duration(table, "lease", d.lease_s, "fetch."),
        )

    def feed(self, index: int, table: Any) -> FeedConfig:
        where = f"feeds[{index}]."
        if not isinstance(table, dict):
            raise self.fail(
                f"feeds[{index}]", "must be a table", "write [[feeds]] with name and url"
            )
        self.check_keys(table, ("name", "url", "tags", "language", "interval"), where)
        name = self.string(table, "name", None, where)
        if not FEED_NAME.match(name):
            raise self.fail(where + "name", f"{name!r} is not a valid feed name", FEED_NAME_HINT)
        interval = self.duration(table, "interval", None, where) if "interval" in table else None
        return FeedConfig(
            name=name,
            url=self.http_url(table, "url", where),
            tags=self.strings(table, "tags", where),
            language=self.string(table, "language", None, where) if "language" in table else None,
            interval_s=interval,
        )

    def notifier(self, name: str, table: Any) -> NotifierConfig:
        where = f"notifiers.{name}."
        if not isinstance(table, dict):
            raise self.fail(f"notifiers.{name}", "must be a table", 'write type = "outbox"')
        allowed = (
            *("type", "to", "from", "smtp_host", "smtp_port", "security", "username_env"),
            *("password_env", "url", "format", "secret_env", "timeout", "give_up_after"),
        )
        self.check_keys(table, allowed, where)
        kind = self.choice(table, "type", NOTIFIER_TYPES, None, where)
        security = self.choice(table, "security", ("starttls", "tls", "none"), "starttls", where)
        fmt = self.choice(table, "format", ("json", "slack"), "json", where)
        if kind == "webhook" and "url" not in table:
            raise self.fail(where + "url", "a webhook notifier needs a url")
        timeout = self.duration(table, "timeout", None, where) if "timeout" in table else None
        give_up = (
            self.duration(table, "give_up_after", None, where) if "give_up_after" in table else None
        )
        return NotifierConfig(
            name=name,
            type=kind,
            to=self.strings(table, "to", where),
            from_addr=self.string(table, "from", "newswatch@localhost", where),
            smtp_host=self.string(table, "smtp_host", None, where)
            if "smtp_host" in table
            else None,
            smtp_port=self.integer(table, "smtp_port", None, where)
            if "smtp_port" in table
            else None,
            security=security,
            username_env=table.get("username_env"),
            password_env=table.get("password_env"),
            username=self.secret(table, "username_env", where),
            password=self.secret(table, "password_env", where),
            url=self.http_url(table, "url", where) if "url" in table else None,
            format=fmt,
            secret_env=table.get("secret_env"),
            secret=self.secret(table, "secret_env", where),
            timeout_s=timeout,
            give_up_after_s=give_up,
        )

    # --- typed getters ---------------------------------------------------------------

    def table(self, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table", f"write [{key}]")
        return value

    def array(self, data: Mapping[str, Any], key: str) -> list[Any]:
        value = data.get(key, [])
        if not isinstance(value, list):
            raise self.fail(key, "must be an array of tables", f"write [[{key}]]")
        return value

    def string(self, table: Mapping[str, Any], key: str, default: Any, where: str = "") -> Any:
        if key not in table:
            if default is None:
                raise self.fail(where + key, "is required")
            return default
        value = table[key]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where + key, f"must be a non-empty string, not {value!r}")
        return value

    def strings(self, table: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
        value = table.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(where + key, "must be a list of strings", f'write {key} = ["a", "b"]')
        return tuple(value)

    def integer(self, table: Mapping[str, Any], key: str, default: Any, where: str) -> Any:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.fail(where + key, f"must be a positive whole number, not {value!r}")
        return value

    def duration(self, table: Mapping[str, Any], key: str, default: Any, where: str) -> Any:
        if key not in table:
            return default
        value = table[key]
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
        found = _DURATION.match(value) if isinstance(value, str) else None
        if not found or float(found.group(1)) <= 0:
            raise self.fail(
                where + key, f"{value!r} is not a duration", 'write e.g. "30s", "15m", "2h" or "1d"'
            )
        return float(found.group(1)) * _UNITS[found.group(2)]

    def choice(
        self, table: Mapping[str, Any], key: str, options: tuple[str, ...], default: Any, where: str
    ) -> Any:
        value = self.string(table, key, default, where)
        if value not in options:
            near = difflib.get_close_matches(str(value), options, n=1)
            hint = f"did you mean '{near[0]}'?" if near else "write one of " + ", ".join(options)
            raise self.fail(where + key, f"{value!r} is not one of {', '.join(options)}", hint)
        return value

    def http_url(self, table: Mapping[str, Any], key: str, where: str) -> str:
        url = self.string(table, key, None, where)
        problem = url_problem(url)
        if problem:
            raise self.fail(where + key, problem, "write a URL starting with https://")
        return str(url)

    def secret(self, table: Mapping[str, Any], key: str, where: str) -> str | None:
        name = table.get(key)
        if name is None:
            return None
        if not isinstance(name, str) or not name:
            raise self.fail(where + key, "must name an environment variable")
        return self.env.get(name)
