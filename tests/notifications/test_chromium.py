"""The HTML part of real demo digests in headless Chromium: no horizontal overflow at 600 px,
and every highlighted word visible (a real box inside the page, a background of its own)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.chromium import demo_digests, find_chromium, measure

WIDTH = 600  # the width mail clients give a message; the template's card is at most this wide
_RGB = re.compile(r"rgba?\(([\d.]+), ([\d.]+), ([\d.]+)(?:, ([\d.]+))?\)")


FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))


@pytest.fixture
def chromium() -> str:
    found = find_chromium()
    if found is None:
        pytest.skip("chromium is not installed (apt-get install chromium): HTML not rendered")
    if not any(f.is_file() for d in FONT_DIRS if d.is_dir() for f in d.rglob("*.[ot]tf")):
        pytest.skip("no fonts installed (apt-get install fonts-dejavu-core): text has no shape")
    return found


def _rgb(css: str) -> tuple[float, float, float]:
    found = _RGB.fullmatch(css)
    assert found, f"not a computed colour: {css!r}"
    assert found[4] in (None, "1"), f"a translucent colour cannot be judged: {css!r}"
    return float(found[1]), float(found[2]), float(found[3])


def _contrast(a: str, b: str) -> float:
    """WCAG 2 contrast ratio of two computed colours."""

    def luminance(css: str) -> float:
        channels = [c / 255 for c in _rgb(css)]
        r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _problems(seen: dict[str, Any]) -> list[str]:
    """What a reader would miss: overflow, or highlights that are not visible as highlights."""
    found = []
    if seen["scrollWidth"] > WIDTH:
        found.append(f"scrolls sideways: {seen['scrollWidth']} px wide at {WIDTH} px")
    for mark in seen["marks"]:
        where = f"<mark>{mark['text']}</mark>"
        if mark["width"] <= 0 or mark["height"] <= 0:
            found.append(f"{where} has no size")
        if mark["left"] < 0 or mark["right"] > WIDTH:
            found.append(f"{where} is outside the page ({mark['left']:.0f}–{mark['right']:.0f})")
        if mark["visibility"] != "visible" or float(mark["opacity"]) < 1:
            found.append(f"{where} is hidden")
        if _rgb(mark["background"]) in (_rgb(mark["behind"]), _rgb(seen["page"])):
            found.append(f"{where} has no background of its own ({mark['background']})")
        if _contrast(mark["color"], mark["background"]) < 4.5:
            found.append(f"{where} text is hard to read on its background")
    return found


def test_demo_digests_fit_600px_and_show_every_highlighted_word(
    chromium: str, tmp_path: Path
) -> None:
    digests = demo_digests(tmp_path / "demo")
    assert len(digests) >= 2, "the demo writes one digest per immediate rule"
    pages = []
    for n, digest in enumerate(digests):
        pages.append(tmp_path / f"digest-{n}.html")
        pages[-1].write_text(digest.html, encoding="utf-8")
    # A control the probe must catch, so that a silent probe cannot pass the real pages.
    broken = digests[0].html.replace("background-color:#ffe58a;", "background-color:#ffffff;")
    broken = broken.replace("</body>", '<div style="width:900px">wide</div></body>')
    pages.append(tmp_path / "control.html")
    pages[-1].write_text(broken, encoding="utf-8")

    *real, control = measure(chromium, pages, width=WIDTH, work=tmp_path)

    for digest, seen in zip(digests, real, strict=True):
        assert seen["innerWidth"] == WIDTH
        assert len(seen["marks"]) == digest.html.count("<mark "), digest.subject
        assert seen["marks"], f"{digest.subject}: no highlighted word"
        assert _problems(seen) == [], digest.subject
    control_problems = _problems(control)
    assert f"scrolls sideways: {control['scrollWidth']} px wide at {WIDTH} px" in control_problems
    assert sum("no background of its own" in p for p in control_problems) == len(control["marks"])
