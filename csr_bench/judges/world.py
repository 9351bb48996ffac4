"""WorldJudge: a deterministic judge for the embedded world's LLaVA-W- and MM-Vet-style items.

It reads the same prompts an LLM judge reads and answers in the format the suites parse, so the demo runs the
whole judge path (prompt, reply, parsing, missing handling) without a network or a large model:

- LLaVA-Bench style prompts ("[Context] ... [Assistant 1] ... [Assistant 2] ... [System]"): each answer is scored
  from the context, which for world items lists the objects in the picture. Score = 1 + 9 x (fraction of the
  context's objects the answer names) - 2 x (objects it names that are not in the context), clamped to 1..10 and
  rounded; the reply is "S1 S2" on the first line and a one-line reason below, as rule.json asks.
- MM-Vet style prompts (the few-shot table ending with "question | ground truth | prediction |"): the ground
  truth's <AND> parts score the fraction present in the prediction, <OR> parts score 1 if any is present, a plain
  ground truth 1 if present, else 0; a part is present when its words occur in order in the prediction (case and
  punctuation ignored, number words read as digits). The reply is the score with one decimal ("0.5").
A prompt of neither kind gets no reply (a judge failure, so the item is missing).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from csr_bench.judges.base import JudgeCounters, JudgeReply, JudgeRequest

_WORDS = re.compile(r"[a-z0-9]+")
_NUMBERS = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
            "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_LLAVA_W = re.compile(
    r"\[Context\]\n(?P<context>.*?)\n\n\[Question\]\n(?P<question>.*?)\n\n\[(?P<role>[^\]\n]+) 1\]\n(?P<a1>.*?)"
    r"\n\n\[End of (?P=role) 1\]\n\n\[(?P=role) 2\]\n(?P<a2>.*?)\n\n\[End of (?P=role) 2\]", re.S)


def world_object_names() -> dict[str, str]:
    """Every word or phrase the world uses for an object -> the object's category name."""
    from csr_bench.world.scenes import CATEGORIES

    names: dict[str, str] = {}
    for c in CATEGORIES:
        for key in ("name", "plural", "noun", "noun_plural"):
            names[c[key].lower()] = c["name"]
    return names


def _tokens(text: str) -> list[str]:
    return [_NUMBERS.get(w, w) for w in _WORDS.findall(text.lower())]


def _contains(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return n > 0 and any(haystack[i:i + n] == needle for i in range(len(haystack) - n + 1))


class WorldJudge:
    def __init__(self, object_names: Mapping[str, str] | None = None):
        self._object_names = dict(object_names) if object_names is not None else None
        self.counters = JudgeCounters()

    @property
    def object_names(self) -> dict[str, str]:
        if self._object_names is None:
            self._object_names = world_object_names()
        return self._object_names

    def describe(self) -> dict[str, Any]:
        return {"kind": "world"}

    def mentioned(self, text: str) -> set[str]:
        tokens = _tokens(text)
        return {canonical for phrase, canonical in self.object_names.items() if _contains(tokens, _tokens(phrase))}

    def score_answer(self, context: str, answer: str) -> int:
        present, said = self.mentioned(context), self.mentioned(answer)
        coverage = len(said & present) / len(present) if present else 1.0
        raw = 1 + 9 * coverage - 2 * len(said - present)
        return int(min(10, max(1, round(raw))))

    def grade_mmvet(self, ground_truth: str, prediction: str) -> float:
        pred = _tokens(prediction)
        if "<AND>" in ground_truth:
            parts = [p for p in ground_truth.split("<AND>") if p.strip()]
            return round(sum(_contains(pred, _tokens(p)) for p in parts) / len(parts), 1) if parts else 0.0
        if "<OR>" in ground_truth:
            return float(any(_contains(pred, _tokens(p)) for p in ground_truth.split("<OR>")))
        return float(_contains(pred, _tokens(ground_truth)))

    def complete(self, request: JudgeRequest) -> JudgeReply:
        content = request.messages[-1][1] if request.messages else ""
        m = _LLAVA_W.search(content)
        if m:
            s1, s2 = self.score_answer(m["context"], m["a1"]), self.score_answer(m["context"], m["a2"])
            reason = (f"Objects in the context: {', '.join(sorted(self.mentioned(m['context']))) or 'none'}; "
                      f"{m['role']} 1 names {', '.join(sorted(self.mentioned(m['a1']))) or 'none'}; "
                      f"{m['role']} 2 names {', '.join(sorted(self.mentioned(m['a2']))) or 'none'}.")
            return JudgeReply(f"{s1} {s2}\n{reason}", model="world")
        row = _last_mmvet_row(content)
        if row is not None:
            return JudgeReply(f"{self.grade_mmvet(*row):.1f}", model="world")
        self.counters.failures += 1
        return JudgeReply(None, error="prompt is neither a LLaVA-Bench review nor an MM-Vet grading prompt")


def _last_mmvet_row(content: str) -> tuple[str, str] | None:
    """(ground truth, prediction) of the row to complete: the "q | gt | pred |" text after the few-shot table
    (whose last example row ends with "| 1.0"); the prediction may span several lines."""
    if "| Ground truth | Prediction | Correctness" not in content or "| 1.0\n" not in content:
        return None
    row = content[content.rindex("| 1.0\n") + len("| 1.0\n"):].strip("\n")
    suffix = "Predict the correctness of the answer (digit):"
    row = row.rstrip()
    if row.endswith(suffix):
        row = row[: -len(suffix)].rstrip()
    parts = row.split(" | ")
    if len(parts) < 3:
        return None
    return parts[1], " | ".join(parts[2:]).rstrip().rstrip("|").rstrip()
