"""The lease keeper renews from a thread while a cycle runs, survives failures, stops on exit."""

from __future__ import annotations

import threading

import pytest

from pipeline.leases import LeaseKeeper
from storage.errors import StorageError


def test_renews_repeatedly_survives_a_failure_and_stops_with_the_block(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []
    enough = threading.Event()

    def renew() -> None:
        calls.append(len(calls))
        if len(calls) == 2:
            raise StorageError("database busy (held by another process); will retry")
        if len(calls) == 3:
            raise RuntimeError("a bug")
        if len(calls) >= 5:
            enough.set()

    with LeaseKeeper(renew, interval_s=0.01) as keeper:
        assert enough.wait(30)
    stopped_at = len(calls)
    assert not keeper._thread.is_alive()
    assert len(calls) == stopped_at >= 5
    failures = [(r.levelname, r.getMessage(), bool(r.exc_info)) for r in caplog.records]
    assert failures[:2] == [
        (
            "WARNING",
            "lease renewal failed: database busy (held by another process); will retry;"
            " retrying in 0 s",
            False,
        ),
        ("ERROR", "lease renewal failed; retrying in 0 s", True),
    ]
