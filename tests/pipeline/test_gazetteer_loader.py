"""pipeline/gazetteer.py: place files in, Places and file:line:col problems out."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.gazetteer import COUNTRY_BOXES, load_gazetteer, load_places
from pipeline.ruletypes import Place

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO / ".." / "shared" / "data"

ONE = """\
- id: af-badakhshan-jurm
  kind: district
  country: AF
  region: Badakhshan
  coords: [36.86, 70.83]
  groups: [badakhshan-af, border-region]
  names:
    en: [Jurm, Jirm]
    ru: [Джурм]
    tg: [Ҷурм]
    fa: [جرم]
  ambiguous: true
  context: [Badakhshan, Бадахшан, بدخشان]
  source: [geonames]
- id: tj-gbao-khorog
  kind: town
  country: TJ
  region: Gorno-Badakhshan
  coords: [37.49, 71.55]
  groups: [gbao, border-region]
  names: {en: [Khorog, Khorugh], ru: [Хорог], tg: [Хоруғ], fa: [خاروغ]}
  source: [geonames]
"""


@pytest.fixture
def places_dir(tmp_path: Path) -> Path:
    (tmp_path / "rules" / "places").mkdir(parents=True)
    return tmp_path / "rules" / "places"


def shown(places_dir: Path) -> list[str]:
    problems = load_gazetteer(places_dir).problems
    return [str(p) + (" [warning]" if p.severity == "warning" else "") for p in problems]


CASES = [
    (
        "duplicate id",
        "id: tj-gbao-khorog",
        "id: af-badakhshan-jurm",
        [
            "rules/places/p.yaml:15:7: duplicate place id 'af-badakhshan-jurm' (first at "
            "rules/places/p.yaml:1:7) — give each place its own id",
        ],
    ),
    (
        "unknown group",
        "groups: [gbao, border-region]",
        "groups: [gboa, border-region]",
        [
            "rules/places/p.yaml:20:12: unknown group 'gboa' (did you mean 'gbao'?) — standard "
            "groups are badakhshan-af, gbao, khatlon-border, panj-river, panj-crossings, "
            "border-region; a group of your own needs at least two places",
        ],
    ),
    (
        "unknown group no close",
        "groups: [gbao, border-region]",
        "groups: [gbao, border-region, zzz]",
        [
            "rules/places/p.yaml:20:33: unknown group 'zzz' — standard groups are "
            "badakhshan-af, gbao, khatlon-border, panj-river, panj-crossings, border-region; a "
            "group of your own needs at least two places",
        ],
    ),
    (
        "group format",
        "groups: [gbao, border-region]",
        "groups: [GBAO, gbao, border-region]",
        [
            "rules/places/p.yaml:20:12: group 'GBAO' takes lowercase letters, digits and '-'",
        ],
    ),
    (
        "not in border-region",
        "groups: [gbao, border-region]",
        "groups: [gbao]",
        [
            "rules/places/p.yaml:20:12: place 'tj-gbao-khorog' is in 'gbao' but not in "
            "'border-region' — add border-region to its groups [warning]",
        ],
    ),
    (
        "group equals id",
        "groups: [gbao, border-region]",
        "groups: [gbao, border-region, af-badakhshan-jurm]",
        [
            "rules/places/p.yaml:20:33: group 'af-badakhshan-jurm' has the same name as a "
            "place id — rename the group",
        ],
    ),
    (
        "lat out of range",
        "coords: [37.49, 71.55]",
        "coords: [97.49, 71.55]",
        [
            "rules/places/p.yaml:19:11: coords [97.49, 71.55] are out of range — check the "
            "coordinates and the country: coords are [latitude, longitude]",
        ],
    ),
    (
        "swapped",
        "coords: [37.49, 71.55]",
        "coords: [71.55, 37.49]",
        [
            "rules/places/p.yaml:19:11: coords [71.55, 37.49] lie outside TJ (lat 36.6…41.1, "
            "lon 67.3…75.2) — latitude comes first: write coords: [37.49, 71.55]",
        ],
    ),
    (
        "outside country",
        "coords: [37.49, 71.55]",
        "coords: [35.0, 71.55]",
        [
            "rules/places/p.yaml:19:11: coords [35.0, 71.55] lie outside TJ (lat 36.6…41.1, "
            "lon 67.3…75.2) — check the coordinates and the country: coords are [latitude, "
            "longitude]",
        ],
    ),
    (
        "coords one number",
        "coords: [37.49, 71.55]",
        "coords: [37.49]",
        [
            "rules/places/p.yaml:19:11: `coords` must be [lat, lon], two numbers — write "
            "coords: [36.86, 70.83]",
        ],
    ),
    (
        "coords strings",
        "coords: [37.49, 71.55]",
        "coords: ['37.49', 71.55]",
        [
            "rules/places/p.yaml:19:11: `coords` must be [lat, lon], two numbers — write "
            "coords: [36.86, 70.83]",
        ],
    ),
    (
        "coords scalar",
        "coords: [37.49, 71.55]",
        "coords: 37.49 71.55",
        [
            "rules/places/p.yaml:19:11: `coords` must be [lat, lon], two numbers — write "
            "coords: [36.86, 70.83]",
        ],
    ),
    (
        "country lower",
        "country: TJ",
        "country: tj",
        [
            "rules/places/p.yaml:17:12: `country` must be an ISO 3166-1 alpha-2 code like AF "
            "or TJ (did you mean 'TJ'?)",
        ],
    ),
    (
        "country bad",
        "country: TJ",
        "country: Tajikistan",
        [
            "rules/places/p.yaml:17:12: `country` must be an ISO 3166-1 alpha-2 code like AF or TJ",
        ],
    ),
    (
        "country NO",
        "country: TJ",
        "country: NO",
        [
            "rules/places/p.yaml:17:12: `country` must be a string; write it in quotes — write "
            'country: "NO"',
        ],
    ),
    (
        "kind unknown",
        "kind: town",
        "kind: city",
        [
            "rules/places/p.yaml:16:9: `kind` must be one of district, town, village, river, "
            "crossing, bridge, market, province, region",
        ],
    ),
    (
        "kind typo",
        "kind: town",
        "kind: twn",
        [
            "rules/places/p.yaml:16:9: `kind` must be one of district, town, village, river, "
            "crossing, bridge, market, province, region (did you mean 'town'?)",
        ],
    ),
    (
        "missing arabic",
        ", fa: [خاروغ]}",
        "}",
        [
            "rules/places/p.yaml:21:10: place 'tj-gbao-khorog' has no name in Arabic script — "
            "add fa or ps: [...] under `names` [warning]",
        ],
    ),
    (
        "acknowledged arabic",
        ", fa: [خاروغ]}",
        ", fa: []}",
        [],
    ),
    (
        "wrong script",
        "ru: [Хорог]",
        "ru: [Khorog2]",
        [
            "rules/places/p.yaml:21:39: name 'Khorog2' under 'ru' is not in Cyrillic script — "
            "move it under the language it is written in [warning]",
        ],
    ),
    (
        "mixed script",
        "ru: [Хорог]",
        "ru: [Хoрог]",
        [
            "rules/places/p.yaml:21:39: name 'Хoрог' mixes letters of different scripts — "
            "retype it in one script (a Latin 'o' in a Cyrillic word never matches) [warning]",
        ],
    ),
    (
        "name listed twice",
        "en: [Khorog, Khorugh]",
        "en: [Khorog, khorog]",
        [
            "rules/places/p.yaml:21:24: name 'khorog' is listed twice under 'en' — remove one "
            "[warning]",
        ],
    ),
    (
        "shared name",
        "en: [Khorog, Khorugh]",
        "en: [Khorog, Jurm]",
        [
            "rules/places/p.yaml:21:24: place 'tj-gbao-khorog' shares the name(s) Jurm with "
            "'af-badakhshan-jurm' (rules/places/p.yaml:1:7) — places of the same name on both "
            "sides of the border: a match counts for both [warning]",
        ],
    ),
    (
        "shared name same country",
        "en: [Khorog, Khorugh]",
        "en: [Khorog, Jurm]",
        [
            "rules/places/p.yaml:21:24: place 'tj-gbao-khorog' shares the name(s) Jurm with "
            "'af-badakhshan-jurm' (rules/places/p.yaml:1:7) — if both are meant, mark them "
            "ambiguous and give context; else remove the name [warning]",
        ],
    ),
    (
        "names not mapping",
        "names: {en: [Khorog, Khorugh], ru: [Хорог], tg: [Хоруғ], fa: [خاروغ]}",
        "names: [Khorog]",
        [
            "rules/places/p.yaml:21:10: `names` must map languages to lists of names, not a "
            "list — write names: {en: [Jurm], ru: [Джурм], fa: [جرم]}",
        ],
    ),
    (
        "names empty",
        "names: {en: [Khorog, Khorugh], ru: [Хорог], tg: [Хоруғ], fa: [خاروغ]}",
        "names: {}",
        [
            "rules/places/p.yaml:21:10: a place needs at least one name — write names: {en: "
            "[Jurm], ru: [Джурм], fa: [جرم]}",
        ],
    ),
    (
        "lang code",
        "names: {en:",
        "names: {English:",
        [
            "rules/places/p.yaml:21:11: 'English' is not a language code — use ISO 639 codes "
            "such as en, ru, tg, fa, ps, uz",
        ],
    ),
    (
        "ambiguous string",
        "  ambiguous: true",
        "  ambiguous: 'yes'",
        [
            "rules/places/p.yaml:12:14: `ambiguous` must be true or false, not 'yes'",
        ],
    ),
    (
        "missing keys",
        "  kind: town\n  country: TJ\n",
        "",
        [
            "rules/places/p.yaml:15:3: missing key `kind` of a place — add kind: district",
            "rules/places/p.yaml:15:3: missing key `country` of a place — add country: AF",
        ],
    ),
    (
        "unknown key",
        "  source: [geonames]\n- id: tj",
        "  sources: [geonames]\n- id: tj",
        [
            "rules/places/p.yaml:14:3: unknown key 'sources' (did you mean 'source'?)",
        ],
    ),
    (
        "id format",
        "id: tj-gbao-khorog",
        "id: TJ_GBAO_Khorog",
        [
            "rules/places/p.yaml:15:7: a place id takes lowercase letters, digits and '-' — "
            "write id: tj-gbao-khorog",
        ],
    ),
    (
        "place not mapping",
        "- id: tj-gbao-khorog",
        "- just a name\n- id: tj-gbao-khorog",
        [
            "rules/places/p.yaml:15:3: a place must be a mapping (id, kind, names, …), not "
            "'just a name'",
        ],
    ),
    (
        "context not list",
        "context: [Badakhshan, Бадахшан, بدخشان]",
        "context: Badakhshan",
        [
            "rules/places/p.yaml:13:12: `context` must be a list, not 'Badakhshan' — write "
            "context: [Badakhshan]",
        ],
    ),
]


@pytest.mark.parametrize(("name", "old", "new", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_mistake_is_reported_with_its_position(
    places_dir: Path, name: str, old: str, new: str, expected: list[str]
) -> None:
    assert ONE.count(old) == 1
    text = ONE.replace(old, new)
    if name == "shared name same country":  # twins are expected across a border, not within one
        text = text.replace("country: TJ", "country: AF")
    (places_dir / "p.yaml").write_text(text, encoding="utf-8")
    gazetteer = load_gazetteer(places_dir)
    assert shown(places_dir) == expected
    failed = any(not p.endswith("[warning]") for p in expected)
    assert gazetteer.failed_files == (("rules/places/p.yaml",) if failed else ())
    assert len(gazetteer.places) == (0 if failed else 2)


def test_a_valid_place(places_dir: Path) -> None:
    (places_dir / "p.yaml").write_text(ONE, encoding="utf-8")
    places, problems = load_places(places_dir)
    assert problems == ()
    assert places[0] == Place(
        id="af-badakhshan-jurm",
        kind="district",
        country="AF",
        region="Badakhshan",
        coords=(36.86, 70.83),
        groups=("badakhshan-af", "border-region"),
        names={"en": ("Jurm", "Jirm"), "ru": ("Джурм",), "tg": ("Ҷурм",), "fa": ("جرم",)},
        ambiguous=True,
        context=("Badakhshan", "Бадахшан", "بدخشان"),
        source=("geonames",),
        path="rules/places/p.yaml",
    )
    assert places[1].region == "Gorno-Badakhshan" and places[1].ambiguous is False


def test_duplicate_ids_across_files_name_both_positions(places_dir: Path) -> None:
    (places_dir / "a.yaml").write_text(ONE, encoding="utf-8")
    other = ONE.split("- id: tj-gbao-khorog")[0].replace("Jirm", "Jirm2")
    (places_dir / "b.yml").write_text("# again\n" + other, encoding="utf-8")
    gazetteer = load_gazetteer(places_dir)
    errors = [str(p) for p in gazetteer.problems if p.severity == "error"]
    assert errors == [
        "rules/places/a.yaml:1:7: duplicate place id 'af-badakhshan-jurm' (also at "
        "rules/places/b.yml:2:7) — give each place its own id",
        "rules/places/b.yml:2:7: duplicate place id 'af-badakhshan-jurm' (first at "
        "rules/places/a.yaml:1:7) — give each place its own id",
    ]
    assert gazetteer.failed_files == ("rules/places/a.yaml", "rules/places/b.yml")
    assert gazetteer.places == ()
    assert gazetteer.ids == {"af-badakhshan-jurm", "tj-gbao-khorog"}


def test_a_group_of_several_places_is_the_users_own(places_dir: Path) -> None:
    text = ONE.replace("[gbao, border-region]", "[gbao, border-region, watched]")
    text = text.replace("[badakhshan-af, border-region]", "[badakhshan-af, border-region, watched]")
    (places_dir / "p.yaml").write_text(text, encoding="utf-8")
    gazetteer = load_gazetteer(places_dir)
    assert gazetteer.problems == ()
    assert "watched" in gazetteer.groups


def test_a_group_of_several_places_close_to_a_standard_one_is_a_warning(places_dir: Path) -> None:
    text = ONE.replace("[gbao, border-region]", "[gbao, border-region, panj-crossing]")
    text = text.replace(
        "[badakhshan-af, border-region]", "[badakhshan-af, border-region, panj-crossing]"
    )
    (places_dir / "p.yaml").write_text(text, encoding="utf-8")
    assert shown(places_dir) == [
        "rules/places/p.yaml:6:42: group 'panj-crossing' looks like the standard group "
        "'panj-crossings' — write panj-crossings if that is meant [warning]",
        "rules/places/p.yaml:20:33: group 'panj-crossing' looks like the standard group "
        "'panj-crossings' — write panj-crossings if that is meant [warning]",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "# no places yet\n",
            "rules/places/p.yaml:1:1: file has no places — write a list of places: - id: … "
            "[warning]",
        ),
        (
            "id: x\nnames: {en: [X]}\n",
            "rules/places/p.yaml:1:1: a place file must be a list of places, not a mapping — "
            "put '- ' "
            "before `id` to make this place an item of a list",
        ),
        (
            "places: []\n",
            "rules/places/p.yaml:1:1: a place file must be a list of places, not a mapping — start "
            "each place with '- id: …'",
        ),
        (
            "- id: x\n\tkind: town\n",
            "rules/places/p.yaml:2:1: found a tab character in the indentation — indent with "
            "spaces",
        ),
    ],
    ids=["empty", "one place without a dash", "a mapping", "tab"],
)
def test_files_that_are_not_place_lists(places_dir: Path, text: str, expected: str) -> None:
    (places_dir / "p.yaml").write_text(text, encoding="utf-8")
    assert shown(places_dir) == [expected]


def test_country_boxes_hold_their_capitals() -> None:
    capitals = {
        "AF": (34.53, 69.17),  # Kabul
        "TJ": (38.56, 68.79),  # Dushanbe
        "UZ": (41.30, 69.24),  # Tashkent
        "KG": (42.87, 74.59),  # Bishkek
        "CN": (39.90, 116.40),  # Beijing
        "PK": (33.69, 73.05),  # Islamabad
    }
    for country, (lat, lon) in capitals.items():
        lat_min, lat_max, lon_min, lon_max = COUNTRY_BOXES[country]
        assert lat_min <= lat <= lat_max and lon_min <= lon <= lon_max, country


def test_country_boxes_agree_with_natural_earth_boundaries() -> None:
    path = SHARED_DATA / "gazetteer" / "naturalearth_10m_boundary_lines_region.geojson"
    if not path.exists():
        pytest.skip(f"../shared/data not present: {path}")
    import json

    codes = {"AFG": "AF", "TJK": "TJ", "UZB": "UZ"}
    for feature in json.loads(path.read_text(encoding="utf-8"))["features"]:
        geometry = feature["geometry"]
        lines = (
            geometry["coordinates"]
            if geometry["type"] == "MultiLineString"
            else [geometry["coordinates"]]
        )
        sides = {feature["properties"]["adm0_a3_l"], feature["properties"]["adm0_a3_r"]}
        for code in sides & codes.keys():
            lat_min, lat_max, lon_min, lon_max = COUNTRY_BOXES[codes[code]]
            for lon, lat in (point for line in lines for point in line):
                assert lat_min <= lat <= lat_max and lon_min <= lon <= lon_max, (code, lat, lon)


def test_the_shipped_gazetteer_has_no_errors() -> None:
    places_dir = REPO / "rules" / "places"
    gazetteer = load_gazetteer(places_dir, display_root=REPO)
    assert [str(p) for p in gazetteer.problems if p.severity == "error"] == []
    assert len(gazetteer.places) == len(gazetteer.ids)
