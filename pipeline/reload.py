"""Hot reload: rule, place and config files are watched; a save takes effect without a restart.

A broken save never replaces what runs: `Service.reload_rules` keeps the last good version of a
failing file, and an invalid config.toml leaves the running feeds as they are.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from watchfiles import watch

from storage.errors import NewswatchError

logger = logging.getLogger(__name__)

DEBOUNCE_MS = 400  # an editor's truncate-then-write arrives as one batch


def watch_files(
    paths: list[Path],
    on_change: Callable[[set[Path]], None],
    *,
    stop: threading.Event,
    debounce_ms: int = DEBOUNCE_MS,
) -> threading.Thread:
    """Calls `on_change` with the changed paths after each debounced batch, in a thread."""
    existing = [p for p in paths if p.exists()]

    def loop() -> None:
        for changes in watch(
            *existing, stop_event=stop, debounce=debounce_ms, step=50, raise_interrupt=False
        ):
            changed = {Path(path) for _, path in changes}
            try:
                on_change(changed)
            except NewswatchError as exc:
                logger.error("reload failed: %s", exc)

    thread = threading.Thread(target=loop, name="reload", daemon=True)
    thread.start()
    return thread
