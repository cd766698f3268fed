"""APScheduler wiring for `newswatch run`: one cycle job on a short tick, a clean stop on signals.

Which feeds and digests are due is decided from the database on each tick (next_fetch_at per
feed, the rule's digest schedule), so a restart keeps every schedule.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler

from storage.errors import NewswatchError

logger = logging.getLogger(__name__)

TICK_S = 30.0


def run_forever(
    cycle: Callable[[], object],
    *,
    tick_s: float = TICK_S,
    stop: threading.Event | None = None,
    on_tick_error: Callable[[Exception], None] | None = None,
) -> None:
    """Runs `cycle` every `tick_s` seconds until SIGINT/SIGTERM or `stop` is set.

    A stop waits for the running cycle to finish its writes. One cycle runs at a time; missed
    ticks are coalesced into one.
    """
    stop = stop or threading.Event()

    def job() -> None:
        try:
            cycle()
        except NewswatchError as exc:  # shown in the log and status; the next tick retries
            logger.error("cycle failed: %s", exc)
            if on_tick_error:
                on_tick_error(exc)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("stopping signal=%d; finishing the current cycle", signum)
        stop.set()

    # "skipped: maximum number of running instances" is expected when a cycle outlasts a tick.
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_job(
        job,
        "interval",
        seconds=tick_s,
        id="cycle",
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),  # noqa: TID251 - the scheduler's own start time
    )
    scheduler.start()
    try:
        stop.wait()
    finally:
        scheduler.shutdown(wait=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
