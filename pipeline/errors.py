"""Errors of the pipeline layer: configuration, rules and fetching."""

from __future__ import annotations

from storage.errors import NewswatchError


class ConfigError(NewswatchError):
    """config.toml is missing, unreadable or invalid; the message names the key."""


class RuleError(NewswatchError):
    """A rule or place file cannot be used; the message names file, line and column."""


class FetchError(NewswatchError):
    """A feed could not be fetched or parsed; stored on the feed row, shown by status."""
