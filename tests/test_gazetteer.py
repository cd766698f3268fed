"""The shipped gazetteer (rules/places/*.yaml): complete, well-formed, sourced, on the map."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PLACES_DIR = REPO / "rules" / "places"
SHARED_DATA = REPO / ".." / "shared" / "data"
RIVERS_GEOJSON = SHARED_DATA / "gazetteer" / "naturalearth_10m_rivers_region.geojson"

REQUIRED_KEYS = {"id", "kind", "country", "region", "coords", "groups", "names", "source"}
OPTIONAL_KEYS = {"ambiguous", "context"}
KINDS = {
    "district",
    "town",
    "village",
    "river",
    "crossing",
    "bridge",
    "market",
    "province",
    "region",
}
LANGUAGES = {"en", "ru", "tg", "fa"}
GROUPS = {
    "badakhshan-af",
    "gbao",
    "khatlon-border",
    "panj-river",
    "panj-crossings",
    "border-region",
}

# (lat_min, lat_max, lon_min, lon_max), a little wider than each country's extent.
BBOX = {
    "AF": (29.3, 38.5, 60.4, 75.0),
    "TJ": (36.6, 41.1, 67.3, 75.2),
    "UZ": (37.1, 45.6, 55.9, 73.2),
}

# Places with no known name in a script; each says so in a YAML comment.
NO_NAME_IN_SCRIPT = {
    "tj-gbao-ruzvay": {"persian"},
    "tj-gbao-bartang": {"persian"},
    "tj-khatlon-ayvaj": {"persian"},
}

BADAKHSHAN_DISTRICTS = [
    "fayzabad", "argo", "arghanj-khwah", "yaftal-e-sufla", "khash", "baharak", "darayim",
    "kohistan", "yawan", "jurm", "teshkan", "shuhada", "shahr-e-buzurg", "raghistan", "kishim",
    "warduj", "tagab", "yamgan", "shighnan", "khwahan", "kuf-ab", "darwaz", "ishkashim", "shaki",
    "zebak", "kuran-wa-munjan", "darwaz-e-bala", "wakhan",
]  # fmt: skip
TAKHAR_KUNDUZ_RIVER_DISTRICTS = [
    "af-takhar-khwaja-bahauddin", "af-takhar-dasht-e-qala", "af-takhar-yangi-qala",
    "af-takhar-chah-ab", "af-takhar-darqad", "af-takhar-khwaja-ghar", "af-kunduz-imam-sahib",
    "af-kunduz-qala-i-zal", "af-kunduz-dasht-e-archi",
]  # fmt: skip
GBAO_PLACES = [
    "tj-gbao-khorog", "tj-gbao-darvoz", "tj-gbao-qalai-khumb", "tj-gbao-vanj", "tj-gbao-rushon",
    "tj-gbao-shughnon", "tj-gbao-roshtqala", "tj-gbao-ishkoshim", "tj-gbao-murghob",
]  # fmt: skip
KHATLON_RIVER_DISTRICTS = [
    "tj-khatlon-panj", "tj-khatlon-farkhor", "tj-khatlon-hamadoni",
    "tj-khatlon-shamsiddin-shohin", "tj-khatlon-jaihun", "tj-khatlon-shahritus",
    "tj-khatlon-qubodiyon",
]  # fmt: skip
RIVERS = ["river-panj", "river-amu-darya", "river-vakhsh", "river-kokcha", "river-pamir"]
CROSSINGS = [
    "crossing-panji-poyon-bridge", "crossing-tem-demogan-bridge", "crossing-ishkashim-bridge",
    "crossing-darvoz-bridge", "crossing-vanj-bridge", "crossing-langar-bridge",
    "crossing-shamsiddin-shohin-bridge", "crossing-termez-hairatan-bridge",
    "crossing-ishkashim-market", "crossing-khorog-market", "crossing-darvoz-market",
    "af-kunduz-sher-khan-bandar", "tj-khatlon-panji-poyon", "af-balkh-hairatan",
]  # fmt: skip
# Badakhshan districts whose border is the Panj (or the Pamir above it).
BADAKHSHAN_RIVER_DISTRICTS = [
    "af-badakhshan-wakhan", "af-badakhshan-ishkashim", "af-badakhshan-shighnan",
    "af-badakhshan-darwaz-e-bala", "af-badakhshan-darwaz", "af-badakhshan-shaki",
    "af-badakhshan-khwahan", "af-badakhshan-kuf-ab",
]  # fmt: skip
# Twin names across the river: separate places on opposite banks.
TWINS = [
    ("af-badakhshan-ishkashim", "tj-gbao-ishkoshim"),
    ("af-badakhshan-shighnan", "tj-gbao-shughnon"),
    ("af-badakhshan-darwaz", "tj-gbao-darvoz"),
    ("af-takhar-farkhar", "tj-khatlon-farkhor"),
    ("af-badakhshan-yawan", "tj-khatlon-yovon"),
]
MUST_BE_AMBIGUOUS = [
    "af-badakhshan-jurm", "af-badakhshan-shuhada", "af-badakhshan-khwahan", "af-badakhshan-argo",
    "af-badakhshan-kuran-wa-munjan", "af-badakhshan-darwaz", "tj-gbao-darvoz", "river-panj",
    "tj-khatlon-panj",
]  # fmt: skip
NOT_BORDER_REGION = ["af-takhar", "af-kunduz", "tj-khatlon"]
RIVER_CHECK_MAX_KM = 60.0

LATIN = re.compile(r"[A-Za-z]")
CYRILLIC = re.compile(r"[\u0400-\u04FF]")
PERSIAN = re.compile(r"[\u0600-\u06FF]")


def _load() -> list[tuple[Path, dict[str, Any]]]:
    out: list[tuple[Path, dict[str, Any]]] = []
    for path in sorted(PLACES_DIR.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert isinstance(data, list), f"{path.name}: a place file is a YAML list of places"
        out.extend((path, place) for place in data)
    return out


PLACES = _load()
BY_ID = {place["id"]: place for _, place in PLACES}


def _scripts(place: dict[str, Any]) -> set[str]:
    names = [n for lang in place["names"].values() for n in lang]
    found = set()
    if any(LATIN.search(n) for n in names):
        found.add("latin")
    if any(CYRILLIC.search(n) for n in names):
        found.add("cyrillic")
    if any(PERSIAN.search(n) for n in names):
        found.add("persian")
    return found


def test_at_least_seventy_places_with_unique_ids() -> None:
    ids = [place["id"] for _, place in PLACES]
    assert len(ids) >= 70
    duplicates = {i for i in ids if ids.count(i) > 1}
    assert not duplicates


@pytest.mark.parametrize(("path", "place"), PLACES, ids=[p["id"] for _, p in PLACES])
def test_place_shape(path: Path, place: dict[str, Any]) -> None:
    keys = set(place)
    assert keys >= REQUIRED_KEYS, f"{path.name}: missing {REQUIRED_KEYS - keys}"
    assert keys <= REQUIRED_KEYS | OPTIONAL_KEYS, f"{path.name}: unknown {keys - REQUIRED_KEYS}"
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", place["id"])
    assert place["kind"] in KINDS
    assert place["country"] in BBOX
    assert isinstance(place["region"], str) and place["region"]
    lat, lon = place["coords"]
    assert isinstance(lat, float) and isinstance(lon, float)
    assert set(place["groups"]) <= GROUPS
    assert set(place["names"]) <= LANGUAGES
    for lang, names in place["names"].items():
        assert names, f"{place['id']}: empty name list for {lang}"
        assert all(isinstance(n, str) and n.strip() == n and n for n in names)
        assert len(set(names)) == len(names), f"{place['id']}: duplicate names in {lang}"
    assert isinstance(place.get("ambiguous", False), bool)
    if place.get("ambiguous"):
        assert place.get("context"), f"{place['id']}: an ambiguous place needs context words"
    assert place["source"]


@pytest.mark.parametrize(("path", "place"), PLACES, ids=[p["id"] for _, p in PLACES])
def test_names_in_every_script(path: Path, place: dict[str, Any]) -> None:
    missing = {"latin", "cyrillic", "persian"} - _scripts(place)
    assert missing == NO_NAME_IN_SCRIPT.get(place["id"], set()), f"{place['id']}: {missing}"


def test_exempt_places_say_so_in_a_comment() -> None:
    for place_id in NO_NAME_IN_SCRIPT:
        block = _yaml_block(place_id)
        assert "no Persian-script name in a source found" in block, place_id


def test_names_are_bare_not_prefixed() -> None:
    for _, place in PLACES:
        for name in place["names"].get("fa", []):
            assert not name.startswith("ولسوالی"), (place["id"], name)
            assert "،" not in name, (place["id"], name)  # no Wikipedia-style disambiguator
        for name in place["names"].get("tg", []):
            assert not name.lower().startswith(("ноҳияи", "нохияи", "ҷамоати")), (place["id"], name)


def test_listed_places_exist() -> None:
    wanted = (
        [f"af-badakhshan-{d}" for d in BADAKHSHAN_DISTRICTS]
        + ["af-badakhshan", "tj-gbao"]
        + TAKHAR_KUNDUZ_RIVER_DISTRICTS
        + GBAO_PLACES
        + KHATLON_RIVER_DISTRICTS
        + RIVERS
        + CROSSINGS
        + NOT_BORDER_REGION
    )
    assert [w for w in wanted if w not in BY_ID] == []


def test_all_28_badakhshan_districts() -> None:
    districts = [
        p for _, p in PLACES if p["kind"] == "district" and p["id"].startswith("af-badakhshan-")
    ]
    assert len(districts) == 28
    assert all("badakhshan-af" in p["groups"] for p in districts)


def test_group_membership() -> None:
    for _, place in PLACES:
        groups = set(place["groups"])
        if groups - {"border-region"}:
            assert "border-region" in groups, place["id"]
    for place_id in NOT_BORDER_REGION:
        assert "border-region" not in BY_ID[place_id]["groups"], place_id
    assert "badakhshan-af" in BY_ID["af-badakhshan"]["groups"]
    assert "gbao" in BY_ID["tj-gbao"]["groups"]
    for place_id in KHATLON_RIVER_DISTRICTS:
        assert "khatlon-border" in BY_ID[place_id]["groups"], place_id
    for place_id in CROSSINGS:
        assert "panj-crossings" in BY_ID[place_id]["groups"], place_id
    assert "panj-river" in BY_ID["river-panj"]["groups"]
    assert "panj-river" in BY_ID["river-amu-darya"]["groups"]
    every_group = {g for _, p in PLACES for g in p["groups"]}
    assert every_group == GROUPS


def test_gbao_is_named_every_way() -> None:
    names = {n for lang in BY_ID["tj-gbao"]["names"].values() for n in lang}
    assert {"ГБАО", "ВМКБ", "Горный Бадахшан", "Кӯҳистони Бадахшон", "بدخشان", "GBAO"} <= names


def test_twins_are_separate_places_on_opposite_banks() -> None:
    for af_id, tj_id in TWINS:
        assert BY_ID[af_id]["country"] == "AF"
        assert BY_ID[tj_id]["country"] == "TJ"


def test_common_words_are_ambiguous() -> None:
    for place_id in MUST_BE_AMBIGUOUS:
        assert BY_ID[place_id].get("ambiguous") is True, place_id
    assert "جرم" in BY_ID["af-badakhshan-jurm"]["names"]["fa"]
    assert "پنج" in BY_ID["river-panj"]["names"]["fa"]
    assert "شهدا" in BY_ID["af-badakhshan-shuhada"]["names"]["fa"]


@pytest.mark.parametrize(("path", "place"), PLACES, ids=[p["id"] for _, p in PLACES])
def test_coords_inside_country(path: Path, place: dict[str, Any]) -> None:
    lat, lon = place["coords"]
    lat_min, lat_max, lon_min, lon_max = BBOX[place["country"]]
    assert lat_min <= lat <= lat_max and lon_min <= lon <= lon_max, place["id"]


def _source_keys() -> set[str]:
    text = (PLACES_DIR / "SOURCES.md").read_text(encoding="utf-8")
    keys = set(re.findall(r"^## `([a-z:-]+)`", text, flags=re.MULTILINE))
    keys |= set(re.findall(r"^\| `(web:[a-z0-9-]+)` \|", text, flags=re.MULTILINE))
    return keys


def test_sources_are_documented() -> None:
    keys = _source_keys()
    assert {"wof", "geonames", "naturalearth", "agcho", "common-usage"} <= keys
    used = {s for _, p in PLACES for s in p["source"]}
    assert used - keys == set()
    for _, place in PLACES:
        assert place["source"] != ["agcho"], f"{place['id']}: AGCHO is a cross-check only"


def _yaml_block(place_id: str) -> str:
    for path in PLACES_DIR.glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        start = text.find(f"- id: {place_id}\n")
        if start >= 0:
            end = text.find("\n- id: ", start + 1)
            return text[start : end if end >= 0 else len(text)]
    raise AssertionError(place_id)


def test_common_usage_is_marked_in_comments() -> None:
    for _, place in PLACES:
        if "common-usage" in place["source"]:
            assert "common usage" in _yaml_block(place["id"]), place["id"]


def _river_polylines() -> list[list[tuple[float, float]]]:
    if not RIVERS_GEOJSON.is_file():
        pytest.skip(f"../shared/data not present: {RIVERS_GEOJSON} is needed for the river check")
    data = json.loads(RIVERS_GEOJSON.read_text(encoding="utf-8"))
    lines: list[list[tuple[float, float]]] = []
    for feature in data["features"]:
        name = " ".join(feature["properties"]["name"].split())
        if name not in {"Panj", "Pamir", "Amu Darya"}:
            continue
        geometry = feature["geometry"]
        parts = (
            [geometry["coordinates"]]
            if geometry["type"] == "LineString"
            else geometry["coordinates"]
        )
        for part in parts:
            # the Amu Darya's upper stretch only: from the Panj mouth down past Termez
            points = [(lat, lon) for lon, lat in part if lon > 66.5 and lat < 38.6]
            if len(points) >= 2:
                lines.append(points)
    assert lines, "no Panj/Pamir/Amu Darya lines found in the Natural Earth file"
    return lines


def _km_to_segment(p: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    """Distance in km from p to segment ab (local equirectangular projection; fine at 60 km)."""
    k = math.cos(math.radians(p[0]))
    ax, ay = (a[1] - p[1]) * k, a[0] - p[0]
    bx, by = (b[1] - p[1]) * k, b[0] - p[0]
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, -(ax * dx + ay * dy) / length2))
    return math.hypot(ax + t * dx, ay + t * dy) * 111.2


def test_river_places_lie_near_the_panj_and_amu_darya() -> None:
    lines = _river_polylines()
    near_river = {
        p["id"]
        for _, p in PLACES
        if {"panj-crossings", "khatlon-border", "panj-river"} & set(p["groups"])
    }
    near_river |= set(BADAKHSHAN_RIVER_DISTRICTS) | set(TAKHAR_KUNDUZ_RIVER_DISTRICTS)
    far = {}
    for place_id in sorted(near_river):
        lat, lon = BY_ID[place_id]["coords"]
        km = min(
            _km_to_segment((lat, lon), line[i], line[i + 1])
            for line in lines
            for i in range(len(line) - 1)
        )
        if km > RIVER_CHECK_MAX_KM:
            far[place_id] = round(km)
    assert far == {}
