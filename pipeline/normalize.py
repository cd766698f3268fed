"""Text normalisation for matching: case, diacritics, Persian/Tajik letter folding, tokens, offsets.

`normalize_text(text)` turns an article into one string of tokens, `" tok tok … "`: single spaces
between tokens and one at each end, so a matcher finds whole words by padding its keys with spaces.
Each step follows DESIGN.md ("Matching semantics"):

1. NFKC, then casefold;
2. removal of combining marks (Latin, Cyrillic and Arabic diacritics, so `й`→`и`, `ё`→`е`, `أ`→`ا`,
   `ӣ`→`и`), of tatweel, and of zero-width and direction characters; ZWNJ is removed too, which
   joins the two halves of a word (`می‌شود` = `میشود`, `بدخشان‌ها` = `بدخشانها`);
3. Arabic-script variants unified (`ي`/`ى`→`ی`, `ك`→`ک`, `ة`/`ە`/`ھ`→`ه`, `ٱ`→`ا`, Persian and
   Arabic digits → ASCII) and Tajik letters folded to the Russian ones (`ҳ`→`х`, `ҷ`→`ч`, `қ`→`к`,
   `ғ`→`г`);
4. every character that is not a letter or digit becomes a space (punctuation of every script:
   `« » „ “ ، ؛ ؟`, hyphens, apostrophes and `_`, so `Panji-Poyon` = `Panji Poyon`); runs of spaces
   fold into one.

Speed (PERFORMANCE.md): no per-character Python loop on the usual path. Typographic quotes,
dashes and spaces become spaces first; text that is then ASCII (most English) takes one
`bytes.translate`. Other text takes `str.casefold`, `bytes.translate` for ASCII punctuation, a
`str.replace` chain for the scripts present (known from UTF-8 lead bytes), `unicodedata.normalize`
only when a letter still decomposes, and the mark-dropping and separator regular expressions only
when `isalnum` says something is left. The map from token offsets back to the original text is
built only when asked for (`NormalizedText.original_span`), from the places where characters were
dropped. Text whose NFKC form or case folding changes its length (ligatures, `ß`, decomposed
input) takes a slower per-character path that records what each character became.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import re
import unicodedata
from collections.abc import Iterator

# Characters dropped from words: combining marks of the scripts we read (Latin, Cyrillic, Hebrew,
# Arabic, the combining supplements), tatweel, soft hyphen, zero-width and bidi controls, ZWNJ.
_REMOVED = re.compile(
    "[\u0300-\u036f\u0483-\u0489\u0591-\u05bd\u05bf\u05c1\u05c2\u05c4\u05c5\u05c7"
    "\u0610-\u061a\u061c\u0640\u064b-\u065f\u0670\u06d6-\u06dc\u06df-\u06e4\u06e7\u06e8\u06ea-\u06ed"
    "\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff"
    "\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+"
)
_SEPARATOR = re.compile(r"[^\w ]|_")
_SPACES = re.compile(r"  +")

# Replaced by a space before NFKC: characters whose NFKC form is longer than they are, and
# typographic spaces (NFKC makes them a space anyway). All separate words, so offsets stay 1:1
# and the fast path stays open.
_PRE_SPACES = (
    "…№™‥\u2033\u2034\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u202f\u205f\u3000"
)

# Precomposed letters whose diacritic goes, replaced directly (cheaper than NFD + removal; the
# per-character path gets the same result through NFD).
_CYRILLIC_PRECOMPOSED = (("й", "и"), ("ё", "е"))
_TAJIK_PRECOMPOSED = (("ӣ", "и"), ("ӯ", "у"))
_ARABIC_PRECOMPOSED = (("آ", "ا"), ("أ", "ا"), ("إ", "ا"), ("ؤ", "و"), ("ئ", "ی"), ("ۀ", "ه"))

# Applied once diacritics are gone: one character for one, so offsets do not move.
_TAJIK_FOLDS = (("ҳ", "х"), ("ҷ", "ч"), ("қ", "к"), ("ғ", "г"))
_ARABIC_FOLDS = (
    ("ي", "ی"),
    ("ى", "ی"),
    ("ك", "ک"),
    ("ة", "ه"),
    ("ە", "ه"),
    ("ھ", "ه"),
    ("ٱ", "ا"),
    *((chr(0x0660 + d), str(d)) for d in range(10)),
    *((chr(0x06F0 + d), str(d)) for d in range(10)),
)
_FOLDS = _TAJIK_FOLDS + _ARABIC_FOLDS

# Frequent non-ASCII punctuation, replaced by spaces with str.replace (the rest goes through a
# regular expression, only in texts that have some).
_GENERAL_PUNCTUATION = "—–“”„‘’•"
_LATIN1_PUNCTUATION = "«»·°"
_ARABIC_PUNCTUATION = "،؛؟٪٫٬۔"
# The frequent ones, replaced before anything else (the rest of _PRE_SPACES only when NFKC
# finds something to change).
_EARLY_SPACES = "…№\u00a0\u202f" + _GENERAL_PUNCTUATION + _LATIN1_PUNCTUATION

# ASCII bytes: letters lowered (ASCII path), digits kept, everything else a space; bytes >= 128
# (UTF-8 sequences) untouched.
_ASCII_TABLE = bytes(ord(chr(c).lower()) if chr(c).isalnum() else 0x20 for c in range(128)) + bytes(
    range(128, 256)
)
_BYTE_TABLE = bytes(c if chr(c).isalnum() else 0x20 for c in range(128)) + bytes(range(128, 256))


class NormalizedText:
    """An article's text normalised for matching, with offsets back to the original.

    `tokens` is `" tok tok … "`; `original_span(start, end)` turns a span of whole tokens in it
    into the span of the original text those tokens came from.
    """

    __slots__ = (
        "_checked",
        "_cumulative",
        "_folded",
        "_padded",
        "_pieces",
        "_removed",
        "_spaces",
        "original",
        "tokens",
    )

    def __init__(
        self,
        original: str,
        padded: str,
        *,
        folded: str | None = None,
        checked: bool = True,
        pieces: list[str] | None = None,
    ) -> None:
        self.original = original
        self._padded = padded  # " " + text with separators as spaces + " ", before folding runs
        self.tokens = _SPACES.sub(" ", padded)
        # fast path with characters removed: the NFKC+casefold text (char i = original char i);
        # `checked` is False when NFD also decomposed letters, which must prove one for one
        self._folded = folded
        self._checked = checked
        self._pieces = pieces  # slow path: what each original character became
        self._spaces: _RemovalMap | None = None
        self._removed: _RemovalMap | None = None
        self._cumulative: list[int] | None = None

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Map `tokens[start:end]` (whole tokens, no padding) to `(start, end)` in the original.

        The end is extended over combining marks and tatweel that follow the last letter, so the
        span holds the whole written word.
        """
        first = self._to_original(start)
        last = self._to_original(end - 1) + 1
        return first, _extend_over_marks(self.original, last)

    def _to_original(self, index: int) -> int:
        if self._spaces is None:  # each run of spaces kept its first space
            runs = _SPACES.finditer(self._padded)
            self._spaces = _RemovalMap((m.start() + 1, m.end() - m.start() - 1) for m in runs)
        index = self._spaces.to_source(index) - 1  # -1: the leading pad
        if self._folded is not None:
            return self._unremoved(index, self._folded)
        if self._pieces is not None:
            if self._cumulative is None:
                self._cumulative = list(itertools.accumulate(map(len, self._pieces)))
            return min(bisect.bisect_right(self._cumulative, index), len(self.original) - 1)
        return index

    def _unremoved(self, index: int, folded: str) -> int:
        if self._removed is None:
            runs = _REMOVED.finditer(folded)
            self._removed = _RemovalMap((m.start(), m.end() - m.start()) for m in runs)
        if not self._checked:
            self._checked = True
            if self._removed.total() != len(folded) - len(self._padded) + 2:
                # a decomposition did not come out one for one (Hangul, an Indic nukta):
                # redo this text character by character, which records the map
                self._folded = None
                self._pieces = _fold_characters(self.original)
                return self._to_original_piece(index)
        return self._removed.to_source(index)

    def _to_original_piece(self, index: int) -> int:
        assert self._pieces is not None
        self._cumulative = list(itertools.accumulate(map(len, self._pieces)))
        return min(bisect.bisect_right(self._cumulative, index), len(self.original) - 1)


class _RemovalMap:
    """Offsets of a string from which runs of characters were removed, back to the source.

    Built lazily from an iterator of `(start, length)` runs in source offsets, only as far as
    the offsets asked for (hits are few and often early in an article).
    """

    __slots__ = ("_added", "_runs", "_starts")

    def __init__(self, runs: Iterator[tuple[int, int]]) -> None:
        self._runs: Iterator[tuple[int, int]] | None = runs
        self._starts: list[int] = []  # where each run sat, in output offsets
        self._added: list[int] = []  # characters removed up to and including each run

    def _read_past(self, index: int) -> None:
        """Read runs until one sits after `index` (or none is left)."""
        runs = self._runs
        if runs is None:
            return
        starts, added = self._starts, self._added
        total = added[-1] if added else 0
        while not starts or starts[-1] <= index:
            run = next(runs, None)
            if run is None:
                self._runs = None
                return
            starts.append(run[0] - total)
            total += run[1]
            added.append(total)

    def to_source(self, index: int) -> int:
        self._read_past(index)
        k = bisect.bisect_right(self._starts, index)
        return index + self._added[k - 1] if k else index

    def total(self) -> int:
        """How many characters were removed in all."""
        self._read_past(2**62)
        return self._added[-1] if self._added else 0


def _extend_over_marks(text: str, end: int) -> int:
    while end < len(text) and (text[end] == "\u0640" or unicodedata.category(text[end]) == "Mn"):
        end += 1
    return end


def normalize_text(text: str) -> NormalizedText:
    """Normalise and tokenise one text (an article, a rule term, a place name)."""
    pre = text
    if not pre.isascii():
        # typographic punctuation and spaces first: English with curly quotes and dashes
        # becomes ASCII and takes the fast path
        for mark in _EARLY_SPACES:
            pre = pre.replace(mark, " ")
    if pre.isascii():
        folded = pre.encode("ascii").translate(_ASCII_TABLE).decode("ascii")
        return NormalizedText(text, f" {folded} ")
    if not unicodedata.is_normalized("NFKC", pre):
        for space in _PRE_SPACES:
            pre = pre.replace(space, " ")
        if not unicodedata.is_normalized("NFKC", pre):
            return _normalize_by_character(text)
    folded = pre.casefold()
    if len(folded) != len(pre):
        return _normalize_by_character(text)
    # ASCII separators become spaces in one bytes.translate; the UTF-8 lead bytes tell which
    # scripts are present, so the folds of absent scripts are skipped
    data = folded.encode("utf-8", "surrogatepass").translate(_BYTE_TABLE)
    scripts = _ScriptFlags(data)
    stripped = data.decode("utf-8", "surrogatepass")
    for old, new in scripts.precomposed:
        stripped = stripped.replace(old, new)
    decomposed = not unicodedata.is_normalized("NFD", stripped)
    if decomposed:
        stripped = unicodedata.normalize("NFD", stripped)
    for old, new in scripts.folds:
        stripped = stripped.replace(old, new)
    for mark in scripts.punctuation:
        stripped = stripped.replace(mark, " ")
    length = len(stripped)
    if not stripped.replace(" ", "").isalnum():  # marks or zero-width to drop, or separators
        stripped = _REMOVED.sub("", stripped)
        if not stripped.replace(" ", "").isalnum():
            stripped = _SEPARATOR.sub(" ", stripped)
    elif "\u0640" in stripped:  # tatweel, a letter to isalnum
        stripped = stripped.replace("\u0640", "")
    padded = f" {stripped} "
    if len(stripped) == length and not decomposed:  # nothing removed: offsets are the same
        return NormalizedText(text, padded)
    return NormalizedText(text, padded, folded=folded, checked=not decomposed)


class _ScriptFlags:
    """Which replacement lists a text needs, from the lead bytes of its UTF-8 form."""

    __slots__ = ("folds", "precomposed", "punctuation")

    def __init__(self, data: bytes) -> None:
        arabic = b"\xd8" in data or b"\xd9" in data or b"\xda" in data or b"\xdb" in data
        tajik = b"\xd2" in data or b"\xd3" in data
        self.precomposed: tuple[tuple[str, str], ...] = _CYRILLIC_PRECOMPOSED
        self.folds: tuple[tuple[str, str], ...] = ()
        if tajik:
            self.precomposed += _TAJIK_PRECOMPOSED
            self.folds += _TAJIK_FOLDS
        if arabic:
            self.precomposed += _ARABIC_PRECOMPOSED
            self.folds += _ARABIC_FOLDS
        self.punctuation = _ARABIC_PUNCTUATION if arabic else ""


def _normalize_by_character(text: str) -> NormalizedText:
    pieces = _fold_characters(text)
    return NormalizedText(text, f" {''.join(pieces)} ", pieces=pieces)


def _fold_characters(text: str) -> list[str]:
    return [_fold_character(c) for c in text]


@functools.lru_cache(maxsize=4096)
def _fold_character(char: str) -> str:
    """One character through the whole pipeline (the slow path's unit)."""
    if char in _EARLY_SPACES or char in _PRE_SPACES:
        return " "
    folded = unicodedata.normalize("NFKC", char).casefold()
    folded = _REMOVED.sub("", unicodedata.normalize("NFD", folded))
    for old, new in _FOLDS:
        folded = folded.replace(old, new)
    return _SEPARATOR.sub(" ", folded)


def normalize_words(text: str) -> tuple[str, ...]:
    """The normalised tokens of a short text: `"Panji-Poyon"` → `("panji", "poyon")`."""
    return tuple(normalize_text(text).tokens.split())
