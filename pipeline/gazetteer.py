"""The gazetteer: rules/places/*.yaml loaded into Places, every problem with file:line:col."""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pipeline.ruletypes import Place, RuleProblem
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

STANDARD_GROUPS = (
    "badakhshan-af",
    "gbao",
    "khatlon-border",
    "panj-river",
    "panj-crossings",
    "border-region",
)
ALL_GROUP = "border-region"  # holds every place of the other standard groups
KINDS = (
    "district",
    "town",
    "village",
    "river",
    "crossing",
    "bridge",
    "market",
    "province",
    "region",
)
PLACE_KEYS = (
    "id",
    "kind",
    "country",
    "region",
    "coords",
    "groups",
    "names",
    "ambiguous",
    "context",
    "source",
)
_REQUIRED = {
    "id": "id: af-badakhshan-jurm",
    "kind": "kind: district",
    "country": "country: AF",
    "coords": "coords: [36.86, 70.83]",
    "names": "names: {en: [Jurm], ru: [Джурм], fa: [جرم]}",
}
_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_LANG = re.compile(r"^[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")

# Approximate extents (lat_min, lat_max, lon_min, lon_max) in WGS 84 degrees of the countries the
# region's places lie in: the bounding boxes of the Natural Earth 1:10m admin-0 polygons, rounded
# outwards to 0.1°. Their AF/TJ/UZ edges agree with the extents of the boundary lines in
# ../shared/data/gazetteer/naturalearth_10m_boundary_lines_region.geojson (AF–TJ: lat 36.68–38.47).
# BOX_MARGIN allows for points on a border river. Other countries are not checked.
COUNTRY_BOXES: dict[str, tuple[float, float, float, float]] = {
    "AF": (29.3, 38.5, 60.4, 75.0),
    "TJ": (36.6, 41.1, 67.3, 75.2),
    "UZ": (37.1, 45.6, 55.9, 73.2),
    "KG": (39.1, 43.3, 69.2, 80.3),
    "CN": (18.1, 53.6, 73.4, 134.8),
    "PK": (23.6, 37.1, 60.8, 77.9),
}
BOX_MARGIN = 0.1

_SCRIPT_OF_LANG = {
    **dict.fromkeys(("en", "de", "fr", "es", "it", "tr", "uz", "la"), "Latin"),
    **dict.fromkeys(("ru", "tg", "ky", "kk", "uk", "be"), "Cyrillic"),
    **dict.fromkeys(("fa", "prs", "ps", "ar", "ur"), "Arabic"),
}
_SCRIPT_SUBTAG = {"latn": "Latin", "cyrl": "Cyrillic", "arab": "Arabic"}
_EXPECTED_SCRIPTS = {"Latin": "en", "Cyrillic": "ru or tg", "Arabic": "fa or ps"}


@dataclass(frozen=True, slots=True)
class Gazetteer:
    """Places from files that loaded cleanly, every problem, and what was declared anywhere."""

    places: tuple[Place, ...]
    problems: tuple[RuleProblem, ...]
    failed_files: tuple[str, ...]
    ids: frozenset[str]  # every place id declared, also in files that failed
    groups: frozenset[str]  # every group a place is in, also in files that failed


@dataclass(frozen=True, slots=True)
class _Draft:
    """A place read from a file, with the positions the checks across files need."""

    place: Place
    id_node: Scalar
    group_nodes: tuple[Scalar, ...]
    name_nodes: tuple[tuple[str, Scalar], ...]
    fields: Fields


def load_places(
    places_dir: Path, *, display_root: Path | None = None
) -> tuple[tuple[Place, ...], tuple[RuleProblem, ...]]:
    """Load rules/places/*.yaml: the places of files without errors, and every problem found."""
    gazetteer = load_gazetteer(places_dir, display_root=display_root)
    return gazetteer.places, gazetteer.problems


def load_gazetteer(places_dir: Path, *, display_root: Path | None = None) -> Gazetteer:
    """Load every place file; never raises for bad content (see Gazetteer)."""
    root = display_root if display_root is not None else places_dir.parent.parent
    files: list[Fields] = []
    drafts: list[_Draft] = []
    for path in yaml_files(places_dir):
        doc = read_yaml_file(path, display_path(path, root))
        fields = Fields(doc)
        fields.problems.extend(doc.problems)
        files.append(fields)
        drafts.extend(_read_file(doc, fields))
    _check_ids(drafts)
    _check_groups(drafts)
    _check_shared_names(drafts)
    failed = tuple(f.doc.path for f in files if f.failed)
    return Gazetteer(
        places=tuple(d.place for d in drafts if d.place.path not in failed),
        problems=tuple(p for f in files for p in _sorted(f.problems)),
        failed_files=failed,
        ids=frozenset(d.place.id for d in drafts),
        groups=frozenset(g for d in drafts for g in d.place.groups),
    )


def _sorted(problems: list[RuleProblem]) -> list[RuleProblem]:
    return sorted(problems, key=lambda p: (p.line, p.col))


def _read_file(doc: Document, fields: Fields) -> list[_Draft]:
    root = doc.root
    if root is None:
        if not doc.problems:
            fields.add((1, 1), "file has no places", "write a list of places: - id: …", "warning")
        return []
    if not isinstance(root, Seq):
        hint = "start each place with '- id: …'"
        if isinstance(root, Map) and root.get("names") is not None:
            hint = "put '- ' before `id` to make this place an item of a list"
        fields.error(root, f"a place file must be a list of places, not {describe(root)}", hint)
        return []
    drafts = (_read_place(item, fields) for item in root.items)
    return [d for d in drafts if d is not None]


def _read_place(item: Node, fields: Fields) -> _Draft | None:
    if not isinstance(item, Map):
        fields.error(item, f"a place must be a mapping (id, kind, names, …), not {describe(item)}")
        return None
    before = len(fields.problems)
    fields.keys(item, PLACE_KEYS, _REQUIRED, " of a place")
    pid = _place_id(fields, item)
    kind = fields.choice(item, "kind", KINDS)
    country = _country(fields, item)
    coords = _coords(fields, item, country)
    groups = _list(fields, item, "groups", "groups: [badakhshan-af, border-region]")
    names = _names(fields, item)
    place = Place(
        id=pid or "",
        kind=kind or "",
        country=country or "",
        region=fields.string(item, "region", "region: Badakhshan") or "",
        coords=coords or (0.0, 0.0),
        groups=tuple(dict.fromkeys(g.text.strip() for g in groups)),
        names={lang: tuple(n.text.strip() for n in nodes) for lang, nodes in names.items()},
        ambiguous=fields.boolean(item, "ambiguous", False),
        context=tuple(s.text.strip() for s in _list(fields, item, "context", "context: [Bada]")),
        source=tuple(s.text.strip() for s in _list(fields, item, "source", "source: [geonames]")),
        path=fields.doc.path,
    )
    id_node = item.get("id")
    if pid is None or not isinstance(id_node, Scalar):
        return None
    name_nodes = tuple((lang, n) for lang, nodes in names.items() for n in nodes)
    draft = _Draft(place, id_node, tuple(groups), name_nodes, fields)
    if len(fields.problems) == before:
        _check_scripts(draft, item)
    return draft


def _list(fields: Fields, item: Map, key: str, example: str) -> list[Scalar]:
    return fields.strings(item, key, example) or []


def _place_id(fields: Fields, item: Map) -> str | None:
    pid = fields.string(item, "id", _REQUIRED["id"])
    node = item.get("id")
    if pid is None or node is None:
        return None
    if not _ID.match(pid):
        slug = "-".join(re.findall(r"[a-z0-9]+", pid.lower()))
        fields.error(
            node, "a place id takes lowercase letters, digits and '-'", f"write id: {slug}"
        )
    return pid


def _country(fields: Fields, item: Map) -> str | None:
    country = fields.string(item, "country", _REQUIRED["country"])
    node = item.get("country")
    if country is None or node is None or re.fullmatch(r"[A-Z]{2}", country):
        return country
    close = f" (did you mean {country.upper()!r}?)" if re.fullmatch(r"[a-z]{2}", country) else ""
    fields.error(node, f"`country` must be an ISO 3166-1 alpha-2 code like AF or TJ{close}")
    return None


def _coords(fields: Fields, item: Map, country: str | None) -> tuple[float, float] | None:
    node = item.get("coords")
    if node is None:
        return None
    numbers = [
        float(v.value)
        for v in (node.items if isinstance(node, Seq) else ())
        if isinstance(v, Scalar) and isinstance(v.value, int | float)
        if not isinstance(v.value, bool)
    ]
    if not isinstance(node, Seq) or len(numbers) != 2 or len(node.items) != 2:
        fields.error(
            node, "`coords` must be [lat, lon], two numbers", f"write {_REQUIRED['coords']}"
        )
        return None
    lat, lon = numbers
    box = COUNTRY_BOXES.get(country or "")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        fields.error(node, f"coords [{lat}, {lon}] are out of range", _swap_hint(lat, lon, box))
        return None
    if box is not None and not _inside(box, lat, lon):
        fields.error(
            node,
            f"coords [{lat}, {lon}] lie outside {country} "
            f"(lat {box[0]}…{box[1]}, lon {box[2]}…{box[3]})",
            _swap_hint(lat, lon, box),
        )
        return None
    return lat, lon


def _inside(box: tuple[float, float, float, float], lat: float, lon: float) -> bool:
    m = BOX_MARGIN
    return box[0] - m <= lat <= box[1] + m and box[2] - m <= lon <= box[3] + m


def _swap_hint(lat: float, lon: float, box: tuple[float, float, float, float] | None) -> str:
    swapped_ok = _inside(box, lon, lat) if box else -90 <= lon <= 90 and -180 <= lat <= 180
    if swapped_ok:
        return f"latitude comes first: write coords: [{lon}, {lat}]"
    return "check the coordinates and the country: coords are [latitude, longitude]"


def _names(fields: Fields, item: Map) -> dict[str, list[Scalar]]:
    node = item.get("names")
    if node is None:
        return {}
    if not isinstance(node, Map):
        fields.error(
            node,
            f"`names` must map languages to lists of names, not {describe(node)}",
            f"write {_REQUIRED['names']}",
        )
        return {}
    names: dict[str, list[Scalar]] = {}
    for key, _ in node.entries:
        if not _LANG.match(key.text):
            fields.error(
                key,
                f"{key.text!r} is not a language code",
                "use ISO 639 codes such as en, ru, tg, fa, ps, uz",
            )
        names[key.text] = fields.strings(node, key.text, f"{key.text}: [a name]") or []
    if not any(names.values()):
        fields.error(node, "a place needs at least one name", f"write {_REQUIRED['names']}")
    return names


# -- checks of one place's names ------------------------------------------------------------------


def _script(name: str) -> str:
    """'Latin', 'Cyrillic', 'Arabic', another script, or 'mixed' for a name mixing letters."""
    scripts = {unicodedata.name(ch, "?").split(" ")[0].capitalize() for ch in name if ch.isalpha()}
    return scripts.pop() if len(scripts) == 1 else "mixed" if scripts else ""


def _check_scripts(draft: _Draft, item: Map) -> None:
    fields, seen = draft.fields, set()
    for lang, node in draft.name_nodes:
        script = _script(node.text)
        seen.add(script)
        expected = _SCRIPT_SUBTAG.get(lang.partition("-")[2].lower()) or _SCRIPT_OF_LANG.get(
            lang.partition("-")[0]
        )
        if script == "mixed":
            fields.warn(
                node,
                f"name {node.text!r} mixes letters of different scripts",
                "retype it in one script (a Latin 'o' in a Cyrillic word never matches)",
            )
        elif expected and script and script != expected:
            fields.warn(
                node,
                f"name {node.text!r} under {lang!r} is not in {expected} script",
                "move it under the language it is written in",
            )
    # an explicitly empty list (`fa: []`) says the place has no known name in that script
    seen.update(
        _SCRIPT_OF_LANG.get(lang, "") for lang, names in draft.place.names.items() if not names
    )
    names_node = item.get("names") or item
    for script, langs in _EXPECTED_SCRIPTS.items():
        if script not in seen:
            fields.warn(
                names_node,
                f"place {draft.place.id!r} has no name in {script} script",
                f"add {langs}: [...] under `names`",
            )


# -- checks across places -------------------------------------------------------------------------


def _where(draft: _Draft, node: Scalar) -> str:
    return f"{draft.place.path}:{node.line}:{node.col}"


def _check_ids(drafts: list[_Draft]) -> None:
    first: dict[str, _Draft] = {}
    for draft in drafts:
        pid = draft.place.id
        if pid not in first:
            first[pid] = draft
            continue
        other = first[pid]
        draft.fields.error(
            draft.id_node,
            f"duplicate place id {pid!r} (first at {_where(other, other.id_node)})",
            "give each place its own id",
        )
        if other.place.path != draft.place.path:
            other.fields.error(
                other.id_node,
                f"duplicate place id {pid!r} (also at {_where(draft, draft.id_node)})",
                "give each place its own id",
            )


def _check_groups(drafts: list[_Draft]) -> None:
    counts = Counter(g for d in drafts for g in d.place.groups)
    known = sorted(set(STANDARD_GROUPS) | {g for g, n in counts.items() if n > 1})
    ids = {d.place.id for d in drafts}
    for draft in drafts:
        for node in draft.group_nodes:
            _check_group(draft, node, counts[node.text], known, ids)
        member_of = set(draft.place.groups) & set(STANDARD_GROUPS)
        if member_of and ALL_GROUP not in member_of:
            at = draft.group_nodes[0]
            draft.fields.warn(
                at,
                f"place {draft.place.id!r} is in {sorted(member_of)[0]!r} but not in {ALL_GROUP!r}",
                f"add {ALL_GROUP} to its groups",
            )


def _check_group(draft: _Draft, node: Scalar, count: int, known: list[str], ids: set[str]) -> None:
    group, fields = node.text, draft.fields
    if not _ID.match(group):
        fields.error(node, f"group {group!r} takes lowercase letters, digits and '-'")
    elif group in ids:
        fields.error(node, f"group {group!r} has the same name as a place id", "rename the group")
    elif group not in STANDARD_GROUPS and count == 1:
        others = [g for g in known if g != group]
        fields.error(
            node,
            f"unknown group {group!r}{suggest(group, others)}",
            f"standard groups are {', '.join(STANDARD_GROUPS)}; "
            "a group of your own needs at least two places",
        )
    elif group not in STANDARD_GROUPS:
        close = difflib.get_close_matches(group, STANDARD_GROUPS, n=1, cutoff=0.8)
        if close:
            fields.warn(
                node,
                f"group {group!r} looks like the standard group {close[0]!r}",
                f"write {close[0]} if that is meant",
            )


def _name_key(name: str) -> str:
    return unicodedata.normalize("NFKC", name).casefold().strip()


def _check_shared_names(drafts: list[_Draft]) -> None:
    owners: dict[str, _Draft] = {}
    for draft in drafts:
        shared: dict[str, list[Scalar]] = {}
        own: set[tuple[str, str]] = set()
        for lang, node in draft.name_nodes:
            key = _name_key(node.text)
            if (lang, key) in own:
                draft.fields.warn(
                    node, f"name {node.text!r} is listed twice under {lang!r}", "remove one"
                )
            own.add((lang, key))
            other = owners.setdefault(key, draft)
            if other.place.id != draft.place.id:
                shared.setdefault(other.place.id, []).append(node)
        for nodes in shared.values():
            _warn_shared(draft, owners[_name_key(nodes[0].text)], nodes)


def _warn_shared(draft: _Draft, other: _Draft, nodes: list[Scalar]) -> None:
    listed = ", ".join(dict.fromkeys(n.text for n in nodes))
    twins = other.place.country != draft.place.country
    hint = (
        "places of the same name on both sides of the border: a match counts for both"
        if twins
        else "if both are meant, mark them ambiguous and give context; else remove the name"
    )
    first = other.id_node
    draft.fields.warn(
        nodes[0],
        f"place {draft.place.id!r} shares the name(s) {listed} with "
        f"{other.place.id!r} ({_where(other, first)})",
        hint,
    )
