"""The closed language of the embedded world: every template, the captions, the tokenizer and the vocabulary.

All text the generator writes comes from the templates below filled with the words of `_filler_words()`, so
`vocabulary()` can list every word a prompt, caption or answer can contain. Every text uses "an" before a vowel,
as POPE's published questions do ("Is there an apple in the image?"), so the training yes/no prompts are worded
exactly as the POPE questions the tiny model is evaluated on.
"""

from __future__ import annotations

import random
import re
import string
from typing import Sequence

from csr_bench.world.scenes import CATEGORIES, CATEGORY_BY_NAME, COLORS, QUADRANT_NAMES, PlacedObject, Scene

_TOKEN = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens; every punctuation mark is its own token ("Yes." -> ["yes", "."])."""
    return _TOKEN.findall(text.lower())


NUMBER_WORDS = ("zero", "one", "two", "three", "four")

# --- captions (CHAIR references and caption training targets) ---------------------------------------------------
CAPTION_TEMPLATES = (
    "{objects} on a gray background.",
    "{there} {objects} in the picture.",
    "A picture of {objects}.",
    "An image with {objects}.",
    "A simple drawing of {objects}.",
    "{objects} shown on a plain gray background.",
)
CAPTION_TEMPLATES_SEVERAL = ("{objects} next to each other.", "{objects} together in the picture.")
CAPTION_TEMPLATES_SINGLE = ("{objects} by itself on a gray background.", "A single {noun} in the picture.")
CAPTION_TEMPLATE_LEFT_RIGHT = "{first} on the left and {second} on the right."
CAPTION_TEMPLATE_ABOVE = "{first} above {second}."

CAPTION_PROMPT = "Describe this image."

# --- yes/no questions ----------------------------------------------------------------------------------------------
POPE_QUESTION = "Is there {a_name} in the image?"  # the training yes/no prompt, worded as POPE's questions
YES, NO = "Yes", "No"
MME_SUFFIX = " Please answer yes or no."
MME_EXISTENCE = "Is there {a_name} in this image?" + MME_SUFFIX
MME_COUNT_ONE = "Is there only one {name} in the image?" + MME_SUFFIX
MME_COUNT_TWO = "Are there two {plural} in the image?" + MME_SUFFIX
MME_COUNT_TOTAL = "Is there a total of {number} {plural} in the image?" + MME_SUFFIX
MME_POSITION_LEFT = "Is the {a} on the left side of the {b}?" + MME_SUFFIX
MME_POSITION_RIGHT = "Is the {a} on the right side of the {b}?" + MME_SUFFIX
MME_POSITION_ABOVE = "Is the {a} above the {b}?" + MME_SUFFIX
MME_POSITION_BELOW = "Is the {a} below the {b}?" + MME_SUFFIX
MME_COLOR = "Is there {a_color} {name} in the image?" + MME_SUFFIX

# --- multiple choice (MMBench) -------------------------------------------------------------------------------------
MMB_COLOR = "What color is the {name} in the image?"
MMB_LOCATION = "Where is the {name} in the image?"
MMB_RELATION = "Where is the {a} relative to the {b}?"
MMB_RELATION_OPTIONS = ("on the left", "on the right", "above", "below")
MMB_RECOGNITION = "Which of the following objects appears in the image?"
MMB_HINT = "The image shows simple shapes that stand for objects."

# --- short answers (GQA, VizWiz, training) -------------------------------------------------------------------------
GQA_EXIST = "Is there {a_name} in the picture?"
GQA_EXIST_YES = "Yes, there is {a_name}."
GQA_EXIST_NO = "No, there is no {name}."
GQA_COLOR = "What color is the {name}?"
GQA_COLOR_FULL = "The {name} is {color}."
GQA_LEFT_RIGHT = "Is the {a} to the left or to the right of the {b}?"
GQA_LEFT_RIGHT_FULL = "The {a} is to the {side} of the {b}."
VIZWIZ_COLOR = "What color is the {name}?"
VIZWIZ_COUNT = "How many {plural} are there?"
VIZWIZ_WHAT = "What is this?"
VIZWIZ_EXIST = "Is there {a_name} in this picture?"
VIZWIZ_UNANSWERABLE = "What does the text on the label say?"
UNANSWERABLE = "unanswerable"

# --- open questions judged against references (LLaVA-Bench in-the-wild, MM-Vet) ------------------------------------
LLAVA_W_CONV = "What objects are in the image?"
LLAVA_W_DETAIL = "Describe this image in detail."
LLAVA_W_COMPLEX = "How are the objects placed in the image?"
LLAVA_W_SHOWS = "The image shows {objects}."
LLAVA_W_CONTEXT = "{objects} on a gray background."
LLAVA_W_PLACE = "There is {a_thing} in the {quadrant}."
LLAVA_W_TOTAL_ONE = "There is one object in the picture: {objects}."
LLAVA_W_TOTAL = "There are {number} objects in the picture: {objects}."
MMVET_OBJECTS = "What objects are in the image?"
MMVET_COLOR = "What color is the {name}?"
MMVET_LEFT_OF = "What is to the left of the {b}?"
MMVET_ABOVE = "What is above the {b}?"
MMVET_TOTAL = "How many objects are there in the image?"
MMVET_DESCRIBE = "Describe this image in detail."

# Instructions that suites commonly append (LLaVA / VLMEvalKit wording), so they are in the vocabulary too.
INSTRUCTIONS = (
    "Please answer yes or no.",
    "Answer the question using a single word or phrase.",
    "Answer with the option's letter from the given choices directly.",
    "Please select the correct answer from the options above.",
    "When the provided information is insufficient, respond with 'Unanswerable'.",
    "Hint: Question: Options: Answer: A. B. C. D. E.",
    "Provide a one-sentence caption for the provided image.",
    "Describe this image in detail.",
)

ALL_TEMPLATES: tuple[str, ...] = (
    CAPTION_TEMPLATES + CAPTION_TEMPLATES_SEVERAL + CAPTION_TEMPLATES_SINGLE
    + (CAPTION_TEMPLATE_LEFT_RIGHT, CAPTION_TEMPLATE_ABOVE, CAPTION_PROMPT, POPE_QUESTION, YES, NO, MME_EXISTENCE,
       MME_COUNT_ONE, MME_COUNT_TWO, MME_COUNT_TOTAL, MME_POSITION_LEFT, MME_POSITION_RIGHT, MME_POSITION_ABOVE,
       MME_POSITION_BELOW, MME_COLOR, MMB_COLOR, MMB_LOCATION, MMB_RELATION, MMB_RECOGNITION, MMB_HINT, GQA_EXIST,
       GQA_EXIST_YES, GQA_EXIST_NO, GQA_COLOR, GQA_COLOR_FULL, GQA_LEFT_RIGHT, GQA_LEFT_RIGHT_FULL, VIZWIZ_COLOR,
       VIZWIZ_COUNT, VIZWIZ_WHAT, VIZWIZ_EXIST, VIZWIZ_UNANSWERABLE, UNANSWERABLE, "unsuitable", LLAVA_W_CONV,
       LLAVA_W_DETAIL, LLAVA_W_COMPLEX, LLAVA_W_SHOWS, LLAVA_W_CONTEXT, LLAVA_W_PLACE, LLAVA_W_TOTAL_ONE,
       LLAVA_W_TOTAL, MMVET_OBJECTS, MMVET_COLOR, MMVET_LEFT_OF, MMVET_ABOVE, MMVET_TOTAL, MMVET_DESCRIBE)
    + MMB_RELATION_OPTIONS + INSTRUCTIONS
)


def _filler_words() -> list[str]:
    words = ["there is", "there are", "a", "an", "left", "right", "light", "dark", "yes", "no"]
    for c in CATEGORIES:
        words += [c["name"], c["plural"], c["noun"], c["noun_plural"]]
    words += list(COLORS) + list(QUADRANT_NAMES) + list(NUMBER_WORDS) + [str(d) for d in range(10)]
    words += list(string.ascii_lowercase[:5])  # option letters
    return words


def vocabulary() -> list[str]:
    """Every token (see `tokenize`) that can appear in the world's prompts, captions and answers, sorted."""
    vocab: set[str] = set()
    for t in ALL_TEMPLATES:
        vocab.update(tokenize(re.sub(r"\{[a-z_]+\}", " ", t)))
    for w in _filler_words():
        vocab.update(tokenize(w))
    return sorted(vocab)


# --- helpers that fill the templates -------------------------------------------------------------------------------

def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def a_name(word: str) -> str:
    """"an apple", "a dog"."""
    return f"{article(word)} {word}"


def plural(name: str) -> str:
    return CATEGORY_BY_NAME[name]["plural"]


def color_of(name: str) -> str:
    return CATEGORY_BY_NAME[name]["color"]


def _phrase(name: str, count: int, with_color: bool) -> str:
    cat = CATEGORY_BY_NAME[name]
    adj = cat["color"] + " " if with_color else ""
    if count == 1:
        words = adj + cat["noun"]
        return f"{article(words)} {words}"
    return f"{NUMBER_WORDS[count]} {adj}{cat['noun_plural']}"


def _join(phrases: Sequence[str]) -> str:
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:]


def reference_captions(scene: Scene, rng: random.Random, n: int) -> list[str]:
    """n distinct captions, each naming every object of the scene (with its count) and nothing else."""
    counts = scene.counts()
    names = list(counts)
    candidates: list[str] = []
    for with_color in (False, True):
        order = names[:]
        rng.shuffle(order)
        phrases = [_phrase(c, counts[c], with_color) for c in order]
        objects = _join(phrases)
        first_plural = counts[order[0]] > 1
        for t in CAPTION_TEMPLATES:
            candidates.append(t.format(objects=objects, there="there are" if first_plural else "there is"))
        if len(scene.objects) > 1:
            candidates += [t.format(objects=objects) for t in CAPTION_TEMPLATES_SEVERAL]
        if len(scene.objects) == 1:
            candidates.append(CAPTION_TEMPLATES_SINGLE[0].format(objects=objects))
            noun = (color_of(names[0]) + " " if with_color else "") + CATEGORY_BY_NAME[names[0]]["noun"]
            candidates.append(CAPTION_TEMPLATES_SINGLE[1].format(noun=noun))
        if len(scene.objects) == 2 and len(names) == 2:
            a, b = scene.objects
            pa, pb = _phrase(a.category, 1, with_color), _phrase(b.category, 1, with_color)
            if a.column != b.column:
                left, right = (pa, pb) if a.column < b.column else (pb, pa)
                candidates.append(CAPTION_TEMPLATE_LEFT_RIGHT.format(first=left, second=right))
            else:
                top, bottom = (pa, pb) if a.row < b.row else (pb, pa)
                candidates.append(CAPTION_TEMPLATE_ABOVE.format(first=top, second=bottom))
    unique = sorted(set(_sentence(c) for c in candidates))
    return rng.sample(unique, min(n, len(unique)))


def object_list(scene: Scene, with_color: bool) -> str:
    """Every object of the scene with its count, in the order of the objects: "a dog, two cups and a fork"."""
    counts = scene.counts()
    return _join([_phrase(c, counts[c], with_color) for c in counts])


def placements(scene: Scene) -> str:
    """One sentence per object saying its quadrant, in quadrant order: "There is a brown dog in the top left." """
    return " ".join(LLAVA_W_PLACE.format(a_thing=_phrase(o.category, 1, True), quadrant=QUADRANT_NAMES[o.quadrant])
                    for o in sorted(scene.objects, key=lambda o: o.quadrant))


def llava_w_context(scene: Scene) -> str:
    """The context caption of LLaVA-Bench style items: names every object, its colour, count and place."""
    return _sentence(LLAVA_W_CONTEXT.format(objects=object_list(scene, True))) + " " + placements(scene)


def llava_w_reference(scene: Scene, category: str) -> str:
    """The reference ("GPT-4") answer of one LLaVA-Bench style question; every one names all the objects."""
    if category == "conv":
        return LLAVA_W_SHOWS.format(objects=object_list(scene, False))
    if category == "detail":
        return LLAVA_W_SHOWS.format(objects=object_list(scene, True)) + " " + placements(scene)
    n = len(scene.objects)
    total = (LLAVA_W_TOTAL_ONE.format(objects=object_list(scene, False)) if n == 1 else
             LLAVA_W_TOTAL.format(number=NUMBER_WORDS[n], objects=object_list(scene, False)))
    return total + " " + placements(scene)


def caption_word(name: str, count: int) -> str:
    """The word a caption uses for count objects of a category ("ball", "dogs")."""
    cat = CATEGORY_BY_NAME[name]
    return cat["noun"] if count == 1 else cat["noun_plural"]


def relation_pairs(scene: Scene) -> list[tuple[PlacedObject, PlacedObject]]:
    """Ordered pairs of single-instance objects that share a row or a column (one clear relation each)."""
    singles = scene.single_objects()
    return [(a, b) for a in singles for b in singles if a is not b and (a.row == b.row or a.column == b.column)]
