"""Normalisation: folds of case, diacritics and letter forms, tokens, offsets back to the text."""

from __future__ import annotations

import gzip
from pathlib import Path

import feedparser
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.normalize import _normalize_by_character, normalize_text, normalize_words

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def words(text: str) -> list[str]:
    return list(normalize_words(text))


def spans(text: str) -> list[str]:
    """The original text of every token, through the offset map."""
    normalized = normalize_text(text)
    tokens = normalized.tokens
    found = []
    pos = 1
    while pos < len(tokens):
        end = tokens.index(" ", pos)
        start, stop = normalized.original_span(pos, end)
        found.append(text[start:stop])
        pos = end + 1
    return found


def assert_tokens_map_back(text: str) -> None:
    """Each token's original span normalises to exactly that token."""
    tokens = normalize_text(text).tokens.split()
    originals = spans(text)
    assert len(originals) == len(tokens)
    for token, original in zip(tokens, originals, strict=True):
        assert words(original) == [token], (token, original)


# -- folds -----------------------------------------------------------------------------------


def test_ascii_is_lowered_and_split_on_punctuation() -> None:
    assert normalize_text("Militants ATTACKED, border_guards (Khorog)!").tokens == (
        " militants attacked border guards khorog "
    )
    assert normalize_text("").tokens == " "
    assert normalize_text(" ,;; ").tokens == " "


def test_cyrillic_case_and_short_i_and_yo() -> None:
    assert words("ЙОД Ёлка приём Чайка") == ["иод", "елка", "прием", "чаика"]


def test_tajik_letters_fold_to_russian_keyboard_forms() -> None:
    assert words("Панҷ Ҳисор Қалъаи Ғарм Хоруғ Рӯшон Ишкошимӣ") == [
        "панч",
        "хисор",
        "калъаи",
        "гарм",
        "хоруг",
        "рушон",
        "ишкошими",
    ]
    assert words("Панҷ") == words("Панч")


def test_persian_letter_variants_unify() -> None:
    assert words("علي") == words("علی")  # Arabic yeh
    assert words("موسى") == words("موسی")  # alef maksura
    assert words("كابل") == words("کابل")  # Arabic kaf
    assert words("ولاية") == words("ولایه")  # teh marbuta
    assert words("أفغانستان إيران آمو") == ["افغانستان", "ایران", "امو"]
    assert words("مسئول مؤسسه خانۀ") == ["مسیول", "موسسه", "خانه"]


def test_tatweel_zero_width_and_harakat_are_removed() -> None:
    assert words("بدخــــشان") == ["بدخشان"]
    assert words("بَدَخْشان") == ["بدخشان"]
    assert words("Bada\u200bkh\u00adshan\u2060") == ["badakhshan"]
    assert words("\ufeffБадах\u200dшан\u200f") == ["бадахшан"]


def test_zwnj_joins_the_two_halves_of_a_word() -> None:
    assert words("می‌شود") == words("میشود") == ["میشود"]
    assert words("بدخشان‌ها") == ["بدخشانها"]


def test_persian_and_arabic_digits_fold_to_ascii() -> None:
    assert words("۱۴۰۳ ٢٠٢٤ 2024") == ["1403", "2024", "2024"]


def test_latin_diacritics_and_compatibility_forms() -> None:
    assert words("Fayzābād Café NAÏVE") == ["fayzabad", "cafe", "naive"]
    assert words("ﬁeld Ｋｈｏｒｏｇ Straße") == ["field", "khorog", "strasse"]


def test_punctuation_of_every_language_separates_words() -> None:
    assert words("«Пяндж»—„Хорог“; 'Kabul' (Faizabad)") == [
        "пяндж",
        "хорог",
        "kabul",
        "faizabad",
    ]
    assert words("بدخشان،کابل؛هرات؟") == ["بدخشان", "کابل", "هرات"]
    assert words("5% $3 #tag @user a+b=c ½") == ["5", "3", "tag", "user", "a", "b", "c", "1", "2"]


def test_hyphenated_names_split_like_spaced_ones() -> None:
    assert words("Panji-Poyon") == words("Panji Poyon") == ["panji", "poyon"]
    assert words("Кальаи-Хумб") == ["кальаи", "хумб"]
    assert words("Бадахшон-ро") == ["бадахшон", "ро"]


def test_no_break_and_typographic_spaces() -> None:
    assert words("Хорог\u00a0—\u202fПяндж…№5") == ["хорог", "пяндж", "5"]


def test_lone_surrogates_do_not_break_normalisation() -> None:
    assert words("Khorog \udcff Пяндж") == ["khorog", "пяндж"]


# -- offsets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Clashes near Khorog, Panji-Poyon.", ["Clashes", "near", "Khorog", "Panji", "Poyon"]),
        ("В Бадахшане — «обстрел»", ["В", "Бадахшане", "обстрел"]),
        ("Дар Хоруғ ва Панҷ", ["Дар", "Хоруғ", "ва", "Панҷ"]),
        ("حمله در بدخشان‌ها ، ولسوالي جرم", ["حمله", "در", "بدخشان‌ها", "ولسوالي", "جرم"]),
        ("بدخـــشان و بَدَخْشانَ", ["بدخـــشان", "و", "بَدَخْشانَ"]),
        ("Ба\u200bдах\u0301шан Ёлка", ["Ба\u200bдах\u0301шан", "Ёлка"]),
        ("e\u0301te\u0301 ﬁeld Straße", ["e\u0301te\u0301", "ﬁeld", "Straße"]),
        ("  \n\t leading  and   trailing  \n", ["leading", "and", "trailing"]),
        ("한국어 뉴스: Khorog 공격", ["한국어", "뉴스", "Khorog", "공격"]),  # Hangul decomposes
    ],
)
def test_every_token_maps_back_to_its_original_word(text: str, expected: list[str]) -> None:
    assert spans(text) == expected
    assert_tokens_map_back(text)


def test_a_span_of_several_tokens_covers_the_words_between() -> None:
    text = "Border guards at  Panji-Poyon; «Нижний Пяндж»"
    normalized = normalize_text(text)
    start = normalized.tokens.index(" panji poyon ") + 1
    a, b = normalized.original_span(start, start + len("panji poyon"))
    assert text[a:b] == "Panji-Poyon"
    start = normalized.tokens.index(" нижнии пяндж ") + 1
    a, b = normalized.original_span(start, start + len("нижнии пяндж"))
    assert text[a:b] == "Нижний Пяндж"


# -- the fast path and the per-character path agree ------------------------------------------

ALPHABET = st.sampled_from(
    list("abcXYZ éÉüß ﬁ 12 ,.;-'«»—")
    + list("абвЙйЁёЖ ҳҷқғӣӯ")
    + list("بدخشانيىكةأإآؤئۀ۱٢")
    + ["\u200c", "\u200b", "\u0640", "\u0301", "\u064e", "\u00a0", "\u2026", "\u00ad"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(ALPHABET, max_size=40).map("".join))
def test_fast_path_and_per_character_path_give_the_same_tokens(text: str) -> None:
    assert normalize_text(text).tokens == _normalize_by_character(text).tokens
    assert_tokens_map_back(text)


# -- real feeds from ../shared/data ----------------------------------------------------------


def _feed_text(name: str) -> str:
    path = SHARED_DATA / "feeds" / name
    if not path.exists():
        pytest.skip(f"../shared/data not present: {path}")
    raw = path.read_bytes()
    if name.endswith(".gz"):
        raw = gzip.decompress(raw)
    parsed = feedparser.parse(raw)
    return "\n".join(f"{e.get('title', '')}\n{e.get('summary', '')}" for e in parsed.entries)


@pytest.mark.parametrize(
    "name",
    [
        "hoder-fa-2005.xml",
        "meduza-ru-2020-10.xml.gz",
        "suspilne-uk-2023-12.xml",
        "aktuality-sk-2021-01.rss",
        "lemonde-une-fr-2018-02.xml",
    ],
)
def test_real_feed_text_tokens_map_back(name: str) -> None:
    assert_tokens_map_back(_feed_text(name))


def test_real_persian_text_folds_arabic_yeh_and_zwnj() -> None:
    text = _feed_text("hoder-fa-2005.xml")
    assert "لينکدونی\u200c" in text  # Arabic yeh and a trailing ZWNJ, as published
    assert "لینکدونی" in normalize_words(text)
    assert "میکنند" in normalize_words(text)  # می‌کنند written with ZWNJ
