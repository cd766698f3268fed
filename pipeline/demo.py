"""The offline demo: the bundled sample feeds served from a loopback HTTP server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pipeline.config import FeedConfig

SAMPLES_DIR = Path(__file__).with_name("samples")
_LANGUAGES = ("en", "ru", "tg", "fa")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Keeps the demo's output to what the user asked for."""


@contextmanager
def serve_directory(folder: Path) -> Iterator[str]:
    """Serves `folder` on 127.0.0.1 on a free port; yields the base URL."""
    handler = partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="demo-feeds", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def sample_feeds(base_url: str) -> tuple[FeedConfig, ...]:
    """One feed per bundled sample file, named after it (sample-en.rss → sample-en)."""
    feeds = []
    for path in sorted(SAMPLES_DIR.iterdir()):
        if path.suffix not in (".rss", ".atom", ".xml", ".json"):
            continue
        language = next((lang for lang in _LANGUAGES if path.stem.endswith(lang)), None)
        feeds.append(
            FeedConfig(
                name=path.stem,
                url=f"{base_url}/{path.name}",
                tags=("sample", *((language,) if language else ())),
                language=language,
            )
        )
    return tuple(feeds)
