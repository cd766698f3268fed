"""When to fetch a feed next: its interval, Retry-After, or exponential backoff after failures."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

MAX_BACKOFF_S = 24 * 3600.0
MIN_RETRY_AFTER_S = 60.0


def next_after_success(now: datetime, interval_s: float, rng: random.Random) -> datetime:
    """The next regular fetch, with ±5 % jitter so feeds of one host spread out."""
    return now + timedelta(seconds=interval_s * rng.uniform(0.95, 1.05))


def next_after_failure(
    now: datetime, interval_s: float, error_count: int, rng: random.Random
) -> datetime:
    """Exponential backoff from the feed's interval: 1×, 2×, 4×… capped at 24 hours.

    `error_count` counts this failure too. The feed is never given up on.
    """
    factor = 2.0 ** max(0, min(error_count - 1, 20))
    delay = min(interval_s * factor, MAX_BACKOFF_S)
    return now + timedelta(seconds=delay * rng.uniform(0.9, 1.1))


def next_after_retry_after(now: datetime, retry_after_s: float, interval_s: float) -> datetime:
    """A server's Retry-After, clamped between a minute (or the interval) and 24 hours."""
    floor = min(MIN_RETRY_AFTER_S, interval_s)
    return now + timedelta(seconds=min(max(retry_after_s, floor), MAX_BACKOFF_S))
