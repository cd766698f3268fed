"""Term patterns: modes per script and length, keys, and the checks of open patterns."""

from __future__ import annotations

import pytest

from pipeline.inflect import Mode, TermSyntaxError, compile_term, term_problem, word_pattern
from pipeline.normalize import normalize_text


def found(term: str, text: str, *, ambiguous: bool = False) -> list[str]:
    """The token-string matches of one term in a text, by the automaton's rule (key + verify)."""
    pattern = compile_term(term, ambiguous=ambiguous)
    tokens = normalize_text(text).tokens
    matches = []
    at = tokens.find(pattern.key)
    while at >= 0:
        key_end = at + len(pattern.key) - 1
        end = pattern.verify(tokens, key_end)
        if end >= 0:
            matches.append(tokens[at + 1 : end])
        at = tokens.find(pattern.key, at + 1)
    return matches


def test_keys_are_space_padded_whole_words_or_open_stems() -> None:
    assert compile_term("Panji-Poyon").key == " panji poyon "
    assert compile_term("border guard*").key == " border guard"
    assert compile_term("Бадахшан").key == " бадахшан"
    assert compile_term("Москва").key == " москв"
    assert compile_term("پنج").key == " پنج "
    assert compile_term("پنج").is_closed


def test_modes_by_script_and_length() -> None:
    assert word_pattern("khorog").mode is Mode.EXACT
    assert word_pattern("хорог").mode is Mode.INFLECT
    assert word_pattern("бадахшанская").stem == "бадахшанск"
    assert word_pattern("بدخشان").mode is Mode.INFLECT
    assert word_pattern("پنج").mode is Mode.EXACT  # three letters
    assert word_pattern("ванч").endings < word_pattern("хорог").endings  # four: few endings
    assert word_pattern("درواز", ambiguous=True).mode is Mode.EXACT
    assert word_pattern("пяндж", ambiguous=True).mode is Mode.INFLECT
    assert word_pattern("1403").mode is Mode.EXACT


@pytest.mark.parametrize(
    ("term", "text", "expected"),
    [
        (
            "Бадахшан",
            "в Бадахшане и Бадахшана, Бадахшанами",
            ["бадахшане", "бадахшана", "бадахшанами"],
        ),
        ("Хорог", "до Хорога, в Хороге, Хорогский район", ["хорога", "хороге"]),
        ("Москва", "в Москве, Москвой, москвичи", ["москве", "москвои"]),
        (
            "Бадахшон",
            "Бадахшонро, Бадахшони кӯҳӣ, Бадахшонҳо",
            ["бадахшонро", "бадахшони", "бадахшонхо"],
        ),
        (
            "пограничный переход",
            "у пограничного перехода и пограничный переход",
            ["пограничного перехода", "пограничныи переход"],
        ),
        ("بدخشان", "بدخشان‌ها بدخشانی بدخشانیان بدخشانزاده", ["بدخشانها", "بدخشانی", "بدخشانیان"]),
        ("تابو", "تابوهای تابوها تابوی تابوت", ["تابوهای", "تابوها", "تابوی"]),
        ("attack*", "attacks attacked counterattack", ["attacks", "attacked"]),
        (
            "border guard*",
            "border guards, border-guard, border patrol",
            ["border guards", "border guard"],
        ),
        ("Panj", "Panj Punjab Panjshir Pyanj", ["panj"]),
        ("река", "река реки реке рек рекламе", ["река", "реки", "реке"]),
        ("дарё", "дар дарё дарёи", ["даре", "дареи"]),
        ("граница", "граница границ границами", ["граница", "границ", "границами"]),
        ("Панҷ", "Панҷшер Панчи Панҷро", ["панчи", "панчро"]),
        ("پنج", "پنجشیر پنجم پنج‌ها پنج", ["پنج"]),
        ("دریا", "دریای دریاها دریایی دریابان", ["دریای", "دریاها", "دریایی"]),
        ("کابل", "کابلی کابل‌ها", ["کابلها"]),
    ],
)
def test_word_forms(term: str, text: str, expected: list[str]) -> None:
    assert found(term, text) == expected


@pytest.mark.parametrize(
    ("term", "text", "expected"),
    [
        # Tajik izafe: -и after a consonant, -и or -йи after a vowel (й folds to и)
        ("ноҳия", "ноҳияи Ванҷ, ноҳияйи, ноҳияҳои, ноҳиявӣ", ["нохияи", "нохияии", "нохияхои"]),
        ("дарё", "дарёи Панҷ, дарёйи Панҷ, дарёҳо", ["дареи", "дареии", "дарехо"]),
        ("Амударё", "Амударёи Амударёйи Амударёро", ["амудареи", "амудареии", "амудареро"]),
        ("Душанбе", "Душанбеи Душанбейи Душанбегӣ", ["душанбеи", "душанбеии"]),
        ("бозу", "бозуи бозуйи бозур", ["бозуи", "бозуии"]),
        # Tajik plural of people: -он
        (
            "қочоқбар",
            "қочоқбарон қочоқбарони қочоқбаронро қочоқбарҳо",
            ["кочокбарон", "кочокбарони", "кочокбаронро", "кочокбархо"],
        ),
        ("марз", "марзи марзон", ["марзи"]),  # four letters: no -он
        # Persian plural -ان (and its ezafe, clitics), -گان after a silent ه
        (
            "قاچاقبر",
            "قاچاقبران قاچاقبرانی قاچاقبر‌ها قاچاقبر‌های قاچاقبرانه",
            ["قاچاقبران", "قاچاقبرانی", "قاچاقبرها", "قاچاقبرهای"],
        ),
        ("شورشی", "شورشیان شورشیانی شورشی‌ها", ["شورشیان", "شورشیانی", "شورشیها"]),
        ("مرزبان", "مرزبانان مرزبانانی مرزبانها", ["مرزبانان", "مرزبانانی", "مرزبانها"]),
        (
            "پناهنده",
            "پناهندگان پناهندگانی پناهنده‌ها پناهنده‌ای پناهندگی",
            ["پناهندگان", "پناهندگانی", "پناهندهها", "پناهندهای"],
        ),
        ("پاسگاه", "پاسگاه‌ها پاسگاهی پاسگاهان", ["پاسگاهها", "پاسگاهی", "پاسگاهان"]),
        # short words stay short: خواهان is "seeking", not the plural of خواه; مرز is exact
        ("خواه", "خواهان خواه‌ها", ["خواهها"]),
        ("مرز", "مرزان مرزها مرزی", []),
        ("کابل", "کابلان کابلی", []),
    ],
)
def test_izafe_and_plurals(term: str, text: str, expected: list[str]) -> None:
    assert found(term, text) == expected


def test_a_phrase_checks_the_words_after_an_open_one() -> None:
    text = "нападение на пост, нападения на посту, нападение на пастуха, нападение в посту"
    assert found("нападени* на пост", text) == ["нападение на пост", "нападения на посту"]
    word = word_pattern("the")
    assert word.accepts("the") and not word.accepts("then")
    assert word.accepts_rest("") and not word.accepts_rest("n")


def test_a_phrase_does_not_run_past_the_end_of_the_text() -> None:
    assert found("пограничный переход", "пограничного") == []
    assert found("border guard*", "border") == []


def test_term_problems() -> None:
    assert term_problem("attack*") is None
    assert term_problem("") == "empty term"
    assert term_problem("at*tack") == "'*' may only end a word (in 'at*tack')"
    assert term_problem("***") == "'***' has no letters or digits to match"
    assert term_problem("«»") == "'«»' has no letters or digits to match"
    with pytest.raises(TermSyntaxError, match="only end a word"):
        compile_term("at*tack")
