"""When to fetch a feed next: its interval, Retry-After, or exponential backoff after failures.

Every delay is capped at 24 hours (Miniflux's maximum interval), jitter included; a feed is
never given up on (RELIABILITY N5).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

MAX_BACKOFF_S = 24 * 3600.0
MIN_RETRY_AFTER_S = 60.0


def next_after_success(now: datetime, interval_s: float, rng: random.Random) -> datetime:
    """The next regular fetch, with ±5 % jitter so feeds of one host spread out."""
    return now + timedelta(seconds=min(interval_s * rng.uniform(0.95, 1.05), MAX_BACKOFF_S))


def failure_delay_s(interval_s: float, error_count: int, rng: random.Random) -> float:
    """Exponential backoff from the feed's interval: 1×, 2×, 4×… (±10 %), at most 24 hours.

    `error_count` counts this failure too.
    """
    factor = 2.0 ** max(0, min(error_count - 1, 20))
    return min(interval_s * factor * rng.uniform(0.9, 1.1), MAX_BACKOFF_S)


def next_after_failure(
    now: datetime, interval_s: float, error_count: int, rng: random.Random
) -> datetime:
    """The next attempt after a failure (see `failure_delay_s`)."""
    return now + timedelta(seconds=failure_delay_s(interval_s, error_count, rng))


def next_after_retry_after(
    now: datetime,
    retry_after_s: float,
    interval_s: float,
    *,
    error_count: int = 1,
    rng: random.Random | None = None,
) -> datetime:
    """A server's Retry-After, clamped between a minute (or the interval) and 24 hours.

    Never sooner than the failure backoff either: a server asking for 2 minutes does not make a
    feed that has failed for a day come back every 2 minutes.
    """
    floor = min(MIN_RETRY_AFTER_S, interval_s)
    delay = min(max(retry_after_s, floor), MAX_BACKOFF_S)
    if rng is not None:
        delay = max(delay, failure_delay_s(interval_s, error_count, rng))
    return now + timedelta(seconds=delay)


def next_after_network_down(now: datetime, interval_s: float, retry_s: float) -> datetime:
    """Soon: the feed is not at fault, and its readers want it as soon as the network is back."""
    return now + timedelta(seconds=min(interval_s, retry_s))
