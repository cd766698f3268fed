"""pipeline/rules.py: rule files in, Rules and file:line:col problems out; last good rules kept."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.rules import keep_last_good, load_rules, rule_version
from pipeline.ruletypes import Rule, RuleSet, Selection

REPO = Path(__file__).resolve().parents[2]

BASE = """\
id: panj-crossings
title: Incidents at the Panj river border crossings
level: high
notify: [analysts]
digest: daily 08:00
feeds: ["*"]
detection:
  crossing:
    places: [panj-crossings]
  violence:
    terms: [attack*, clash*]
  condition: crossing and violence
"""

PLACES = """\
- id: tj-khatlon-panj
  kind: district
  country: TJ
  region: Khatlon
  coords: [37.24, 69.10]
  groups: [khatlon-border, border-region]
  names: {en: [Panj], ru: [Пяндж], fa: [پنج]}
- id: crossing-panji-poyon
  kind: crossing
  country: TJ
  region: Khatlon
  coords: [37.18, 68.95]
  groups: [panj-crossings, border-region]
  names: {en: [Panji Poyon], ru: [Нижний Пяндж], fa: [پنج پایان]}
"""

REFS = {"notifiers": ["analysts", "ops-chat"], "feeds": ["ozodi-tj"], "tags": ["tj", "af"]}


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    (tmp_path / "rules" / "places").mkdir(parents=True)
    (tmp_path / "rules" / "places" / "p.yaml").write_text(PLACES, encoding="utf-8")
    return tmp_path / "rules"


def load(rules_dir: Path, **refs: list[str] | None) -> RuleSet:
    return load_rules(rules_dir, **{**REFS, **refs})  # type: ignore[arg-type]


def shown(ruleset: RuleSet) -> list[str]:
    return [str(p) + (" [warning]" if p.severity == "warning" else "") for p in ruleset.problems]


CASES = [
    (
        "level NO",
        "level: high",
        "level: NO",
        [
            "rules/r.yaml:3:8: `level` must be one of info, low, medium, high, critical",
        ],
    ),
    (
        "level typo",
        "level: high",
        "level: hihg",
        [
            "rules/r.yaml:3:8: `level` must be one of info, low, medium, high, critical (did "
            "you mean 'high'?)",
        ],
    ),
    (
        "digest sexagesimal",
        "digest: daily 08:00",
        "digest: 12:30",
        [
            "rules/r.yaml:5:9: `digest` must be a string like `daily 08:00`; write it in "
            'quotes — write digest: "daily 12:30"',
        ],
    ),
    (
        "digest time only",
        "digest: daily 08:00",
        "digest: 08:00",
        [
            "rules/r.yaml:5:9: `digest`: '08:00' alone is not a schedule — write digest: "
            '"daily 08:00"',
        ],
    ),
    (
        "digest bad day",
        "digest: daily 08:00",
        "digest: weekly funday 08:00",
        [
            "rules/r.yaml:5:16: `digest`: 'funday' is not a day of the week (did you mean "
            "'sun'?) — write a day as mon, tue, wed, thu, fri, sat, sun, e.g. digest: "
            '"weekly mon 08:00"',
        ],
    ),
    (
        "digest full day ok",
        "digest: daily 08:00",
        "digest: Weekly Monday 8:00",
        [],
    ),
    (
        "digest bad time",
        "digest: daily 08:00",
        "digest: daily 25:00",
        [
            "rules/r.yaml:5:15: `digest`: '25:00' is not a time of day — write HH:MM from "
            "00:00 to 23:59",
        ],
    ),
    (
        "digest typo",
        "digest: daily 08:00",
        "digest: dialy 08:00",
        [
            "rules/r.yaml:5:9: `digest`: unknown schedule 'dialy' (did you mean 'daily'?) — "
            "write immediate, hourly, daily HH:MM or weekly mon HH:MM",
        ],
    ),
    (
        "digest extra",
        "digest: daily 08:00",
        "digest: hourly 08:00",
        [
            "rules/r.yaml:5:16: `digest`: 'hourly' takes no day or time — write digest: "
            '"daily 08:00"',
        ],
    ),
    (
        "digest missing time",
        "digest: daily 08:00",
        "digest: daily",
        [
            "rules/r.yaml:5:14: `digest`: 'daily' needs a time — write digest: \"daily 08:00\"",
        ],
    ),
    (
        "unknown key",
        "notify: [analysts]",
        "notfy: [analysts]",
        [
            "rules/r.yaml:4:1: unknown key 'notfy' (did you mean 'notify'?)",
        ],
    ),
    (
        "unknown key no close",
        'feeds: ["*"]',
        'feeds: ["*"]\nauthor: me',
        [
            "rules/r.yaml:7:1: unknown key 'author' — allowed keys: id, title, description, "
            "level, notify, digest, feeds, detection",
        ],
    ),
    (
        "unknown notifier",
        "notify: [analysts]",
        "notify: [analyst]",
        [
            "rules/r.yaml:4:10: unknown notifier 'analyst' (did you mean 'analysts'?) — "
            "notifiers in config.toml: analysts, ops-chat",
        ],
    ),
    (
        "notify not list",
        "notify: [analysts]",
        "notify: analysts",
        [
            "rules/r.yaml:4:9: `notify` must be a list, not 'analysts' — write notify: [analysts]",
        ],
    ),
    (
        "notify empty list",
        "notify: [analysts]",
        "notify: []",
        [
            "rules/r.yaml:4:9: `notify` is empty — write notify: [analysts]",
        ],
    ),
    (
        "notify null",
        "notify: [analysts]",
        "notify:",
        [
            "rules/r.yaml:4:8: `notify` is empty — write notify: [analysts]",
        ],
    ),
    (
        "unknown feed",
        'feeds: ["*"]',
        "feeds: [ozodi]",
        [
            "rules/r.yaml:6:9: unknown feed 'ozodi' (did you mean 'ozodi-tj'?) — feeds are the "
            '`name` of [[feeds]] in config.toml; "*" means every feed',
        ],
    ),
    (
        "feed is a tag",
        'feeds: ["*"]',
        "feeds: [tj]",
        [
            "rules/r.yaml:6:9: unknown feed 'tj' (did you mean 'tag:tj'?) — feeds are the "
            '`name` of [[feeds]] in config.toml; "*" means every feed',
        ],
    ),
    (
        "unknown tag",
        'feeds: ["*"]',
        'feeds: ["tag:tjj"]',
        [
            "rules/r.yaml:6:14: unknown feed tag 'tjj' (did you mean 'tj'?) — tags come from "
            "`tags = [...]` of [[feeds]] in config.toml",
        ],
    ),
    (
        "unknown place",
        "places: [panj-crossings]",
        "places: [panj-crosings]",
        [
            "rules/r.yaml:9:14: unknown place or group 'panj-crosings' (did you mean "
            "'panj-crossings'?) — `newswatch places list` shows place ids and groups",
        ],
    ),
    (
        "unknown place id",
        "places: [panj-crossings]",
        "places: [tj-khatlon-pnj]",
        [
            "rules/r.yaml:9:14: unknown place or group 'tj-khatlon-pnj' (did you mean "
            "'tj-khatlon-panj'?) — `newswatch places list` shows place ids and groups",
        ],
    ),
    (
        "condition typo plain",
        "condition: crossing and violence",
        "condition: crossing andd violence",
        [
            "rules/r.yaml:12:23: expected 'and', 'or' or the end of the condition, found "
            "'andd' (did you mean 'and'?)",
        ],
    ),
    (
        "condition unknown selection",
        "condition: crossing and violence",
        "condition: crossing and violnce",
        [
            "rules/r.yaml:12:27: unknown selection 'violnce' in condition (did you mean "
            "'violence'?)",
        ],
    ),
    (
        "condition quoted",
        "condition: crossing and violence",
        "condition: 'crossing and (violnce)'",
        [
            "rules/r.yaml:12:29: unknown selection 'violnce' in condition (did you mean "
            "'violence'?)",
        ],
    ),
    (
        "condition block",
        "condition: crossing and violence",
        "condition: |\n    crossing and\n      violnce",
        [
            "rules/r.yaml:14:7: unknown selection 'violnce' in condition (did you mean "
            "'violence'?)",
        ],
    ),
    (
        "condition unbalanced",
        "condition: crossing and violence",
        "condition: (crossing and violence",
        [
            "rules/r.yaml:12:14: unclosed '(' — add ')' (found the end of the condition)",
        ],
    ),
    (
        "condition dangling",
        "condition: crossing and violence",
        "condition: crossing and",
        [
            "rules/r.yaml:12:26: expected a selection name, found the end of the condition — "
            "selections are: crossing, violence",
        ],
    ),
    (
        "condition missing",
        "  condition: crossing and violence\n",
        "",
        [
            "rules/r.yaml:8:3: `detection` has no `condition` — add condition: crossing and "
            "violence",
        ],
    ),
    (
        "condition not string",
        "condition: crossing and violence",
        "condition: [crossing]",
        [
            "rules/r.yaml:12:14: `condition` must be a string, not a list — write condition: "
            "crossing and violence",
        ],
    ),
    (
        "unused selection",
        "  condition: crossing and violence",
        "  noise:\n    terms: [Punjab]\n  condition: crossing and violence",
        [
            "rules/r.yaml:12:3: selection 'noise' is not used by the condition — use it in "
            "`condition`, or remove it [warning]",
        ],
    ),
    (
        "title list",
        "title: Incidents at the Panj river border crossings",
        "title: [a, b]",
        [
            "rules/r.yaml:2:8: `title` must be a string, not a list — write title: Incidents "
            "at the Panj river border crossings",
        ],
    ),
    (
        "title number",
        "title: Incidents at the Panj river border crossings",
        "title: 2024",
        [
            'rules/r.yaml:2:8: `title` must be a string; write it in quotes — write title: "2024"',
        ],
    ),
    (
        "title missing",
        "title: Incidents at the Panj river border crossings\n",
        "",
        [
            "rules/r.yaml:1:1: missing key `title` — add title: Incidents at the Panj river "
            "border crossings",
        ],
    ),
    (
        "title empty",
        "title: Incidents at the Panj river border crossings",
        "title:",
        [
            "rules/r.yaml:2:7: `title` is empty — write title: Incidents at the Panj river "
            "border crossings",
        ],
    ),
    (
        "id format",
        "id: panj-crossings",
        "id: Panj Crossings",
        [
            "rules/r.yaml:1:5: `id` takes lowercase letters, digits and '-' — write id: "
            "panj-crossings",
        ],
    ),
    (
        "term not string",
        "terms: [attack*, clash*]",
        "terms: [attack*, NO]",
        [
            "rules/r.yaml:11:22: an item of `terms` must be a string; write it in quotes — "
            'write "NO"',
        ],
    ),
    (
        "term star inside",
        "terms: [attack*, clash*]",
        "terms: [attack*, 'cl*sh']",
        [
            "rules/r.yaml:11:25: in term 'cl*sh', '*' may only end a word — write a prefix "
            "followed by *, e.g. attack*",
        ],
    ),
    (
        "term short prefix",
        "terms: [attack*, clash*]",
        "terms: [attack*, a*]",
        [
            "rules/r.yaml:11:22: prefix 'a*' matches too many words — write at least 3 letters "
            "before * [warning]",
        ],
    ),
    (
        "selection not a mapping",
        "  violence:\n    terms: [attack*, clash*]",
        "  violence: [attack*]",
        [
            "rules/r.yaml:10:13: selection 'violence' must be a mapping with `terms` or "
            "`places`, not a list — write violence: {terms: [...]}",
        ],
    ),
    (
        "selection empty",
        "  violence:\n    terms: [attack*, clash*]",
        "  violence: {}",
        [
            "rules/r.yaml:10:3: selection 'violence' has no terms or places — add terms: [...] "
            "or places: [...]",
        ],
    ),
    (
        "selection unknown key",
        "    terms: [attack*, clash*]",
        "    term: [attack*, clash*]",
        [
            "rules/r.yaml:11:5: unknown key 'term' (did you mean 'terms'?)",
        ],
    ),
    (
        "selection bad name",
        "  violence:\n",
        "  not:\n",
        [
            "rules/r.yaml:10:3: selection name 'not' cannot be used in a condition — use "
            "letters, digits, '_' and '-', starting with a letter, and none of: and, or, not, "
            "of, them, all, any, near",
            "rules/r.yaml:12:27: unknown selection 'violence' in condition — selections are: "
            "crossing, not",
        ],
    ),
    (
        "detection list",
        "detection:\n  crossing:\n    places: [panj-crossings]\n  violence:\n    terms: "
        "[attack*, clash*]\n  condition: crossing and violence\n",
        "detection: [a]\n",
        [
            "rules/r.yaml:7:12: `detection` must be a mapping of selections and a condition, "
            "not a list — write detection: then, indented, name: {terms: [...]} and condition: "
            "name",
        ],
    ),
    (
        "duplicate key",
        "level: high",
        "level: high\nlevel: low",
        [
            "rules/r.yaml:4:1: duplicate key 'level' (first on line 3, again on line 4) — keep "
            "one of them",
        ],
    ),
    (
        "tab",
        "  crossing:",
        "\tcrossing:",
        [
            "rules/r.yaml:8:1: found a tab character in the indentation — indent with spaces",
        ],
    ),
    (
        "feeds empty",
        'feeds: ["*"]',
        "feeds: []",
        [
            'rules/r.yaml:6:8: `feeds` is empty — write feeds: ["*"] for every feed',
        ],
    ),
    (
        "description number",
        'feeds: ["*"]',
        'feeds: ["*"]\ndescription: 12',
        [
            "rules/r.yaml:7:14: `description` must be a string; write it in quotes — write "
            'description: "12"',
        ],
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_mistake_is_reported_with_its_position(
    rules_dir: Path, old: str, new: str, expected: list[str]
) -> None:
    assert old in BASE
    (rules_dir / "r.yaml").write_text(BASE.replace(old, new, 1), encoding="utf-8")
    ruleset = load(rules_dir)
    assert shown(ruleset) == expected
    failed = any(not p.endswith("[warning]") for p in expected)
    assert ruleset.failed_files == (("rules/r.yaml",) if failed else ())
    assert len(ruleset.rules) == (0 if failed else 1)


def test_a_valid_rule(rules_dir: Path) -> None:
    text = BASE.replace(
        'feeds: ["*"]', 'feeds: ["*", "tag:tj", ozodi-tj]\ndescription: >\n  Two\n  lines'
    )
    text = text.replace(
        "condition: crossing and violence", "condition: |\n    crossing\n    and violence"
    )
    (rules_dir / "panj.yml").write_text("# a comment\n" + text, encoding="utf-8")
    ruleset = load(rules_dir)
    assert ruleset.problems == ()
    (rule,) = ruleset.rules
    assert rule == Rule(
        id="panj-crossings",
        title="Incidents at the Panj river border crossings",
        level="high",
        notify=("analysts",),
        digest="daily 08:00",
        feeds=("*", "tag:tj", "ozodi-tj"),
        selections=(
            Selection("crossing", places=("panj-crossings",)),
            Selection("violence", terms=("attack*", "clash*")),
        ),
        condition="crossing and violence",
        version=rule.version,
        path="rules/panj.yml",
        description="Two lines",
    )
    assert len(rule.version) == 16 and int(rule.version, 16) >= 0
    assert [p.id for p in ruleset.places] == ["tj-khatlon-panj", "crossing-panji-poyon"]


def test_defaults_and_normalised_values(rules_dir: Path) -> None:
    text = BASE.replace('feeds: ["*"]\n', "").replace("digest: daily 08:00\n", "")
    (rules_dir / "a.yaml").write_text(text, encoding="utf-8")
    (rules_dir / "b.yaml").write_text(
        text.replace("panj-crossings\n", "b\n", 1).replace(
            "level: high", "level: low\ndigest: Weekly Monday 8:00"
        ),
        encoding="utf-8",
    )
    a, b = load(rules_dir).rules
    assert (a.digest, a.feeds, a.description) == ("immediate", ("*",), "")
    assert b.digest == "weekly mon 08:00"


def test_hostile_text_stays_literal(rules_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSWATCH_SMTP_PASSWORD", "hunter2")
    title = "$NEWSWATCH_SMTP_PASSWORD ${HOME} {{ 7*7 }} %(x)s"
    text = BASE.replace("title: Incidents at the Panj river border crossings", f"title: '{title}'")
    (rules_dir / "r.yaml").write_text(text, encoding="utf-8")
    (rule,) = load(rules_dir).rules
    assert rule.title == title


def test_duplicate_ids_name_both_files(rules_dir: Path) -> None:
    (rules_dir / "a.yaml").write_text(BASE, encoding="utf-8")
    (rules_dir / "b.yaml").write_text(BASE.replace("level: high", "level: low"), encoding="utf-8")
    (rules_dir / "c.yaml").write_text(
        BASE.replace("id: panj-crossings", "id: other"), encoding="utf-8"
    )
    ruleset = load(rules_dir)
    assert shown(ruleset) == [
        "rules/a.yaml:1:5: rule id 'panj-crossings' is also used by rules/b.yaml — give each "
        "rule its own id",
        "rules/b.yaml:1:5: rule id 'panj-crossings' is also used by rules/a.yaml — give each "
        "rule its own id",
    ]
    assert ruleset.failed_files == ("rules/a.yaml", "rules/b.yaml")
    assert [r.id for r in ruleset.rules] == ["other"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "",
            "rules/r.yaml:1:1: the file is empty — write a rule with id, title, level, "
            "notify and detection",
        ),
        (
            "# nothing yet\n",
            "rules/r.yaml:1:1: the file is empty — write a rule with id, title, level, "
            "notify and detection",
        ),
        (
            "- id: x\n",
            "rules/r.yaml:1:1: a rule file must be a mapping of keys, not a list — write "
            "keys such as id: …, "
            "title: …, level: … at the start of lines (lists of places belong in rules/places/)",
        ),
        (
            "just text\n",
            "rules/r.yaml:1:1: a rule file must be a mapping of keys, not 'just text' — "
            "write keys such as "
            "id: …, title: …, level: … at the start of lines",
        ),
        (
            'id: x\ntitle: !!python/object/apply:os.system ["true"]\n',
            "rules/r.yaml:2:8: tags like !!python/object/apply:os.system are not allowed — "
            "remove the tag "
            "and write a plain value",
        ),
    ],
    ids=["empty", "comment only", "a list", "a scalar", "unsafe tag"],
)
def test_files_that_are_not_rules(rules_dir: Path, text: str, expected: str) -> None:
    (rules_dir / "r.yaml").write_text(text, encoding="utf-8")
    (rules_dir / "good.yaml").write_text(BASE, encoding="utf-8")
    ruleset = load(rules_dir)
    assert shown(ruleset) == [expected]
    assert ruleset.failed_files == ("rules/r.yaml",)
    assert [r.path for r in ruleset.rules] == ["rules/good.yaml"]


def test_every_problem_of_a_file_is_reported_together(rules_dir: Path) -> None:
    text = BASE.replace("level: high", "level: urgent").replace("[analysts]", "[nobody]")
    (rules_dir / "r.yaml").write_text(text, encoding="utf-8")
    assert shown(load(rules_dir)) == [
        "rules/r.yaml:3:8: `level` must be one of info, low, medium, high, critical",
        "rules/r.yaml:4:10: unknown notifier 'nobody' — notifiers in config.toml: analysts, "
        "ops-chat",
    ]


def test_references_are_checked_only_when_given(rules_dir: Path) -> None:
    text = BASE.replace('feeds: ["*"]', 'feeds: [anything, "tag:whatever"]').replace(
        "[analysts]", "[x]"
    )
    (rules_dir / "r.yaml").write_text(text, encoding="utf-8")
    ruleset = load_rules(rules_dir)
    assert ruleset.problems == () and len(ruleset.rules) == 1
    assert len(load(rules_dir).errors) == 3


def test_unknown_notifier_when_none_are_configured(rules_dir: Path) -> None:
    (rules_dir / "r.yaml").write_text(BASE, encoding="utf-8")
    assert shown(load(rules_dir, notifiers=[])) == [
        "rules/r.yaml:4:10: unknown notifier 'analysts' — add [notifiers.analysts] to config.toml"
    ]


def test_a_broken_place_file_does_not_cascade_into_rules(rules_dir: Path) -> None:
    places = rules_dir / "places" / "p.yaml"
    places.write_text(PLACES.replace("kind: crossing", "kind: crosing"), encoding="utf-8")
    (rules_dir / "r.yaml").write_text(BASE, encoding="utf-8")
    ruleset = load(rules_dir)
    assert shown(ruleset) == [
        "rules/places/p.yaml:9:9: `kind` must be one of district, town, village, river, crossing, "
        "bridge, market, province, region (did you mean 'crossing'?)"
    ]
    assert ruleset.failed_files == ("rules/places/p.yaml",)
    assert [r.id for r in ruleset.rules] == ["panj-crossings"]
    places.write_text("- id: [\n", encoding="utf-8")
    by_id = BASE.replace("[panj-crossings]", "[panj-crossings, tj-khatlon-panj]")
    (rules_dir / "r.yaml").write_text(by_id, encoding="utf-8")
    assert shown(load(rules_dir))[1:] == [
        "rules/r.yaml:9:14: group 'panj-crossings' has no places — rules/places/p.yaml did not load"
        " [warning]",
        "rules/r.yaml:9:30: unknown place or group 'tj-khatlon-panj' — rules/places/p.yaml did not "
        "load; fix it first",
    ]


def test_paths_are_shown_relative_to_the_display_root(tmp_path: Path, rules_dir: Path) -> None:
    (rules_dir / "r.yaml").write_text("level: [\n", encoding="utf-8")
    root_shown = load_rules(rules_dir, display_root=tmp_path.parent).problems[0].path
    assert root_shown == f"{tmp_path.name}/rules/r.yaml"
    elsewhere = load_rules(rules_dir, display_root=tmp_path / "other").problems[0].path
    assert elsewhere == (rules_dir / "r.yaml").as_posix()


def test_hidden_and_other_files_are_ignored(rules_dir: Path) -> None:
    (rules_dir / ".#r.yaml").write_text("broken: [", encoding="utf-8")
    (rules_dir / "r.yaml~").write_text("broken: [", encoding="utf-8")
    (rules_dir / "README.md").write_text("# rules", encoding="utf-8")
    assert load(rules_dir).problems == ()


def test_a_missing_rules_folder_is_a_problem(tmp_path: Path) -> None:
    ruleset = load_rules(tmp_path / "rules")
    assert [str(p) for p in ruleset.problems] == [
        "rules:1:1: the rules folder does not exist — create it, or set rules_dir in config.toml"
    ]


# -- versions -------------------------------------------------------------------------------------


def version_of(rules_dir: Path, text: str, places: str = PLACES) -> str:
    (rules_dir / "r.yaml").write_text(text, encoding="utf-8")
    (rules_dir / "places" / "p.yaml").write_text(places, encoding="utf-8")
    (rule,) = load(rules_dir).rules
    return rule.version


def test_version_ignores_layout_and_comments(rules_dir: Path) -> None:
    before = version_of(rules_dir, BASE)
    relaid = BASE.replace("[attack*, clash*]", "\n      - attack*   # prefix\n      - 'clash*'")
    assert version_of(rules_dir, "# new comment\n" + relaid) == before
    (rules_dir / "r.yaml").rename(rules_dir / "moved.yaml")
    assert load(rules_dir).rules[0].version == before


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("title: Incidents", "title: Clashes"),
        ("[attack*, clash*]", "[attack*, clash*, gunfire]"),
        ("crossing and violence", "crossing or violence"),
        ("level: high", "level: low"),
    ],
)
def test_version_follows_the_rule(rules_dir: Path, old: str, new: str) -> None:
    assert version_of(rules_dir, BASE) != version_of(rules_dir, BASE.replace(old, new))


def test_version_follows_the_places_it_uses(rules_dir: Path) -> None:
    by_group = version_of(rules_dir, BASE)
    renamed_member = PLACES.replace("[Panji Poyon]", "[Panji Poyon, Nizhny Pyanj]")
    assert version_of(rules_dir, BASE, renamed_member) != by_group
    # a place of another group does not change it
    other = PLACES.replace("ru: [Пяндж]", "ru: [Пяндж, Панч]")
    assert version_of(rules_dir, BASE, other) == by_group
    by_id = BASE.replace("[panj-crossings]", "[tj-khatlon-panj]")
    assert version_of(rules_dir, by_id, other) != version_of(rules_dir, by_id)


def test_rule_version_is_a_function_of_content() -> None:
    rule = Rule(
        "a", "A", "high", ("x",), "immediate", ("*",), (Selection("s", ("t",)),), "s", "", "p"
    )
    moved = replace(rule, path="q", version="v")
    assert rule_version(rule, ()) == rule_version(moved, ())
    assert rule_version(rule, ()) != rule_version(replace(rule, condition="not s"), ())


# -- keeping the last good rules ------------------------------------------------------------------


def test_keep_last_good_keeps_a_broken_files_rule(rules_dir: Path) -> None:
    (rules_dir / "r.yaml").write_text(BASE, encoding="utf-8")
    (rules_dir / "s.yaml").write_text(
        BASE.replace("id: panj-crossings", "id: second"), encoding="utf-8"
    )
    good = load(rules_dir)
    (rules_dir / "r.yaml").write_text(BASE.replace("  crossing:", "\tcrossing:"), encoding="utf-8")
    broken = load(rules_dir)
    assert [r.id for r in broken.rules] == ["second"]
    kept = keep_last_good(good, broken)
    assert kept.rules == good.rules
    assert kept.problems == broken.problems and kept.failed_files == ("rules/r.yaml",)
    assert keep_last_good(None, broken) is broken


def test_keep_last_good_drops_deleted_files_and_moved_ids(rules_dir: Path) -> None:
    (rules_dir / "r.yaml").write_text(BASE, encoding="utf-8")
    good = load(rules_dir)
    (rules_dir / "r.yaml").unlink()
    assert keep_last_good(good, load(rules_dir)).rules == ()
    # the rule moved to another file while the old file is broken: the new one wins
    (rules_dir / "r.yaml").write_text("id: [", encoding="utf-8")
    (rules_dir / "new.yaml").write_text(BASE.replace("level: high", "level: low"), encoding="utf-8")
    kept = keep_last_good(good, load(rules_dir))
    assert [(r.id, r.level, r.path) for r in kept.rules] == [
        ("panj-crossings", "low", "rules/new.yaml")
    ]


def test_keep_last_good_keeps_places_of_a_broken_place_file(rules_dir: Path) -> None:
    (rules_dir / "r.yaml").write_text(BASE, encoding="utf-8")
    good = load(rules_dir)
    (rules_dir / "places" / "p.yaml").write_text(
        PLACES.replace("country: TJ", "country: tj", 1), encoding="utf-8"
    )
    broken = load(rules_dir)
    assert broken.places == ()
    kept = keep_last_good(good, broken)
    assert kept.places == good.places
    assert kept.rules == good.rules  # same places in use: same versions


def test_shipped_rules_load_cleanly() -> None:
    config = load_config(REPO / "config.toml", environ={})
    ruleset = load_rules(
        config.rules_dir,
        notifiers=set(config.notifiers),
        feeds={f.name for f in config.feeds},
        tags={t for f in config.feeds for t in f.tags},
        display_root=config.root,
    )
    assert [str(p) for p in ruleset.errors] == []
