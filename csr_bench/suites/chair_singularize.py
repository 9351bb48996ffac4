"""`pattern.en.singularize`, rule for rule, for the `pattern` variant of CHAIR.

The CHAIR scorers of LisaAnne/Hallucination and its Python 3 port call `pattern.en.singularize` on every
token. The `pattern` package does not install on current Python, so its rules (pattern 3.6,
pattern/text/en/inflect.py, BSD; adapted there from Bermi Ferrer's Inflector) are restated here as data, and
applied in the same order with the same quirks, which decide what CHAIR counts:

- a word that is the *end* of an uninflected or uncountable word is returned unchanged ("es", "ers",
  "hears": suffixes of "diabetes", "pincers", "shears");
- a word ending in one of the -ie plurals is returned as it is, still plural ("doggies" stays "doggies"),
  and the entries "^pie" and "^tie" never match, so "ties" -> "ty" and "pies" -> "py";
- the last rule drops any final "s": "bus" -> "bu", "glass" -> "glas", "cactus" -> "cactu";
- "([octop|vir])i$" is a character class: "spaghetti" -> "spaghettus".

pattern 2.6 (Python 2) differs only in two -ie entries ("algerie", "bookie" for "alergie", "newbie"), none of
which is a COCO object word.
"""

from __future__ import annotations

import re
from functools import lru_cache

_PLURAL_PREPOSITIONS = frozenset(
    "about above across after among around at athwart before behind below beneath beside besides between "
    "betwixt beyond but by during except for from in into near of off on onto out over since till to under "
    "until unto upon with".split()
)

_UNINFLECTED = frozenset(
    "bison bream breeches britches carp chassis christmas clippers cod contretemps corps debris diabetes djinn "
    "eland elk flounder gallows georgia graffiti headquarters herpes high-jinks homework innings jackanapes "
    "mackerel measles mews mumps news pincers pliers proceedings rabies salmon scissors series shears species "
    "swine swiss trout tuna whiting wildebeest".split()
)

_UNCOUNTABLE = frozenset(
    "advice bread butter cheese electricity equipment fruit furniture garbage gravel happiness information "
    "ketchup knowledge love luggage mathematics mayonnaise meat mustard news progress research rice sand "
    "software understanding water".split()
)

# Plurals in -ies that pattern leaves alone. "^pie" and "^tie" are compared as plain text, so never match.
_IE_WORDS = frozenset(
    "alergie auntie beanie birdie bogie bombie collie cookie cutie doggie eyrie freebie goonie groupie hankie "
    "hippie hoagie hottie indie junkie laddie laramie lingerie meanie newbie nightie oldie ^pie pixie quickie "
    "reverie rookie softie sortie stoolie sweetie techie ^tie toughie valkyrie veggie weenie yuppie zombie".split()
)

# No key is a suffix of another, so the order of this table does not change any result.
_IRREGULAR = {
    "atlantes": "atlas",
    "atlases": "atlas",
    "axes": "axe",
    "beeves": "beef",
    "brethren": "brother",
    "children": "child",
    "corpora": "corpus",
    "corpuses": "corpus",
    "ephemerides": "ephemeris",
    "feet": "foot",
    "ganglia": "ganglion",
    "geese": "goose",
    "genera": "genus",
    "genii": "genie",
    "graffiti": "graffito",
    "helves": "helve",
    "kine": "cow",
    "leaves": "leaf",
    "loaves": "loaf",
    "men": "man",
    "mongooses": "mongoose",
    "monies": "money",
    "moves": "move",
    "mythoi": "mythos",
    "numena": "numen",
    "occipita": "occiput",
    "octopodes": "octopus",
    "opera": "opus",
    "opuses": "opus",
    "our": "my",
    "oxen": "ox",
    "penes": "penis",
    "penises": "penis",
    "people": "person",
    "sexes": "sex",
    "soliloquies": "soliloquy",
    "teeth": "tooth",
    "testes": "testis",
    "trilbys": "trilby",
    "turves": "turf",
    "zoa": "zoon",
}

# (pattern, replacement), tried in order; the first pattern found anywhere in the word wins.
_RULES = [
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"(?i)(.)ae$", r"\1a"),
        (r"(?i)(.)itis$", r"\1itis"),
        (r"(?i)(.)eaux$", r"\1eau"),
        (r"(?i)(quiz)zes$", r"\1"),
        (r"(?i)(matr)ices$", r"\1ix"),
        (r"(?i)(ap|vert|ind)ices$", r"\1ex"),
        (r"(?i)^(ox)en", r"\1"),
        (r"(?i)(alias|status)es$", r"\1"),
        (r"(?i)([octop|vir])i$", r"\1us"),
        (r"(?i)(cris|ax|test)es$", r"\1is"),
        (r"(?i)(shoe)s$", r"\1"),
        (r"(?i)(o)es$", r"\1"),
        (r"(?i)(bus)es$", r"\1"),
        (r"(?i)([m|l])ice$", r"\1ouse"),
        (r"(?i)(x|ch|ss|sh)es$", r"\1"),
        (r"(?i)(m)ovies$", r"\1ovie"),
        (r"(?i)(.)ombies$", r"\1ombie"),
        (r"(?i)(s)eries$", r"\1eries"),
        (r"(?i)([^aeiouy]|qu)ies$", r"\1y"),
        (r"([aeo]l)ves$", r"\1f"),
        (r"([^d]ea)ves$", r"\1f"),
        (r"arves$", r"arf"),
        (r"erves$", r"erve"),
        (r"([nlw]i)ves$", r"\1fe"),
        (r"(?i)([lr])ves$", r"\1f"),
        (r"([aeo])ves$", r"\1ve"),
        (r"(?i)(sive)s$", r"\1"),
        (r"(?i)(tive)s$", r"\1"),
        (r"(?i)(hive)s$", r"\1"),
        (r"(?i)([^f])ves$", r"\1fe"),
        (r"(?i)(^analy)ses$", r"\1sis"),
        (r"(?i)((a)naly|(b)a|(d)iagno|(p)arenthe|(p)rogno|(s)ynop|(t)he)ses$", r"\1\2sis"),
        (r"(?i)(.)opses$", r"\1opsis"),
        (r"(?i)(.)yses$", r"\1ysis"),
        (r"(?i)(h|d|r|o|n|b|cl|p)oses$", r"\1ose"),
        (r"(?i)(fruct|gluc|galact|lact|ket|malt|rib|sacchar|cellul)ose$", r"\1ose"),
        (r"(?i)(.)oses$", r"\1osis"),
        (r"(?i)([ti])a$", r"\1um"),
        (r"(?i)(n)ews$", r"\1ews"),
        (r"(?i)s$", ""),
    )
]


@lru_cache(maxsize=1 << 18)
def singularize(word: str) -> str:
    """pattern.en.singularize(word) (noun, no custom table)."""
    if "-" in word:
        parts = word.split("-")
        if len(parts) > 1 and parts[1] in _PLURAL_PREPOSITIONS:
            return singularize(parts[0]) + "-" + "-".join(parts[1:])
    if word.endswith("'"):
        return singularize(word[:-1]) + "'s"
    w = word.lower()
    for x in _UNINFLECTED:
        if x.endswith(w):
            return word
    for x in _UNCOUNTABLE:
        if x.endswith(w):
            return word
    for x in _IE_WORDS:
        if w.endswith(x + "s"):
            return w
    for x, singular in _IRREGULAR.items():
        if w.endswith(x):
            return re.sub("(?i)" + x + "$", singular, word)
    for pattern, replacement in _RULES:
        m = pattern.search(word)
        if m:
            # pattern drops the references to groups that did not take part in the match.
            for k, group in enumerate(m.groups()):
                if group is None:
                    replacement = replacement.replace("\\" + str(k + 1), "")
            return pattern.sub(replacement, word)
    return word
