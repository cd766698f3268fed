"""The compiled matcher: places and terms in four languages, ambiguity, conditions, explanations."""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path

import feedparser
import pytest

from pipeline.errors import RuleError
from pipeline.match import CompiledRules, Hit, Match, compile_rules
from pipeline.ruletypes import Place, Rule, Selection

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"

BADAKHSHAN_CONTEXT = ("Badakhshan", "Бадахшан", "Бадахшон", "بدخشان", "district", "уезд", "ولسوالی")


def place(
    place_id: str,
    names: dict[str, tuple[str, ...]],
    groups: tuple[str, ...],
    *,
    ambiguous: bool = False,
    context: tuple[str, ...] = (),
) -> Place:
    return Place(
        id=place_id,
        kind="district",
        country=place_id[:2].upper(),
        region="test",
        coords=(37.0, 71.0),
        groups=(*groups, "border-region"),
        names=names,
        ambiguous=ambiguous,
        context=context,
        path="rules/places/test.yaml",
    )


PLACES = (
    place(
        "af-badakhshan",
        {"en": ("Badakhshan",), "ru": ("Бадахшан",), "tg": ("Бадахшон",), "fa": ("بدخشان",)},
        ("badakhshan-af",),
    ),
    place(
        "af-badakhshan-jurm",
        {"en": ("Jurm", "Jirm"), "ru": ("Джурм",), "tg": ("Ҷурм",), "fa": ("جرم",)},
        ("badakhshan-af",),
        ambiguous=True,
        context=BADAKHSHAN_CONTEXT,
    ),
    place(
        "af-badakhshan-darwaz",
        {"en": ("Darwaz", "Darvoz"), "ru": ("Дарваз",), "fa": ("درواز",)},
        ("badakhshan-af",),
        ambiguous=True,
        context=BADAKHSHAN_CONTEXT,
    ),
    place(
        "river-panj",
        {
            "en": ("Panj", "Pyanj", "Pyandzh"),
            "ru": ("Пяндж",),
            "tg": ("Панҷ",),
            "fa": ("پنج", "دریای پنج"),
        },
        ("panj-river",),
        ambiguous=True,
        context=("river", "река", "дарё", "دریا", "دریای"),
    ),
    place(
        "tj-gbao-khorog",
        {"en": ("Khorog", "Khorugh"), "ru": ("Хорог",), "tg": ("Хоруғ",), "fa": ("خاروغ",)},
        ("gbao",),
    ),
    place("tj-gbao-ishkashim", {"en": ("Ishkashim",), "tg": ("Ишкошим",)}, ("gbao",)),
    place("af-badakhshan-ishkashim", {"en": ("Ishkashim",), "fa": ("اشکاشم",)}, ("badakhshan-af",)),
    place(
        "crossing-panji-poyon",
        {"en": ("Panji Poyon",), "ru": ("Нижний Пяндж",), "tg": ("Панҷи Поён",)},
        ("panj-crossings",),
    ),
    place("af-kabul", {"en": ("Kabul",), "fa": ("کابل",)}, ("capitals",)),
    place("af-faizabad", {"en": ("Faizabad",), "fa": ("فیض‌آباد",)}, ("badakhshan-af",)),
    place("river-amu-darya", {"en": ("Amu Darya",), "fa": ("آمو دریا",)}, ("panj-river",)),
)

VIOLENCE = (
    "attack*",
    "clash*",
    "gunfire",
    "militant*",
    "border guard*",
    "нападени*",
    "обстрел",
    "граница",
    "пограничный переход",
    "ҳамла",
    "حمله",
    "درگیری",
)


def make_rule(
    rule_id: str = "panj",
    condition: str = "where and violence and not noise",
    *,
    where: Sequence[str] = ("border-region",),
    violence: Sequence[str] = VIOLENCE,
    noise: Sequence[str] = ("Punjab",),
    feeds: Sequence[str] = ("*",),
) -> Rule:
    selections = [
        Selection("where", places=tuple(where)),
        Selection("violence", terms=tuple(violence)),
        Selection("noise", terms=tuple(noise)),
    ]
    return Rule(
        id=rule_id,
        title=rule_id,
        level="high",
        notify=("analysts",),
        digest="immediate",
        feeds=tuple(feeds),
        selections=tuple(selections),
        condition=condition,
        version=f"{rule_id}-v1",
        path=f"rules/{rule_id}.yaml",
    )


@pytest.fixture(scope="module")
def matcher() -> CompiledRules:
    return compile_rules([make_rule()], PLACES)


def checked(matches: list[Match], text: str) -> list[Match]:
    """Every hit's offsets give back exactly its text."""
    for match in matches:
        for hit in match.hits:
            assert text[hit.start : hit.end] == hit.text, hit
    return matches


def hits_of(matcher: CompiledRules, text: str, rule_id: str = "panj") -> list[Hit]:
    explanation = matcher.explain(rule_id, text)
    for hit in explanation.hits:
        assert text[hit.start : hit.end] == hit.text, hit
    return list(explanation.hits)


def found(matcher: CompiledRules, text: str) -> list[tuple[str, str, str | None]]:
    """(selection, written text, place) of every hit, in text order."""
    return [(h.selection, h.text, h.place) for h in hits_of(matcher, text)]


# -- the four languages ----------------------------------------------------------------------


def test_english_terms_prefixes_phrases_and_places(matcher: CompiledRules) -> None:
    text = "Militants attacked Tajik border guards near Khorog on Tuesday."
    [match] = checked(matcher.match(text), text)
    assert (match.rule_id, match.rule_version) == ("panj", "panj-v1")
    assert [(h.selection, h.term, h.text, h.place) for h in match.hits] == [
        ("violence", "militant*", "Militants", None),
        ("violence", "attack*", "attacked", None),
        ("violence", "border guard*", "border guards", None),
        ("where", "Khorog", "Khorog", "tj-gbao-khorog"),
    ]
    hit = match.hits[3]
    assert (hit.start, hit.end, hit.context) == (text.index("Khorog"), text.index(" on"), None)


def test_russian_case_forms_of_places_and_terms(matcher: CompiledRules) -> None:
    text = "В Бадахшане обстрелы: нападение на пост у Хорога, у пограничного перехода и границы."
    assert found(matcher, text) == [
        ("where", "Бадахшане", "af-badakhshan"),
        ("violence", "обстрелы", None),
        ("violence", "нападение", None),
        ("where", "Хорога", "tj-gbao-khorog"),
        ("violence", "пограничного перехода", None),
        ("violence", "границы", None),
    ]
    assert checked(matcher.match(text), text)


def test_russian_adjectives_and_other_words_are_not_case_forms(matcher: CompiledRules) -> None:
    # derived words start like the name or term but do not end in a case ending
    text = "Хорогский университет: обстреливать, Бадахшанский хребет, Пянджский район"
    assert found(matcher, text) == []


def test_russian_case_form_of_an_ambiguous_place_with_context(matcher: CompiledRules) -> None:
    text = "Обстрел на реке Пяндж и у Пянджа: в Хороге спокойно."
    hits = hits_of(matcher, text)
    panj = [h for h in hits if h.place == "river-panj"]
    assert [(h.text, h.context) for h in panj] == [("Пяндж", "река"), ("Пянджа", "река")]


def test_tajik_suffixes_and_letters_typed_without_tajik_keys(matcher: CompiledRules) -> None:
    text = "Ҳамла дар Хоруғ. Дар Хоруг ва Бадахшонро ҳамла; Бадахшони Кӯҳӣ, Хоруғ-ро."
    assert [(sel, txt) for sel, txt, _ in found(matcher, text)] == [
        ("violence", "Ҳамла"),
        ("where", "Хоруғ"),
        ("where", "Хоруг"),
        ("where", "Бадахшонро"),
        ("violence", "ҳамла"),
        ("where", "Бадахшони"),
        ("where", "Хоруғ"),
    ]


def test_persian_suffixes_zwnj_letter_variants_and_tatweel(matcher: CompiledRules) -> None:
    text = "حمله در بدخشان‌ها و بدخشانی‌ها، درگيري در بدخشانها؛ حمــله به بَدَخشان و كابل"
    assert found(matcher, text) == [
        ("violence", "حمله", None),
        ("where", "بدخشان‌ها", "af-badakhshan"),
        ("where", "بدخشانی‌ها", "af-badakhshan"),
        ("violence", "درگيري", None),
        ("where", "بدخشانها", "af-badakhshan"),
        ("violence", "حمــله", None),
        ("where", "بَدَخشان", "af-badakhshan"),
        ("where", "كابل", "af-kabul"),
    ]


def test_a_persian_name_with_zwnj_matches_joined_spaced_and_suffixed(
    matcher: CompiledRules,
) -> None:
    text = "حمله در فیض‌آباد، فیض آباد، فیضآباد و فيض‌آبادها"
    hits = [h for h in hits_of(matcher, text) if h.selection == "where"]
    assert [(h.text, h.term, h.place) for h in hits] == [
        ("فیض‌آباد", "فیض‌آباد", "af-faizabad"),
        ("فیض آباد", "فیض‌آباد", "af-faizabad"),
        ("فیضآباد", "فیض‌آباد", "af-faizabad"),
        ("فيض‌آبادها", "فیض‌آباد", "af-faizabad"),
    ]


def test_diacritics_and_case_do_not_matter(matcher: CompiledRules) -> None:
    text = "GUNFIRE at KHÓROG; бадахша́не"
    assert found(matcher, text) == [
        ("violence", "GUNFIRE", None),
        ("where", "KHÓROG", "tj-gbao-khorog"),
        ("where", "бадахша́не", "af-badakhshan"),
    ]


def test_hyphenated_and_spaced_names_match_alike(matcher: CompiledRules) -> None:
    for text in ("Clash at Panji-Poyon", "Clash at Panji Poyon", "Clash at PANJI–POYON"):
        [(_, span, place_id)] = [h for h in found(matcher, text) if h[0] == "where"]
        assert (span, place_id) == (text[9:], "crossing-panji-poyon")
    text = "Ҳамла дар Панҷи Поён ва Нижнем Пяндже"
    assert [h[1] for h in found(matcher, text) if h[0] == "where"] == [
        "Панҷи Поён",
        "Нижнем Пяндже",
    ]


def test_a_name_inside_a_longer_place_name_is_not_a_hit(matcher: CompiledRules) -> None:
    text = "Обстрел на реке у Нижнего Пянджа, потом у Пянджа"
    assert [(h.text, h.place) for h in hits_of(matcher, text) if h.place] == [
        ("Нижнего Пянджа", "crossing-panji-poyon"),
        ("Пянджа", "river-panj"),
    ]


def test_twin_names_give_a_hit_for_each_place(matcher: CompiledRules) -> None:
    text = "Clashes in Ishkashim."
    assert [(h.text, h.place) for h in hits_of(matcher, text) if h.selection == "where"] == [
        ("Ishkashim", "af-badakhshan-ishkashim"),
        ("Ishkashim", "tj-gbao-ishkashim"),
    ]


# -- never inside other words; ambiguous names need context ---------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Clashes in Punjab and Panjshir, gunfire in Pyanjab",
        "Attack near the Darwaza gate",
        "حمله در پنجشیر و پنجم",
        "Ҳамла дар Панҷшер",
    ],
)
def test_names_do_not_match_inside_other_words(matcher: CompiledRules, text: str) -> None:
    assert [h for h in hits_of(matcher, text) if h.selection == "where"] == []
    assert matcher.explain("panj", text).dropped == ()


@pytest.mark.parametrize(
    ("text", "place_id", "word"),
    [
        ("پنج نفر در حمله کشته شدند", "river-panj", "پنج"),  # "five people"
        ("جرم سنگین و حمله", "af-badakhshan-jurm", "جرم"),  # "crime"
        ("An attack at the Darwaz of the old city", "af-badakhshan-darwaz", "Darwaz"),  # "gate"
        ("Attack on the Panj bank", "river-panj", "Panj"),
    ],
)
def test_ambiguous_names_without_context_are_dropped(
    matcher: CompiledRules, text: str, place_id: str, word: str
) -> None:
    explanation = matcher.explain("panj", text)
    assert not explanation.matched
    assert explanation.selections == {"where": False, "violence": True, "noise": False}
    [dropped] = explanation.dropped
    assert (dropped.selection, dropped.place, dropped.term, dropped.text) == (
        "where",
        place_id,
        word,
        word,
    )
    assert text[dropped.start : dropped.end] == word
    assert dropped.reason.startswith(f"ambiguous name of {place_id}: no context word (")
    assert dropped.reason.endswith("within 12 words")
    assert matcher.match(text) == []


@pytest.mark.parametrize(
    ("text", "context"),
    [
        ("حمله در ولسوالی جرم", "ولسوالی"),
        ("حمله در ولسوالي جرم", "ولسوالی"),  # Arabic yeh in the text
        ("Attack in Jurm district", "district"),
        ("Нападение в Джурме, в Бадахшане", "Бадахшан"),  # inflected place and context
        ("Ҳамла дар Ҷурм, Бадахшон", "Бадахшон"),
        ("Attack in Jurm and Ishkashim", "af-badakhshan-ishkashim"),  # a place of its group
    ],
)
def test_ambiguous_names_with_context_count(
    matcher: CompiledRules, text: str, context: str
) -> None:
    [jurm] = [h for h in hits_of(matcher, text) if h.place == "af-badakhshan-jurm"]
    assert jurm.context == context
    assert matcher.explain("panj", text).matched


def test_context_must_stand_within_the_window() -> None:
    matcher = compile_rules([make_rule()], PLACES, context_window=3)
    near = "attack river one two Panj"
    far = "attack river one two three Panj"
    assert [h.context for h in hits_of(matcher, near) if h.place] == ["river"]
    assert [h.place for h in hits_of(matcher, far)] == [None]
    assert [d.place for d in matcher.explain("panj", far).dropped] == ["river-panj"]
    after = "attack Panj one two three river"
    assert [d.place for d in matcher.explain("panj", after).dropped] == ["river-panj"]
    assert [h.context for h in hits_of(matcher, "attack Panj one two river") if h.place] == [
        "river"
    ]
    assert "within 3 words" in matcher.explain("panj", far).dropped[0].reason


def test_ambiguous_places_do_not_confirm_each_other(matcher: CompiledRules) -> None:
    text = "پنج جرم و حمله"
    assert [d.place for d in matcher.explain("panj", text).dropped] == [
        "river-panj",
        "af-badakhshan-jurm",
    ]


def test_a_place_of_the_same_group_confirms_an_ambiguous_name(matcher: CompiledRules) -> None:
    text = "Gunfire on the Amu Darya and the Pyanj"
    [panj] = [h for h in hits_of(matcher, text) if h.place == "river-panj"]
    assert (panj.text, panj.context) == ("Pyanj", "river-amu-darya")


def test_a_name_of_several_words_needs_no_context(matcher: CompiledRules) -> None:
    text = "حمله در کنار دریای پنج"
    [panj] = [h for h in hits_of(matcher, text) if h.place]
    assert (panj.text, panj.term, panj.context) == ("دریای پنج", "دریای پنج", None)
    assert matcher.explain("panj", text).dropped == ()


def test_context_words_take_their_forms(matcher: CompiledRules) -> None:
    text = "حمله در دریای آمو و پنج"  # دریا with its ezafe, two words before پنج
    [panj] = [h for h in hits_of(matcher, text) if h.place]
    assert (panj.text, panj.context) == ("پنج", "دریا")  # the context word as listed


@pytest.mark.parametrize("district", ["ноҳияи", "ноҳияйи", "нохияи", "ноҳияҳои"])
def test_a_tajik_context_word_with_its_izafe_confirms(district: str) -> None:
    panj = place(
        "tj-panj", {"tg": ("Панҷ",)}, ("khatlon",), ambiguous=True, context=("ноҳия", "дарё")
    )
    matcher = compile_rules([make_rule(where=("tj-panj",))], [panj])
    text = f"Ҳамла дар {district} Панҷ."
    [hit] = [h for h in hits_of(matcher, text) if h.place]
    assert (hit.text, hit.context) == ("Панҷ", "ноҳия")
    assert matcher.explain("panj", "Ҳамла дар Панҷ.").dropped  # no context: dropped


def test_persian_plurals_of_terms() -> None:
    rule = make_rule(violence=("قاچاقبر", "پناهنده"), where=("af-badakhshan",))
    matcher = compile_rules([rule], PLACES)
    text = "قاچاقبران و پناهندگان در بدخشان"
    assert found(matcher, text) == [
        ("violence", "قاچاقبران", None),
        ("violence", "پناهندگان", None),
        ("where", "بدخشان", "af-badakhshan"),
    ]


def test_a_context_word_inside_the_name_itself_does_not_count() -> None:
    jurm = place(
        "af-jurm", {"en": ("Jurm",)}, ("badakhshan-af",), ambiguous=True, context=("jurm",)
    )
    matcher = compile_rules([make_rule(where=("af-jurm",))], [jurm])
    assert [d.place for d in matcher.explain("panj", "attack in Jurm").dropped] == ["af-jurm"]
    assert matcher.explain("panj", "attack in Jurm, jurm").matched


def test_the_group_of_all_places_does_not_confirm(matcher: CompiledRules) -> None:
    text = "پنج نفر در حمله در بدخشان کشته شدند"  # five people killed in an attack in Badakhshan
    explanation = matcher.explain("panj", text)
    assert [h.place for h in explanation.hits] == [None, "af-badakhshan"]
    assert [d.place for d in explanation.dropped] == ["river-panj"]
    assert "groups (panj-river)" in explanation.dropped[0].reason


def test_noise_excludes_a_match(matcher: CompiledRules) -> None:
    text = "Attack in Punjab near Khorog"
    explanation = matcher.explain("panj", text)
    assert explanation.selections == {"where": True, "violence": True, "noise": True}
    assert not explanation.matched
    assert matcher.match(text) == []


# -- selections, conditions and feeds --------------------------------------------------------


def test_selection_places_by_id_and_by_group() -> None:
    rules = [
        make_rule("by-id", "where", where=("tj-gbao-khorog",)),
        make_rule("by-group", "where", where=("badakhshan-af",)),
    ]
    matcher = compile_rules(rules, PLACES)
    assert [m.rule_id for m in matcher.match("Khorog")] == ["by-id"]
    assert [m.rule_id for m in matcher.match("Badakhshan")] == ["by-group"]
    assert [m.rule_id for m in matcher.match("Kabul")] == []


def test_near_counts_words_in_either_order() -> None:
    matcher = compile_rules([make_rule("near", "where near/3 violence")], PLACES)
    assert matcher.match("Khorog: one two attack")
    assert matcher.match("attack, one two, Khorog")
    assert not matcher.match("Khorog one two three attack")


def test_n_of_and_parentheses() -> None:
    rule = make_rule("two", "2 of (where, violence, noise) and not (noise and where)")
    matcher = compile_rules([rule], PLACES)
    assert matcher.match("Attack in Khorog")
    assert matcher.match("Attack in Punjab")
    assert not matcher.match("Attack")
    assert not matcher.match("Punjab, Khorog")


def test_a_rule_with_or_not_is_evaluated_for_every_article() -> None:
    matcher = compile_rules([make_rule("either", "not noise or where")], PLACES)
    assert matcher.match("Nothing here")
    assert matcher.match("Punjab, Khorog")
    assert not matcher.match("Punjab")


def test_two_terms_on_one_word_give_one_hit_per_selection() -> None:
    matcher = compile_rules([make_rule(violence=("attack*", "attacked"))], PLACES)
    [match] = matcher.match("Khorog attacked")
    assert [(h.selection, h.term, h.text) for h in match.hits] == [
        ("where", "Khorog", "Khorog"),
        ("violence", "attack*", "attacked"),
    ]


def test_text_whose_letters_decompose_maps_offsets_back() -> None:
    matcher = compile_rules([make_rule(violence=("공격", "attack"))], PLACES)
    text = "한국 뉴스: 공격 near Khorog; attack"
    [match] = checked(matcher.match(text), text)
    assert [h.text for h in match.hits] == ["공격", "Khorog", "attack"]


def test_a_rule_true_without_any_hit_matches_every_article() -> None:
    matcher = compile_rules([make_rule("quiet", "not noise")], PLACES)
    [match] = matcher.match("Nothing happened today.")
    assert (match.hits, match.snippet) == ((), "Nothing happened today.")
    assert matcher.match("Punjab") == []


def test_many_rules_share_one_matcher_and_only_hit_rules_match() -> None:
    rules = [
        make_rule(f"rule-{n}", "where and violence", violence=(f"term{n}",)) for n in range(300)
    ]
    matcher = compile_rules(rules, PLACES)
    assert matcher.rules == tuple(rules)
    text = "Khorog: term7, term123 and term7again"
    assert [m.rule_id for m in checked(matcher.match(text), text)] == ["rule-7", "rule-123"]


@pytest.mark.parametrize(
    ("feeds", "feed", "tags", "expected"),
    [
        (("*",), "ozodi-tj", (), True),
        (("ozodi-tj",), "ozodi-tj", (), True),
        (("ozodi-tj",), "bbc-fa", (), False),
        (("tag:tj",), "ozodi-tj", ("tj", "news"), True),
        (("tag:tj",), "bbc-fa", ("fa",), False),
        (("tag:fa", "ozodi-tj"), "bbc-fa", ("fa",), True),
        (("bbc-fa",), None, (), True),  # no feed: every rule
    ],
)
def test_feeds_admit_rules(
    feeds: tuple[str, ...], feed: str | None, tags: tuple[str, ...], expected: bool
) -> None:
    matcher = compile_rules([make_rule(feeds=feeds)], PLACES)
    assert bool(matcher.match("Attack near Khorog", feed=feed, feed_tags=tags)) is expected


# -- snippets and explanations ---------------------------------------------------------------


def test_snippet_is_about_200_characters_around_the_first_hit(matcher: CompiledRules) -> None:
    before = " ".join(f"word{n}" for n in range(60))
    after = " ".join(f"more{n}" for n in range(60))
    text = f"{before}\n\nMilitants attacked   Khorog.\n{after}"
    [match] = matcher.match(text)
    assert match.snippet.startswith("… ")
    assert match.snippet.endswith(" …")
    assert "Militants attacked Khorog." in match.snippet
    assert 150 <= len(match.snippet) <= 210
    assert "\n" not in match.snippet


def test_snippet_of_a_short_text_is_the_whole_text(matcher: CompiledRules) -> None:
    [match] = matcher.match("  Attack   near\nKhorog  ")
    assert match.snippet == "Attack near Khorog"


def test_explain_reports_every_selection_and_hit(matcher: CompiledRules) -> None:
    text = "Gunfire near Khorog"
    explanation = matcher.explain("panj", text)
    assert explanation.rule_id == "panj"
    assert explanation.matched
    assert explanation.selections == {"where": True, "violence": True, "noise": False}
    assert [h.text for h in explanation.hits] == ["Gunfire", "Khorog"]
    assert explanation.dropped == ()
    assert explanation.snippet == text
    with pytest.raises(KeyError):
        matcher.explain("no-such-rule", text)


# -- compiling -------------------------------------------------------------------------------


def test_unknown_place_or_group_is_a_rule_error() -> None:
    with pytest.raises(RuleError) as caught:
        compile_rules([make_rule(where=("tj-gbao-khorg",))], PLACES)
    assert str(caught.value) == (
        "rules/panj.yaml: rule 'panj', selection 'where': no place or group 'tj-gbao-khorg' "
        "in the gazetteer"
    )


def test_bad_condition_is_a_rule_error_with_column() -> None:
    with pytest.raises(RuleError) as caught:
        compile_rules([make_rule(condition="where and violnce")], PLACES)
    assert str(caught.value) == (
        "rules/panj.yaml: rule 'panj': condition column 11: unknown selection 'violnce' in "
        "condition (did you mean 'violence'?)"
    )


def test_bad_term_is_a_rule_error() -> None:
    with pytest.raises(RuleError, match=r"selection 'violence': '\*' may only end a word"):
        compile_rules([make_rule(violence=("at*tack",))], PLACES)


def test_no_rules_no_places() -> None:
    matcher = compile_rules([], [])
    assert matcher.match("Attack near Khorog") == []
    assert matcher.rules == ()


# -- real text from ../shared/data -----------------------------------------------------------


def _entries(name: str) -> list[str]:
    path = SHARED_DATA / "feeds" / name
    if not path.exists():
        pytest.skip(f"../shared/data not present: {path}")
    raw = path.read_bytes()
    if name.endswith(".gz"):
        raw = gzip.decompress(raw)
    return [f"{e.get('title', '')}\n{e.get('summary', '')}" for e in feedparser.parse(raw).entries]


def test_real_russian_news_matches_case_forms() -> None:
    rule = make_rule("ru", "violence", violence=("Москва", "Россия", "Киргизия"))
    matcher = compile_rules([rule], PLACES)
    texts = _entries("meduza-ru-2020-10.xml.gz")
    found_words: set[str] = set()
    for text in texts:
        for match in checked(matcher.match(text), text):
            found_words.update(hit.text for hit in match.hits)
    assert {"Москва", "Москве", "Москву", "Москвы", "России", "Россию", "Киргизии"} <= found_words
    assert not any(word.startswith("Российск") for word in found_words)


def test_real_persian_weblog_matches_through_letter_forms_and_suffixes() -> None:
    rule = make_rule("fa", "violence", violence=("آمریكا", "ايران", "خامنه", "قوم"))
    matcher = compile_rules([rule], PLACES)
    found_words: set[str] = set()
    for text in _entries("hoder-fa-2005.xml"):
        for match in checked(matcher.match(text), text):
            found_words.update(hit.text for hit in match.hits)
    assert {"آمریکا", "ایران", "خامنه\u200cای"} <= found_words
    assert "قومی" not in found_words  # a three-letter word takes no suffix
