"""Write the small NER corpus that ships with cs224n-nn (cs224n_nn/data/sample_*.conll).

Every sentence is invented: templates in a newswire style, written for this
project, filled with names from the lists below (also made up for it, apart
from real place names) by a seeded random generator, so the output is the
same on every run::

    python experiments/make_sample_corpus.py            # rewrites both files
    python experiments/make_sample_corpus.py --check    # exit 1 if they differ

The files follow CoNLL-2003: ``TOKEN POS CHUNK NER``, a ``-DOCSTART-`` line
at the top of each document, IOB1 entity tags (PER, ORG, LOC, MISC).  POS
tags come from a small lexicon, chunk tags from the POS tags; both are
rough, the NER column is exact.

To keep the dev score honest, every name list is split: the dev file draws
half of its names from a part the training file never uses, and a few
templates appear only in dev.  The notes' example "Museums in Paris are
amazing" is never written; museum and city sentences of the same kind are.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cs224n_nn.ner.conll import Sentence, convert_tags, read_conll  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "cs224n_nn" / "data"
SEED = 224
N_TRAIN, N_DEV = 700, 180
DOC_LENGTH = (6, 14)  # sentences per -DOCSTART- document
FORBIDDEN = ("Museums", "in", "Paris", "are", "amazing")

# ---------------------------------------------------------------------------
# name lists: (train part, dev-only part)

FIRST = (
    "Anna Marco Helga Pieter Tomas Ingrid Rafael Yusuf Keiko Lars Dmitri Colette Oscar Nadia "
    "Henrik Teresa Viktor Amara Felipe Johanna Samuel Irena Kofi Mei Bruno Leila Gustav Rosa",
    "Elena Matteo Sigrid Tariq Hana Emil Beatriz Niklas Ayumi Jonas",
)
LAST = (
    "Marlow Okafor Brandt Castellano Lindqvist Moreau Haddad Petrov Tanaka Kowalczyk Ferreira "
    "Van_der_Berg O'Connell Novak Whitcombe Demir Sorensen Albescu Rinaldi Quist Mbeki Halloran Zeller",
    "Varga Ostrowski Delacroix Nakamura Sandoval Achterberg Kiriakou Ellery",
)
CITY = (
    "Paris London Berlin Madrid Rome Vienna Lisbon Prague Warsaw Oslo Dublin Brussels Geneva "
    "Amsterdam Athens Cairo Nairobi Tokyo Sydney Toronto Chicago Boston Lyon Milan Hamburg Bonn",
    "Florence Seville Krakow Bergen Porto Salzburg Antwerp Kyoto",
)
COUNTRY = (
    "France Germany Spain Italy Austria Portugal Poland Norway Ireland Belgium Greece Egypt Kenya "
    "Japan Australia Canada Brazil Mexico Turkey Sweden",
    "Chile Finland Hungary Morocco Vietnam Peru",
)
NATIONALITY = (
    "French German Spanish Italian Austrian Polish Norwegian Irish Belgian Greek Egyptian Kenyan "
    "Japanese Australian Canadian Brazilian Mexican Turkish Swedish",
    "Chilean Finnish Hungarian Moroccan Peruvian",
)
# Multi-word names are joined with "_" here and split into tokens when written.
COMPANY = (
    "Northgate_Bank Larsen_Motors Halvard_Shipping Meridian_Telecom Orla_Foods Castor_Steel "
    "Brightwater_Energy Kestrel_Airlines Pemberton_Insurance Vantor_Chemicals Alder_&_Finch Solvik_Group",
    "Ravenna_Textiles Quayside_Holdings Tessaro_Pharma Helix_Mining",
)
BODY = (
    "National_Assembly Finance_Ministry Central_Bank Union_of_Dock_Workers Supreme_Court "
    "Farmers_Federation Red_Crescent Harbour_Authority Treasury Senate",
    "Audit_Office Teachers_Union Port_Commission",
)
CLUB = (
    "Rovers Albion United Athletic Dynamo Olympia Sporting Rapid Wanderers Celtic Vitesse Corinthians",
    "Spartak Botafogo Hibernian Lokomotiv",
)
MUSEUM = (
    "Museum_of_Modern_Art National_Gallery Museum_of_Science Maritime_Museum Fine_Arts_Museum",
    "Museum_of_Antiquities Design_Museum",
)
EVENT = (
    "World_Cup Olympic_Games Tour_of_Flanders Grand_Prix Davis_Cup Biennale Spring_Festival",
    "Harbour_Regatta Autumn_Classic",
)
MISC_WORD = (
    "Catholic Moslem Protestant Nobel English Latin Internet Euro",
    "Byzantine Arctic",
)

# ---------------------------------------------------------------------------
# templates: {SLOT} is filled from a list; every other word must be in LEXICON
# (it gives the POS tag).  Slots: PER (full name), SUR (surname), CITY,
# COUNTRY, NAT, COMPANY, BODY, CLUB, MUSEUM, EVENT, MISCW, NUM, SCORE,
# YEAR, DAY, MONTH, DATE, CAPCITY (a dateline city in capitals).

TEMPLATES = """
{CAPCITY} {DATE}
{CAPCITY} , {COUNTRY} {DATE}
{PER} said on {DAY} that the {BODY} would meet in {CITY} next week .
{NAT} Prime Minister {PER} arrived in {CITY} on {DAY} for talks with {PER} .
The {BODY} in {CITY} rejected the plan , officials said .
{COMPANY} said its profit rose {NUM} percent in the first half of {YEAR} .
Shares in {COMPANY} fell {NUM} percent in {CITY} after the report .
{COMPANY} , based in {CITY} , will buy a stake in {COMPANY} for {NUM} million dollars .
Museums in {CITY} are crowded this summer , the {BODY} said .
The museums of {CITY} are popular with {NAT} visitors .
Visitors to the {MUSEUM} in {CITY} waited for hours on {DAY} .
{PER} , director of the {MUSEUM} , said the new hall in {CITY} would open in {MONTH} .
Hotels in {CITY} are full and the streets are busy .
Restaurants in {CITY} are expensive , said {PER} , a tourist from {COUNTRY} .
The old town of {CITY} is beautiful in {MONTH} .
{CLUB} beat {CLUB} {SCORE} in {CITY} on {DAY} .
{CLUB} and {CLUB} drew {SCORE} .
{SUR} scored twice as {CLUB} won the match in {CITY} .
{NAT} striker {PER} joined {CLUB} from {CLUB} .
{PER} of {COUNTRY} won the {EVENT} in {CITY} .
{PER} , who finished second at the {EVENT} , said she was tired .
{PER} told reporters in {CITY} that {COUNTRY} would not change its policy .
Police in {CITY} arrested {NUM} people after protests on {DAY} .
The {NAT} government said on {DAY} it would send troops to {COUNTRY} .
Talks between {COUNTRY} and {COUNTRY} ended in {CITY} without an agreement .
{SUR} , {NUM} , was elected leader of the {BODY} .
The {MISCW} church in {CITY} was rebuilt in {YEAR} .
{PER} is a {NAT} writer who lives in {CITY} .
{COMPANY} chairman {PER} resigned on {DAY} .
The {BODY} fined {COMPANY} {NUM} million euros .
Flights from {CITY} to {CITY} were cancelled because of snow .
{NAT} exports to {COUNTRY} rose in {MONTH} , the {BODY} said .
{PER} will visit {COUNTRY} and {COUNTRY} in {MONTH} .
The {EVENT} will be held in {CITY} in {YEAR} .
Thousands of people marched through {CITY} on {DAY} .
{SUR} said : " We are happy with the result . "
" It was a hard game , " said {PER} of {CLUB} .
The {NAT} team arrived in {CITY} for the {EVENT} .
A spokesman for {COMPANY} declined to comment .
Prices in {CITY} rose {NUM} percent in {MONTH} , the {BODY} said .
{PER} met {NAT} officials in {CITY} on {DAY} .
{COMPANY} opened a new factory near {CITY} in {COUNTRY} .
{PER} ( {COUNTRY} ) {NUM}
{SUR} won the {MISCW} prize for his work in {COUNTRY} .
"""

DEV_ONLY_TEMPLATES = """
Galleries in {CITY} are open late on {DAY} , said {PER} .
{PER} , a lawyer for {COMPANY} , spoke to reporters in {CITY} .
The {NAT} minister flew to {CITY} to meet {PER} .
Fans of {CLUB} celebrated in the streets of {CITY} .
The {MUSEUM} in {CITY} is closed until {MONTH} .
"""

DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
MONTHS = "January February March April May June July August September October November December".split()

# POS of every template word (Penn Treebank tags, as in CoNLL-2003).
LEXICON = {
    **dict.fromkeys("the a The A an this".split(), "DT"),
    **dict.fromkeys("in on of for from to with through near at after without until because as between".split(), "IN"),
    **dict.fromkeys(
        "said rose fell beat drew scored won joined finished told arrested ended was elected resigned "
        "fined rebuilt cancelled marched waited opened celebrated flew spoke declined met arrived "
        "rejected were".split(),
        "VBD",
    ),
    **dict.fromkeys("would will".split(), "MD"),
    **dict.fromkeys("meet send change buy be visit open comment held".split(), "VB"),
    **dict.fromkeys("are is lives".split(), "VBZ"),
    **dict.fromkeys("based".split(), "VBN"),
    **dict.fromkeys(
        "week talks officials plan profit half percent report stake dollars euros summer visitors hours "
        "director hall tourist match reporters policy people protests government troops agreement leader "
        "church writer chairman flights snow exports spokesman result game team prices factory prize work "
        "galleries lawyer minister fans streets town thousands hotels restaurants museums Museums Galleries "
        "Hotels Restaurants Shares Visitors Flights Police Prices Talks Thousands Fans".split(),
        "NNS",
    ),
    **dict.fromkeys("Prime Minister".split(), "NNP"),
    **dict.fromkeys(
        "new next first old popular full busy expensive beautiful second tired hard happy crowded "
        "open closed late".split(),
        "JJ",
    ),
    **dict.fromkeys("twice not".split(), "RB"),
    **dict.fromkeys("that who".split(), "WDT"),
    **dict.fromkeys("its his".split(), "PRP$"),
    **dict.fromkeys("it she We It".split(), "PRP"),
    **dict.fromkeys("and".split(), "CC"),
    **dict.fromkeys("million Thousands".split(), "CD"),
    **dict.fromkeys("striker".split(), "NN"),
    ".": ".",
    ",": ",",
    ":": ":",
    '"': '"',
    "(": "(",
    ")": ")",
}
# Nouns given NNS above that are singular, so the column reads a little better.
for _w in "week plan profit half percent report stake summer director hall tourist match policy government " \
          "agreement leader church writer chairman snow spokesman result game team factory prize work lawyer " \
          "minister town".split():
    LEXICON[_w] = "NN"
LEXICON["was"] = "VBD"
LEXICON["are"] = "VBP"

_CHUNK_OF_POS = {
    "DT": "NP", "NN": "NP", "NNS": "NP", "NNP": "NP", "NNPS": "NP", "JJ": "NP", "CD": "NP",
    "PRP": "NP", "PRP$": "NP", "IN": "PP", "VBD": "VP", "VBZ": "VP", "VBP": "VP", "VB": "VP",
    "VBN": "VP", "MD": "VP", "RB": "ADVP", "WDT": "NP", "CC": "O",
}


def _names(pair: tuple[str, str], *, dev: bool, rng: random.Random) -> str:
    train, dev_only = pair[0].split(), pair[1].split()
    pool = dev_only if dev and rng.random() < 0.5 else train
    return rng.choice(pool).replace("_", " ")


def _fill(slot: str, rng: random.Random, dev: bool) -> tuple[list[str], list[str], str | None]:
    """Tokens, POS tags and entity type (None for O) of one slot."""
    pick = lambda pair: _names(pair, dev=dev, rng=rng)  # noqa: E731
    if slot == "PER":
        words = f"{pick(FIRST)} {pick(LAST)}".split() if rng.random() < 0.7 else pick(LAST).split()
        return words, ["NNP"] * len(words), "PER"
    if slot == "SUR":
        words = pick(LAST).split()
        return words, ["NNP"] * len(words), "PER"
    if slot in ("CITY", "COUNTRY", "CAPCITY"):
        words = pick(CITY if slot != "COUNTRY" else COUNTRY).split()
        if slot == "CAPCITY":
            words = [w.upper() for w in words]
        return words, ["NNP"] * len(words), "LOC"
    if slot in ("COMPANY", "BODY", "CLUB", "MUSEUM"):
        pair = {"COMPANY": COMPANY, "BODY": BODY, "CLUB": CLUB, "MUSEUM": MUSEUM}[slot]
        words = pick(pair).split()
        return words, ["IN" if w == "of" else "CC" if w == "&" else "NNP" for w in words], "ORG"
    if slot == "NAT":
        return [pick(NATIONALITY)], ["JJ"], "MISC"
    if slot in ("EVENT", "MISCW"):
        words = pick(EVENT if slot == "EVENT" else MISC_WORD).split()
        return words, ["IN" if w == "of" else "NNP" for w in words], "MISC"
    if slot == "NUM":
        number = rng.choice([rng.randint(2, 99), rng.randint(100, 950), round(rng.uniform(0.5, 9.9), 1)])
        return [str(number)], ["CD"], None
    if slot == "SCORE":
        return [f"{rng.randint(0, 4)}-{rng.randint(0, 4)}"], ["CD"], None
    if slot == "YEAR":
        return [str(rng.randint(1950, 1999))], ["CD"], None
    if slot == "DATE":
        return [f"1996-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"], ["CD"], None
    if slot == "DAY":
        return [rng.choice(DAYS)], ["NNP"], None
    if slot == "MONTH":
        return [rng.choice(MONTHS)], ["NNP"], None
    raise KeyError(f"unknown slot {{{slot}}}")


def _sentence(template: str, rng: random.Random, dev: bool) -> tuple[list[str], list[str], list[str], list[str]]:
    tokens, pos, ner = [], [], []
    for piece in template.split():
        m = re.fullmatch(r"\{(\w+)\}", piece)
        if m:
            words, tags, type_ = _fill(m.group(1), rng, dev)
            tokens += words
            pos += tags
            ner += ["O"] * len(words) if type_ is None else [f"B-{type_}"] + [f"I-{type_}"] * (len(words) - 1)
        else:
            if piece not in LEXICON:
                raise KeyError(f"template word {piece!r} has no POS in LEXICON")
            tokens.append(piece)
            pos.append(LEXICON[piece])
            ner.append("O")
    # Entities are built in IOB2 (each starts with B-); CoNLL-2003 is IOB1.
    return tokens, pos, _chunks(pos), convert_tags(ner, "IOB2", "IOB1")


def _chunks(pos: list[str]) -> list[str]:
    """IOB1 phrase tags from POS tags: a run of tokens of one phrase type is one chunk."""
    chunks = [_CHUNK_OF_POS.get(p, "O") for p in pos]
    return ["O" if c == "O" else f"I-{c}" for c in chunks]


def generate(n: int, *, dev: bool, rng: random.Random) -> list[list[tuple[str, str, str, str]]]:
    templates = [t for t in TEMPLATES.strip().splitlines() if t.strip()]
    if dev:
        templates += [t for t in DEV_ONLY_TEMPLATES.strip().splitlines() if t.strip()] * 3
    sentences = []
    while len(sentences) < n:
        tokens, pos, chunk, ner = _sentence(rng.choice(templates), rng, dev)
        if _contains(tokens, FORBIDDEN):
            continue
        sentences.append(list(zip(tokens, pos, chunk, ner)))
    return sentences


def _contains(tokens: list[str], phrase: tuple[str, ...]) -> bool:
    k = len(phrase)
    return any(tuple(tokens[i : i + k]) == phrase for i in range(len(tokens) - k + 1))


def render(sentences: list[list[tuple[str, str, str, str]]], rng: random.Random) -> str:
    lines: list[str] = []
    left = 0
    for sentence in sentences:
        if left == 0:
            lines += ["-DOCSTART- -X- O O", ""]
            left = rng.randint(*DOC_LENGTH)
        lines += [" ".join(row) for row in sentence] + [""]
        left -= 1
    return "\n".join(lines)


def build() -> dict[str, str]:
    rng = random.Random(SEED)
    train = render(generate(N_TRAIN, dev=False, rng=rng), rng)
    dev = render(generate(N_DEV, dev=True, rng=rng), rng)
    return {"sample_train.conll": train, "sample_dev.conll": dev}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the files on disk instead of writing")
    parser.add_argument("--out", type=Path, default=DATA, help="folder to write to (default: %(default)s)")
    args = parser.parse_args(argv)
    files = build()
    if args.check:
        stale = [name for name, text in files.items() if (args.out / name).read_text(encoding="utf-8") != text]
        if stale:
            print(f"out of date: {', '.join(stale)}; run python experiments/make_sample_corpus.py")
            return 1
        print("sample corpus is up to date")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (args.out / name).write_text(text, encoding="utf-8", newline="\n")
        sentences: list[Sentence] = read_conll(args.out / name)
        n_tokens = sum(len(s) for s in sentences)
        print(f"{args.out / name}: {len(sentences)} sentences, {n_tokens} tokens")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
