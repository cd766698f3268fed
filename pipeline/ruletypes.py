"""The values rules and places load into: Rule, Selection, Place, RuleProblem, RuleSet."""

from __future__ import annotations

from dataclasses import dataclass, field

LEVELS = ("info", "low", "medium", "high", "critical")


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """One thing wrong in a rule or place file, with a 1-based position.

    str() gives the message users read: `rules/x.yaml:12:3: what is wrong — what to write instead`.
    """

    path: str
    line: int
    col: int
    message: str
    hint: str | None = None
    severity: str = "error"  # error | warning

    def __str__(self) -> str:
        text = f"{self.path}:{self.line}:{self.col}: {self.message}"
        if self.hint:
            text += f" — {self.hint}"
        return text


@dataclass(frozen=True, slots=True)
class Selection:
    """A named list of terms and/or places; true when any of them is found."""

    name: str
    terms: tuple[str, ...] = ()
    places: tuple[str, ...] = ()  # place ids or group names


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule file, validated. `version` changes whenever its effective content changes."""

    id: str
    title: str
    level: str
    notify: tuple[str, ...]
    digest: str
    feeds: tuple[str, ...]
    selections: tuple[Selection, ...]
    condition: str
    version: str
    path: str
    description: str = ""

    def selection(self, name: str) -> Selection:
        for sel in self.selections:
            if sel.name == name:
                return sel
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class Place:
    """One gazetteer entry, as rules/places/*.yaml writes it."""

    id: str
    kind: str
    country: str
    region: str
    coords: tuple[float, float]
    groups: tuple[str, ...]
    names: dict[str, tuple[str, ...]] = field(hash=False)
    ambiguous: bool = False
    context: tuple[str, ...] = ()
    source: tuple[str, ...] = ()
    path: str = ""

    def all_names(self) -> tuple[str, ...]:
        return tuple(name for names in self.names.values() for name in names)


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Everything loaded from rules_dir: the good rules and places, and every problem found."""

    rules: tuple[Rule, ...]
    places: tuple[Place, ...]
    problems: tuple[RuleProblem, ...] = ()
    # path of every file that failed to load -> its problems (so a service keeps its last good rule)
    failed_files: tuple[str, ...] = ()

    @property
    def errors(self) -> tuple[RuleProblem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def place_names(self) -> dict[str, str]:
        """Display names for digests: each place's first English name, else its first name."""
        return {p.id: (p.names.get("en") or p.all_names() or (p.id,))[0] for p in self.places}

    def groups(self) -> set[str]:
        return {g for p in self.places for g in p.groups}
