"""Feed health: "network down" versus a failing feed, silent feeds, and the words status shows.

Policy (README material):
- A failing feed is never given up on: it backs off exponentially from its interval up to 24 h
  (pipeline.backoff) and is retried for ever; its error streak shows in `status`. Only a 410
  disables a feed.
- When every fetch of a batch failed to connect, on at least 3 different hosts, the network is
  down, not the feeds: no feed's error streak grows, each is retried in 5 minutes (or its interval
  if shorter), and status and the log say "network down".
- A feed that publishes nothing for much longer than usual is "silent": no new article for 4× its
  usual gap between articles, and at least a day. The usual gap is the median of the gaps between
  its last 20 articles' dates.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from datetime import datetime, timedelta

import httpx

from pipeline.fetch import FetchResult
from storage.models import Feed

NETWORK_DOWN = "network down"
NETWORK_RETRY_S = 300.0
MIN_HOSTS_FOR_NETWORK_DOWN = 3
SILENT_PREFIX = "silent:"
SILENT_FACTOR = 4
SILENT_MIN = timedelta(days=1)
CADENCE_SAMPLE = 20  # the last articles whose dates give a feed's usual gap
_MIN_GAPS = 4
_UNREACHABLE = ("connection refused", "connect timed out", "connection failed")


def is_unreachable(result: FetchResult) -> bool:
    """No HTTP answer because nothing could be connected to (refused, timed out, no route, DNS)."""
    return result.status is None and (result.error or "").startswith(_UNREACHABLE)


def network_down(results: Sequence[FetchResult]) -> str | None:
    """A "network down: …" message when no fetch could connect, on 3 hosts or more; else None."""
    hosts = {_host(r.url) for r in results}
    if len(hosts) < MIN_HOSTS_FOR_NETWORK_DOWN or not all(map(is_unreachable, results)):
        return None
    reasons = sorted({r.error or "" for r in results})
    return (
        f"{NETWORK_DOWN}: none of {len(results)} feeds on {len(hosts)} hosts could be reached "
        f"({'; '.join(reasons)})"
    )


def _host(url: str) -> str:
    try:
        return (httpx.URL(url).host or "").lower()
    except httpx.InvalidURL:
        return url


def usual_gap(published: Sequence[datetime]) -> timedelta | None:
    """The median gap between consecutive article dates, or None with too few dated articles."""
    times = sorted(set(published))
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    if len(gaps) < _MIN_GAPS:
        return None
    return timedelta(seconds=statistics.median(gaps))


def silence_warning(published: Sequence[datetime], now: datetime) -> str | None:
    """'silent: no new article for 5 days, usually every 6 h' when the feed went quiet."""
    gap = usual_gap(published)
    if gap is None or not published:
        return None
    quiet = now - max(published)
    if quiet < max(gap * SILENT_FACTOR, SILENT_MIN):
        return None
    return f"{SILENT_PREFIX} no new article for {human_duration(quiet)}, usually every " + (
        human_duration(gap)
    )


def human_duration(span: timedelta) -> str:
    """'5 days', '1 day', '6 h', '45 min', '30 s'."""
    seconds = span.total_seconds()
    if seconds >= 2 * 86400:
        return f"{round(seconds / 86400)} days"
    if seconds >= 86400 and round(seconds / 3600) == 24:
        return "1 day"
    if seconds >= 3600:
        return f"{round(seconds / 3600)} h"
    if seconds >= 60:
        return f"{round(seconds / 60)} min"
    return f"{round(seconds)} s"


def feed_health(feed: Feed) -> str:
    """ok | new | warning | silent | failing | network-down | disabled | removed."""
    if not feed.in_config:
        return "removed"
    if not feed.enabled:
        return "disabled"
    if feed.hold_reason == NETWORK_DOWN:
        return "network-down"
    if feed.error_count:
        return "failing"
    if feed.last_fetch_at is None:
        return "new"
    if feed.last_warning and feed.last_warning.startswith(SILENT_PREFIX):
        return "silent"
    return "warning" if feed.last_warning else "ok"


def feed_message(feed: Feed) -> str | None:
    """One line saying what is wrong with the feed and what happens next (None when ok)."""
    health = feed_health(feed)
    when = _when(feed.next_fetch_at)
    if health == "disabled":
        return f"disabled since {_when(feed.disabled_at)}: {feed.disabled_reason}; no more requests"
    if health == "network-down":
        return (
            f"network down at {_when(feed.last_fetch_at)} (no host answered); not counted "
            f"against this feed; next attempt {when}"
        )
    if health == "failing":
        count = "1 failure" if feed.error_count == 1 else f"{feed.error_count} failures in a row"
        hold = f" ({feed.hold_reason})" if feed.hold_reason else ""
        return f"{count}: {feed.last_error}; next attempt {when}{hold}"
    if health in ("silent", "warning"):
        return feed.last_warning
    return None


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "never"
