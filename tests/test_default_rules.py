"""The shipped rules (rules/*.yaml) with the shipped gazetteer: what each matches in four languages.

Per rule and language: at least three texts it must match and three it must not, ambiguous place
names among them (پنج "five", جرم "crime", خواهان "seeking", Argo, Faizabad in India, Darvoz/дарвоза
"gate"). Tajik is tested with its own letters and as typed on a Russian keyboard; Persian with ZWNJ
and with Arabic ي/ك.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.match import CompiledRules, compile_rules
from pipeline.rules import load_rules

REPO = Path(__file__).resolve().parents[1]

# rule id -> language -> (texts it matches, texts it must not match)
CASES: dict[str, dict[str, tuple[list[str], list[str]]]] = {
    "border-security": {
        "en": (
            [
                "Militants attacked a Tajik border post in Darvoz district overnight.",
                "Gunfire was exchanged across the Panj river near Khwahan, Badakhshan, on Friday.",
                "Two border guards were killed near the Tem-Demogan bridge in Khorog.",
                "Kidnappers seized three traders in Wakhan on their way to the market.",
            ],
            [
                "Police in Punjab reported clashes between rival farmers.",
                "Khorog's football team kept up the attack and won 2-0.",
                "Argo, the film about a hostage rescue in Tehran, returns to cinemas.",
                "Clashes broke out in Faizabad, Uttar Pradesh, after a local election.",
            ],
        ),
        "ru": (
            [
                "Боевики атаковали пограничную заставу в ГБАО.",
                "На границе с Афганистаном в районе Хамадони произошла перестрелка.",
                "В Хороге ранены двое пограничников.",
            ],
            [
                "В Пенджабе произошли столкновения фермеров с полицией.",
                "Футбольный клуб из Хорога провел атаку за атакой и выиграл кубок.",
                "Вооруженные силы Таджикистана провели учения в Бадахшане.",
                "Пять человек погибли в ДТП в Душанбе.",
            ],
        ),
        "tg": (
            [
                "Ҷангҷӯён ба посгоҳи марзии ноҳияи Шуғнон ҳамла карданд.",
                "Дар соҳили дарёи Панҷ дар ноҳияи Фархор тирпарронӣ шуд.",
                "Ду марзбон дар наздикии Калъаи Хумб кушта шуданд.",  # typed without ҷ ҳ қ ӯ
                "Чангчуён ба посгохи марзии нохияи Шугнон хамла карданд.",
            ],
            [
                "Панҷ нафар дар Душанбе дар садама захмӣ шуданд.",
                "Дастаи футболи Хоруғ ҳамлаҳои зиёд кард ва ғолиб шуд.",
                "Дузд ба дарвозаи мағоза ҳамла кард, хабар дод милиса дар Душанбе.",
            ],
        ),
        "fa": (
            [
                "طالبان و مرزبانان تاجیک در ولسوالی خواهان بدخشان درگیر شدند و تیراندازی شد.",
                "افراد مسلح یک پاسگاه مرزی را در ولسوالی جرم بدخشان هدف قرار دادند.",
                "دو مرزبان در نزدیکی پل اشکاشم کشته شدند.",
                "حمله بر پاسگاه مرزي در ولسوالي درواز بدخشان",  # Arabic yeh
            ],
            [
                "پنج نفر در حمله‌ای در کابل زخمی شدند.",
                "دادگاه کابل گفت این حمله یک جرم سنگین است.",
                "خواهان صلح در کشور هستیم و از حمله‌ها انتقاد می‌کنیم.",
                "در مراسم یادبود شهدا، سخنران حمله‌های اخیر را محکوم کرد.",
            ],
        ),
    },
    "crossings-status": {
        "en": (
            [
                "The Tem-Demogan bridge was closed on Monday after the river rose.",
                "Tajikistan reopened the Ishkashim cross-border market after two years.",
                "Traffic over the Friendship Bridge between Termez and Hairatan was suspended.",
                "A new bridge in Vanj was opened by local officials.",
            ],
            [
                "The Khorog-Dushanbe road was closed by snow.",
                "A bridge in Punjab collapsed after heavy rain.",
                "Panj, a new restaurant in London, has opened near Tower Bridge.",
                "Shops in Faizabad's old market closed early for the holiday.",
            ],
        ),
        "ru": (
            [
                "Мост Тем-Демоган через Пяндж закрыт на ремонт.",
                "Власти открыли пункт пропуска Нижний Пяндж после недельного перерыва.",
                "Приграничный рынок в Ишкашиме возобновил работу.",
            ],
            [
                "В Душанбе закрыт мост через Варзоб на ремонт.",
                "Дорога Хорог — Душанбе закрыта из-за снега.",
                "В Пенджабе обрушился мост после ливней.",
            ],
        ),
        "tg": (
            [
                "Пули Дарвоз барои таъмир муваққатан баста шуд.",
                "Бозори Ишкошим аз нав кушода шуд.",
                "Купруки нав дар нохияи Ванч кушода шуд.",  # typed without ҳ ҷ ӯ
            ],
            [
                "Мактаби нав дар Душанбе кушода шуд.",
                "Роҳи Душанбе — Хоруғ баста шуд.",
                "Пули нави шаҳри Хуҷанд кушода шуд.",
            ],
        ),
        "fa": (
            [
                "پل اشکاشم به روی رفت و آمد بسته شد.",
                "بندر شیرخان بندر پس از یک هفته بازگشایی شد.",
                "گذرگاه مرزی حیرتان دوباره باز شد.",
            ],
            [
                "پل سرخ در کابل بسته شد.",
                "پنج پل در شهر کابل بازگشایی شد.",
                "بازار کابل امروز بسته بود.",
            ],
        ),
    },
    "smuggling": {
        "en": (
            [
                "Border guards seized 20 kg of heroin on the Panj river near Farkhor.",
                "Smugglers carrying weapons were detained in Shamsiddin Shohin district.",
                "Police in Kunduz's Imam Sahib district confiscated opium bound for Tajikistan.",
            ],
            [
                "Heroin seized at Karachi port.",
                "A pharmacy in Khorog sold drugs without licences.",
                "Argo crew members were detained at the border with Chile.",
            ],
        ),
        "ru": (
            [
                "Пограничники изъяли 15 кг гашиша в районе Хамадони.",
                "На границе в Ишкашиме задержан нарушитель.",
                "В Хороге изъято оружие, переправленное контрабандой из Афганистана.",
            ],
            [
                "В аптеке Душанбе изъяли просроченные лекарства.",
                "В Хороге открылся новый спортзал.",
                "На границе Казахстана задержан контрабандист с наркотиками.",
            ],
        ),
        "tg": (
            [
                "Марзбонон дар ноҳияи Панҷ 10 кило маводи мухаддир мусодира карданд.",
                "Дар Ишкошим қочоқбар бо силоҳ дастгир шуд.",
                "Дар нохияи Фархор ду нафар бо героин боздошт шуданд.",  # typed without ҳ
            ],
            [
                "Дар Душанбе маводи мухаддир мусодира шуд.",
                "Панҷ нафар дар Душанбе бо маводи мухаддир боздошт шуданд.",
                "Милиса дар Хоруғ як мошинро боздошт кард.",
            ],
        ),
        "fa": (
            [
                "مرزبانان در ولسوالی شغنان ۲۰ کیلو تریاک ضبط کردند.",
                "چند نفر به اتهام قاچاق سلاح در شیرخان بندر بازداشت شدند.",
                "در مرز اشکاشم یک قاچاقچی هروئین دستگیر شد.",
            ],
            [
                "پولیس کابل مواد مخدر کشف کرد.",
                "جرم قاچاق مواد مخدر در دادگاه کابل بررسی شد.",
                "پنج قاچاقچی در هرات بازداشت شدند.",
            ],
        ),
    },
    "displacement": {
        "en": (
            [
                "Hundreds of refugees gathered on the Afghan bank opposite Ishkoshim.",
                "Residents of Rushon district were evacuated after the warning.",
                "Tajikistan deported 40 Afghan migrants across the Panji Poyon bridge.",
            ],
            [
                "Refugees arrive in Greece after a long journey.",
                "Khorog hosts a music festival.",
                "Shuhada Street in Kabul was evacuated after a bomb threat.",
            ],
        ),
        "ru": (
            [
                "Из кишлаков Ванча эвакуированы 200 человек.",
                "Афганские беженцы собрались у моста в Нижнем Пяндже.",
                "Власти депортировали через границу в Ишкашиме группу мигрантов.",
            ],
            [
                "Беженцы из Сирии прибыли в Германию.",
                "В Хороге прошел концерт.",
                "Началась эвакуация жителей прибрежных районов Одессы.",
            ],
        ),
        "tg": (
            [
                "Гурезагони афғон дар соҳили Панҷ рӯ ба рӯи Ишкошим ҷамъ омаданд.",
                "Сокинони ноҳияи Рӯшон аз сабаби селоб кӯчонида шуданд.",
                "Мухочирони афгон аз Панчи Поён гузаронида шуданд.",  # typed without ҳ ҷ ё
            ],
            [
                "Гурезагони Сурия ба Аврупо рафтанд.",
                "Панҷ нафар аз Душанбе ба Маскав муҳоҷират карданд.",
                "Дар Хоруғ консерт баргузор шуд.",
            ],
        ),
        "fa": (
            [
                "صدها پناهجوی افغان در نزدیکی پل اشکاشم جمع شدند.",
                "باشندگان ولسوالی واخان به دلیل سیلاب تخلیه شدند.",
                "تاجیکستان ده‌ها مهاجر افغان را از مرز شیرخان بندر اخراج کرد.",
            ],
            [
                "پناهجویان سوری به ترکیه رسیدند.",
                "پنج خانواده آواره در کابل کمک گرفتند.",
                "جشنواره موسیقی در فیض آباد برگزار شد.",
            ],
        ),
    },
    "disasters": {
        "en": (
            [
                "A mudflow blocked the road in Vanj district.",
                "An earthquake of magnitude 5.1 shook Ishkashim and Khorog.",
                "Avalanches cut off villages in Darwaz, Badakhshan.",
            ],
            [
                "Floods in Punjab displaced thousands.",
                "Khorog celebrates its autumn festival.",
                "The Argo earthquake drill was held in California.",
            ],
        ),
        "ru": (
            [
                "В Рошткале сошла лавина.",
                "Землетрясение магнитудой 4,8 ощущалось в Хороге.",
                "Паводок на реке Пяндж затопил поля в Фархоре.",
            ],
            [
                "Наводнение в Пенджабе затопило сотни домов.",
                "В Хороге открыли новую школу.",
                "Землетрясение в Турции разрушило десятки зданий.",
            ],
        ),
        "tg": (
            [
                "Селоб дар ноҳияи Ванҷ роҳро баст.",
                "Заминларза дар Хоруғ ҳис карда шуд.",
                "Тарма дар нохияи Рушон ду хонаро зери худ кард.",  # typed without ҳ ӯ
            ],
            [
                "Заминларза дар Туркия ҳис карда шуд.",
                "Панҷ нафар дар бораи селоб дар Покистон сухан гуфтанд.",
                "Дар Хоруғ мактаби нав кушода шуд.",
            ],
        ),
        "fa": (
            [
                "سیلاب چندین خانه را در ولسوالی زیباک ویران کرد.",
                "زمین‌لرزه‌ای به بزرگی ۵ ریشتر بدخشان را لرزاند.",
                "برف‌کوچ در ولسوالی واخان راه‌ها را مسدود کرد.",
            ],
            [
                "سیل در پاکستان ده‌ها کشته برجا گذاشت.",
                "پنج سیلاب بزرگ در تاریخ هند ثبت شده است.",
                "زلزله در ترکیه ده‌ها ساختمان را ویران کرد.",
            ],
        ),
    },
}


@pytest.fixture(scope="module")
def matcher() -> CompiledRules:
    rule_set = load_rules(REPO / "rules")
    assert rule_set.errors == ()
    return compile_rules(rule_set.rules, rule_set.places)


def _cases(expected: bool) -> list[object]:
    return [
        pytest.param(rule_id, lang, text, id=f"{rule_id}-{lang}-{index}")
        for rule_id, by_lang in CASES.items()
        for lang, (positive, negative) in by_lang.items()
        for index, text in enumerate(positive if expected else negative)
    ]


def test_every_rule_has_three_cases_each_way_per_language() -> None:
    rule_set = load_rules(REPO / "rules")
    assert sorted(CASES) == sorted(r.id for r in rule_set.rules)
    for by_lang in CASES.values():
        assert sorted(by_lang) == ["en", "fa", "ru", "tg"]
        for positive, negative in by_lang.values():
            assert len(positive) >= 3
            assert len(negative) >= 3


@pytest.mark.parametrize(("rule_id", "lang", "text"), _cases(True))
def test_rule_matches(matcher: CompiledRules, rule_id: str, lang: str, text: str) -> None:
    matched = {m.rule_id for m in matcher.match(text)}
    assert rule_id in matched, matcher.explain(rule_id, text)


@pytest.mark.parametrize(("rule_id", "lang", "text"), _cases(False))
def test_rule_does_not_match(matcher: CompiledRules, rule_id: str, lang: str, text: str) -> None:
    matched = {m.rule_id for m in matcher.match(text)}
    assert rule_id not in matched, matcher.explain(rule_id, text)


def test_default_rules_shape() -> None:
    rule_set = load_rules(REPO / "rules")
    by_id = {r.id: r for r in rule_set.rules}
    assert by_id["border-security"].digest == "immediate"
    assert by_id["crossings-status"].digest == "immediate"
    for rule in rule_set.rules:
        assert rule.notify == ("outbox",)
        assert rule.feeds == ("*",)
    for path in sorted((REPO / "rules").glob("*.yaml")):
        assert path.read_text(encoding="utf-8").startswith("# "), (
            f"{path.name}: say what it watches"
        )
