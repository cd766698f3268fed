"""Errors of delivery: SMTP, webhook and outbox."""

from __future__ import annotations

from storage.errors import NewswatchError


class DeliveryError(NewswatchError):
    """A digest could not be delivered.

    `permanent` is True when retrying cannot help (SMTP 5xx, webhook 410);
    `uncertain` is True when the server may have accepted it before the failure.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        uncertain: bool = False,
        retry_after_s: float | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.permanent = permanent
        self.uncertain = uncertain
        self.retry_after_s = retry_after_s
