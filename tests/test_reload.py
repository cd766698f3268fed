"""Hot reload (issue 7, RELIABILITY R1/R2): the watcher, a real Service, and `newswatch run`.

Nothing here sleeps: every wait blocks on an event (a watcher callback, a log record, a line of
the service's stderr, a new file in the outbox) with a hard deadline.
"""

from __future__ import annotations

import email
import json
import logging
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from time import monotonic
from typing import IO, Any

import pytest
from watchfiles import watch

from pipeline.assemble import build_service
from pipeline.cli import main
from pipeline.config import load_config
from pipeline.reload import watch_files, watch_service
from pipeline.service import Service
from tests.conftest import FakeClock
from tests.loopback import Route, feed_server

REPO = Path(__file__).resolve().parents[1]
DEADLINE_S = 30.0

ALPHA = """\
id: alpha
title: Alpha watch
level: high
notify: [outbox]
digest: immediate
feeds: ["*"]
detection:
  words:
    terms: [avalanche]
  condition: words
"""
BETA = ALPHA.replace("alpha", "beta").replace("Alpha", "Beta").replace("avalanche", "flood")
BETA_V2 = BETA.replace("[flood]", "[flood, landslide]")
BROKEN = "id: beta\ntitle: [unclosed\n"
PLACE = """\
- id: tj-gbao-khorog
  kind: town
  country: TJ
  region: Gorno-Badakhshan
  coords: [37.49, 71.55]
  groups: [gbao, border-region]
  names: {en: [Khorog], ru: [Хорог]}
  source: [geonames]
"""


def _config_text(feed_url: str, *, interval: str = "15m", extra_feed: bool = False) -> str:
    feeds = f'[[feeds]]\nname = "news"\nurl = "{feed_url}"\ninterval = "{interval}"\n'
    if extra_feed:
        feeds += f'\n[[feeds]]\nname = "more"\nurl = "{feed_url}?more"\n'
    return (
        'rules_dir = "rules"\noutbox_dir = "outbox"\n[database]\nurl = "sqlite:///newswatch.db"\n'
        f'[fetch]\ntimeout = "5s"\n\n{feeds}\n'
        '[notifiers.outbox]\ntype = "outbox"\nto = ["analyst@example.org"]\n'
        'from = "newswatch@example.org"\n'
    )


def _save(path: Path, text: str, scratch: Path) -> None:
    """Saves as many editors do: a new file (here in an unwatched folder) renamed over the old."""
    scratch.mkdir(exist_ok=True)
    tmp = scratch / f"{path.name}.saving"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# -- watch_files ----------------------------------------------------------------------------------


class Batches:
    """Collects watcher callbacks; `next()` blocks for the next one that is not only a probe."""

    def __init__(self, probe: Path) -> None:
        self.probe = probe.resolve()
        self.queue: queue.Queue[set[Path]] = queue.Queue()

    def __call__(self, changed: set[Path]) -> None:
        self.queue.put(changed)

    def next(self) -> set[Path]:
        deadline = monotonic() + DEADLINE_S
        while (left := deadline - monotonic()) > 0:
            try:
                batch = self.queue.get(timeout=left)
            except queue.Empty:
                break
            if batch - {self.probe}:
                return batch
        raise AssertionError("the watcher reported nothing in time")

    def until_watching(self) -> None:
        """Writes the probe file until the watcher reports it: from then on the watch is set."""
        deadline = monotonic() + DEADLINE_S
        for count in range(1_000_000):
            self.probe.write_text(str(count), encoding="utf-8")
            try:
                if self.probe in self.queue.get(timeout=0.25):
                    return
            except queue.Empty:
                if monotonic() > deadline:
                    break
        raise AssertionError("the watcher never started")


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def test_saves_in_a_watched_folder_are_reported_and_other_files_are_not(
    tmp_path: Path, stop: threading.Event
) -> None:
    tmp_path = tmp_path.resolve()  # the watcher reports resolved paths
    rules = tmp_path / "rules"
    rules.mkdir()
    config = tmp_path / "config.toml"
    config.write_text("# config\n", encoding="utf-8")
    batches = Batches(rules / "probe.yaml")
    thread = watch_files([rules, config], batches, stop=stop, quiet_ms=50)
    batches.until_watching()

    # An editor's swap file and the database beside config.toml are not what is watched.
    (rules / ".alpha.yaml.swp").write_bytes(b"swap")
    (tmp_path / "newswatch.db").write_bytes(b"db")
    (rules / "alpha.yaml").write_text(ALPHA, encoding="utf-8")
    assert batches.next() == {rules / "alpha.yaml"}

    # A save that renames a new file over config.toml is seen, and so is the next one.
    _save(config, "# config, edited\n", tmp_path / "scratch")
    assert batches.next() == {config}
    config.write_text("# config, edited again\n", encoding="utf-8")
    assert batches.next() == {config}

    stop.set()
    thread.join(timeout=DEADLINE_S)
    assert not thread.is_alive()


def test_an_error_in_the_callback_is_logged_and_watching_goes_on(
    tmp_path: Path, stop: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    rules = tmp_path.resolve() / "rules"
    rules.mkdir()
    batches = Batches(rules / "probe.yaml")

    def on_change(changed: set[Path]) -> None:
        batches(changed)
        if rules / "bug.yaml" in changed:
            raise RuntimeError("a bug in the callback")

    watch_files([rules], on_change, stop=stop, quiet_ms=50)
    batches.until_watching()
    with caplog.at_level(logging.ERROR, logger="pipeline.reload"):
        (rules / "bug.yaml").write_text("x", encoding="utf-8")
        assert batches.next() == {rules / "bug.yaml"}
        (rules / "alpha.yaml").write_text(ALPHA, encoding="utf-8")
        assert batches.next() == {rules / "alpha.yaml"}
    assert "reload failed" in caplog.text and "a bug in the callback" in caplog.text


# -- watch_service on a real Service --------------------------------------------------------------


class ReloadLog(logging.Handler):
    """The records of pipeline.reload; `until(check)` re-checks after each one, to a deadline."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self.changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.changed:
            self.records.append(record)
            self.changed.notify_all()

    def until(self, check: Callable[[], bool], what: str) -> None:
        deadline = monotonic() + DEADLINE_S
        with self.changed:
            while not check():
                left = deadline - monotonic()
                if left <= 0:
                    seen = "\n".join(r.getMessage() for r in self.records)
                    raise AssertionError(f"not in time: {what}; reload log:\n{seen}")
                self.changed.wait(left)

    def count(self, text: str) -> int:
        return sum(text in r.getMessage() for r in self.records)


@pytest.fixture
def reload_log() -> Iterator[ReloadLog]:
    handler = ReloadLog()
    logger = logging.getLogger("pipeline.reload")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def service(tmp_path: Path, clock: FakeClock) -> Iterator[Service]:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "alpha.yaml").write_text(ALPHA, encoding="utf-8")
    (tmp_path / "config.toml").write_text(_config_text("http://127.0.0.1:9/feed"), "utf-8")
    built = build_service(load_config(tmp_path / "config.toml"), clock=clock)
    built.start()
    yield built
    built.db.dispose()


def _until_watching(service: Service, log: ReloadLog) -> None:
    """Saves alpha.yaml unchanged until a reload says so: from then on both watches are set."""
    alpha = service.config.rules_dir / "alpha.yaml"
    deadline = monotonic() + DEADLINE_S
    while not log.count("rules reloaded"):
        assert monotonic() < deadline, "the watcher never started"
        alpha.write_text(ALPHA, encoding="utf-8")
        with log.changed:
            log.changed.wait(0.25)


def test_the_service_takes_saved_rules_and_places_keeps_the_last_good_rule_and_takes_feeds(
    tmp_path: Path, service: Service, reload_log: ReloadLog, stop: threading.Event
) -> None:
    rules = tmp_path / "rules"
    watch_service(service, tmp_path / "config.toml", stop=stop, quiet_ms=50)
    _until_watching(service, reload_log)

    (rules / "beta.yaml").write_text(BETA, encoding="utf-8")
    reload_log.until(lambda: service.ruleset.rule("beta") is not None, "beta loaded")
    version = service.ruleset.rule("beta").version  # type: ignore[union-attr]

    # R1: a broken save keeps the last good beta running and reports the error.
    _save(rules / "beta.yaml", BROKEN, tmp_path / "scratch")
    reload_log.until(lambda: bool(service.ruleset.errors), "the error reported")
    assert [str(p) for p in service.ruleset.errors] == [
        "rules/beta.yaml:2:8: this [ is not closed — separate items with ',' and end them with ]"
    ]
    assert service.ruleset.rule("beta").version == version  # type: ignore[union-attr]

    # rules/places did not exist at start: once created, its files load too.
    (rules / "places").mkdir()
    (rules / "places" / "gbao.yaml").write_text(PLACE, encoding="utf-8")
    reload_log.until(
        lambda: [p.id for p in service.ruleset.places] == ["tj-gbao-khorog"], "the place loaded"
    )

    # config.toml: a new feed is taken; an invalid file leaves the running feeds as they are.
    config = tmp_path / "config.toml"
    _save(config, _config_text("http://127.0.0.1:9/feed", extra_feed=True), tmp_path / "scratch")
    reload_log.until(lambda: len(service.config.feeds) == 2, "the new feed taken")
    config.write_text("[[feeds]]\nname = 'broken\n", encoding="utf-8")
    reload_log.until(lambda: reload_log.count("config not reloaded") > 0, "the config error")
    assert [f.name for f in service.config.feeds] == ["news", "more"]


# -- `newswatch run` as a real process ------------------------------------------------------------


def _rss(items: list[tuple[str, str]]) -> bytes:
    entries = "".join(
        f"<item><guid>https://news.example.org/{slug}</guid><title>{title}</title>"
        f"<link>https://news.example.org/{slug}</link><description>{title}.</description></item>"
        for slug, title in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>News</title>'
        f"<link>https://news.example.org/</link>{entries}</channel></rss>"
    ).encode()


class StderrTail:
    """Reads the service's stderr in a thread; `wait_for` blocks until a line matches."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self.closed = False
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()
        with self.changed:
            self.closed = True
            self.changed.notify_all()

    def mark(self) -> int:
        with self.changed:
            return len(self.lines)

    def wait_for(self, pattern: str, since: int) -> int:
        deadline = monotonic() + DEADLINE_S
        with self.changed:
            while True:
                for index in range(since, len(self.lines)):
                    if re.search(pattern, self.lines[index]):
                        return index
                left = deadline - monotonic()
                if left <= 0 or self.closed:
                    raise AssertionError(f"no line matching {pattern!r}:\n{self.tail()}")
                self.changed.wait(left)

    def matching(self, pattern: str, since: int) -> list[str]:
        with self.changed:
            return [line for line in self.lines[since:] if re.search(pattern, line)]

    def tail(self) -> str:
        return "".join(self.lines[-60:])


def _digest_texts(outbox: Path) -> list[str]:
    texts = []
    for path in sorted(outbox.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes())
        for part in message.walk():
            if part.get_content_type() == "text/plain":
                payload = part.get_payload(decode=True)
                assert isinstance(payload, bytes)
                texts.append(payload.decode(part.get_content_charset() or "utf-8"))
    return texts


def _has_alert(outbox: Path, rule: str, slug: str) -> bool:
    link = f"https://news.example.org/{slug}"
    return any(f"rule {rule} " in t and link in t for t in _digest_texts(outbox))


def _wait_for_alert(outbox: Path, rule: str, slug: str, tail: StderrTail) -> None:
    """Blocks until a digest in the outbox holds `slug` under `rule` (re-checked on each change
    of the folder, and at least every quarter second), to a hard deadline."""
    if _has_alert(outbox, rule, slug):
        return
    deadline = monotonic() + DEADLINE_S
    done = threading.Event()
    for _changes in watch(
        outbox, stop_event=done, rust_timeout=250, yield_on_timeout=True, raise_interrupt=False
    ):
        if _has_alert(outbox, rule, slug):
            return
        if monotonic() > deadline:
            break
    raise AssertionError(f"no digest of rule {rule} with {slug}; service stderr:\n{tail.tail()}")


def _beta_problems(config: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert main(["status", "--json", "--config", str(config)]) == 0
    status = json.loads(capsys.readouterr().out)
    return [p for p in status["rules"]["problems"] if p["file"] == "rules/beta.yaml"]


def test_the_running_service_takes_rule_saves_and_keeps_the_last_good_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules, outbox = tmp_path / "rules", tmp_path / "outbox"
    (rules / "places").mkdir(parents=True)
    outbox.mkdir()
    (rules / "alpha.yaml").write_text(ALPHA, encoding="utf-8")
    items = [("a1", "Avalanche closes the Anzob pass")]
    with feed_server({"/feed.xml": Route(_rss(items))}) as server:
        config = tmp_path / "config.toml"
        config.write_text(_config_text(server.url("/feed.xml"), interval="1s"), "utf-8")

        def publish(slug: str, title: str) -> None:
            items.append((slug, title))
            server.routes["/feed.xml"] = Route(_rss(items))

        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "run", "--tick", "0.2", "--config", str(config)],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        assert process.stderr is not None
        tail = StderrTail(process.stderr)
        try:
            _wait_for_alert(outbox, "alpha", "a1", tail)

            # A new rule file: reloaded, then a new article alerts under it.
            mark = tail.mark()
            (rules / "beta.yaml").write_text(BETA, encoding="utf-8")
            tail.wait_for(r"rules reloaded rules=2 errors=0", mark)
            publish("b1", "Flood in the Vakhsh valley")
            _wait_for_alert(outbox, "beta", "b1", tail)

            # R1: a broken save keeps the last good beta alerting; status shows the error.
            mark = tail.mark()
            (rules / "beta.yaml").write_text(BROKEN, encoding="utf-8")
            tail.wait_for(r"rules reloaded rules=2 errors=1", mark)
            problems = _beta_problems(config, capsys)
            assert [(p["line"], p["col"], p["message"]) for p in problems] == [
                (2, 8, "this [ is not closed")
            ]
            publish("b2", "Second flood reaches Kulob")
            _wait_for_alert(outbox, "beta", "b2", tail)

            # R2: truncated and half written, then completed: the half file never replaces the
            # good rule; the complete one reloads once, with its new term, and no error lingers.
            cut = BETA_V2.index("landslide") + 4
            mark = tail.mark()
            with (rules / "beta.yaml").open("w", encoding="utf-8") as half:
                half.write(BETA_V2[:cut])
            tail.wait_for(r"rules reloaded rules=2 errors=1", mark)
            mark = tail.mark()
            with (rules / "beta.yaml").open("a", encoding="utf-8") as rest:
                rest.write(BETA_V2[cut:])
            tail.wait_for(r"rules reloaded rules=2 errors=0", mark)
            assert _beta_problems(config, capsys) == []
            publish("b3", "Landslide blocks the Pamir highway")
            _wait_for_alert(outbox, "beta", "b3", tail)
            assert len(tail.matching(r"rules reloaded", mark)) == 1
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=DEADLINE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise
            tail.thread.join(timeout=DEADLINE_S)
            process.stderr.close()
    assert code == 0, tail.tail()
    assert "Traceback" not in tail.tail()
