"""Makes docs/digest.png: a real `newswatch demo` digest, as headless Chromium shows it at 600 px.

Run from the repository: `PYTHONPATH=. python bench/screenshot_digest.py [--out docs/digest.png]`.
The demo runs offline in a temporary folder (bundled sample feeds on 127.0.0.1, default rules);
the digest with the most highlighted words is taken, its HTML part laid out at 600 px wide, and
the whole page saved. Needs Chromium (`apt-get install chromium`). Never part of the tests.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.chromium import REPO, demo_digests, find_chromium, screenshot

WIDTH = 600


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "digest.png")
    args = parser.parse_args()
    chromium = find_chromium()
    if chromium is None:
        print("chromium is not installed: apt-get install chromium", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        digests = demo_digests(work / "demo")
        chosen = max(digests, key=lambda d: d.html.count("<mark "))
        page = work / "digest.html"
        page.write_text(chosen.html, encoding="utf-8")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        screenshot(chromium, page, args.out, width=WIDTH, work=work)
    print(f"{args.out}: {chosen.subject} ({WIDTH} px wide, {args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
