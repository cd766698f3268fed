"""The one way the CLI writes what the user reads: text and JSON to stdout."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO


def out(text: str = "", *, stream: TextIO | None = None) -> None:
    """Writes one line of user-facing output."""
    target = stream or sys.stdout
    target.write(text + "\n")
    target.flush()


def out_json(value: Any) -> None:
    """Writes a JSON document (stable keys, UTF-8 kept readable)."""
    out(json.dumps(value, ensure_ascii=False, indent=2, sort_keys=False, default=str))


def err(text: str) -> None:
    out(text, stream=sys.stderr)
