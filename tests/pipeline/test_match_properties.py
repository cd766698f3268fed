"""Properties of the matcher: invisible characters and case never lose a match; neutral text
around a text never creates one; offsets always give back the matched words."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.match import CompiledRules, Hit, compile_rules
from pipeline.normalize import normalize_words
from pipeline.ruletypes import Place, Rule, Selection


def _place(
    place_id: str,
    names: dict[str, tuple[str, ...]],
    *,
    ambiguous: bool = False,
    context: tuple[str, ...] = (),
) -> Place:
    return Place(
        id=place_id,
        kind="district",
        country="AF",
        region="test",
        coords=(37.0, 71.0),
        groups=("badakhshan-af", "border-region"),
        names=names,
        ambiguous=ambiguous,
        context=context,
    )


PLACES = (
    _place(
        "af-badakhshan",
        {"en": ("Badakhshan",), "ru": ("Бадахшан",), "tg": ("Бадахшон",), "fa": ("بدخشان",)},
    ),
    _place(
        "tj-khorog",
        {"en": ("Khorog",), "ru": ("Хорог",), "tg": ("Хоруғ",), "fa": ("خاروغ",)},
    ),
    _place(
        "af-jurm",
        {"en": ("Jurm",), "ru": ("Джурм",), "fa": ("جرم",)},
        ambiguous=True,
        context=("district", "уезд", "ولسوالی"),
    ),
    _place("river-panj", {"en": ("Panj",), "tg": ("Панҷ",), "fa": ("پنج",)}, ambiguous=True),
)
RULE = Rule(
    id="watch",
    title="watch",
    level="high",
    notify=(),
    digest="immediate",
    feeds=("*",),
    selections=(
        Selection("where", places=("border-region",)),
        Selection("violence", terms=("attack*", "border guard*", "обстрел", "ҳамла", "حمله")),
    ),
    condition="where and violence",
    version="1",
    path="rules/watch.yaml",
)
MATCHER: CompiledRules = compile_rules([RULE], PLACES)

MATCHING = (
    "Militants attacked border guards near Khorog.",
    "В Бадахшане обстрел у Хорога",
    "Ҳамла дар Хоруғ ва Бадахшон",
    "حمله در بدخشان‌ها و خاروغ",
    "حمله در ولسوالی جرم",
)
NOT_MATCHING = (
    "Clashes in Punjab and Panjshir, attack in Khorogsky",
    "پنج نفر در حمله کشته شدند",
    "Ҳамла дар Панҷшер",
    "обстреливать Бадахшанский хребет",
)
NEUTRAL = (
    "weather",
    "today",
    "is",
    "fine",
    "сегодня",
    "хорошая",
    "погода",
    "имрӯз",
    "ҳаво",
    "хуб",
    "امروز",
    "هوا",
    "خوب",
    "است",
    "2024",
    "۱۴۰۳",
)
SEPARATORS = (" ", ", ", ". ", " — ", "\n", " «", "» ", "، ", "؛ ", "-")
INVISIBLE = (
    "\u200b",  # zero-width space
    "\u200c",  # ZWNJ
    "\u200d",  # ZWJ
    "\u2060",  # word joiner
    "\ufeff",  # BOM
    "\u00ad",  # soft hyphen
    "\u200e",  # LRM
    "\u200f",  # RLM
    "\u0640",  # tatweel
    "\u0301",  # combining acute
    "\u0308",  # combining diaeresis
    "\u0306",  # combining breve
    "\u064e",  # fatha
    "\u0651",  # shadda
)


@st.composite
def perturbed(draw: st.DrawFn, text: str) -> str:
    """`text` with invisible characters inserted and the case of letters changed."""
    chars = list(text)
    for _ in range(draw(st.integers(0, 8))):
        chars.insert(draw(st.integers(0, len(chars))), draw(st.sampled_from(INVISIBLE)))
    flips = draw(st.lists(st.booleans(), min_size=len(chars), max_size=len(chars)))
    return "".join(c.swapcase() if flip else c for c, flip in zip(chars, flips, strict=True))


@st.composite
def neutral_text(draw: st.DrawFn) -> str:
    words = draw(st.lists(st.sampled_from(NEUTRAL), max_size=12))
    return "".join(word + draw(st.sampled_from(SEPARATORS)) for word in words)


def signature(hits: tuple[Hit, ...]) -> list[tuple[str, str | None, str, tuple[str, ...]]]:
    return sorted((h.selection, h.place, h.term, normalize_words(h.text)) for h in hits)


def match_hits(text: str) -> tuple[Hit, ...] | None:
    matches = MATCHER.match(text)
    if not matches:
        return None
    [match] = matches
    for hit in match.hits:
        assert text[hit.start : hit.end] == hit.text
        assert hit.start < hit.end
    return match.hits


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(MATCHING).flatmap(lambda text: st.tuples(st.just(text), perturbed(text))))
def test_invisible_characters_and_case_never_lose_a_match(pair: tuple[str, str]) -> None:
    text, changed = pair
    expected = match_hits(text)
    assert expected is not None
    got = match_hits(changed)
    assert got is not None, changed
    assert signature(got) == signature(expected)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(MATCHING), neutral_text(), neutral_text())
def test_neutral_text_around_a_match_keeps_it(text: str, before: str, after: str) -> None:
    expected = match_hits(text)
    assert expected is not None
    got = match_hits(f"{before} {text} {after}")
    assert got is not None
    assert signature(got) == signature(expected)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(NOT_MATCHING).flatmap(perturbed),
    neutral_text(),
    neutral_text(),
)
def test_neutral_text_around_a_non_match_never_creates_one(
    text: str, before: str, after: str
) -> None:
    assert MATCHER.match(f"{before} {text} {after}") == []
    assert MATCHER.match(f"{before}{after}") == []
