"""Rule conditions: grammar, precedence, errors with columns and hints, evaluation."""

from __future__ import annotations

import pytest

from pipeline.conditions import (
    And,
    ConditionSyntaxError,
    Name,
    Near,
    Node,
    Not,
    OfN,
    Or,
    evaluate,
    format_condition,
    parse_condition,
    selection_names,
)

SELECTIONS = ("crossing", "violence", "noise", "selection_a", "selection_b")


def parse(text: str) -> Node:
    return parse_condition(text, SELECTIONS)


def error(text: str) -> ConditionSyntaxError:
    with pytest.raises(ConditionSyntaxError) as caught:
        parse_condition(text, SELECTIONS)
    return caught.value


# -- grammar ---------------------------------------------------------------------------------


def test_precedence_not_binds_tighter_than_and_than_or() -> None:
    assert parse("crossing or violence and not noise") == Or(
        Name("crossing"), And(Name("violence"), Not(Name("noise")))
    )


def test_and_or_are_left_associative() -> None:
    assert parse("crossing and violence and noise") == And(
        And(Name("crossing"), Name("violence")), Name("noise")
    )
    assert parse("crossing or violence or noise") == Or(
        Or(Name("crossing"), Name("violence")), Name("noise")
    )


def test_parentheses_override_precedence() -> None:
    assert parse("(crossing or noise) and violence") == And(
        Or(Name("crossing"), Name("noise")), Name("violence")
    )
    assert parse("not (crossing and noise)") == Not(And(Name("crossing"), Name("noise")))
    assert parse("((crossing))") == Name("crossing")


def test_keywords_are_case_insensitive() -> None:
    assert parse("NOT crossing AND violence Or noise") == parse(
        "not crossing and violence or noise"
    )
    assert parse("ALL OF them") == OfN(5, SELECTIONS)


def test_n_of_list_them_and_patterns() -> None:
    assert parse("2 of (crossing, violence, noise)") == OfN(2, ("crossing", "violence", "noise"))
    assert parse("all of them") == OfN(5, SELECTIONS)
    assert parse("1 of them") == OfN(1, SELECTIONS)
    assert parse("any of them") == OfN(1, SELECTIONS)
    assert parse("1 of selection_*") == OfN(1, ("selection_a", "selection_b"))
    assert parse("all of selection_?") == OfN(2, ("selection_a", "selection_b"))
    assert parse("2 of (crossing,crossing, noise)") == OfN(2, ("crossing", "noise"))


def test_near_with_distance_and_precedence() -> None:
    assert parse("crossing near/30 violence") == Near("crossing", "violence", 30)
    assert parse("crossing NEAR / 5 violence") == Near("crossing", "violence", 5)
    assert parse("not crossing near/3 violence or noise") == Or(
        Not(Near("crossing", "violence", 3)), Name("noise")
    )
    assert parse("crossing near/3 violence and not noise") == And(
        Near("crossing", "violence", 3), Not(Name("noise"))
    )
    assert parse("(crossing) near/2 violence") == Near("crossing", "violence", 2)


def test_selection_names_and_format() -> None:
    node = parse_condition("crossing near/9 violence and not noise or 1 of selection_*", SELECTIONS)
    assert selection_names(node) == {"crossing", "violence", "noise", "selection_a", "selection_b"}
    assert format_condition(node) == (
        "((crossing near/9 violence and not noise) or 1 of (selection_a, selection_b))"
    )
    assert parse_condition(format_condition(node).replace(" near/9", " near/9"), SELECTIONS)


def test_selection_names_may_hold_hyphens_dots_and_digits() -> None:
    names = ("border-crossing", "v2.terms")
    assert parse_condition("border-crossing and v2.terms", names) == And(
        Name("border-crossing"), Name("v2.terms")
    )


# -- errors ----------------------------------------------------------------------------------


def test_unknown_selection_names_column_and_suggests() -> None:
    err = error("crossing and violnce")
    assert (err.message, err.col, err.hint) == (
        "unknown selection 'violnce' in condition",
        14,
        "did you mean 'violence'?",
    )
    assert str(err) == "14: unknown selection 'violnce' in condition (did you mean 'violence'?)"


def test_unknown_selection_without_close_match_lists_the_selections() -> None:
    err = error("zzz")
    assert err.col == 1
    assert err.hint == "selections are: crossing, violence, noise, selection_a, selection_b"


def test_wrong_case_selection_is_suggested() -> None:
    assert error("Crossing").hint == "did you mean 'crossing'?"


def test_misspelt_keyword_suggests_the_keyword() -> None:
    err = error("crossing andd violence")
    assert (err.col, err.hint) == (10, "did you mean 'and'?")
    assert err.message == "expected 'and', 'or' or the end of the condition, found 'andd'"
    assert error("crossing and nott noise").hint == "did you mean 'not'?"


def test_trailing_tokens() -> None:
    err = error("crossing violence")
    assert (err.col, err.message) == (
        10,
        "expected 'and', 'or' or the end of the condition, found 'violence'",
    )
    assert err.hint == "join selections with 'and' or 'or'"


def test_unbalanced_parentheses() -> None:
    err = error("(crossing and violence")
    assert (err.col, err.message, err.hint) == (
        1,
        "unclosed '('",
        "add ')' (found the end of the condition)",
    )
    err = error("crossing and violence)")
    assert (err.col, err.message) == (22, "unbalanced ')'")
    err = error("crossing and (violence or (noise)")
    assert err.col == 14


def test_empty_condition() -> None:
    for text in ("", "   "):
        err = error(text)
        assert (err.col, err.message) == (1, "empty condition")


def test_missing_operand() -> None:
    err = error("crossing and")
    assert (err.col, err.message) == (
        13,
        "expected a selection name, found the end of the condition",
    )
    err = error("crossing and and violence")
    assert (err.col, err.message) == (14, "expected a selection name, found 'and'")
    assert error("()").message == "expected a selection name, found ')'"


def test_n_larger_than_the_list_or_zero() -> None:
    err = error("4 of (crossing, noise)")
    assert (err.col, err.message, err.hint) == (
        1,
        "4 of a list of 2 selection(s) can never be true",
        "use a number from 1 to 2",
    )
    assert error("crossing or 0 of (noise)").col == 13
    assert error("6 of them").message == "6 of a list of 5 selection(s) can never be true"


def test_of_errors() -> None:
    err = error("2 (crossing)")
    assert (err.col, err.message) == (3, "expected 'of' after '2', found '('")
    err = error("1 of crossing")
    assert err.col == 6
    err = error("1 of nothing_*")
    assert (err.col, err.message) == (6, "no selection matches 'nothing_*'")
    err = error("1 of (crossing noise)")
    assert (err.col, err.message) == (6, "unclosed '(' of a selection list")
    err = error("1 of (crossing, violnce)")
    assert (err.col, err.hint) == (17, "did you mean 'violence'?")
    err = error("1 of (crossing, )")
    assert (err.col, err.message) == (17, "expected a selection name, found ')'")
    err = error("1 of (crossing, and)")
    assert (err.col, err.message) == (17, "expected a selection name, found 'and'")


def test_near_errors() -> None:
    err = error("crossing near violence")
    assert (err.col, err.message, err.hint) == (
        10,
        "'near' needs a distance in words",
        "write e.g. 'a near/10 b'",
    )
    assert error("crossing near/0 violence").col == 15
    assert error("crossing near/x violence").message == "'near/' needs a positive number of words"
    err = error("(crossing or noise) near/3 violence")
    assert (err.col, err.message) == (1, "'near' needs a selection name on its left")
    err = error("crossing near/3 (violence or noise)")
    assert (err.col, err.message) == (17, "'near' needs a selection name on its right")
    err = error("crossing near/3 violence near/2 noise")
    assert (err.col, err.message) == (26, "'near' cannot be chained")


def test_bad_characters_name_the_operator_to_write() -> None:
    assert (error("crossing & noise").col, error("crossing & noise").hint) == (10, "write 'and'")
    assert error("crossing || noise").hint == "write 'or'"
    assert error("!noise").hint == "write 'not'"


# -- evaluation ------------------------------------------------------------------------------


def test_evaluate_names_and_boolean_operators() -> None:
    node = parse("crossing and violence and not noise")
    assert evaluate(node, {"crossing": [3], "violence": [9]})
    assert not evaluate(node, {"crossing": [3], "violence": [9], "noise": [1]})
    assert not evaluate(node, {"crossing": [3], "violence": []})
    assert evaluate(parse("crossing or noise"), {"noise": [0]})
    assert not evaluate(parse("crossing or noise"), {})
    assert evaluate(parse("not noise"), {})


def test_evaluate_n_of() -> None:
    node = parse("2 of (crossing, violence, noise)")
    assert not evaluate(node, {"crossing": [1]})
    assert evaluate(node, {"crossing": [1], "noise": [7]})
    assert evaluate(parse("all of them"), {name: [0] for name in SELECTIONS})
    assert not evaluate(parse("all of them"), {name: [0] for name in SELECTIONS[:4]})


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        ([10], [13], True),  # 3 words after
        ([13], [10], True),  # either order
        ([10], [14], False),
        ([1, 40], [44], False),
        ([1, 40], [43], True),
        ([5], [5], True),  # the same word in both selections
        ([], [5], False),
    ],
)
def test_evaluate_near(left: list[int], right: list[int], expected: bool) -> None:
    node = parse("crossing near/3 violence")
    assert evaluate(node, {"crossing": left, "violence": right}) is expected


def test_near_of_a_selection_with_itself_needs_two_hits() -> None:
    node = parse("crossing near/3 crossing")
    assert not evaluate(node, {"crossing": [4]})
    assert evaluate(node, {"crossing": [4, 6]})
    assert not evaluate(node, {"crossing": [4, 9]})
