"""Rules: rules/*.yaml and the gazetteer (rules/places) loaded into a RuleSet, with problems."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline.conditions import KEYWORDS, ConditionSyntaxError, parse_condition, selection_names
from pipeline.gazetteer import STANDARD_GROUPS, load_gazetteer
from pipeline.ruletypes import LEVELS, Place, Rule, RuleProblem, RuleSet, Selection
from pipeline.yamlfields import Fields, describe
from pipeline.yamlsafe import (
    Document,
    Map,
    Node,
    Scalar,
    Seq,
    display_path,
    read_yaml_file,
    suggest,
    yaml_files,
)

RULE_KEYS = ("id", "title", "description", "level", "notify", "digest", "feeds", "detection")
SELECTION_KEYS = ("terms", "places")
_REQUIRED = {
    "id": "id: panj-crossings",
    "title": "title: Incidents at the Panj river border crossings",
    "level": "level: high",
    "notify": "notify: [analysts]",
    "detection": "detection: with selections and a condition",
}
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_SELECTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
# What a version is made of: everything parsed, except the path (moving a file keeps the version).
_RULE_FIELDS = ("id", "title", "description", "level", "notify", "digest", "feeds", "condition")
_PLACE_FIELDS = ("id", "kind", "country", "region", "coords", "groups", "names", "ambiguous",
                 "context", "source")  # fmt: skip


@dataclass(frozen=True, slots=True)
class _References:
    """What a rule may name; None means "not checked"."""

    notifiers: frozenset[str] | None
    feeds: frozenset[str] | None
    tags: frozenset[str] | None
    places: frozenset[str]
    groups: frozenset[str]
    used_groups: frozenset[str]
    failed_place_files: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Loaded:
    fields: Fields
    rule: Rule | None
    id_node: Scalar | None


def load_rules(
    rules_dir: Path,
    *,
    notifiers: Collection[str] | None = None,
    feeds: Collection[str] | None = None,
    tags: Collection[str] | None = None,
    display_root: Path | None = None,
) -> RuleSet:
    """Load every rule file of `rules_dir` and the places of `rules_dir/places`.

    Never raises for bad content: each problem is a RuleProblem whose path is relative to
    `display_root` (default: the folder holding `rules_dir`, so paths read "rules/x.yaml").
    A file with any error contributes no rule (or place) and is listed in `failed_files`;
    `keep_last_good` lets a service go on with what loaded before. Notifiers, feeds and tags
    are checked only when given (None: any name is accepted).
    """
    root = display_root if display_root is not None else rules_dir.parent
    gazetteer = load_gazetteer(rules_dir / "places", display_root=root)
    refs = _References(
        notifiers=None if notifiers is None else frozenset(notifiers),
        feeds=None if feeds is None else frozenset(feeds),
        tags=None if tags is None else frozenset(tags),
        places=gazetteer.ids,
        groups=gazetteer.groups | frozenset(STANDARD_GROUPS),
        used_groups=gazetteer.groups,
        failed_place_files=gazetteer.failed_files,
    )
    loaded = [
        _read_rule(read_yaml_file(p, display_path(p, root)), refs) for p in yaml_files(rules_dir)
    ]
    _check_duplicate_ids(loaded)
    problems = [p for item in loaded for p in item.fields.problems]
    if not rules_dir.is_dir():
        message = "the rules folder does not exist"
        hint = "create it, or set rules_dir in config.toml"
        problems.append(RuleProblem(display_path(rules_dir, root), 1, 1, message, hint))
    good = [item.rule for item in loaded if item.rule is not None and not item.fields.failed]
    return RuleSet(
        rules=tuple(replace(r, version=rule_version(r, gazetteer.places)) for r in good),
        places=gazetteer.places,
        problems=tuple(
            sorted((*problems, *gazetteer.problems), key=lambda p: (p.path, p.line, p.col))
        ),
        failed_files=tuple(
            sorted(
                (*gazetteer.failed_files, *(i.fields.doc.path for i in loaded if i.fields.failed))
            )
        ),
    )


def keep_last_good(previous: RuleSet | None, current: RuleSet) -> RuleSet:
    """The rule set a running service should use after a reload.

    Rules and places of files that fail now but loaded before are kept from `previous` (unless a
    good file now defines the same id); the problems of `current` are kept so status shows them.
    Versions are recomputed against the places in use.
    """
    if previous is None:
        return current
    failed = set(current.failed_files)
    place_ids = {p.id for p in current.places}
    places = current.places + tuple(
        p for p in previous.places if p.path in failed and p.id not in place_ids
    )
    rule_ids = {r.id for r in current.rules}
    rules = current.rules + tuple(
        r for r in previous.rules if r.path in failed and r.id not in rule_ids
    )
    return RuleSet(
        rules=tuple(
            replace(r, version=rule_version(r, places)) for r in sorted(rules, key=lambda r: r.path)
        ),
        places=tuple(sorted(places, key=lambda p: p.path)),  # stable: file order within a file
        problems=current.problems,
        failed_files=current.failed_files,
    )


def rule_version(rule: Rule, places: Iterable[Place]) -> str:
    """A short hex digest of a rule's effective content and of every place it refers to.

    Built from the parsed values (canonical JSON), not the file's bytes: a comment or a change of
    layout keeps the version; an edit to the rule, or to a place (or group member) it uses, does
    not. The file's path is left out, so moving a rule keeps its version.
    """
    refs = {ref for sel in rule.selections for ref in sel.places}
    by_id = {p.id: p for p in places if p.id in refs or refs.intersection(p.groups)}
    used = [by_id[pid] for pid in sorted(by_id)]
    rule_content = {f: getattr(rule, f) for f in _RULE_FIELDS}
    rule_content["selections"] = [[s.name, s.terms, s.places] for s in rule.selections]
    content = [rule_content, [{f: getattr(p, f) for f in _PLACE_FIELDS} for p in used]]
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# -- one file -------------------------------------------------------------------------------------


def _read_rule(doc: Document, refs: _References) -> _Loaded:
    fields = Fields(doc)
    fields.problems.extend(doc.problems)
    root = doc.root
    if root is None:
        if not doc.problems:
            hint = "write a rule with id, title, level, notify and detection"
            fields.add((1, 1), "the file is empty", hint, "error")
        return _Loaded(fields, None, None)
    if not isinstance(root, Map):
        hint = "write keys such as id: …, title: …, level: … at the start of lines"
        if isinstance(root, Seq):
            hint += " (lists of places belong in rules/places/)"
        fields.error(root, f"a rule file must be a mapping of keys, not {describe(root)}", hint)
        return _Loaded(fields, None, None)
    fields.keys(root, RULE_KEYS, _REQUIRED)
    id_node = root.get("id")
    rule = _build_rule(fields, root, refs)
    return _Loaded(fields, rule, id_node if isinstance(id_node, Scalar) else None)


def _build_rule(fields: Fields, root: Map, refs: _References) -> Rule | None:
    rule_id = _rule_id(fields, root)
    title = fields.string(root, "title", _REQUIRED["title"])
    description = _description(fields, root)
    level = fields.choice(root, "level", LEVELS)
    notify = _notify(fields, root, refs)
    digest = fields.schedule(root, "digest", default="immediate")
    feeds = _feeds(fields, root, refs)
    detection = _detection(fields, root, refs)
    if None in (rule_id, title, level, notify, digest, feeds, detection) or fields.failed:
        return None
    assert rule_id and title and level and notify and digest and feeds and detection
    selections, condition = detection
    return Rule(
        id=rule_id,
        title=title,
        level=level,
        notify=notify,
        digest=digest,
        feeds=feeds,
        selections=selections,
        condition=condition,
        version="",
        path=fields.doc.path,
        description=description,
    )


def _rule_id(fields: Fields, root: Map) -> str | None:
    rule_id = fields.string(root, "id", _REQUIRED["id"])
    node = root.get("id")
    if rule_id is None or node is None or _ID.match(rule_id):
        return rule_id
    slug = "-".join(re.findall(r"[a-z0-9]+", rule_id.lower())) or "panj-crossings"
    fields.error(node, "`id` takes lowercase letters, digits and '-'", f"write id: {slug}")
    return None


def _description(fields: Fields, root: Map) -> str:
    node = root.get("description")
    if node is None or (isinstance(node, Scalar) and node.value is None):
        return ""
    return fields.string(root, "description", "description: what this rule watches for") or ""


def _notify(fields: Fields, root: Map, refs: _References) -> tuple[str, ...] | None:
    items = fields.strings(root, "notify", _REQUIRED["notify"])
    if items is None:
        return None
    known = sorted(refs.notifiers) if refs.notifiers is not None else None
    if not items and not fields.failed:
        example = f"notify: [{known[0]}]" if known else _REQUIRED["notify"]
        fields.error(root.get("notify") or root, "`notify` is empty", f"write {example}")
    for item in items:
        name = str(item.value).strip()
        if known is not None and name not in known:
            hint = f"notifiers in config.toml: {', '.join(known)}" if known else None
            fields.error(
                item,
                f"unknown notifier {name!r}{suggest(name, known)}",
                hint or f"add [notifiers.{name}] to config.toml",
            )
    return tuple(str(item.value).strip() for item in items)


def _feeds(fields: Fields, root: Map, refs: _References) -> tuple[str, ...] | None:
    if root.get("feeds") is None:
        return ("*",)
    items = fields.strings(root, "feeds", 'feeds: ["*"]')
    if items is None:
        return None
    if not items and not fields.failed:
        fields.error(
            root.get("feeds") or root, "`feeds` is empty", 'write feeds: ["*"] for every feed'
        )
    for item in items:
        _check_feed(fields, item, refs)
    return tuple(str(item.value).strip() for item in items)


def _check_feed(fields: Fields, item: Scalar, refs: _References) -> None:
    text = str(item.value).strip()
    offset = item.text.find(text)
    if text == "*":
        return
    if text.startswith("tag:"):
        tag = text[4:].strip()
        if refs.tags is not None and tag not in refs.tags:
            fields.error_at(
                item,
                offset + 4,
                f"unknown feed tag {tag!r}{suggest(tag, refs.tags)}",
                "tags come from `tags = [...]` of [[feeds]] in config.toml",
            )
        return
    if refs.feeds is not None and text not in refs.feeds:
        close = suggest(text, refs.feeds)
        if not close and refs.tags is not None and text in refs.tags:
            close = f" (did you mean 'tag:{text}'?)"
        fields.error(
            item,
            f"unknown feed {text!r}{close}",
            'feeds are the `name` of [[feeds]] in config.toml; "*" means every feed',
        )


# -- detection ------------------------------------------------------------------------------------


def _detection(
    fields: Fields, root: Map, refs: _References
) -> tuple[tuple[Selection, ...], str] | None:
    node = root.get("detection")
    if node is None:
        return None
    if not isinstance(node, Map):
        fields.error(
            node,
            f"`detection` must be a mapping of selections and a condition, not {describe(node)}",
            "write detection: then, indented, name: {terms: [...]} and condition: name",
        )
        return None
    named = [(key, value) for key, value in node.entries if key.text != "condition"]
    selections = [_selection(fields, key, value, refs) for key, value in named]
    condition = _condition(fields, node, named)
    if condition is None or None in selections:
        return None
    return tuple(s for s in selections if s is not None), condition


def _selection(fields: Fields, key: Scalar, value: Node, refs: _References) -> Selection | None:
    name = key.text
    if not _SELECTION_NAME.match(name) or name.lower() in KEYWORDS:
        fields.error(
            key,
            f"selection name {name!r} cannot be used in a condition",
            "use letters, digits, '_' and '-', starting with a letter, and none of: "
            + ", ".join(KEYWORDS),
        )
    if not isinstance(value, Map):
        fields.error(
            value if not (isinstance(value, Scalar) and value.value is None) else key,
            f"selection {name!r} must be a mapping with `terms` or `places`, not {describe(value)}",
            f"write {name}: {{terms: [...]}}",
        )
        return None
    before = len(fields.problems)
    fields.keys(value, SELECTION_KEYS, {}, f" of selection {name!r}")
    terms = [
        _term(fields, item) for item in fields.strings(value, "terms", "terms: [attack*]") or ()
    ]
    places = fields.strings(value, "places", "places: [panj-crossings]") or []
    for item in places:
        _check_place_ref(fields, item, refs)
    if not terms and not places and len(fields.problems) == before:  # else said already
        fields.error(
            key, f"selection {name!r} has no terms or places", "add terms: [...] or places: [...]"
        )
    return Selection(name, tuple(terms), tuple(str(p.value).strip() for p in places))


def _term(fields: Fields, item: Scalar) -> str:
    term = " ".join(str(item.value).split())
    for match in re.finditer(r"\S+", item.text):
        word = match.group()
        star = word.find("*")
        if star >= 0 and (star != len(word) - 1 or star == 0):
            fields.error_at(
                item,
                match.start() + star,
                f"in term {term!r}, '*' may only end a word",
                "write a prefix followed by *, e.g. attack*",
            )
        elif star > 0 and star < 3:
            fields.add(
                fields.doc.position(item, match.start()),
                f"prefix {word!r} matches too many words",
                "write at least 3 letters before *",
                "warning",
            )
    return term


def _check_place_ref(fields: Fields, item: Scalar, refs: _References) -> None:
    ref = str(item.value).strip()
    if ref in refs.places:
        return
    failed = refs.failed_place_files
    if ref in refs.groups:
        if ref not in refs.used_groups:
            hint = f"{', '.join(failed)} did not load" if failed else "add places to it"
            fields.warn(item, f"group {ref!r} has no places", hint)
        return
    hint = (
        f"{', '.join(failed)} did not load; fix it first"
        if failed
        else "`newswatch places list` shows place ids and groups"
    )
    close = suggest(ref, sorted(refs.places | refs.groups))
    fields.error(item, f"unknown place or group {ref!r}{close}", hint)


def _condition(fields: Fields, node: Map, named: list[tuple[Scalar, Node]]) -> str | None:
    names = [key.text for key, _ in named]
    cond = node.get("condition")
    example = "condition: " + (" and ".join(names[:2]) or "crossing and violence")
    if cond is None:
        fields.error(node, "`detection` has no `condition`", f"add {example}")
        return None
    if not names:
        fields.error(
            node,
            "`detection` has no selections",
            "add e.g. crossing: {places: [panj-crossings]} above the condition",
        )
        return None
    if not (isinstance(cond, Scalar) and isinstance(cond.value, str) and cond.value.strip()):
        fields.not_a_string(cond, "`condition`", example, "condition")
        return None
    try:
        tree = parse_condition(cond.text, names)
    except ConditionSyntaxError as exc:
        message, hint = exc.message, exc.hint
        if hint and hint.startswith("did you mean"):
            message, hint = f"{message} ({hint})", None
        fields.error_at(cond, exc.col - 1, message, hint)
        return None
    used = selection_names(tree)
    for key, _ in named:
        if key.text not in used:
            fields.warn(
                key,
                f"selection {key.text!r} is not used by the condition",
                "use it in `condition`, or remove it",
            )
    return " ".join(cond.text.split())


def _check_duplicate_ids(loaded: list[_Loaded]) -> None:
    by_id: dict[str, list[_Loaded]] = {}
    for item in loaded:
        if item.id_node is not None and isinstance(item.id_node.value, str):
            by_id.setdefault(item.id_node.value.strip(), []).append(item)
    for rule_id, items in by_id.items():
        if len(items) < 2:
            continue
        for item in items:
            others = ", ".join(o.fields.doc.path for o in items if o is not item)
            assert item.id_node is not None
            item.fields.error(
                item.id_node,
                f"rule id {rule_id!r} is also used by {others}",
                "give each rule its own id",
            )
