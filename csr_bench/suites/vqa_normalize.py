"""VQA answer normalisation and the VQA accuracy (min(#matching humans / 3, 1) over leave-one-out subsets).

Two official flavours, which differ:

- EvalAI (`normalize_evalai`, `vqa_accuracy_evalai`): the processor of EvalAI/MMF that LLaVA copies into
  `llava/eval/m4c_evaluator.py` (`EvalAIAnswerProcessor`, `TextVQAAccuracyEvaluator`) and lmms-eval copies into
  `tasks/_task_utils/vqa_eval_metric.py`. Every answer, the prediction and all human answers, is normalised:
  lower-case; delete "," and "?"; "'s" -> " 's"; newlines and tabs to spaces; strip; punctuation rule (below);
  number words "none".."ten" -> digits; articles a/an/the dropped; contractions restored ("dont" -> "don't").
  The leave-one-out runs over answer *positions*, so identical human answers are each left out once.
- Official VQA `vqaEval.py` (GT-Vision-Lab/VQA, `VQAEval.evaluate`; `vqa_accuracy_vqaeval`): answers are only
  stripped of newlines/tabs/outer spaces, and are normalised (punctuation rule, then digits/articles/contractions)
  *only when the human answers disagree*; so for a question with ten identical human answers the comparison is
  exact and case-sensitive. No "," / "?" / "'s" handling beyond the punctuation rule. Its leave-one-out removes
  every human answer record *equal* to the one left out (`item != gtAnsDatum`), which for VizWiz records
  (`{"answer", "answer_confidence"}`, no answer id) removes all identical records at once.

Punctuation rule (both): for each mark of `PUNCTUATION`, if the text has the mark followed or preceded by a space,
or has a comma between two digits, the mark is deleted, otherwise replaced by a space; then periods not followed by
a digit are deleted by `re.sub(pattern, "", text, re.UNICODE)` — which passes re.UNICODE (32) as the *count*, so
at most 32 periods are deleted, a quirk we keep. The lookbehind in the period pattern is written `(?!<=\\d)` in
both sources (a typo for `(?<!\\d)`), so it is a no-op and "1.5" keeps its period only because a digit follows.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've",
    "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll", "let's": "let's",
    "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've",
    "mightve": "might've", "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at",
    "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
    "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd", "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd", "someoned've": "someone'd've",
    "someone'dve": "someone'd've", "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've", "somethingll": "something'll",
    "thats": "that's", "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas",
    "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't",
    "whatll": "what'll", "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's",
    "whered": "where'd", "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll",
    "whyre": "why're", "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're",
    "youve": "you've",
}
NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}
ARTICLES = ("a", "an", "the")
PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_BETWEEN_DIGITS_EVALAI = re.compile(r"(?<=\d)(\,)+(?=\d)")
_COMMA_BETWEEN_DIGITS_VQAEVAL = re.compile(r"(\d)(\,)(\d)")  # vqaEval.py's pattern ("1,,2" does not match)
_PERIOD_STRIP_COUNT = int(re.UNICODE)  # see the module docstring: the official call passes the flag as count


def process_punctuation(text: str, comma_pattern: re.Pattern[str] = _COMMA_BETWEEN_DIGITS_EVALAI) -> str:
    out = text
    comma_between_digits = comma_pattern.search(text) is not None
    for p in PUNCTUATION:
        if (p + " " in text or " " + p in text) or comma_between_digits:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out, count=_PERIOD_STRIP_COUNT)


def process_digit_article(text: str) -> str:
    words = [NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in ARTICLES]
    return " ".join(CONTRACTIONS.get(w, w) for w in words)


def normalize_evalai(answer: str) -> str:
    """EvalAI's answer processing (LLaVA `EvalAIAnswerProcessor.__call__`, lmms-eval's copy)."""
    answer = answer.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    answer = answer.replace("\n", " ").replace("\t", " ").strip()
    return process_digit_article(process_punctuation(answer))


def vqa_accuracy_evalai(prediction: str, human_answers: Sequence[str]) -> float:
    """Mean over left-out positions i of min(1, #{j != i: answer_j == prediction} / 3), all normalised.

    LLaVA's `TextVQAAccuracyEvaluator` asserts exactly ten human answers; lmms-eval accepts any number and scores
    an empty list 0. Both give the same value on ten answers; here any number is accepted, none scores 0.
    """
    answers = [normalize_evalai(a) for a in human_answers]
    if not answers:
        return 0.0
    pred = normalize_evalai(prediction)
    matches = sum(a == pred for a in answers)
    # Leaving out a matching answer removes one match; leaving out another removes none.
    accs = [min(1.0, (matches - (a == pred)) / 3) for a in answers]
    return sum(accs) / len(accs)


def vqa_accuracy_vqaeval(prediction: str, human_answers: Sequence[dict[str, Any]]) -> float:
    """The official VQA `vqaEval.py` rule on answer records (dicts with at least "answer"); see the docstring."""
    if not human_answers:
        return 0.0
    records = [dict(r, answer=r["answer"].replace("\n", " ").replace("\t", " ").strip()) for r in human_answers]
    pred = prediction.replace("\n", " ").replace("\t", " ").strip()
    if len({r["answer"] for r in records}) > 1:
        for r in records:
            r["answer"] = process_digit_article(process_punctuation(r["answer"], _COMMA_BETWEEN_DIGITS_VQAEVAL))
        pred = process_digit_article(process_punctuation(pred, _COMMA_BETWEEN_DIGITS_VQAEVAL))
    accs = []
    for left_out in records:
        others = [r for r in records if r != left_out]
        accs.append(min(1.0, sum(r["answer"] == pred for r in others) / 3))
    return sum(accs) / len(accs)


__all__ = [
    "normalize_evalai",
    "process_digit_article",
    "process_punctuation",
    "vqa_accuracy_evalai",
    "vqa_accuracy_vqaeval",
]
