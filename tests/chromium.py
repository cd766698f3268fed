"""Headless Chromium for the HTML digest: a real demo digest, its layout measured, a screenshot.

Used by tests/notifications/test_chromium.py and bench/screenshot_digest.py (which makes
docs/digest.png). Chromium only ever opens file:// pages here; every host name resolves to
nothing, so a page could not reach the network even if it tried.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.cli import main

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_NAMES = ("chromium", "chromium-browser")
TIMEOUT_S = 60

# Runs after layout, before anything is added to the page: the page's width, its background,
# and each <mark>'s box, its colours and the colour behind it (the nearest painted ancestor).
PROBE = """<script>
(function () {
  function painted(el) {
    for (; el; el = el.parentElement) {
      var bg = getComputedStyle(el).backgroundColor;
      if (bg && bg !== "rgba(0, 0, 0, 0)" && bg !== "transparent") return bg;
    }
    return "rgb(255, 255, 255)";
  }
  var root = document.documentElement;
  var marks = Array.prototype.map.call(document.querySelectorAll("mark"), function (m) {
    var box = m.getBoundingClientRect(), style = getComputedStyle(m);
    return {text: m.textContent, left: box.left, right: box.right, width: box.width,
            height: box.height, color: style.color, background: style.backgroundColor,
            behind: painted(m.parentElement), visibility: style.visibility,
            opacity: style.opacity};
  });
  var result = {scrollWidth: root.scrollWidth, clientWidth: root.clientWidth,
                innerWidth: window.innerWidth, scrollHeight: root.scrollHeight,
                page: painted(document.body), marks: marks};
  var out = document.createElement("script");
  out.type = "application/json";
  out.id = "probe";
  out.textContent = JSON.stringify(result).replace(/</g, "\\\\u003c");
  document.body.appendChild(out);
})();
</script>"""
_PROBE_OUT = re.compile(r'<script type="application/json" id="probe">(.*?)</script>', re.S)


@dataclass(frozen=True, slots=True)
class DemoDigest:
    """One digest the demo wrote: its .eml file, subject and HTML part."""

    path: Path
    subject: str
    html: str


def find_chromium() -> str | None:
    return next((p for name in CHROMIUM_NAMES if (p := shutil.which(name))), None)


def demo_digests(folder: Path) -> list[DemoDigest]:
    """Runs `newswatch demo` (bundled samples, default rules) into `folder`; its digests."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.toml"
    config.write_text(
        (REPO / "config.toml")
        .read_text(encoding="utf-8")
        .replace('rules_dir = "rules"', f'rules_dir = "{REPO / "rules"}"'),
        encoding="utf-8",
    )
    if main(["demo", "--config", str(config)]) != 0:
        raise RuntimeError("newswatch demo failed")
    return [_read(path) for path in sorted((folder / "outbox").glob("*.eml"))]


def _read(path: Path) -> DemoDigest:
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    for part in msg.walk():
        if part.get_content_type() == "text/html":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            html = payload.decode(part.get_content_charset() or "utf-8")
            return DemoDigest(path, str(msg["Subject"]), html)
    raise AssertionError(f"{path}: no text/html part")


def chromium_command(chromium: str, profile: Path, width: int, height: int) -> list[str]:
    """Headless, sandbox off (root in CI), nothing that talks to the network."""
    return [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--hide-scrollbars",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
    ]


def measure(chromium: str, pages: list[Path], *, width: int, work: Path) -> list[dict[str, Any]]:
    """Lays out each HTML file at `width` px (in parallel) and returns what PROBE saw."""
    runs = []
    for n, page in enumerate(pages):
        probed = work / f"probe-{n}.html"
        probed.write_text(_with_probe(page.read_text(encoding="utf-8")), encoding="utf-8")
        command = chromium_command(chromium, work / f"profile-{n}", width, 1000)
        command += ["--virtual-time-budget=5000", "--dump-dom", probed.as_uri()]
        runs.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    return [_probe_result(run) for run in runs]


def _with_probe(html: str) -> str:
    at = html.rfind("</body>")
    assert at >= 0, "the digest HTML has no </body>"
    return html[:at] + PROBE + html[at:]


def _probe_result(run: subprocess.Popen[bytes]) -> dict[str, Any]:
    out, err = run.communicate(timeout=TIMEOUT_S)
    if run.returncode != 0:
        raise RuntimeError(f"chromium exited {run.returncode}: {err.decode(errors='replace')}")
    found = _PROBE_OUT.search(out.decode("utf-8"))
    if found is None:
        raise RuntimeError("chromium's DOM has no probe result: did the script run?")
    result: dict[str, Any] = json.loads(found[1])  # script text is serialised unescaped
    return result


def screenshot(chromium: str, page: Path, png: Path, *, width: int, work: Path) -> None:
    """A PNG of the whole page at `width` px: measured first, so no blank band is left below."""
    [seen] = measure(chromium, [page], width=width, work=work)
    height = int(seen["scrollHeight"])
    command = chromium_command(chromium, work / "profile-shot", width, height)
    command += [f"--screenshot={png}", page.as_uri()]
    done = subprocess.run(command, capture_output=True, timeout=TIMEOUT_S, check=False)
    if done.returncode != 0 or not png.is_file():
        raise RuntimeError(f"chromium screenshot failed: {done.stderr.decode(errors='replace')}")
