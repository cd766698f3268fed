"""Parsing fetched feeds on every core: a process pool the service keeps, in-process for small work.

feedparser is most of a fresh feed's cost and holds the GIL (PERFORMANCE.md), so a cycle's bodies
are parsed in worker processes while the main process stores what is already parsed. The pool
is started on first use (a cycle of a few 304s never starts it) and kept for the life of the
service. Workers come from a fork server, so they inherit no threads, locks or database
connections from the service. A failure is a value: the FetchError message, never an exception.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime

from pipeline.errors import FetchError
from pipeline.parse import ParsedFeed, parse_feed

logger = logging.getLogger(__name__)

MIN_POOL_BYTES = 1_000_000  # below this a batch parses in-process (≈ 0.2 s of feedparser)
CRASHED = "the parser process stopped unexpectedly (out of memory?); will retry"

ParseOutcome = ParsedFeed | str  # str: why the body is not a usable feed


@dataclass(frozen=True, slots=True)
class ParseJob:
    """One fetched body to parse, with what `parse_feed` needs besides the bytes."""

    body: bytes
    headers: Mapping[str, str]
    url: str
    now: datetime
    language: str | None = None


def parse_job(job: ParseJob) -> ParseOutcome:
    """Parse one body; a refused or unreadable feed gives its message."""
    try:
        return parse_feed(
            job.body, headers=job.headers, url=job.url, now=job.now, language=job.language
        )
    except FetchError as exc:
        return exc.message
    except Exception as exc:  # a parser bug must cost one feed, not the cycle
        logger.exception("unexpected error while parsing url=%s", job.url)
        return f"unexpected error while parsing: {type(exc).__name__}"


class ParsedBatch:
    """The outcomes of one batch, in order: parsed ahead in the pool, or in-process as read.

    Iterate it once; `cancel` drops what the pool has not started.
    """

    def __init__(
        self,
        jobs: Sequence[ParseJob | None],
        futures: list[Future[ParseOutcome] | None] | None,
        pool: ParsePool,
    ) -> None:
        self._jobs = jobs if futures is None else ()  # sent to the pool: bodies not kept here
        self._futures = futures
        self._pool = pool

    def __iter__(self) -> Iterator[ParseOutcome | None]:
        if self._futures is None:
            yield from (None if j is None else parse_job(j) for j in self._jobs)
            return
        try:
            for future in self._futures:
                yield None if future is None else self._pool.result(future)
        finally:
            self.cancel()

    def cancel(self) -> None:
        for future in self._futures or ():
            if future is not None:
                future.cancel()


class ParsePool:
    """Parses batches of bodies on `workers` processes when a batch is worth it.

    `submit` may be called from another thread than the one reading the outcomes (the service
    submits from its fetch thread, so workers parse the next batch while this one is stored).
    """

    def __init__(self, workers: int | None = None, *, min_bytes: int = MIN_POOL_BYTES) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.min_bytes = min_bytes
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def submit(self, jobs: Sequence[ParseJob | None]) -> ParsedBatch:
        """Starts parsing `jobs` (on the pool when their bodies reach `min_bytes`)."""
        size = sum(len(j.body) for j in jobs if j is not None)
        futures = self._submit(jobs) if self.workers > 1 and size >= self.min_bytes else None
        return ParsedBatch(jobs, futures, self)

    def parse(self, jobs: Sequence[ParseJob | None]) -> Iterator[ParseOutcome | None]:
        """The outcome of each job, in order (None for None)."""
        return iter(self.submit(jobs))

    def _submit(self, jobs: Sequence[ParseJob | None]) -> list[Future[ParseOutcome] | None] | None:
        """The jobs' futures, or None when no pool can be started here (then: in-process)."""
        try:
            with self._lock:
                executor = self._executor()
                return [None if j is None else executor.submit(parse_job, j) for j in jobs]
        except OSError as exc:  # no /dev/shm, no fork server: this machine parses in-process
            logger.warning("parse pool unavailable (%s); parsing in-process from now on", exc)
            self.close()
            self.workers = 1
        except RuntimeError as exc:  # a broken or closed pool: in-process now, a new one next time
            logger.warning("parse pool unusable (%s); parsing this batch in-process", exc)
            self.close()
        return None

    def result(self, future: Future[ParseOutcome]) -> ParseOutcome:
        """A future's outcome; a worker that died (killed, out of memory) is a value too."""
        try:
            return future.result()
        except BrokenProcessPool:
            logger.error("a parser process stopped unexpectedly; starting new ones")
            self.close()
            return CRASHED

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["pipeline.parse"])
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context)
        return self._pool

    def worker_pids(self) -> list[int]:
        """The worker processes alive now (for measuring them)."""
        processes = getattr(self._pool, "_processes", None) or {}
        return list(processes)

    def close(self) -> None:
        """Stops the workers; the next large batch starts new ones."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
