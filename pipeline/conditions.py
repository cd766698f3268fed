"""Rule conditions: tokenizer, recursive-descent parser and evaluator (Sigma-like grammar).

Grammar (keywords are case-insensitive; selection names are exact)::

    condition := or_expr
    or_expr   := and_expr ("or" and_expr)*
    and_expr  := not_expr ("and" not_expr)*
    not_expr  := "not" not_expr | near_expr
    near_expr := NAME "near/" K NAME          -- within K words, either order
               | primary
    primary   := NAME | "(" or_expr ")" | count "of" target
    count     := N | "all" | "any"            -- "any" is "1"
    target    := "them" | GLOB | "(" NAME ("," NAME)* ")"

`them` means every selection of the rule; a GLOB (`selection_*`, `?` for one character) means the
selections whose names it matches. Both resolve when parsing, so `OfN.names` is always explicit.
"""

from __future__ import annotations

import bisect
import difflib
import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

KEYWORDS = ("and", "or", "not", "of", "them", "all", "any", "near")


class ConditionSyntaxError(Exception):
    """A condition cannot be parsed; `col` is 1-based within the condition string."""

    def __init__(self, message: str, *, col: int, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.col = col
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.col}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


@dataclass(frozen=True, slots=True)
class Name:
    """True when the named selection hit."""

    name: str


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


@dataclass(frozen=True, slots=True)
class And:
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Or:
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class OfN:
    """True when at least `count` of `names` hit."""

    count: int
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Near:
    """True when `left` and `right` hit within `distance` words of each other, in either order."""

    left: str
    right: str
    distance: int


Node = Name | Not | And | Or | OfN | Near


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # word | number | near | ( | ) | , | end
    text: str
    col: int  # 1-based
    value: int = 0  # the number, or K of near/K


_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.*?")
_BAD_CHARS = {"&": "write 'and'", "|": "write 'or'", "!": "write 'not'", "~": "write 'not'"}


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "(),":
            tokens.append(_Token(ch, ch, i + 1))
            i += 1
        elif ch in _WORD_CHARS or ch.isalnum():
            j = i
            while j < n and (text[j] in _WORD_CHARS or text[j].isalnum()):
                j += 1
            tok = _word_token(text, i, j)
            tokens.append(tok)
            i += len(tok.text)  # near/K reaches past the word
        else:
            hint = _BAD_CHARS.get(
                ch, "conditions use selection names, and/or/not, N of (...), near/K"
            )
            raise ConditionSyntaxError(f"unexpected character {ch!r}", col=i + 1, hint=hint)
    tokens.append(_Token("end", "", n + 1))
    return tokens


def _word_token(text: str, start: int, stop: int) -> _Token:
    word = text[start:stop]
    if word.isdecimal():
        return _Token("number", word, start + 1, int(word))
    if word.lower() != "near":
        return _Token("word", word, start + 1)
    # near/K: the slash and the distance follow, maybe after blanks
    k = stop
    while k < len(text) and text[k] == " ":
        k += 1
    if k >= len(text) or text[k] != "/":
        raise ConditionSyntaxError(
            "'near' needs a distance in words", col=start + 1, hint="write e.g. 'a near/10 b'"
        )
    k += 1
    while k < len(text) and text[k] == " ":
        k += 1
    digits_start = k
    while k < len(text) and text[k].isdecimal():
        k += 1
    if k == digits_start or int(text[digits_start:k]) < 1:
        raise ConditionSyntaxError(
            "'near/' needs a positive number of words", col=digits_start + 1, hint="e.g. near/10"
        )
    return _Token("near", text[start:k], start + 1, int(text[digits_start:k]))


def _suggest(word: str, choices: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not close:
        close = [c for c in choices if c.lower() == word.lower()]
    return f"did you mean {close[0]!r}?" if close else None


class _Parser:
    def __init__(self, text: str, selections: Sequence[str]) -> None:
        self.text = text
        self.selections = tuple(dict.fromkeys(selections))
        self.tokens = _tokenize(text)
        self.pos = 0

    # -- token helpers ------------------------------------------------------------------------
    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def advance(self) -> _Token:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def at_keyword(self, *words: str) -> bool:
        tok = self.peek()
        return tok.kind == "word" and tok.text.lower() in words

    def expect(self, kind: str, what: str, hint: str | None = None) -> _Token:
        tok = self.peek()
        if tok.kind != kind:
            raise ConditionSyntaxError(
                f"expected {what}, found {_describe(tok)}", col=tok.col, hint=hint
            )
        return self.advance()

    # -- grammar ------------------------------------------------------------------------------
    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise ConditionSyntaxError(
                "empty condition", col=1, hint="write e.g. 'crossing and violence and not noise'"
            )
        node = self.parse_or()
        tok = self.peek()
        if tok.kind == ")":
            raise ConditionSyntaxError(
                "unbalanced ')'", col=tok.col, hint="remove it or add a matching '('"
            )
        if tok.kind != "end":
            hint = _suggest(tok.text.lower(), ("and", "or")) if tok.kind == "word" else None
            raise ConditionSyntaxError(
                f"expected 'and', 'or' or the end of the condition, found {_describe(tok)}",
                col=tok.col,
                hint=hint or "join selections with 'and' or 'or'",
            )
        return node

    def parse_or(self) -> Node:
        node = self.parse_and()
        while self.at_keyword("or"):
            self.advance()
            node = Or(node, self.parse_and())
        return node

    def parse_and(self) -> Node:
        node = self.parse_not()
        while self.at_keyword("and"):
            self.advance()
            node = And(node, self.parse_not())
        return node

    def parse_not(self) -> Node:
        if self.at_keyword("not"):
            self.advance()
            return Not(self.parse_not())
        return self.parse_near()

    def parse_near(self) -> Node:
        start = self.peek()
        node = self.parse_primary()
        if self.peek().kind != "near":
            return node
        near = self.advance()
        if not isinstance(node, Name):
            raise ConditionSyntaxError(
                "'near' needs a selection name on its left",
                col=start.col,
                hint="write e.g. 'crossing near/10 violence'",
            )
        right_tok = self.peek()
        right = self.parse_primary()
        if not isinstance(right, Name):
            raise ConditionSyntaxError(
                "'near' needs a selection name on its right",
                col=right_tok.col,
                hint="write e.g. 'crossing near/10 violence'",
            )
        if self.peek().kind == "near":
            raise ConditionSyntaxError(
                "'near' cannot be chained",
                col=self.peek().col,
                hint="join two 'near' tests with 'and'",
            )
        return Near(node.name, right.name, near.value)

    def parse_primary(self) -> Node:
        tok = self.peek()
        if tok.kind == "(":
            self.advance()
            node = self.parse_or()
            if self.peek().kind != ")":
                raise ConditionSyntaxError(
                    "unclosed '('", col=tok.col, hint=f"add ')' (found {_describe(self.peek())})"
                )
            self.advance()
            return node
        if tok.kind == "number" or self.at_keyword("all", "any"):
            return self.parse_of()
        if tok.kind == "word":
            if tok.text.lower() in KEYWORDS:
                raise ConditionSyntaxError(
                    f"expected a selection name, found {_describe(tok)}",
                    col=tok.col,
                    hint=f"selections are: {', '.join(self.selections)}",
                )
            self.advance()
            return Name(self.resolve(tok))
        raise ConditionSyntaxError(
            f"expected a selection name, found {_describe(tok)}",
            col=tok.col,
            hint=f"selections are: {', '.join(self.selections)}",
        )

    def parse_of(self) -> Node:
        count_tok = self.advance()
        if not self.at_keyword("of"):
            raise ConditionSyntaxError(
                f"expected 'of' after {count_tok.text!r}, found {_describe(self.peek())}",
                col=self.peek().col,
                hint="write e.g. '2 of (a, b, c)' or 'all of them'",
            )
        self.advance()
        names = self.parse_of_target()
        kind = count_tok.text.lower()
        count = len(names) if kind == "all" else 1 if kind == "any" else count_tok.value
        if count < 1:
            raise ConditionSyntaxError(
                "the count of 'N of' must be at least 1",
                col=count_tok.col,
                hint="write '1 of (...)'",
            )
        if count > len(names):
            raise ConditionSyntaxError(
                f"{count} of a list of {len(names)} selection(s) can never be true",
                col=count_tok.col,
                hint=f"use a number from 1 to {len(names)}",
            )
        return OfN(count, names)

    def parse_of_target(self) -> tuple[str, ...]:
        tok = self.peek()
        if self.at_keyword("them"):
            self.advance()
            return self.selections
        if tok.kind == "(":
            return self.parse_name_list()
        if tok.kind == "word" and ("*" in tok.text or "?" in tok.text):
            self.advance()
            names = tuple(s for s in self.selections if fnmatch.fnmatchcase(s, tok.text))
            if not names:
                raise ConditionSyntaxError(
                    f"no selection matches {tok.text!r}",
                    col=tok.col,
                    hint=f"selections are: {', '.join(self.selections)}",
                )
            return names
        raise ConditionSyntaxError(
            f"expected 'them', a pattern or '(' after 'of', found {_describe(tok)}",
            col=tok.col,
            hint="write e.g. '2 of (a, b, c)', '1 of selection_*' or 'all of them'",
        )

    def parse_name_list(self) -> tuple[str, ...]:
        open_tok = self.advance()
        names = [self.resolve(self.expect("word", "a selection name"))]
        while self.peek().kind == ",":
            self.advance()
            names.append(self.resolve(self.expect("word", "a selection name")))
        if self.peek().kind != ")":
            raise ConditionSyntaxError(
                "unclosed '(' of a selection list",
                col=open_tok.col,
                hint=f"separate names with ',' and close with ')' (found {_describe(self.peek())})",
            )
        self.advance()
        return tuple(dict.fromkeys(names))

    def resolve(self, tok: _Token) -> str:
        if tok.text in self.selections:
            return tok.text
        if tok.text.lower() in KEYWORDS:
            raise ConditionSyntaxError(
                f"expected a selection name, found {_describe(tok)}", col=tok.col
            )
        hint = _suggest(tok.text, self.selections) or _suggest(tok.text.lower(), KEYWORDS)
        if hint is None:
            hint = f"selections are: {', '.join(self.selections)}" if self.selections else None
        raise ConditionSyntaxError(
            f"unknown selection {tok.text!r} in condition", col=tok.col, hint=hint
        )


def _describe(tok: _Token) -> str:
    return "the end of the condition" if tok.kind == "end" else repr(tok.text)


def parse_condition(text: str, selections: Sequence[str]) -> Node:
    """Parse a rule's condition against the names of its selections.

    Raises:
        ConditionSyntaxError: with a 1-based column and, where one helps, a hint
            (a difflib suggestion for a misspelt selection or keyword).
    """
    return _Parser(text, selections).parse()


def selection_names(node: Node) -> frozenset[str]:
    """The selections a condition refers to."""
    if isinstance(node, Name):
        return frozenset((node.name,))
    if isinstance(node, Not):
        return selection_names(node.operand)
    if isinstance(node, And | Or):
        return selection_names(node.left) | selection_names(node.right)
    if isinstance(node, OfN):
        return frozenset(node.names)
    return frozenset((node.left, node.right))


def evaluate(node: Node, positions: Mapping[str, Sequence[int]]) -> bool:
    """Evaluate a condition given, per selection, the sorted token indexes where it hit."""
    if isinstance(node, Name):
        return bool(positions.get(node.name))
    if isinstance(node, And):
        return evaluate(node.left, positions) and evaluate(node.right, positions)
    if isinstance(node, Or):
        return evaluate(node.left, positions) or evaluate(node.right, positions)
    if isinstance(node, Not):
        return not evaluate(node.operand, positions)
    if isinstance(node, OfN):
        return sum(1 for name in node.names if positions.get(name)) >= node.count
    left, right = positions.get(node.left, ()), positions.get(node.right, ())
    return _is_near(left, right, node.distance, same=node.left == node.right)


def _is_near(left: Sequence[int], right: Sequence[int], distance: int, *, same: bool) -> bool:
    """Some left and right position lie at most `distance` tokens apart (two hits if `same`)."""
    if not left or not right:
        return False
    for pos in left:
        i = bisect.bisect_left(right, pos - distance)
        while i < len(right) and right[i] <= pos + distance:
            if not same or right[i] != pos:
                return True
            i += 1
    return False


def format_condition(node: Node) -> str:
    """A canonical, fully parenthesised text of a condition (for explanations)."""
    if isinstance(node, Name):
        return node.name
    if isinstance(node, Not):
        return f"not {format_condition(node.operand)}"
    if isinstance(node, And):
        return f"({format_condition(node.left)} and {format_condition(node.right)})"
    if isinstance(node, Or):
        return f"({format_condition(node.left)} or {format_condition(node.right)})"
    if isinstance(node, OfN):
        return f"{node.count} of ({', '.join(node.names)})"
    return f"{node.left} near/{node.distance} {node.right}"
