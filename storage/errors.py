"""The root of every error a user can cause or fix, and the storage layer's own errors.

NewswatchError
├── StorageError            the database refused or failed (busy, full, corrupt)
│   └── MigrationError      the schema cannot be brought to this version
├── pipeline.errors.ConfigError / RuleError / FetchError
└── notifications.errors.DeliveryError
"""

from __future__ import annotations


class NewswatchError(Exception):
    """An error the user can act on; the CLI prints it without a traceback."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\nhint: {self.hint}"
        return self.message


class StorageError(NewswatchError):
    """The database could not do what was asked."""


class MigrationError(StorageError):
    """The database schema is newer than this newswatch, or a migration failed."""
