"""Hot reload: rule, place and config files are watched; a save takes effect without a restart.

A broken save never replaces what runs: `Service.reload_rules` keeps the last good version of a
failing file, and an invalid config.toml leaves the running feeds as they are. Folders are
watched, never single files, so a file an editor saves by renaming a new one over it stays
watched; a batch of changes ends only after `quiet_ms` without a further change, so an editor's
truncate-then-write reloads once, with the whole file.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Protocol

from watchfiles import Change, watch

from pipeline.config import Config, load_config
from pipeline.ruletypes import RuleSet
from storage.errors import NewswatchError

logger = logging.getLogger(__name__)

QUIET_MS = 200  # a batch ends after this long without a change
DEBOUNCE_MS = 2000  # and after this long at most, however busy the folder
RESCAN_MS = 1000  # how often to look for watched folders that appeared or went


class Reloadable(Protocol):
    """What hot reload needs of a running service (pipeline.service.Service fits)."""

    @property
    def config(self) -> Config: ...

    def reload_rules(self) -> RuleSet: ...

    def reload_config(self, config: Config) -> None: ...


def watch_files(
    paths: Sequence[Path],
    on_change: Callable[[set[Path]], None],
    *,
    stop: threading.Event,
    debounce_ms: int = DEBOUNCE_MS,
    quiet_ms: int = QUIET_MS,
) -> threading.Thread:
    """Calls `on_change` with the changed paths after each quiet batch of changes, in a thread.

    A path is a file, or a folder whose direct entries count (hidden ones, such as editors' swap
    and lock files, do not). A path that does not exist yet counts from when it appears. An
    exception from `on_change` is logged and watching goes on. The thread ends once `stop` is set.
    """
    targets = frozenset(p.resolve() for p in paths)

    def accept(_change: Change, name: str) -> bool:
        path = Path(name)
        return path in targets or (path.parent in targets and not path.name.startswith("."))

    def loop() -> None:
        appeared: set[Path] = set()
        while not stop.is_set():
            folders = _folders(targets)
            if not folders:  # nothing to watch yet: look again a little later
                stop.wait(RESCAN_MS / 1000)
                continue
            try:
                for changes in watch(
                    *folders,
                    watch_filter=accept,
                    stop_event=stop,
                    debounce=debounce_ms,
                    step=quiet_ms,
                    rust_timeout=RESCAN_MS,
                    yield_on_timeout=True,
                    recursive=False,
                    raise_interrupt=False,
                ):
                    # A folder that appeared is reported again once it is watched: what was
                    # written into it before that raised no event here.
                    changed = {Path(name) for _, name in changes} | appeared
                    appeared = set()
                    if changed:
                        _call(on_change, changed)
                    if (now := _folders(targets)) != folders:
                        appeared = set(now) - set(folders)
                        break  # a watched folder appeared or went: watch the new set
            except OSError as exc:  # the watcher itself: e.g. a folder removed while watched
                logger.warning("watching %s failed: %s; retrying", _names(folders), exc)
                stop.wait(RESCAN_MS / 1000)

    thread = threading.Thread(target=loop, name="reload", daemon=True)
    thread.start()
    return thread


def _folders(targets: Collection[Path]) -> list[Path]:
    """The folders to watch: each target folder, and the folder of each target file."""
    found = {t if t.is_dir() else t.parent for t in targets}
    return sorted(f for f in found if f.is_dir())


def _names(paths: Collection[Path]) -> str:
    return ", ".join(str(p) for p in paths)


def _call(on_change: Callable[[set[Path]], None], changed: set[Path]) -> None:
    try:
        on_change(changed)
    except NewswatchError as exc:
        logger.error("reload failed: %s", exc)
    except Exception:  # a bug must not end hot reload for the life of the service
        logger.exception("reload failed changed=%s", _names(sorted(changed)))


def watch_service(
    service: Reloadable,
    config_path: Path,
    *,
    stop: threading.Event,
    debounce_ms: int = DEBOUNCE_MS,
    quiet_ms: int = QUIET_MS,
) -> list[threading.Thread]:
    """Reloads a running service's rules and places, and its config.toml, when they are saved.

    Two watchers: one on the rules folder and rules/places, one on config.toml (its folder also
    holds the database, whose writes must not delay a rule reload). Rules are reloaded after a
    config change too, since they name its feeds, tags and notifiers. One reload runs at a time,
    so the last one to finish is always the newest.
    """
    rules_dir = service.config.rules_dir
    config_path = config_path.resolve()
    one_at_a_time = threading.Lock()

    def rules_changed(changed: set[Path]) -> None:
        with one_at_a_time:
            _reload_rules(service, changed)

    def config_changed(_changed: set[Path]) -> None:
        with one_at_a_time:
            try:
                config = load_config(config_path)
            except NewswatchError as exc:
                logger.error("config not reloaded, the running feeds stay as they are: %s", exc)
                return
            service.reload_config(config)
            _reload_rules(service, {config_path})

    return [
        watch_files(
            [rules_dir, rules_dir / "places"],
            rules_changed,
            stop=stop,
            debounce_ms=debounce_ms,
            quiet_ms=quiet_ms,
        ),
        watch_files(
            [config_path], config_changed, stop=stop, debounce_ms=debounce_ms, quiet_ms=quiet_ms
        ),
    ]


def _reload_rules(service: Reloadable, changed: set[Path]) -> None:
    ruleset = service.reload_rules()
    logger.info(
        "rules reloaded rules=%d errors=%d changed=%s",
        len(ruleset.rules),
        len(ruleset.errors),
        _names(sorted(changed)),
    )
