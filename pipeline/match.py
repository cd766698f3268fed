"""Matching: every rule's terms and places compiled into one automaton, run once per article.

`compile_rules(rules, places)` builds a `CompiledRules` once (and again when rules or places
change). `CompiledRules.match(text)` normalises the text once (`pipeline.normalize`), scans its
tokens once with a single pyahocorasick automaton holding every term, place name and context word
of every rule, checks inflected endings only where a key was found (`pipeline.inflect`), then
evaluates the conditions of the rules that were hit. The cost grows with the text and the hits,
not with the number of rules.

Places marked `ambiguous` (پنج "five", جرم "crime", Darwaz "gate") count only when one of their
context words, or a non-ambiguous place sharing one of their groups (other than `broad_groups`),
stands within `context_window` words; otherwise the hit is dropped and `explain` says why. A name
of several words (دریای پنج, "Panj river") is specific enough and counts as it is. A place name
found inside a longer one ("Пяндж" in "Нижний Пяндж") is no hit of its own.

Pure: no logging, no clock, no I/O.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import ahocorasick

from pipeline.conditions import evaluate
from pipeline.matchbuild import (
    BROAD_GROUPS,
    CLOSED,
    CONTEXT_WINDOW,
    GENERAL,
    LAST_PREFIX,
    MatcherTables,
    build_tables,
)
from pipeline.normalize import NormalizedText, normalize_text
from pipeline.ruletypes import Place, Rule

SNIPPET_WIDTH = 200

__all__ = [
    "BROAD_GROUPS",
    "CONTEXT_WINDOW",
    "CompiledRules",
    "DroppedPlace",
    "Explanation",
    "Hit",
    "Match",
    "compile_rules",
]


@dataclass(frozen=True, slots=True)
class Hit:
    """One found term or place name.

    `term` is the rule term or gazetteer name as written; `start`/`end` are offsets into the text
    given to `match`, and `text == original[start:end]` (the words as written there, case forms
    and suffixes included). `context` names what confirmed an ambiguous place: a context word as
    the gazetteer writes it, or the id of a nearby place of the same group.
    """

    selection: str
    term: str
    place: str | None
    start: int
    end: int
    text: str
    context: str | None = None


@dataclass(frozen=True, slots=True)
class DroppedPlace:
    """An ambiguous place name found without its context, so not counted."""

    selection: str
    place: str
    term: str
    start: int
    end: int
    text: str
    reason: str


@dataclass(frozen=True, slots=True)
class Match:
    """A rule whose condition is true for an article, with every hit of its selections."""

    rule_id: str
    rule_version: str
    hits: tuple[Hit, ...]
    snippet: str


@dataclass(frozen=True, slots=True)
class Explanation:
    """What a rule saw in a text: hits per selection, dropped places, each selection's value."""

    rule_id: str
    matched: bool
    hits: tuple[Hit, ...]
    dropped: tuple[DroppedPlace, ...]
    selections: Mapping[str, bool] = field(hash=False)
    snippet: str


# A hit before it becomes a Hit: (start, end) in the token string, the token index, the term or
# name as written, the place index (-1 for a term) and the confirming context.
_Found = tuple[int, int, int, str, int, str | None]


class _Scan:
    """One article's hits: terms per selection, places per place (ambiguous ones resolved)."""

    __slots__ = ("dropped", "normalized", "place_hits", "spans", "term_hits")

    def __init__(self, normalized: NormalizedText) -> None:
        self.normalized = normalized
        self.term_hits: dict[int, list[_Found]] = {}  # selection id -> hits of its terms
        self.place_hits: dict[int, list[_Found]] = {}  # place index -> its counted hits
        self.dropped: list[tuple[_Found, str]] = []  # ambiguous place hit, reason
        self.spans: dict[tuple[int, int], tuple[int, int]] = {}

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        span = self.spans.get((start, end))
        if span is None:
            span = self.spans[start, end] = self.normalized.original_span(start, end)
        return span


class CompiledRules:
    """Every rule and place compiled into one matcher; build once, reuse for every article."""

    def __init__(self, tables: MatcherTables) -> None:
        self._t = tables
        self.rules: tuple[Rule, ...] = tables.rules
        self._by_id = {rule.id: index for index, rule in enumerate(tables.rules)}

    # -- public --------------------------------------------------------------------------------
    def match(
        self, text: str, *, feed: str | None = None, feed_tags: Sequence[str] = ()
    ) -> list[Match]:
        """The rules that match `text`, in rule order.

        Only rules whose `feeds` admit the feed take part: `"*"`, the feed's name or `tag:NAME`
        for one of `feed_tags`; `feed=None` admits every rule.
        """
        scan = self._scan(text)
        matches: list[Match] = []
        for rule_index in sorted(self._touched(scan)):
            if feed is not None and not self._admits(rule_index, feed, feed_tags):
                continue
            if evaluate(self._t.conditions[rule_index], self._positions(scan, rule_index)):
                matches.append(self._build_match(scan, rule_index))
        return matches

    def explain(self, rule_id: str, text: str) -> Explanation:
        """Everything one rule saw in `text`, whether or not it matched (feeds are ignored).

        Raises:
            KeyError: no rule has this id.
        """
        rule_index = self._by_id[rule_id]
        scan = self._scan(text)
        positions = self._positions(scan, rule_index)
        hits = self._hits(scan, rule_index)
        sels = self._t.rule_sels[rule_index]
        dropped = tuple(
            self._dropped(scan, found, reason, self._t.sel_name[sel])
            for found, reason in scan.dropped
            for sel in sels
            if found[4] in self._t.sel_places[sel]
        )
        return Explanation(
            rule_id=rule_id,
            matched=evaluate(self._t.conditions[rule_index], positions),
            hits=hits,
            dropped=dropped,
            selections={self._t.sel_name[sel]: self._t.sel_name[sel] in positions for sel in sels},
            snippet=_snippet(text, hits),
        )

    # -- scanning ------------------------------------------------------------------------------
    def _scan(self, text: str) -> _Scan:
        normalized = normalize_text(text)
        scan = _Scan(normalized)
        found = self._find(normalized.tokens)
        if found:
            self._group(scan, found)
        return scan

    def _find(self, tokens: str) -> list[tuple[int, int, int]]:
        """(start, end, pattern id) of every pattern in the token string."""
        automaton = self._t.automaton
        if automaton.kind != ahocorasick.AHOCORASICK:
            return []
        found: list[tuple[int, int, int]] = []
        for key_end, entries in automaton.iter(tokens):
            for pid, back, check, endings, pattern in entries:
                if check == CLOSED:
                    found.append((key_end - back, key_end, pid))
                elif check == GENERAL:
                    end = pattern.verify(tokens, key_end)
                    if end >= 0:
                        found.append((key_end - back, end, pid))
                else:  # the key ends inside the last word: check what follows, inline
                    end = tokens.find(" ", key_end + 1)
                    if check == LAST_PREFIX or tokens[key_end + 1 : end] in endings:
                        found.append((key_end - back, end, pid))
        return found

    def _group(self, scan: _Scan, found: list[tuple[int, int, int]]) -> None:
        t = self._t
        tokens = scan.normalized.tokens
        found.sort()
        place_hits: dict[int, list[_Found]] = {}
        context_hits: dict[int, list[_Found]] = {}
        token, last = -1, 0
        for start, end, pid in found:
            token += tokens.count(" ", last, start)
            last = start
            for sel, term in t.term_owners[pid]:
                scan.term_hits.setdefault(sel, []).append((start, end, token, term, -1, None))
            for place, name in t.place_owners[pid]:
                place_hits.setdefault(place, []).append((start, end, token, name, place, None))
            for place, word in t.context_owners[pid]:
                context_hits.setdefault(place, []).append((start, end, token, word, -1, None))
        if place_hits:
            _drop_contained(place_hits)
        for place, hits in place_hits.items():
            if place in t.ambiguous:
                self._confirm(scan, place, hits, place_hits, context_hits)
            else:
                scan.place_hits[place] = hits

    def _confirm(
        self,
        scan: _Scan,
        place: int,
        hits: list[_Found],
        place_hits: dict[int, list[_Found]],
        context_hits: dict[int, list[_Found]],
    ) -> None:
        """Keep the hits of an ambiguous place that have context nearby; drop the others."""
        t = self._t
        words = [(hit, hit[3]) for hit in context_hits.get(place, ())]
        others = [
            (hit, t.places[other].id)
            for other in sorted(t.confirmers[place] & place_hits.keys())
            for hit in place_hits[other]
        ]
        # by token; at one token, context words before places (the order breaks ties)
        confirmers = sorted(
            (hit[2], order, hit, label) for order, (hit, label) in enumerate(words + others)
        )
        tokens = scan.normalized.tokens
        for hit in hits:
            if " " in tokens[hit[0] : hit[1]]:  # a name of several words says enough
                scan.place_hits.setdefault(place, []).append(hit)
                continue
            context = _nearest_context(hit, confirmers, t.context_window)
            if context is None:
                scan.dropped.append((hit, t.drop_reasons[place]))
            else:
                scan.place_hits.setdefault(place, []).append((*hit[:5], context))

    # -- results -------------------------------------------------------------------------------
    def _touched(self, scan: _Scan) -> set[int]:
        """Rules one of whose trigger selections hit, and rules evaluated for every article."""
        t = self._t
        touched = set(t.always_evaluated)
        touched.update(t.sel_rule[sel] for sel in scan.term_hits if t.sel_triggers[sel])
        for place in scan.place_hits:
            touched.update(t.sel_rule[sel] for sel in t.place_triggers[place])
        return touched

    def _admits(self, rule_index: int, feed: str, feed_tags: Sequence[str]) -> bool:
        names, tags = self._t.rule_feeds[rule_index]
        return "*" in names or feed in names or any(tag in tags for tag in feed_tags)

    def _selection_hits(self, scan: _Scan, sel: int) -> list[_Found]:
        hits = scan.term_hits.get(sel, [])
        held = self._t.sel_places[sel]
        if held and scan.place_hits:
            hits = hits + [h for p, found in scan.place_hits.items() if p in held for h in found]
        return hits

    def _positions(self, scan: _Scan, rule_index: int) -> dict[str, list[int]]:
        positions: dict[str, list[int]] = {}
        for sel in self._t.rule_sels[rule_index]:
            hits = self._selection_hits(scan, sel)
            if hits:
                positions[self._t.sel_name[sel]] = sorted({hit[2] for hit in hits})
        return positions

    def _hits(self, scan: _Scan, rule_index: int) -> tuple[Hit, ...]:
        t = self._t
        text = scan.normalized.original
        hits: dict[tuple[str, int, int, str | None], Hit] = {}
        for sel in t.rule_sels[rule_index]:
            name = t.sel_name[sel]
            for s_start, s_end, _, term, place, context in self._selection_hits(scan, sel):
                start, end = scan.original_span(s_start, s_end)
                place_id = t.places[place].id if place >= 0 else None
                key = (name, start, end, place_id)
                if key not in hits:
                    hits[key] = Hit(name, term, place_id, start, end, text[start:end], context)
        return tuple(sorted(hits.values(), key=_hit_order))

    def _build_match(self, scan: _Scan, rule_index: int) -> Match:
        rule = self._t.rules[rule_index]
        hits = self._hits(scan, rule_index)
        return Match(rule.id, rule.version, hits, _snippet(scan.normalized.original, hits))

    def _dropped(self, scan: _Scan, found: _Found, reason: str, selection: str) -> DroppedPlace:
        start, end = scan.original_span(found[0], found[1])
        text = scan.normalized.original
        place_id = self._t.places[found[4]].id
        return DroppedPlace(selection, place_id, found[3], start, end, text[start:end], reason)


def _hit_order(hit: Hit) -> tuple[int, int, str, str]:
    return hit.start, hit.end, hit.selection, hit.place or ""


def _drop_contained(place_hits: dict[int, list[_Found]]) -> None:
    """Forget place hits inside a longer place name ("Пяндж" within "Нижний Пяндж")."""
    spans = sorted(
        {(hit[0], hit[1]) for hits in place_hits.values() for hit in hits},
        key=lambda span: (span[0], -span[1]),
    )
    if len(spans) < 2:
        return
    inside: set[tuple[int, int]] = set()
    reach = -1  # the furthest end of the spans before, which start at or before this one
    for span in spans:
        if span[1] <= reach:
            inside.add(span)
        reach = max(reach, span[1])
    if not inside:
        return
    for place in list(place_hits):
        place_hits[place] = [hit for hit in place_hits[place] if (hit[0], hit[1]) not in inside]
        if not place_hits[place]:
            del place_hits[place]


_Confirmer = tuple[int, int, _Found, str]  # token, order, hit, label


def _nearest_context(hit: _Found, confirmers: list[_Confirmer], window: int) -> str | None:
    """The label of the closest confirmer within `window` tokens that is not the hit itself.

    `confirmers` are sorted by token, so only those inside the window are looked at.
    """
    token = hit[2]
    first = bisect.bisect_left(confirmers, (token - window,))
    best: tuple[int, int, str] | None = None
    for other_token, order, other, label in confirmers[first:]:
        if other_token > token + window:
            break
        if hit[0] <= other[0] and other[1] <= hit[1]:
            continue  # inside the place name itself
        candidate = (abs(other_token - token), order, label)
        if best is None or candidate < best:
            best = candidate
    return best[2] if best else None


def _snippet(text: str, hits: Sequence[Hit], width: int = SNIPPET_WIDTH) -> str:
    """About `width` characters of `text` around the first hit, whitespace folded."""
    if len(text) <= width:
        return " ".join(text.split())
    start, end = (hits[0].start, hits[0].end) if hits else (0, 0)
    room = max(0, width - (end - start))
    lo = max(0, start - room // 3)
    hi = min(len(text), max(end, lo + width))
    lo = max(0, min(lo, hi - width))
    if lo > 0:  # start at a word
        space = text.find(" ", lo, start)
        lo = space + 1 if space >= 0 else lo
    if hi < len(text):
        space = text.rfind(" ", end, hi)
        hi = space if space >= 0 else hi
    body = " ".join(text[lo:hi].split())
    return ("… " if lo > 0 else "") + body + (" …" if hi < len(text) else "")


def compile_rules(
    rules: Sequence[Rule],
    places: Sequence[Place],
    *,
    context_window: int = CONTEXT_WINDOW,
    broad_groups: Collection[str] = BROAD_GROUPS,
) -> CompiledRules:
    """Compile rules and the gazetteer into one matcher.

    The rules should come from the rule loader, which validates them first. An ambiguous place
    counts where a context word, or a place sharing one of its groups other than
    `broad_groups`, stands within `context_window` words.

    Raises:
        RuleError: a condition does not parse, a term has nothing to match, or a selection
            names a place or group the gazetteer does not have.
    """
    tables = build_tables(rules, places, context_window=context_window, broad_groups=broad_groups)
    return CompiledRules(tables)
