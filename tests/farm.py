"""A loopback feed farm: thousands of generated RSS feeds on one asyncio HTTP server.

`/feed/<i>.xml` serves feed i with `entries` items (ETag, 304 on If-None-Match, keep-alive). Every
`match_every`-th feed carries one item about gunfire near the farm's own place, so a rule has
something to match. The farm counts requests per feed, logs when each came, and can hold every
request at a gate until it is opened (to catch a worker mid-fetch). Used by tests/test_workers.py
and bench/scale.py.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

PLACE = "Zarafshonabad"  # the farm's own place: no real feed mentions it
MATCH_TITLE = f"Gunfire reported near {PLACE}"
_WORDS = (
    *("river", "valley", "border", "district", "road", "bridge", "market", "village", "water"),
    *("council", "harvest", "school", "clinic", "convoy", "weather", "snow", "pass", "traders"),
    *("wheat", "flour", "prices", "electricity", "grid", "repairs", "officials", "residents"),
    *("announced", "reported", "yesterday", "morning", "evening", "province", "governor"),
    *("season", "crossing", "trucks", "customs", "mountain", "spring", "flood", "power"),
    *("station", "teachers", "students"),
)


def _paragraphs(count: int, words: int) -> tuple[str, ...]:
    rng = random.Random(8)  # filler text, not a secret
    return tuple(
        " ".join(rng.choice(_WORDS) for _ in range(words)).capitalize() + "." for _ in range(count)
    )


@dataclass
class FeedFarm:
    """Generated feeds; `hits[i]` counts requests for feed i, `log` holds (time, i) per request."""

    feeds: int
    entries: int = 5
    match_every: int = 10
    words: int = 90
    version: str = "1"  # change it to make every feed's ETag and items new
    host: str = "127.0.0.1"
    port: int = 0
    hits: Counter[int] = field(default_factory=Counter)
    not_modified: Counter[int] = field(default_factory=Counter)
    log: list[tuple[float, int]] = field(default_factory=list)
    paragraphs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.paragraphs = _paragraphs(97, self.words)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gate: asyncio.Event | None = None
        self._gate_open = True
        self._stopped: asyncio.Event | None = None
        self._ready = threading.Event()

    # --- what it serves ------------------------------------------------------------------

    def url(self, index: int) -> str:
        return f"http://{self.host}:{self.port}/feed/{index}.xml"

    def is_matching(self, index: int) -> bool:
        return self.match_every > 0 and index % self.match_every == 0

    def etag(self, index: int) -> str:
        return f'"{index}-{self.version}"'

    def body(self, index: int) -> bytes:
        items = []
        for j in range(self.entries):
            title = f"Report {index}-{j} ({self.version}) from the valley"
            text = self.paragraphs[(index * 31 + j) % len(self.paragraphs)]
            if j == 0 and self.is_matching(index):
                title, text = MATCH_TITLE, f"{MATCH_TITLE}: border guards said. {text}"
            day, hour = 1 + j // 24 % 28, j % 24
            items.append(
                f"<item><title>{title}</title>"
                f"<link>http://example.org/farm/{index}/{self.version}/{j}</link>"
                f"<guid>farm-{index}-{self.version}-{j}</guid>"
                f"<pubDate>Sun, {day:02d} Nov 2026 {hour:02d}:00:00 +0000</pubDate>"
                f"<description>{text}</description></item>"
            )
        return (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Farm feed {index}</title><link>http://example.org/farm/{index}</link>"
            f"<description>Generated</description><language>en</language>{''.join(items)}"
            "</channel></rss>"
        ).encode()

    # --- control -------------------------------------------------------------------------

    def close_gate(self) -> None:
        """Requests are counted, then held unanswered until `open_gate`."""
        self._gate_open = False
        if self._loop and self._gate:
            self._loop.call_soon_threadsafe(self._gate.clear)

    def open_gate(self) -> None:
        self._gate_open = True
        if self._loop and self._gate:
            self._loop.call_soon_threadsafe(self._gate.set)

    def total_hits(self) -> int:
        with self._lock:
            return sum(self.hits.values())

    def hits_since(self, since: float) -> Counter[int]:
        with self._lock:
            return Counter(i for at, i in self.log if at >= since)

    # --- the server ----------------------------------------------------------------------

    def _respond(self, path: str, if_none_match: str | None) -> bytes:
        index = _feed_index(path)
        if index is None or index >= self.feeds:
            return _response(404, b"not found\n", "text/plain")
        with self._lock:
            self.hits[index] += 1
            self.log.append((time.time(), index))  # wall time: compared with lease times
            if if_none_match == self.etag(index):
                self.not_modified[index] += 1
                return _response(304, b"", None, self.etag(index))
        return _response(200, self.body(index), "application/rss+xml", self.etag(index))

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._gate is not None
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else "/"
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                response = self._respond(path, headers.get("if-none-match"))
                await self._gate.wait()
                writer.write(response)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    return
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return
        finally:
            writer.close()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._gate, self._stopped = asyncio.Event(), asyncio.Event()
        if self._gate_open:
            self._gate.set()
        server = await asyncio.start_server(self._handle, self.host, self.port, backlog=1024)
        self.port = int(server.sockets[0].getsockname()[1])
        self._ready.set()
        async with server:
            await self._stopped.wait()
        self._gate.set()

    @contextmanager
    def running(self) -> Iterator[FeedFarm]:
        thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)
        thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the feed farm did not start")
        try:
            yield self
        finally:
            assert self._loop is not None and self._stopped is not None
            self._loop.call_soon_threadsafe(self._stopped.set)
            thread.join(30)


def _feed_index(path: str) -> int | None:
    if not (path.startswith("/feed/") and path.endswith(".xml")):
        return None
    number = path[len("/feed/") : -len(".xml")]
    return int(number) if number.isdigit() else None


def _response(status: int, body: bytes, content_type: str | None, etag: str | None = None) -> bytes:
    reason = {200: "OK", 304: "Not Modified", 404: "Not Found"}[status]
    head = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}"]
    if content_type:
        head.append(f"Content-Type: {content_type}; charset=utf-8")
    if etag:
        head.append(f"ETag: {etag}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def farm_config(
    farm: FeedFarm,
    *,
    database_url: str,
    rules_dir: str,
    smtp_port: int | None = None,
    lease: str = "10s",
    concurrency: int = 16,
    interval: str = "1h",
) -> str:
    """A config.toml for workers polling every feed of the farm, mailing to a loopback SMTP."""
    feeds = "".join(
        f'[[feeds]]\nname = "farm-{i}"\nurl = "{farm.url(i)}"\n\n' for i in range(farm.feeds)
    )
    notifier = (
        f'[notifiers.x]\ntype = "email"\nsmtp_host = "127.0.0.1"\nsmtp_port = {smtp_port}\n'
        'security = "none"\nto = ["analyst@example.org"]\nfrom = "newswatch@example.org"\n'
        if smtp_port
        else '[notifiers.x]\ntype = "outbox"\nto = ["analyst@example.org"]\n'
    )
    return (
        f'timezone = "UTC"\nrules_dir = "{rules_dir}"\noutbox_dir = "outbox"\n\n'
        f'[database]\nurl = "{database_url}"\n\n'
        f'[fetch]\ntimeout = "20s"\nper_host = {concurrency}\nconcurrency = {concurrency}\n'
        f'interval = "{interval}"\nlease = "{lease}"\n\n{notifier}\n{feeds}'
    )


RULE = """id: farm-watch
title: Gunfire near the farm's place
level: high
notify: [x]
digest: immediate
feeds: ["*"]
detection:
  place:
    places: [farm-place]
  violence:
    terms: [gunfire]
  condition: place and violence
"""

PLACES = f"""- id: farm-place
  kind: town
  country: TJ
  region: Farm
  coords: [38.0, 70.0]
  groups: [gbao, border-region]
  names:
    en: [{PLACE}]
    ru: [Зарафшонабад]
    fa: [زرافشان‌آباد]
  source: [test]
"""


def write_rules(folder: Path) -> None:
    """A rules dir with one rule matching the farm's gunfire items and a one-place gazetteer."""
    root = Path(folder)
    (root / "places").mkdir(parents=True, exist_ok=True)
    (root / "farm-watch.yaml").write_text(RULE, encoding="utf-8")
    (root / "places" / "farm.yaml").write_text(PLACES, encoding="utf-8")
