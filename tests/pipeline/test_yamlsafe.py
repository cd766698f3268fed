"""pipeline/yamlsafe.py: positions, friendly syntax errors, and everything unsafe refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pipeline import yamlsafe
from pipeline.yamlsafe import MAX_NODES, Map, Scalar, Seq, load_yaml, read_yaml_file


class _PureLoader(yaml.SafeLoader):
    """The pure-Python parser, for machines where PyYAML has no libyaml."""


LOADERS = {"pure": _PureLoader}
if hasattr(yaml, "CSafeLoader"):
    LOADERS["libyaml"] = yamlsafe._EventLoader


@pytest.fixture(params=sorted(LOADERS), autouse=True)
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    # which YAML parser PyYAML was built with is a platform boundary: both must behave the same
    monkeypatch.setattr(yamlsafe, "_EventLoader", LOADERS[request.param])
    yield request.param


def problems(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [str(p) for p in load_yaml(data, "rules/x.yaml").problems]


SYNTAX = [
    (
        "tab indentation",
        "id: x\ndetection:\n\tsel:\n    terms: [a]\n",
        "rules/x.yaml:3:1: found a tab character in the indentation — indent with spaces",
    ),
    (
        "tab inside indentation",
        "id: x\ndetection:\n  sel:\n  \tterms: [a]\n",
        "rules/x.yaml:4:3: found a tab character in the indentation — indent with spaces",
    ),
    (
        "unclosed double quote",
        'id: x\ntitle: "Panj crossing\nlevel: high\n',
        'rules/x.yaml:2:8: this quoted text is never closed — end it with "',
    ),
    (
        "unclosed single quote",
        "id: x\ntitle: 'Panj crossing\nlevel: high\n",
        "rules/x.yaml:2:8: this quoted text is never closed — end it with '",
    ),
    (
        "key less indented than its siblings",
        "id: x\ndetection:\n  a:\n    terms: [x]\n   b:\n    terms: [y]\n",
        "rules/x.yaml:5:4: bad indentation: this key does not line up with the keys above it"
        " — start it in column 3, like line 3",
    ),
    (
        "key indented more than the key above",
        "id: x\ntitle: t\n  level: high\n",
        "rules/x.yaml:3:3: bad indentation: key 'level' is indented more than the key above it"
        " — start it in column 1, like line 2",
    ),
    (
        "list item out of line",
        "notify:\n  - a\n - b\n",
        "rules/x.yaml:3:2: bad indentation: this list item does not line up with the items above"
        " it — start every '- ' item of one list in the same column",
    ),
    (
        "colon inside a plain value",
        "title: Panj: clashes\n",
        "rules/x.yaml:1:12: a value that contains ': ' must be quoted"
        ' — write title: "Panj: clashes"',
    ),
    (
        "unclosed flow list",
        "id: x\nnotify: [a, b\nlevel: high\n",
        "rules/x.yaml:2:9: this [ is not closed — separate items with ',' and end them with ]",
    ),
    (
        "unclosed flow mapping",
        "id: x\nnotify: {a: b\nlevel: high\n",
        "rules/x.yaml:2:9: this { is not closed — separate items with ',' and end them with }",
    ),
    (
        "stray bracket",
        "a: [b]]\n",
        "rules/x.yaml:1:7: unexpected ']' — remove it, or put the whole value in quotes",
    ),
    (
        "line without a colon",
        "a:\n  b: 1\n  c\n",
        "rules/x.yaml:3:3: this line has no ':' after its key"
        " — write key: value (with a space after ':'), or quote the text",
    ),
    (
        "two documents",
        "a: 1\n---\nb: 2\n",
        "rules/x.yaml:2:1: a second YAML document ('---') in one file"
        " — remove the '---' line, or move what follows to a file of its own",
    ),
    (
        "control character",
        "a: b\x07\n",
        "rules/x.yaml:1:5: control character U+0007 is not allowed in YAML — remove it",
    ),
    (
        "complex key",
        "? [a, b]\n: c\n",
        "rules/x.yaml:1:3: a key must be a plain name, not a list or mapping — write name: value",
    ),
    (
        "bad explicit int",
        "a: !!int abc\n",
        "rules/x.yaml:1:4: 'abc' is not a valid !!int — remove the tag",
    ),
    (
        "too deep",
        "a: " + "[" * 70 + "]" * 70 + "\n",
        "rules/x.yaml:1:68: values nested deeper than 64 levels",
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in SYNTAX], ids=[c[0] for c in SYNTAX])
def test_syntax_errors_say_where_and_what_to_write(text: str, expected: str) -> None:
    assert problems(text) == [expected]


UNSAFE = [
    (
        "python object",
        'id: x\ntitle: !!python/object/apply:os.system ["touch canary"]\n',
        "rules/x.yaml:2:8: tags like !!python/object/apply:os.system are not allowed"
        " — remove the tag and write a plain value",
    ),
    (
        "binary",
        "a: !!binary aGVsbG8=\n",
        "rules/x.yaml:1:4: tags like !!binary are not allowed — remove the tag and write a "
        "plain value",
    ),
    (
        "local tag",
        "a: !env HOME\n",
        "rules/x.yaml:1:4: tags like !env are not allowed — remove the tag and write a plain value",
    ),
    (
        "set",
        "a: !!set {x, y}\n",
        "rules/x.yaml:1:4: tags like !!set are not allowed — remove the tag and write a "
        "plain value",
    ),
    (
        "anchor",
        "a: &x [1]\nb: *x\n",
        "rules/x.yaml:1:4: anchors (&x) are not allowed in rule files"
        " — remove the anchor and write values out in full",
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in UNSAFE], ids=[c[0] for c in UNSAFE])
def test_unsafe_yaml_is_refused(text: str, expected: str) -> None:
    doc = load_yaml(text.encode(), "rules/x.yaml")
    assert [str(p) for p in doc.problems] == [expected]
    assert doc.root is None


def test_python_tags_never_run(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    for tag in ("!!python/object/apply:os.system", "!!python/object/new:os.system"):
        text = f'title: {tag} ["touch {canary}"]\n'
        doc = load_yaml(text.encode(), "rules/x.yaml")
        assert doc.root is None
        assert "are not allowed" in doc.problems[0].message
    assert not canary.exists()


def test_an_alias_bomb_fails_at_its_first_anchor() -> None:
    # 9 levels would expand to 10**9 items; it must fail before any expansion happens
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    assert problems("\n".join(lines) + "\n") == [
        "rules/x.yaml:1:5: anchors (&a0) are not allowed in rule files"
        " — remove the anchor and write values out in full"
    ]


def test_duplicate_keys_name_both_lines_and_keep_the_first() -> None:
    doc = load_yaml(b"id: x\ntitle: a\nid: y\ntitle: b\n", "rules/x.yaml")
    assert [str(p) for p in doc.problems] == [
        "rules/x.yaml:3:1: duplicate key 'id' (first on line 1, again on line 3) — keep one "
        "of them",
        "rules/x.yaml:4:1: duplicate key 'title' (first on line 2, again on line 4)"
        " — keep one of them",
    ]
    assert isinstance(doc.root, Map)
    id_node = doc.root.get("id")
    assert isinstance(id_node, Scalar) and id_node.value == "x"


def test_node_budget() -> None:
    text = "a: [" + ",".join(["1"] * MAX_NODES) + "]\n"
    assert problems(text) == [
        f"rules/x.yaml:1:{5 + 2 * (MAX_NODES - 3)}: file has more than 50,000 YAML values"
        " — split it into several smaller files"
    ]


def test_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"# " + b"x" * 1_000_000 + b"\n")
    doc = read_yaml_file(path, "rules/big.yaml")
    assert [str(p) for p in doc.problems] == [
        "rules/big.yaml:1:1: file is larger than 1 MB — split it into smaller files"
    ]


def test_not_utf8_names_the_byte() -> None:
    assert problems(b"id: x\ntitle: caf\xe9\n") == [
        "rules/x.yaml:2:11: not valid UTF-8 (byte 0xe9) — save it as UTF-8"
    ]


def test_unreadable_file_is_a_problem(tmp_path: Path) -> None:
    doc = read_yaml_file(tmp_path / "missing.yaml", "rules/missing.yaml")
    assert [str(p) for p in doc.problems] == [
        "rules/missing.yaml:1:1: cannot read the file: No such file or directory"
    ]


def test_yaml_11_values_keep_what_was_written() -> None:
    text = (
        "a: !!str 12:30\nb: 12:30\nc: 08:00\nd: NO\ne: ~\nf: 1_000\ng: 2024-01-01\n"
        "h: '12:30'\ni: $NEWSWATCH_SMTP_PASSWORD ${HOME}\n"
    )
    doc = load_yaml(text.encode(), "x")
    assert isinstance(doc.root, Map)
    values = {k.text: v.value for k, v in doc.root.entries if isinstance(v, Scalar)}
    assert values == {
        "a": "12:30",
        "b": 750,  # YAML 1.1 sexagesimal
        "c": "08:00",  # a leading 0 is not sexagesimal
        "d": False,
        "e": None,
        "f": 1000,
        "g": "2024-01-01",  # timestamps stay text
        "h": "12:30",
        "i": "$NEWSWATCH_SMTP_PASSWORD ${HOME}",  # never expanded
    }
    b = doc.root.get("b")
    assert isinstance(b, Scalar) and (b.text, b.style, b.line, b.col) == ("12:30", "", 2, 4)


def test_positions_of_nodes() -> None:
    doc = load_yaml("# c\r\nid: x\r\nlist:\r\n  - Панҷ\r\n  - {k: v}\r\n".encode(), "x")
    assert isinstance(doc.root, Map)
    items = doc.root.get("list")
    assert isinstance(items, Seq) and (items.line, items.col) == (4, 3)
    first, second = items.items
    assert isinstance(first, Scalar) and (first.value, first.line, first.col) == ("Панҷ", 4, 5)
    assert isinstance(second, Map) and (second.line, second.col) == (5, 5)


POSITIONS = [
    ("plain", "c: crossing and violnce\n", (1, 17)),
    ("plain over two lines", "c: crossing and\n  violnce\n", (2, 3)),
    ("single quoted", "c: 'it''s and violnce'\n", (1, 15)),
    ("double quoted with escapes", 'c: "a \\"q\\" and violnce"\n', (1, 17)),
    ("double quoted over two lines", 'c: "crossing and\n  violnce"\n', (2, 3)),
    ("literal block", "c: |\n  crossing and\n  violnce\n", (3, 3)),
    ("folded block", "c: >-\n    crossing and\n    violnce\n", (3, 5)),
    ("block with indentation indicator", "c: |2\n   crossing and violnce\n", (2, 17)),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in POSITIONS], ids=[c[0] for c in POSITIONS]
)
def test_position_inside_a_scalar(text: str, expected: tuple[int, int]) -> None:
    doc = load_yaml(text.encode(), "x")
    assert isinstance(doc.root, Map)
    scalar = doc.root.get("c")
    assert isinstance(scalar, Scalar)
    assert doc.position(scalar, scalar.text.index("violnce")) == expected


def test_empty_and_comment_only_files_have_no_root() -> None:
    for text in ("", "# only a comment\n", "---\n"):
        doc = load_yaml(text.encode(), "x")
        assert (doc.root, doc.problems) == (None, ())
