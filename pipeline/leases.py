"""Keeping a live worker's leases alive while a long cycle runs: a renewal thread per cycle."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType

from storage.errors import NewswatchError

logger = logging.getLogger(__name__)


class LeaseKeeper:
    """Calls `renew` every `interval_s` seconds from a thread for the life of the block.

    A worker renews its feed and digest leases (and heartbeat) at a third of the lease, so a
    cycle longer than the lease keeps its work, while a worker that dies stops renewing and its
    leases expire. A failed renewal is logged and tried again at the next interval.
    """

    def __init__(self, renew: Callable[[], object], *, interval_s: float) -> None:
        self.renew = renew
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.renew()
            except NewswatchError as exc:  # busy or unreachable database: the lease has 2/3 left
                logger.warning("lease renewal failed: %s; retrying in %.0f s", exc, self.interval_s)
            except Exception:
                logger.exception("lease renewal failed; retrying in %.0f s", self.interval_s)
