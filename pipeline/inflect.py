"""Term patterns: whole words, `word*` prefixes, phrases, and Russian/Tajik/Persian word forms.

A rule term or a place name becomes a `TermPattern`: its normalised words, each with a mode:

- exact: the token must equal the word (Latin script, digits, words of ≤ 3 letters, and the
  Persian-script names of ambiguous places, which are ordinary words too);
- prefix: `attack*` — the token starts with the word;
- inflect: the token is a stem followed by one of a closed list of endings. Cyrillic words lose
  their nominative ending (Москва → москв-, пограничный → пограничн-) and take Russian case
  endings and Tajik suffixes (Бадахшан → Бадахшане, Бадахшана; Москва → Москвой; Бадахшон →
  Бадахшонро, Бадахшони; қочоқбар → қочоқбарон), the izafe -и after a consonant and -и or -йи
  after a vowel (ноҳия → ноҳияи, ноҳияйи; дарё → дарёи); Persian words take the plurals -ها
  and -ان (-گان for a final silent ه: پناهنده → پناهندگان), ezafe, object and possessive
  suffixes and clitics, joined or after ZWNJ (بدخشان → بدخشان‌ها, بدخشانی; قاچاقبر → قاچاقبران;
  "بدخشان را" is two words anyway). Words of four letters get only a few endings (no -он, -ان),
  and a four-letter stem alone is no form (дарё → дарёи, never дар "in"), so a short name does
  not match the ordinary words that begin with it (Панҷ never matches Панҷшер, پنج never پنجشیر,
  خواه never خواهان).

The matcher indexes `TermPattern.key` in one Aho-Corasick automaton over the token string of
`pipeline.normalize` and checks the rest of an open pattern (`verify`) only where the key was found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum

from pipeline.normalize import normalize_words


class Mode(IntEnum):
    EXACT = 0
    PREFIX = 1
    INFLECT = 2


def _listed(words: str) -> list[str]:
    return words.split()


# Normalised forms: й→и and ё→е are already folded, Tajik ҳ→х.
_RUSSIAN_ENDINGS = _listed(
    "а я у ю е и ы о ом ем ои еи ою ею ам ям ами ями ах ях ов ев ь ью ье ья ьи ьев ьям ьями ьях "
    "ыи ии ая яя ое ее ые ие ого его ому ему ым им ую юю ых их ыми ими"
)
# the izafe is -и, after a vowel also -йи (folded: -ии); -он is the plural of people
_TAJIK_SUFFIXES = _listed(
    "ро хо хои хоро хоям хоят хояш и ии е ам ат аш амон атон ашон ем ет еш он они онро"
)
_CYRILLIC_ENDINGS = frozenset(["", *_RUSSIAN_ENDINGS, *_TAJIK_SUFFIXES])
_CYRILLIC_SHORT_ENDINGS = frozenset(["", *_listed("а я у ю е ом ем ои ою ы и ро хо")])
_CYRILLIC_VOWELS = "аяоеыиьуюэ"
# nominative endings taken off a word of five or more letters before the endings above are added
_CYRILLIC_NOMINATIVE = sorted(
    _listed("ыи ии ои ая яя ое ее ые ие а я о е ы и ь"), key=len, reverse=True
)
_PERSIAN_ENDINGS = frozenset(
    [
        "",
        *_listed("ی یی ای ایی ها های هایی هایش هایشان هایمان هایتان هارا را یرا یها یهای"),
        *_listed("ش اش شان ام ات مان تان یش یشان ست است هاست یان"),
        *_listed("ان انی انیی انرا انش انشان انمان انتان اند"),
    ]
)
# a final silent ه becomes گ before the plural -ان: پناهنده → پناهندگان, آواره → آوارگان
_PERSIAN_GAN_ENDINGS = frozenset(_listed("گان گانی گانیی گانرا گانش گانشان گانمان گانتان گاند"))
_PERSIAN_SHORT_ENDINGS = frozenset(["", "ها", "های", "را"])
# after a final vowel the ezafe is written ی: دریا → دریای آمو
_PERSIAN_SHORT_VOWEL_ENDINGS = _PERSIAN_SHORT_ENDINGS | {"ی", "یی"}

_CYRILLIC = re.compile("[\u0400-\u04ff]")
_ARABIC = re.compile("[\u0600-\u06ff]")


class TermSyntaxError(ValueError):
    """A rule term or place name that cannot be matched (see `term_problem`)."""


@dataclass(frozen=True, slots=True)
class WordPattern:
    """One word of a term: the literal start of the token and what may follow it."""

    stem: str
    mode: Mode
    endings: frozenset[str] = frozenset()

    def accepts(self, token: str) -> bool:
        """True when a whole token is a form of this word."""
        if self.mode is Mode.EXACT:
            return token == self.stem
        return token.startswith(self.stem) and self.accepts_rest(token[len(self.stem) :])

    def accepts_rest(self, rest: str) -> bool:
        """True when `rest` may follow the stem inside one token."""
        if self.mode is Mode.PREFIX:
            return True
        if self.mode is Mode.EXACT:
            return not rest
        return rest in self.endings


@dataclass(frozen=True, slots=True)
class TermPattern:
    """A term's words and its automaton key.

    `key` is `" w1 w2 "` when every word is exact (a found key is a match), else `" w1 … stem"`
    up to the first open (prefix or inflected) word, whose index is `open_at`; `verify` checks
    that word's ending and the words after it.
    """

    words: tuple[WordPattern, ...]
    key: str
    open_at: int

    @property
    def is_closed(self) -> bool:
        return self.open_at == len(self.words)

    def verify(self, tokens: str, key_end: int) -> int:
        """Where the match ends in `tokens` (exclusive) or -1; `key_end`: the key's last index."""
        if self.is_closed:
            return key_end
        end = tokens.find(" ", key_end + 1)
        if end < 0 or not self.words[self.open_at].accepts_rest(tokens[key_end + 1 : end]):
            return -1
        for word in self.words[self.open_at + 1 :]:
            start = end + 1
            end = tokens.find(" ", start)
            if end < 0 or not word.accepts(tokens[start:end]):
                return -1
        return end


def term_problem(term: str) -> str | None:
    """What is wrong with a rule term, or None: for the rule loader's messages."""
    if not term.strip():
        return "empty term"
    for chunk in term.split():
        if "*" in chunk.rstrip("*"):
            return f"'*' may only end a word (in {term!r})"
        if not normalize_words(chunk.rstrip("*")):
            return f"{chunk!r} has no letters or digits to match"
    return None


def compile_term(term: str, *, ambiguous: bool = False) -> TermPattern:
    """Compile a rule term or a place name.

    `ambiguous=True` (names of ambiguous places) keeps every word exact except Cyrillic ones,
    whose case forms are not ordinary words (Пяндж → Пянджа; but پنج never takes a suffix).

    Raises:
        TermSyntaxError: the term has no words, or a `*` inside a word (see `term_problem`).
    """
    problem = term_problem(term)
    if problem:
        raise TermSyntaxError(problem)
    words: list[WordPattern] = []
    for chunk in term.split():
        tokens = normalize_words(chunk.rstrip("*"))
        words.extend(word_pattern(token, ambiguous=ambiguous) for token in tokens[:-1])
        if chunk.endswith("*"):
            words.append(WordPattern(tokens[-1], Mode.PREFIX))
        else:
            words.append(word_pattern(tokens[-1], ambiguous=ambiguous))
    return _with_key(tuple(words))


def word_pattern(token: str, *, ambiguous: bool = False) -> WordPattern:
    """The pattern of one normalised token, by script and length."""
    if len(token) <= 3:
        return WordPattern(token, Mode.EXACT)
    if _CYRILLIC.search(token):
        if len(token) == 4:  # река → реки, реке; Вахш → Вахша: few endings, short stems
            if token[-1] in "аяоеыиь":  # but the bare stem is no form: дарё ≠ дар ("in")
                endings = (_CYRILLIC_SHORT_ENDINGS | _tajik_after(token[-1])) - {""}
                return WordPattern(token[:-1], Mode.INFLECT, endings)
            if token[-1] in _CYRILLIC_VOWELS:  # бозу → бозуи, бозуйи
                return WordPattern(token, Mode.INFLECT, _CYRILLIC_SHORT_ENDINGS | {"ии"})
            return WordPattern(token, Mode.INFLECT, _CYRILLIC_SHORT_ENDINGS)
        for ending in _CYRILLIC_NOMINATIVE:
            if token.endswith(ending) and len(token) - len(ending) >= 4:
                endings = _CYRILLIC_ENDINGS | _tajik_after(ending)
                return WordPattern(token[: -len(ending)], Mode.INFLECT, endings)
        return WordPattern(token, Mode.INFLECT, _CYRILLIC_ENDINGS)
    if _ARABIC.search(token) and not ambiguous:
        if len(token) == 4:
            vowel_final = token[-1] in "اوه"
            endings = _PERSIAN_SHORT_VOWEL_ENDINGS if vowel_final else _PERSIAN_SHORT_ENDINGS
            return WordPattern(token, Mode.INFLECT, endings)
        if token[-1] == "ه":  # the stem without ه, so that -گان is one of its endings
            endings = frozenset(["ه" + ending for ending in _PERSIAN_ENDINGS])
            return WordPattern(token[:-1], Mode.INFLECT, endings | _PERSIAN_GAN_ENDINGS)
        return WordPattern(token, Mode.INFLECT, _PERSIAN_ENDINGS)
    return WordPattern(token, Mode.EXACT)


def _tajik_after(ending: str) -> frozenset[str]:
    """The ending taken off, alone or before a Tajik suffix (дарё, дарёи, дарёро)."""
    return frozenset([ending, *(ending + suffix for suffix in _TAJIK_SUFFIXES)])


def _with_key(words: tuple[WordPattern, ...]) -> TermPattern:
    literal: list[str] = []
    for index, word in enumerate(words):
        literal.append(word.stem)
        if word.mode is not Mode.EXACT:
            return TermPattern(words, " " + " ".join(literal), index)
    return TermPattern(words, " " + " ".join(literal) + " ", len(words))
