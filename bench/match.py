"""Benchmark of the matcher: build cost and end-to-end MB/s at 100, 1,000 and 10,000 terms.

Run from the repository: `python bench/match.py [--mb 50] [--sizes 100,1000,10000] [--repeat 3]`.
Prints figures; never part of the tests.

The corpus is synthetic multilingual news-like text (English, Russian, Tajik, Persian words with
their punctuation, case forms, suffixes, ZWNJ and some place names), generated from a fixed seed.
Every size matches the same corpus. Terms are pseudo-words of the same shape as the corpus's
words, so they share prefixes with them as real terms do; the first 50 of every size occur in the
text ("hot" terms), the others are checked to match no word form of the corpus. Every size thus
finds the same hits, and the figures show how the cost grows with the automaton alone.

Matching throughput is CPU time of this process (one core), the best of `--repeat` runs, since
other processes on the machine disturb single runs. The naive baseline (one compiled `re` per
term with `\b`, in a loop over the terms) is measured in the same run on a small slice of the
corpus and extrapolated to the whole (it says so).
"""

from __future__ import annotations

import argparse
import bisect
import gc
import random
import re
import resource
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.inflect import compile_term
from pipeline.match import CompiledRules, compile_rules
from pipeline.normalize import normalize_words
from pipeline.ruletypes import Place, Rule, Selection

SEED = 20261126


def _words(text: str) -> list[str]:
    return text.split()


HOT_TERMS = 50

# Pseudo-words are consonant-vowel(-consonant) syllables of each script, so that words and
# terms share prefixes about as often as in real text.
LETTERS = {
    "en": ("bcdfghklmnprstvwz", "aeiouy"),
    "ru": ("бвгджзклмнпрстфхцчшщ", "аеиоуыэюя"),
    "tg": ("бвгдзклмнпрстфхчшқҳҷғ", "аеиоуӣӯ"),
    "fa": ("بپتجچحخدذرزژسشصطعغفقکگلمنه", "اویآ"),
}
COMMON = {
    "en": _words(
        "the of and to in a is that for on was with he it as at by from his an were are "
        "which this be has had not but its they after two new also people said"
    ),
    "ru": _words(
        "и в не на что с по он как а то это к из у за о от так же для все мы было но "
        "сообщили заявил году время также после люди"
    ),
    "tg": _words(
        "ва дар ба аз ки бо он ин барои то як ҳам буд шуд мегӯяд гуфт сол вақт пас одамон низ дигар"
    ),
    "fa": _words(
        "و در به از که را با این آن برای یک هم بود شد گفت سال وقت پس مردم نیز دیگر می‌شود خواهد کرد"
    ),
}
PUNCT = {
    "en": [",", ".", ";", ":", '"', "'s", " —", "-"],
    "ru": [",", ".", " —", "«", "»", "„", "“", "-"],
    "tg": [",", ".", " —", "«", "»", "-ро", "-и"],
    "fa": ["،", ".", "؛", "؟", "«", "»", "\u200cها", "\u200cی"],
}
ENDINGS = {"en": ["", "s", "ed", "ing"], "ru": ["", "а", "у", "е", "ом", "ами", "ов", "ой"]}
ENDINGS["tg"] = ["", "ро", "ҳо", "и", "ам"]
ENDINGS["fa"] = ["", "ها", "\u200cهای", "ی", "را"]

PLACES = [
    ("af-badakhshan", ("Badakhshan", "Бадахшан", "Бадахшон", "بدخشان"), False),
    ("tj-khorog", ("Khorog", "Хорог", "Хоруғ", "خاروغ"), False),
    ("tj-ishkashim", ("Ishkashim", "Ишкашим", "Ишкошим", "اشکاشم"), False),
    ("af-ishkashim", ("Ishkashim", "Ишкашим", "Ишкошим", "اشکاشم"), False),
    ("tj-darvoz", ("Darvoz", "Дарваз", "Дарвоз", "درواز"), True),
    ("af-jurm", ("Jurm", "Джурм", "Ҷурм", "جرم"), True),
    ("river-panj", ("Panj", "Пяндж", "Панҷ", "پنج"), True),
    ("tj-panji-poyon", ("Panji Poyon", "Нижний Пяндж", "Панҷи Поён", "پنج پایین"), False),
    ("tj-kalai-khumb", ("Kalai-Khumb", "Калаи-Хумб", "Қалъаи Хумб", "قلعه خمب"), False),
    ("af-faizabad", ("Faizabad", "Файзабад", "Файзобод", "فیض‌آباد"), False),
    ("tj-vanj", ("Vanj", "Ванч", "Ванҷ", "ونج"), False),
    ("tj-rushan", ("Rushan", "Рушан", "Рӯшон", "روشان"), False),
]
LANGS = ("en", "ru", "tg", "fa")


def make_places() -> list[Place]:
    places = []
    for place_id, names, ambiguous in PLACES:
        places.append(
            Place(
                id=place_id,
                kind="district",
                country=place_id[:2].upper(),
                region="bench",
                coords=(37.0, 71.0),
                groups=("border-region", "gbao" if place_id.startswith("tj") else "badakhshan-af"),
                names={lang: (name,) for lang, name in zip(LANGS, names, strict=False)},
                ambiguous=ambiguous,
                context=("district", "river", "район", "река", "ноҳия", "ولسوالی", "دریای")
                if ambiguous
                else (),
            )
        )
    return places


def pseudo_words(rng: random.Random, lang: str, count: int, low: int, high: int) -> list[str]:
    """`count` distinct words of `low` to `high` syllables."""
    consonants, vowels = LETTERS[lang]
    words: set[str] = set()
    while len(words) < count:
        syllables = []
        for _ in range(rng.randint(low, high)):
            coda = rng.choice(consonants) if rng.random() < 0.4 else ""
            syllables.append(rng.choice(consonants) + rng.choice(vowels) + coda)
        words.add("".join(syllables))
    return sorted(words)


def make_vocabulary(rng: random.Random) -> dict[str, list[str]]:
    return {lang: COMMON[lang] * 40 + pseudo_words(rng, lang, 6000, 1, 4) for lang in LANGS}


def make_term_pool(rng: random.Random, vocabulary: dict[str, list[str]]) -> list[str]:
    """10,000 terms of 2-4 syllables, some `prefix*`, some two-word phrases.

    A term is kept only if it matches no word form of the corpus's vocabulary (with its
    endings): the terms share prefixes with the text's words, as real terms do, but only the
    hot terms put into the text occur in it, so every size sees about the same hits.
    """
    forms = sorted(
        {
            token
            for lang, words in vocabulary.items()
            for word in set(words)
            for ending in [*ENDINGS[lang], *PUNCT[lang]]
            for token in normalize_words(word + ending)
        }
    )
    terms: list[str] = []
    seen: set[str] = set()
    while len(terms) < 10_000:
        lang = LANGS[len(terms) % 4]
        word = pseudo_words(rng, lang, 1, 2, 4)[0]
        shape = rng.random()
        term = word + "*" if shape < 0.15 else word
        if word in seen or _occurs(term, forms):
            continue
        seen.add(word)
        if shape >= 0.85:
            term = f"{pseudo_words(rng, lang, 1, 1, 3)[0]} {word}"
        terms.append(term)
    return terms


def _occurs(term: str, forms: list[str]) -> bool:
    """Does the (one-word) term match one of the sorted word forms?"""
    pattern = compile_term(term).words[0]
    index = bisect.bisect_left(forms, pattern.stem)
    while index < len(forms) and forms[index].startswith(pattern.stem):
        if pattern.accepts(forms[index]):
            return True
        index += 1
    return False


def make_corpus(
    rng: random.Random, megabytes: float, vocabulary: dict[str, list[str]], hot: list[str]
) -> list[str]:
    articles: list[str] = []
    size = 0
    target = megabytes * 1_000_000
    place_names = [names for _, names, _ in PLACES]
    while size < target:
        lang_index = rng.randrange(4)
        lang = LANGS[lang_index]
        words = rng.choices(vocabulary[lang], k=rng.randint(250, 600))
        for i in range(0, len(words), 9):
            words[i] += rng.choice(ENDINGS[lang])
        for i in rng.sample(range(len(words)), k=len(words) // 6):
            words[i] += rng.choice(PUNCT[lang])
        for _ in range(rng.randint(0, 3)):
            name = rng.choice(place_names)[lang_index]
            words.insert(rng.randrange(len(words)), name + rng.choice(ENDINGS[lang][:3]))
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), rng.choice(hot).rstrip("*"))
        words[0] = words[0].capitalize()
        article = " ".join(words)
        articles.append(article)
        size += len(article.encode())
    return articles


def make_rules(terms: list[str]) -> list[Rule]:
    rules = []
    conditions = ("what", "where and what", "what near/20 where", "what and not noise")
    for index in range(0, len(terms), 10):
        chunk = tuple(terms[index : index + 10])
        condition = conditions[(index // 10) % len(conditions)]
        selections = [Selection("what", terms=chunk), Selection("where", places=("border-region",))]
        if "noise" in condition:
            selections.append(Selection("noise", terms=("Punjab",)))
        rules.append(
            Rule(
                id=f"bench-{index // 10}",
                title="bench",
                level="low",
                notify=(),
                digest="daily 08:00",
                feeds=("*",),
                selections=tuple(selections),
                condition=condition,
                version="1",
                path="bench",
            )
        )
    return rules


def measure_build(
    terms: list[str], places: list[Place]
) -> tuple[CompiledRules, float, float, float]:
    """Build time (wall and CPU) without tracing, then peak memory in a second, traced build."""
    rules = make_rules(terms)
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    matcher = compile_rules(rules, places)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    del matcher
    gc.collect()
    tracemalloc.start()
    matcher = compile_rules(rules, places)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return matcher, wall, cpu, peak / 1e6


def measure_matching(matcher: CompiledRules, articles: list[str]) -> tuple[float, float, int, int]:
    """CPU and wall seconds to match every article, with the matches and hits found."""
    matches = hits = 0
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    for article in articles:
        for match in matcher.match(article):
            matches += 1
            hits += len(match.hits)
    return time.process_time() - cpu, time.perf_counter() - wall, matches, hits


def naive_seconds(terms: list[str], articles: list[str]) -> float:
    """CPU seconds of one compiled `re` per term with word boundaries, tried one by one."""
    patterns = []
    for term in terms:
        body = re.escape(term.rstrip("*")).replace(r"\ ", r"\s+")
        tail = r"\w*" if term.endswith("*") else r"\b"
        patterns.append(re.compile(rf"\b{body}{tail}", re.IGNORECASE))
    start = time.process_time()
    for article in articles:
        text = article.casefold()
        for pattern in patterns:
            for _ in pattern.finditer(text):
                pass
    return time.process_time() - start


def slice_of(articles: list[str], kilobytes: float) -> list[str]:
    chosen, size = [], 0
    for article in articles:
        if size >= kilobytes * 1000:
            break
        chosen.append(article)
        size += len(article.encode())
    return chosen


def megabytes_of(articles: list[str]) -> float:
    return sum(len(a.encode()) for a in articles) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=50.0, help="corpus size in MB (default 50)")
    parser.add_argument("--sizes", default="100,1000,10000", help="term counts to compare")
    parser.add_argument("--repeat", type=int, default=3, help="matching runs per size; best kept")
    parser.add_argument(
        "--naive-kb",
        type=float,
        default=200.0,
        help="naive slice at 100 terms (KB; shrinks with size)",
    )
    args = parser.parse_args()
    rng = random.Random(SEED)
    started = time.perf_counter()
    vocabulary = make_vocabulary(random.Random(SEED + 1))
    pool = make_term_pool(rng, vocabulary)
    articles = make_corpus(rng, args.mb, vocabulary, pool[:HOT_TERMS])
    corpus_mb = megabytes_of(articles)
    print(
        f"corpus: {corpus_mb:.1f} MB UTF-8, {len(articles)} articles "
        f"(en/ru/tg/fa), generated in {time.perf_counter() - started:.1f} s"
    )
    places = make_places()
    print(
        "throughput is corpus MB (UTF-8) per CPU second of this process (one core): normalise, "
        "tokenise, match, and build every Match with its hits, offsets and snippet; "
        f"best of {args.repeat} runs"
    )
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        terms = pool[:size]
        matcher, build_wall, build_cpu, build_mb = measure_build(terms, places)
        runs = [measure_matching(matcher, articles) for _ in range(args.repeat)]
        cpu, wall, matches, hits = min(runs)  # the least disturbed run (CPU time)
        naive_slice = slice_of(articles, max(10.0, args.naive_kb * 100 / size))
        naive_mb = megabytes_of(naive_slice)
        naive_speed = naive_mb / naive_seconds(terms, naive_slice)
        speed = corpus_mb / cpu
        results.append((size, cpu))
        print(f"{size:>6} terms, {len(matcher.rules)} rules")
        print(
            f"    build     {build_wall:6.3f} s wall ({build_cpu:.3f} s CPU), "
            f"peak {build_mb:.1f} MB (tracemalloc, separate build)"
        )
        print(
            f"    matching  {speed:6.1f} MB/s ({cpu:.2f} s CPU, {wall:.2f} s wall; "
            f"{matches} matches, {hits / corpus_mb:,.0f} hits per MB)"
        )
        print(
            f"    naive     {naive_speed:8.4f} MB/s, measured on a {naive_mb * 1000:.0f} KB slice; "
            f"extrapolated to the corpus: {corpus_mb / naive_speed:,.0f} s"
        )
        print(f"    ratio     {speed / naive_speed:,.0f}x faster than naive")
    base_size, base = results[0]
    for size, cpu in results[1:]:
        print(f"matching time, {base_size} -> {size} terms: x{cpu / base:.2f}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the whole run: {rss:.0f} MB (includes the corpus held in memory)")


if __name__ == "__main__":
    main()
