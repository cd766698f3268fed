"""Benchmark of a whole fetch cycle over a feed farm on loopback: cold (200) and hot (304).

Run: `PYTHONPATH=. python bench/fetch.py [--feeds 2000]`. Prints figures; never part of the tests.

A farm process serves N generated RSS feeds of 50 items each (about 3 KB of news-site HTML per
item: a figure, paragraphs with links and emphasis, in English, Russian, Tajik and Persian, a few
about the border region so the shipped rules match), gzip when asked, with ETags, spread over 64
loopback addresses (127.0.1.1–127.0.1.64) so the per-host limit of 2 applies as on the internet.
The markup is as dense as in the real feeds of ../shared/data/feeds: feedparser's defaults read
both at about 4.5 MB/s. Each feed sets `language`, as the shipped config.toml does. Then:

1. cold: `Service.start()` and one `run_cycle()` (fetch, parse in the parse pool, store, match
   with the shipped rules, queue alerts, close digests and write them to the outbox): what
   `run --once` does;
2. the same decoded bytes parsed by `feedparser.parse` with its defaults alone, one core (the
   baseline of issue 5), and the ratio of entries/s;
3. hot: every feed due again; the farm answers 304 to each conditional GET.

Besides wall time it prints CPU seconds (this process, and the parse workers) per entry, which
other processes on the machine disturb less; and the peak RSS of this process and the workers.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import io
import logging
import multiprocessing
import os
import random
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.service import CycleReport, Service

REPO = Path(__file__).resolve().parents[1]
SEED = 20261205
ENTRIES = 50
HOSTS = 64
EPOCH = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)

_COMMON = {  # function words, as often as in news text; the rest are pseudo-words
    "en": "the of and to in a is that for on was with he it as at by from his an were are "
    "which this be has had not but its they after two new also people said",
    "ru": "и в не на что с по он как а то это к из у за о от так же для все мы было но "
    "сообщили заявил году время также после люди",
    "tg": "ва дар ба аз ки бо он ин барои то як ҳам буд шуд мегӯяд гуфт сол вақт пас одамон низ",
    "fa": "و در به از که را با این آن برای یک هم بود شد گفت سال وقت پس مردم نیز دیگر کرد",
}
_LETTERS = {
    "en": ("bcdfghklmnprstvwz", "aeiouy"),
    "ru": ("бвгджзклмнпрстфхцчшщ", "аеиоуыэюя"),
    "tg": ("бвгдзклмнпрстфхчшқҳҷғ", "аеиоуӣӯ"),
    "fa": ("بپتجچحخدذرزژسشصطعغفقکگلمنه", "اویآ"),
}


def _vocabulary(lang: str) -> list[str]:
    """Function words ×40 and 3,000 pseudo-words of 1–4 syllables of the language's script."""
    rng = random.Random(SEED)
    consonants, vowels = _LETTERS[lang]
    words: set[str] = set()
    while len(words) < 3000:
        syllables = [
            rng.choice(consonants)
            + rng.choice(vowels)
            + (rng.choice(consonants) * (rng.random() < 0.4))
            for _ in range(rng.randint(1, 4))
        ]
        words.add("".join(syllables))
    return _COMMON[lang].split() * 40 + sorted(words)


_WORDS = {lang: _vocabulary(lang) for lang in _COMMON}
_HOT = {  # a few sentences that the shipped rules match (place + event)
    "en": "Gunmen attacked a border post in Shughnon near Khorog on the Panj river.",
    "ru": "Боевики атаковали пограничную заставу в Шугнане у Хорога на реке Пяндж.",
    "tg": "Силоҳбадастон ба посгоҳи сарҳадӣ дар Шуғнон наздики Хоруғ ҳамла карданд.",
    "fa": "افراد مسلح به پاسگاه مرزی در شغنان نزدیک خاروغ در کنار رود پنج حمله کردند.",
}


# --- the feed farm ---------------------------------------------------------------------------


def feed_path(i: int) -> str:
    return f"/feeds/{i}.xml"


def feed_host(i: int) -> str:
    return f"127.0.1.{i % HOSTS + 1}"


def feed_language(i: int) -> str:
    return ("en", "ru", "tg", "fa")[i % 4]


def make_feed(i: int) -> bytes:
    """Feed `i`: 50 items, deterministic, about 150 KB (3 KB per item).

    Each description is news-site HTML: a figure with an image and caption, four paragraphs with
    links and emphasis, a "read more" link; as dense in markup as the real feeds in
    ../shared/data/feeds (feedparser's defaults read both at about 4.5 MB/s).
    """
    rng = random.Random(SEED * 100_003 + i)
    lang = feed_language(i)
    words = _WORDS[lang]
    site = f"https://news{i}.example.org"
    items = []
    for n in range(ENTRIES):
        title = " ".join(rng.choice(words) for _ in range(rng.randint(6, 12))).capitalize()
        html = [
            f'<figure><img src="{site}/img/{n}.jpg" width="640" height="360" alt="{title}"/>'
            f"<figcaption>{' '.join(rng.choice(words) for _ in range(8))}</figcaption></figure>"
        ]
        for _ in range(4):
            parts = [
                " ".join(rng.choice(words) for _ in range(rng.randint(6, 11))) for _ in "abcde"
            ]
            tag = f"{site}/tag/{rng.randint(1, 500)}"
            html.append(
                f'<p>{parts[0].capitalize()} <a href="{tag}">{parts[1]}</a> {parts[2]} '
                f"<em>{parts[3]}</em>, <strong>{rng.choice(words)}</strong> {parts[4]}.</p>"
            )
        if rng.random() < 0.03:
            html.insert(2, f"<p>{_HOT[lang]}</p>")
        html.append(f'<p><a href="{site}/{lang}/2026/{i}-{n}.html">Read more</a></p>')
        when = EPOCH - timedelta(minutes=37 * n + i % 60)
        link = f"{site}/{lang}/2026/{i}-{n}.html"
        if n % 5 == 0:
            link += "?utm_source=rss&amp;utm_medium=feed"
        items.append(
            "<item>"
            f"<title>{escape(title)}</title>"
            f"<link>{link}</link>"
            f'<guid isPermaLink="false">farm-{i}-{n}</guid>'
            f"<pubDate>{format_datetime(when)}</pubDate>"
            f"<description>{escape(''.join(html))}</description>"
            "</item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        f"<title>Farm feed {i}</title><link>{site}/</link>"
        f"<description>generated</description><language>{lang}</language>"
        + "".join(items)
        + "</channel></rss>"
    ).encode()


def serve_farm(count: int, ready: multiprocessing.connection.Connection) -> None:
    """The farm process: answers GET /feeds/N.xml (200 or 304) on 64 loopback addresses."""
    bodies = {feed_path(i): make_feed(i) for i in range(count)}
    zipped = {path: gzip.compress(body, 6) for path, body in bodies.items()}
    etags = {path: '"' + hashlib.sha1(body).hexdigest()[:16] + '"' for path, body in bodies.items()}
    stats = {"200": 0, "304": 0, "404": 0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1] if " " in lines[0] else "/"
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)
        }
        if path not in bodies:
            stats["404"] += 1
            writer.write(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
        elif headers.get("if-none-match") == etags[path]:
            stats["304"] += 1
            writer.write(
                f"HTTP/1.1 304 Not Modified\r\nETag: {etags[path]}\r\n"
                "Connection: close\r\n\r\n".encode()
            )
        else:
            stats["200"] += 1
            gz = "gzip" in headers.get("accept-encoding", "")
            body = zipped[path] if gz else bodies[path]
            writer.write(
                (
                    "HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml; charset=utf-8\r\n"
                    f"Content-Length: {len(body)}\r\nETag: {etags[path]}\r\n"
                    + ("Content-Encoding: gzip\r\n" if gz else "")
                    + "Connection: close\r\n\r\n"
                ).encode()
                + body
            )
        try:
            await writer.drain()
        finally:
            writer.close()

    async def main() -> None:
        first = await asyncio.start_server(handle, feed_host(0), 0, backlog=512)
        port = first.sockets[0].getsockname()[1]
        hosts = [feed_host(n) for n in range(1, HOSTS)]
        server = await asyncio.start_server(handle, hosts, port, backlog=512)
        ready.send(port)
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, ready.recv)
            if command == "stats":
                ready.send(dict(stats))
            else:
                break
        server.close()
        first.close()

    asyncio.run(main())


# --- measuring -------------------------------------------------------------------------------


def write_config(folder: Path, port: int, count: int) -> Path:
    feeds = "".join(
        f'[[feeds]]\nname = "farm-{i}"\nurl = "http://{feed_host(i)}:{port}{feed_path(i)}"\n'
        f'language = "{feed_language(i)}"\n\n'
        for i in range(count)
    )
    path = folder / "config.toml"
    path.write_text(
        f'rules_dir = "{REPO / "rules"}"\noutbox_dir = "outbox"\n'
        '[database]\nurl = "sqlite:///newswatch.db"\n'
        '[fetch]\ntimeout = "60s"\nper_host = 2\nconcurrency = 32\ninterval = "15m"\n\n'
        f"{feeds}"
        '[notifiers.outbox]\ntype = "outbox"\nto = ["analyst@localhost"]\n',
        encoding="utf-8",
    )
    return path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def workers_of(service: Service) -> list[int]:
    return service.parse_pool.worker_pids()


def proc_status_mb(pid: int, key: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def proc_cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def baseline(count: int, sample: int) -> tuple[float, float, int, int]:
    """feedparser.parse with defaults over the same decoded bytes.

    Returns (wall seconds, CPU seconds, entries, bytes).
    """
    import feedparser

    step = max(1, count // sample) if sample else 1
    wall = cpu = 0.0
    entries = size = 0
    for i in range(0, count, step):
        body = make_feed(i)
        t0, c0 = time.perf_counter(), time.process_time()
        entries += len(feedparser.parse(io.BytesIO(body)).entries)
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        size += len(body)
    return wall, cpu, entries, size


@dataclass
class Cycle:
    """One measured cycle: wall and CPU seconds (this process, and the parse workers)."""

    report: CycleReport
    wall_s: float
    main_cpu_s: float
    workers_cpu_s: float


def measure(service: Service, label: str) -> Cycle:
    before = sum(proc_cpu_s(p) for p in workers_of(service))
    t0, c0 = time.perf_counter(), time.process_time()
    report = service.run_cycle()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    workers = sum(proc_cpu_s(p) for p in workers_of(service)) - before
    print(f"  {label}: {wall:.2f} s")
    return Cycle(report, wall, cpu, workers)


def run(count: int, sample: int) -> None:
    from pipeline.assemble import build_service, wall_clock
    from pipeline.config import load_config

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    farm = ctx.Process(target=serve_farm, args=(count, child), daemon=True)
    farm.start()
    port = parent.recv()
    print(f"farm: {count} feeds × {ENTRIES} entries on {HOSTS} loopback hosts, port {port}")
    print(f"load average before: {os.getloadavg()[0]:.2f} (other processes skew every figure)")
    offset = timedelta(0)

    def clock() -> datetime:
        return wall_clock() + offset

    with tempfile.TemporaryDirectory(prefix="newswatch-bench-") as tmp:
        service = build_service(load_config(write_config(Path(tmp), port, count)), clock=clock)
        t0 = time.perf_counter()
        service.start()
        start_s = time.perf_counter() - t0
        cold = measure(service, "cold cycle")
        workers_mb = max((proc_status_mb(p, "VmHWM") for p in workers_of(service)), default=0)
        cold_rss = peak_rss_mb()
        parent.send("stats")
        served = parent.recv()
        print("  baseline: feedparser.parse(defaults) on the same bytes, one core")
        base_s, base_cpu, base_entries, base_bytes = baseline(count, sample)
        offset = timedelta(hours=1)  # every feed due again; the farm answers 304
        hot = measure(service, "hot cycle")
        parent.send("stats")
        served_hot = parent.recv()
        service.close()
    parent.send("stop")
    farm.join(5)
    base = (base_s, base_cpu, base_entries, base_bytes)
    report(count, start_s, cold, hot, served, served_hot, base)
    print(f"peak RSS: main process {peak_rss_mb():.0f} MB (after the cold cycle {cold_rss:.0f} MB)")
    print(f"          each parse worker at most {workers_mb:.0f} MB (target < 300 MB)")


def report(
    count: int,
    start_s: float,
    cold: Cycle,
    hot: Cycle,
    served: dict[str, int],
    served_hot: dict[str, int],
    base: tuple[float, float, int, int],
) -> None:
    base_s, base_cpu, base_entries, base_bytes = base
    entries = cold.report.new_articles
    cold_eps, base_eps = entries / cold.wall_s, base_entries / base_s
    cpu_per_entry = (cold.main_cpu_s + cold.workers_cpu_s) / entries * 1000
    base_cpu_per_entry = base_cpu / base_entries * 1000
    r = cold.report
    print()
    print(f"cores: {os.cpu_count()}, python {sys.version.split()[0]}")
    print(f"start: {start_s:.2f} s (migrate, sync {count} feeds, load the shipped rules)")
    print(
        f"cold cycle: {cold.wall_s:.2f} s, {count / cold.wall_s:.0f} feeds/s, "
        f"{cold_eps:.0f} entries/s (fetched {r.fetched}, failed {len(r.failed)}, new articles "
        f"{entries}, matches {r.matches}, alerts {r.alerts}, digests {len(r.digests)}; "
        f"farm answered {served['200']}×200)"
    )
    print(
        f"  CPU: {cold.main_cpu_s:.1f} s main process + {cold.workers_cpu_s:.1f} s parse workers "
        f"= {cpu_per_entry:.3f} ms per entry"
    )
    print(
        f"feedparser defaults: {base_s:.2f} s for {base_entries} entries "
        f"({base_bytes / 1e6:.1f} MB): {base_eps:.0f} entries/s, {base_bytes / 1e6 / base_s:.1f} "
        f"MB/s; CPU {base_cpu_per_entry:.3f} ms per entry"
    )
    print(f"ratio cold cycle / feedparser defaults, entries/s: {cold_eps / base_eps:.2f}× (≥ 1.5×)")
    print(
        f"  by CPU per entry: {base_cpu_per_entry / cpu_per_entry:.2f}× on one core, "
        f"{2 * base_cpu_per_entry / cpu_per_entry:.2f}× if two cores were fully ours"
    )
    print(
        f"hot cycle: {hot.wall_s:.2f} s, {count / hot.wall_s:.0f} feeds/s (not modified "
        f"{hot.report.not_modified}, failed {len(hot.report.failed)}; farm answered "
        f"{served_hot['304'] - served['304']}×304) (target < 10 s)"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=2000)
    parser.add_argument(
        "--baseline-sample",
        type=int,
        default=0,
        help="parse only this many feeds for the feedparser baseline (0: all of them)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    run(args.feeds, args.baseline_sample)


if __name__ == "__main__":
    main()
