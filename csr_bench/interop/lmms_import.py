"""Convert lmms-eval sample logs into csr-bench run folders, so every lmms-eval run gets our intervals.

Input: the `*_samples_<task>.jsonl` files lmms-eval 0.7.3 writes with `--log_samples`, or the in-memory
`simple_evaluate(...)["samples"][task]` list. A logged sample carries `doc_id`, the filtered response and what the
task's `process_results` returned (e.g. `pope_accuracy: {question_id, score, prediction, ground_truth}`); the
JSONL file drops the `doc` (the dataset row), the in-memory list keeps it.

Samples are joined on `doc_id` (multi-process logs come in rank order: rank r holds doc r, r + W, ...); a
repeated doc_id, or a gap in the doc_id range, is refused. Per-unit statistics are recomputed from the logged
fields in our suite's layout, so our point estimates equal lmms-eval's aggregate (table `agreement` of each
format) except where lmms-eval's aggregate is known to be wrong (table `differences`):

- POPE `pope_yes_ratio` is the fraction of *ground-truth* "yes" (0.5 on every POPE split); ours is the fraction
  of answers that are "yes", as POPE's evaluate.py defines it. Precision, recall and F1 are 0 in lmms-eval where
  they divide by zero; ours are null there.
- SEED-Bench `seed_all` mixes image and video questions; ours (`accuracy`) is over image questions only, equal to
  `seed_image`.
- LLaVA-Bench `gpt_eval_llava_*` round the two mean judge scores to 3 decimals and the ratio to 1 decimal, and
  count a failed review as scores (-1, -1); ours is the unrounded ratio over the reviews that gave scores.
- MMBench `gpt_eval_score` asks a GPT matcher in the aggregate (nothing per question is logged); ours scores the
  logged predictions with VLMEvalKit's circular rules (`csr-bench score mmbench`), undecided answers counted as
  needing a judge.

Units. The resampling unit is the one our suite uses when the logged fields say it: the image for MME (its
question_id), the POPE/SEED/GQA image when the `doc` is logged (in-memory samples); a JSON Lines log has no doc, so
POPE, SEED-Bench, ScienceQA, GQA and VizWiz fall back to one unit per question (recorded as
`config.lmms_unit`), which gives narrower intervals than clustering by image would.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from csr_bench.core.files import read_jsonl
from csr_bench.core.types import RunManifest, Sample
from csr_bench.errors import UserError

# ---------------------------------------------------------------------------------------------------------
# Logged samples


@dataclass(frozen=True)
class LoggedSample:
    """One sample of an lmms-eval log, normalised across the JSONL file and the in-memory list."""

    doc_id: int
    where: str  # "file:line" or "samples[i]", for error messages
    fields: dict[str, Any]
    output: str | None
    doc: dict[str, Any] | None = None

    def field(self, key: str) -> Any:
        if key not in self.fields:
            raise UserError(f"{self.where}: missing key '{key}' (expected in an lmms-eval sample of this task)")
        return self.fields[key]

    def metric(self, key: str, *subkeys: str) -> Any:
        """A dict logged by process_results (e.g. `pope_accuracy`), with its required sub-keys."""
        value = self.field(key)
        if subkeys and not isinstance(value, dict):
            raise UserError(f"{self.where}: key '{key}' must be an object with {', '.join(subkeys)}, got {value!r}")
        for sub in subkeys:
            if sub not in value:
                raise UserError(f"{self.where}: key '{key}' has no '{sub}'")
        return value

    def number(self, key: str) -> float:
        value = self.field(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise UserError(f"{self.where}: key '{key}' must be a finite number, got {value!r}")
        return float(value)

    def doc_value(self, key: str) -> Any:
        return None if self.doc is None else self.doc.get(key)


def _output_text(value: Any, where: str) -> str | None:
    """The filtered response: a string in JSONL logs, a one-element list in memory."""
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and not value:
        return None
    raise UserError(f"{where}: key 'filtered_resps' must be a response string, got {value!r:.80}")


def _logged_sample(record: dict[str, Any], where: str) -> LoggedSample:
    if "doc_id" not in record:
        raise UserError(f"{where}: missing key 'doc_id' (not an lmms-eval sample log line)")
    doc_id = record["doc_id"]
    if isinstance(doc_id, bool) or not isinstance(doc_id, int):
        if isinstance(doc_id, str) and doc_id.isdigit():
            doc_id = int(doc_id)
        else:
            raise UserError(f"{where}: key 'doc_id' must be an integer, got {doc_id!r}")
    doc = record.get("doc") if isinstance(record.get("doc"), dict) else None
    return LoggedSample(doc_id, where, record, _output_text(record.get("filtered_resps"), where), doc)


def read_lmms_sample_log(path: str | os.PathLike) -> list[LoggedSample]:
    """The samples of an lmms-eval `*_samples_<task>.jsonl` file, in file order (line-numbered errors)."""
    return [_logged_sample(obj, f"{path}:{lineno}") for lineno, obj in read_jsonl(path, "lmms-eval sample log")]


def samples_from_memory(records: Sequence[dict[str, Any]], label: str = "samples") -> list[LoggedSample]:
    """`simple_evaluate(...)["samples"][task]` as logged samples."""
    out = []
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise UserError(f"{label}[{i}]: expected a sample object, got {type(record).__name__}")
        out.append(_logged_sample(record, f"{label}[{i}]"))
    return out


def join_on_doc_id(samples: Sequence[LoggedSample], source: str) -> list[LoggedSample]:
    """Samples in doc_id order; a repeated doc_id or a gap in the doc_id range is a UserError."""
    if not samples:
        raise UserError(f"{source}: no samples")
    first: dict[int, str] = {}
    for s in samples:
        if s.doc_id in first:
            before = first[s.doc_id]
            file, _, line = before.rpartition(":")
            where = f"line {line}" if line.isdigit() and s.where.startswith(file + ":") else before
            raise UserError(f"{s.where}: duplicate doc_id {s.doc_id} (first on {where})")
        first[s.doc_id] = s.where
    ordered = sorted(samples, key=lambda s: s.doc_id)
    lo, hi = ordered[0].doc_id, ordered[-1].doc_id
    if hi - lo + 1 != len(ordered):
        present = set(first)
        missing = next(i for i in range(lo, hi + 1) if i not in present)
        n_missing = hi - lo + 1 - len(ordered)
        more = f" and {n_missing - 1} more" if n_missing > 1 else ""
        raise UserError(f"{source}: doc_id {missing}{more} missing between {lo} and {hi} (a shard of a multi-process log?)")
    return ordered


# ---------------------------------------------------------------------------------------------------------
# Formats: one per lmms-eval task family


@dataclass
class ConvertedItem:
    item_id: str
    unit: str
    stats: list[float]
    scores: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LmmsFormat:
    """How the samples of one lmms-eval task family become samples of one of our suites.

    `agreement`: (lmms-eval metric, our metric, factor) with lmms-eval's aggregate == ours * factor.
    `differences`: lmms-eval metric -> why ours deliberately differs.
    """

    name: str
    suite: str
    tasks: tuple[str, ...]
    convert: Callable[[LoggedSample, dict[str, Any]], ConvertedItem | None]
    suite_config: Callable[[list[ConvertedItem]], dict[str, Any]]
    agreement: tuple[tuple[str, str, float], ...] = ()
    differences: dict[str, str] = field(default_factory=dict)
    # Which key of a logged sample says a log belongs to this format (used when the task name is unknown).
    signature: Callable[[dict[str, Any]], bool] = lambda fields: False
    # The unit when the doc is logged / when it is not.
    unit_with_doc: str = "question"
    unit_without_doc: str = "question"


def _stats(names: Sequence[str], values: dict[str, float]) -> list[float]:
    row = [0.0] * len(names)
    for key, value in values.items():
        row[names.index(key)] = float(value)
    return row


def _tallies(value_key: str, count_key: str, value: float, groups: Sequence[str] = ()) -> dict[str, float]:
    """The overall (value, count) columns and those of each group, as our suites lay them out
    (e.g. correct, count, correct_<dimension>, count_<dimension>)."""
    values = {value_key: value, count_key: 1.0}
    for group in groups:
        values.update({f"{value_key}_{group}": value, f"{count_key}_{group}": 1.0})
    return values


# -- POPE


def _convert_pope(s: LoggedSample, state: dict[str, Any]) -> ConvertedItem:
    from csr_bench.suites.pope import STAT_NAMES

    logged = s.metric("pope_accuracy", "question_id", "prediction", "ground_truth")
    prediction, truth = logged["prediction"], logged["ground_truth"]
    if truth not in ("yes", "no"):
        raise UserError(f"{s.where}: pope_accuracy.ground_truth must be \"yes\" or \"no\", got {truth!r}")
    if prediction not in ("yes", "no"):
        key = "unparsed"
    elif prediction == "yes":
        key = "tp" if truth == "yes" else "fp"
    else:
        key = "fn" if truth == "yes" else "tn"
    qid = str(logged["question_id"])
    image = s.doc_value("image_source")
    return ConvertedItem(
        item_id=qid,
        unit=str(image) if image is not None else qid,
        stats=_stats(STAT_NAMES, {key: 1.0}),
        scores={"correct": int(prediction == truth), "unparsed": int(key == "unparsed")},
        details={"parsed": prediction if key != "unparsed" else None, "label": truth},
    )


# -- MME


def _convert_mme(s: LoggedSample, state: dict[str, Any]) -> ConvertedItem:
    from csr_bench.suites.mme import PERCEPTION_TASKS, STAT_NAMES, TASKS

    key = "mme_perception_score" if "mme_perception_score" in s.fields else "mme_cognition_score"
    logged = s.metric(key, "question_id", "category", "score")
    task, qid = logged["category"], str(logged["question_id"])
    if task not in TASKS:
        raise UserError(f"{s.where}: {key}.category {task!r} is not an MME task; known: {', '.join(TASKS)}")
    if (key == "mme_perception_score") != (task in PERCEPTION_TASKS):
        raise UserError(f"{s.where}: category {task!r} logged under {key}")
    score = float(logged["score"])
    if score not in (0.0, 1.0):
        raise UserError(f"{s.where}: {key}.score must be 0 or 1, got {logged['score']!r}")
    # question_id names the image ("code_reasoning/0020.png"), shared by its two questions: the unit.
    image = qid[len(task) + 1:] if qid.startswith(task + "/") else qid
    unit = f"{task}/{image}"
    k = state.setdefault("mme_pairs", {}).get(unit, 0)
    state["mme_pairs"][unit] = k + 1
    if k >= 2:
        raise UserError(f"{s.where}: MME image {qid!r} has more than 2 questions")
    kinds = {"n_questions": 1.0, "n_correct": score, "n_images": 1.0, "n_images_both_correct": score}
    return ConvertedItem(
        item_id=f"{unit}/{k}",
        unit=unit,
        stats=_stats(STAT_NAMES, {f"{task}/{kind}": v for kind, v in kinds.items()}),
        scores={"correct": int(score)},
        details={"task": task},
    )


def _mme_config(items: list[ConvertedItem]) -> dict[str, Any]:
    from csr_bench.suites.mme import TASKS

    present = {it.details["task"] for it in items}
    return {"tasks": [t for t in TASKS if t in present], "prompt": "lmms-eval"}


def _check_mme_pairs(counts: dict[str, int], source: str) -> None:
    """`counts`: questions per image, as `_convert_mme` counted them."""
    single = [u for u, n in counts.items() if n != 2]
    if single:
        # lmms-eval's own aggregate asserts two questions per image; a --limit that splits a pair breaks it.
        raise UserError(f"{source}: MME image {single[0]!r} has {counts[single[0]]} question(s); MME needs 2 per image")


# -- SEED-Bench


def _convert_seed(s: LoggedSample, state: dict[str, Any]) -> ConvertedItem | None:
    from csr_bench.suites.seed_bench import DIMENSIONS, STAT_NAMES

    if "seed_image" not in s.fields:
        s.metric("seed_all", "pred", "answer")  # a video question: not an item of our (image) suite
        return None
    logged = s.metric("seed_image", "pred", "answer", "question_id")
    pred, answer = str(logged["pred"]), str(logged["answer"])
    ok = float(pred.lower().strip() == answer.lower().strip())
    type_id = s.doc_value("question_type_id")
    dimensions = [DIMENSIONS[int(type_id)]] if type_id is not None and int(type_id) in DIMENSIONS else []
    values = _tallies("correct", "count", ok, dimensions)
    qid = str(logged["question_id"])
    data_id = s.doc_value("data_id")
    return ConvertedItem(qid, str(data_id) if data_id is not None else qid, _stats(STAT_NAMES, values),
                         {"correct": int(ok)}, {"pred": pred, "answer": answer})


# -- exact-match tasks: ScienceQA-IMG, GQA, VizWiz


def _exact_match(s: LoggedSample) -> float:
    value = s.number("exact_match")
    if not 0.0 <= value <= 1.0:
        raise UserError(f"{s.where}: key 'exact_match' must be in [0, 1], got {value!r}")
    return value


def _convert_scienceqa(s: LoggedSample, state: dict[str, Any]) -> ConvertedItem:
    from csr_bench.suites.scienceqa import STAT_NAMES, SUBJECTS

    ok = _exact_match(s)
    subject = SUBJECTS.get(str(s.doc_value("subject")))
    values = _tallies("correct", "count", ok, [subject] if subject is not None else [])
    item_id = str(s.doc_id)
    return ConvertedItem(item_id, item_id, _stats(STAT_NAMES, values), {"correct": int(ok)})


def _convert_gqa(s: LoggedSample, state: dict[str, Any]) -> ConvertedItem:
    from csr_bench.suites.gqa import SEMANTIC, STAT_NAMES, STRUCTURAL

    ok = _exact_match(s)
    types = s.doc_value("types")
    kinds = (types.get("structural"), types.get("semantic")) if isinstance(types, dict) else ()
    values = _tallies("correct", "count", ok, [k for k in kinds if k in STRUCTURAL + SEMANTIC])
    qid = s.doc_value("id")
    item_id = str(qid) if qid is not None else str(s.doc_id)
    image = s.doc_value("imageId")
    return ConvertedItem(item_id, str(image) if image is not None else item_id, _stats(STAT_NAMES, values),
                         {"correct": int(ok)})


def _convert_vizwiz(s: LoggedSample, state: dict[str, Any]) -> ConvertedItem:
    from csr_bench.suites.vizwiz import ANSWER_TYPES, STAT_NAMES

    accuracy = _exact_match(s)
    answer_type = ANSWER_TYPES.get(str(s.doc_value("answer_type") or s.doc_value("category")))
    values = _tallies("score", "count", accuracy, [answer_type] if answer_type is not None else [])
    submission = s.fields.get("submission")
    image = submission.get("image") if isinstance(submission, dict) else None
    # The question is its image in VizWiz ("VizWiz_val_00000000.jpg"): one unit per question either way.
    item_id = str(image).rsplit(".", 1)[0] if isinstance(image, str) else str(s.doc_id)
    return ConvertedItem(item_id, item_id, _stats(STAT_NAMES, values), {"accuracy": accuracy})


# -- CHAIR (coco_cap_chair: lmms-eval logs the COCO objects it found and the ground truth)


def _convert_chair(s: LoggedSample, state: dict[str, Any]) -> ConvertedItem:
    from csr_bench.suites.chair import ChairSuite

    logged = s.metric("coco_cap_chair_i", "answer", "pred", "image_id")
    truth, mentioned = logged["answer"], logged["pred"]
    if not isinstance(truth, list) or not isinstance(mentioned, list):
        raise UserError(f"{s.where}: coco_cap_chair_i.answer and .pred must be lists of object names")
    hallucinated = [w for w in mentioned if w not in truth]
    gt = set(truth)
    stats = _stats(ChairSuite.stat_names, {
        "captions": 1.0, "hallucinated_captions": float(bool(hallucinated)), "mentions": len(mentioned),
        "hallucinated_mentions": len(hallucinated), "gt_objects": len(gt), "recalled_objects": len(gt & set(mentioned)),
    })  # no "words": lmms-eval logs no caption length
    image_id = str(logged["image_id"])
    return ConvertedItem(image_id, image_id, stats, {"hallucinated": int(bool(hallucinated))},
                         {"mentioned": mentioned, "hallucinated": hallucinated})


# -- LLaVA-Bench in-the-wild and MM-Vet (judged: the judge's scores are logged)


def _convert_llava_wild(s: LoggedSample, state: dict[str, Any]) -> ConvertedItem:
    from csr_bench.suites.llava_wild import CATEGORIES, STAT_NAMES

    logged = s.metric("gpt_eval_llava_all", "scores", "category")
    category = str(logged["category"]).removeprefix("llava_bench_")
    if category not in CATEGORIES:
        raise UserError(f"{s.where}: gpt_eval_llava_all.category {logged['category']!r}: expected llava_bench_conv, _detail or _complex")
    scores = logged["scores"]
    if not isinstance(scores, list) or len(scores) != 2:
        raise UserError(f"{s.where}: gpt_eval_llava_all.scores must be [reference, model], got {scores!r}")
    ref, model = (float(x) for x in scores)
    if ref < 0 or model < 0:  # lmms-eval's (-1, -1) for a failed review
        values = {f"missing_{category}": 1.0}
    else:
        values = {f"ref_{category}": ref, f"model_{category}": model, f"judged_{category}": 1.0}
    item_id = str(s.doc_value("question_id") if s.doc_value("question_id") is not None else s.doc_id)
    return ConvertedItem(item_id, item_id, _stats(STAT_NAMES, values), {"scores": [ref, model]},
                         {"category": category})


def _convert_mmvet(s: LoggedSample, state: dict[str, Any]) -> ConvertedItem:
    from csr_bench.suites.mmvet import CAPABILITIES, STAT_NAMES

    logged = s.metric("gpt_eval_score", "question_id", "score", "capabilities")
    score = float(logged["score"])
    capabilities = [cap.strip() for cap in str(logged["capabilities"]).split(",")]
    values = _tallies("score", "judged", score, [cap for cap in capabilities if cap in CAPABILITIES])
    item_id = str(logged["question_id"])
    return ConvertedItem(item_id, item_id, _stats(STAT_NAMES, values), {"score": score})


def _signature(*keys: str) -> Callable[[dict[str, Any]], bool]:
    return lambda fields: all(k in fields for k in keys)


def _fixed(config: dict[str, Any]) -> Callable[[list[ConvertedItem]], dict[str, Any]]:
    return lambda items: dict(config)


POPE_PROMPT_SUFFIX = "\nAnswer the question using a single word or phrase."

LMMS_FORMATS: dict[str, LmmsFormat] = {
    f.name: f
    for f in (
        LmmsFormat(
            "pope", "pope", ("pope", "pope_adv", "pope_pop", "pope_random"), _convert_pope,
            _fixed({"parser": "strict", "prompt_suffix": POPE_PROMPT_SUFFIX}),
            agreement=(("pope_accuracy", "accuracy", 1.0), ("pope_precision", "precision", 1.0),
                       ("pope_recall", "recall", 1.0), ("pope_f1_score", "f1", 1.0)),
            differences={
                "pope_yes_ratio": "lmms-eval counts ground-truth yes (0.5 on POPE); ours counts answers parsed as yes "
                                  "(POPE evaluate.py)",
            },
            signature=_signature("pope_accuracy"), unit_with_doc="image",
        ),
        LmmsFormat(
            "mme", "mme", ("mme",), _convert_mme, _mme_config,
            agreement=(("mme_perception_score", "perception", 1.0), ("mme_cognition_score", "cognition", 1.0)),
            signature=lambda f: "mme_perception_score" in f or "mme_cognition_score" in f,
            unit_with_doc="image", unit_without_doc="image",
        ),
        LmmsFormat(
            "seedbench", "seed_bench", ("seedbench",), _convert_seed, _fixed({}),
            agreement=(("seed_image", "accuracy", 0.01),),
            differences={"seed_all": "lmms-eval mixes image and video questions; ours is image questions only"},
            signature=_signature("seed_all"), unit_with_doc="image",
        ),
        LmmsFormat("scienceqa_img", "scienceqa", ("scienceqa_img",), _convert_scienceqa, _fixed({"split": "test"}),
                   agreement=(("exact_match", "accuracy", 0.01),)),
        LmmsFormat("gqa", "gqa", ("gqa",), _convert_gqa, _fixed({}), agreement=(("exact_match", "accuracy", 0.01),),
                   unit_with_doc="image"),
        LmmsFormat("vizwiz_vqa_val", "vizwiz", ("vizwiz_vqa_val",), _convert_vizwiz, _fixed({}),
                   agreement=(("exact_match", "accuracy", 0.01),),
                   signature=lambda f: "exact_match" in f and isinstance(f.get("submission"), dict)),
        LmmsFormat(
            "coco_cap_chair", "chair", ("coco_cap_chair",), _convert_chair, _fixed({}),
            agreement=(("coco_cap_chair_i", "CHAIR_i", 100.0), ("coco_cap_chair_s", "CHAIR_s", 100.0),
                       ("coco_cap_recall", "recall", 100.0)),
            signature=_signature("coco_cap_chair_i"),
        ),
        LmmsFormat(
            "llava_in_the_wild", "llava_wild", ("llava_in_the_wild",), _convert_llava_wild, _fixed({"judge": "lmms-eval log"}),
            agreement=(("gpt_eval_llava_all", "score", 1.0), ("gpt_eval_llava_conv", "score_conv", 1.0),
                       ("gpt_eval_llava_detail", "score_detail", 1.0), ("gpt_eval_llava_complex", "score_complex", 1.0)),
            differences={"gpt_eval_llava_all": "lmms-eval rounds the mean scores to 3 decimals and the ratio to 1, and "
                                               "counts a failed review as (-1, -1); ours drops failed reviews"},
            signature=_signature("gpt_eval_llava_all"),
        ),
        LmmsFormat(
            "mmvet", "mmvet", ("mmvet",), _convert_mmvet, _fixed({"judge": "lmms-eval log"}),
            agreement=(("gpt_eval_score", "score", 1.0),),
            signature=lambda f: isinstance(f.get("gpt_eval_score"), dict) and "capabilities" in f["gpt_eval_score"],
        ),
        LmmsFormat(
            "mmbench_en_dev", "mmbench", ("mmbench_en_dev",), lambda s, state: None, _fixed({}),
            differences={"gpt_eval_score": "lmms-eval asks a GPT matcher in the aggregate; ours applies VLMEvalKit's "
                                           "circular rules to the logged predictions (undecided: needs_judge)"},
            signature=lambda f: isinstance(f.get("gpt_eval_score"), dict) and "L2-category" in f["gpt_eval_score"],
        ),
    )
}


def lmms_format_for_task(task: str, samples: Sequence[LoggedSample] = ()) -> LmmsFormat:
    """The format of an lmms-eval task: by its name (`pope*` and the nine others, or a local copy named
    `<prefix>_<name>` such as `my_gqa`), else by the logged keys."""
    for f in LMMS_FORMATS.values():
        if task in f.tasks:
            return f
    if task.startswith("pope"):
        return LMMS_FORMATS["pope"]
    for f in LMMS_FORMATS.values():
        if any(task.endswith("_" + name) for name in f.tasks):
            return f
    if samples:
        matches = [f for f in LMMS_FORMATS.values() if f.signature(samples[0].fields)]
        if len(matches) == 1:
            return matches[0]
    known = ", ".join(["pope*"] + [n for n in LMMS_FORMATS if n != "pope"])
    raise UserError(f"lmms-eval task '{task}': unknown task; known: {known} (give --format NAME for a task of your own)")


# ---------------------------------------------------------------------------------------------------------
# Conversion


@dataclass
class ConvertedLog:
    """Our suite, samples and the lmms-eval bookkeeping of a converted log."""

    format: LmmsFormat
    task: str
    suite: Any
    # The manifest's suite_config; `suite` is what `for_scoring` makes of it, as when the run is read back.
    suite_config: dict[str, Any]
    samples: list[Sample]
    unit: str
    notes: list[str]

    def lmms_summary(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "format": self.format.name,
            "unit": self.unit,
            "agreement": {lm: {"metric": ours, "factor": factor} for lm, ours, factor in self.format.agreement},
            "differences": dict(self.format.differences),
        }


def convert_lmms_samples(
    samples: Sequence[LoggedSample], task: str, *, source: str, lmms_format: str | None = None
) -> ConvertedLog:
    """Join on doc_id and convert the samples of one lmms-eval task into samples of our suite."""
    from csr_bench.core.registry import suites

    ordered = join_on_doc_id(samples, source)
    if lmms_format is not None:
        if lmms_format not in LMMS_FORMATS:
            raise UserError(f"--format '{lmms_format}': unknown; known: {', '.join(LMMS_FORMATS)}")
        fmt = LMMS_FORMATS[lmms_format]
    else:
        fmt = lmms_format_for_task(task, ordered)
    with_doc = all(s.doc is not None for s in ordered)
    unit = fmt.unit_with_doc if with_doc else fmt.unit_without_doc
    notes: list[str] = []
    lmms_config = {"variant": "lmms", "lmms_task": task, "lmms_format": fmt.name}
    if fmt.name == "mmbench_en_dev":
        suite, out = _convert_mmbench(ordered, source)
        suite_config = {**suite.config_dict(), **lmms_config}
    else:
        state: dict[str, Any] = {}
        pairs = [(s, c) for s in ordered if (c := fmt.convert(s, state)) is not None]
        if not pairs:
            raise UserError(f"{source}: no sample of this log is an item of our {fmt.suite} suite")
        if len(pairs) < len(ordered):
            notes.append(f"{len(ordered) - len(pairs)} samples are not items of our {fmt.suite} suite (e.g. SEED video) "
                         "and were left out")
        if fmt.name == "mme":
            _check_mme_pairs(state["mme_pairs"], source)
        suite_config = {**fmt.suite_config([c for _, c in pairs]), **lmms_config}
        suite = suites.get(fmt.suite).for_scoring(suite_config)
        out = []
        seen: dict[str, str] = {}
        for s, c in pairs:
            if c.item_id in seen:
                raise UserError(f"{s.where}: item id '{c.item_id}' appears twice (first at {seen[c.item_id]})")
            seen[c.item_id] = s.where
            if len(c.stats) != len(suite.stat_names):
                raise RuntimeError(f"{fmt.name}: {len(c.stats)} statistics, suite declares {len(suite.stat_names)}")
            out.append(Sample(item_id=c.item_id, unit=c.unit, output=s.output, scores=c.scores, stats=c.stats,
                              details={"doc_id": s.doc_id, **c.details}))
    if unit == "question" and fmt.unit_with_doc != "question":
        notes.append(f"the log has no docs, so each question is its own resampling unit (not its {fmt.unit_with_doc})")
    return ConvertedLog(fmt, task, suite, suite_config, out, unit, notes)


def _convert_mmbench(ordered: Sequence[LoggedSample], source: str) -> tuple[Any, list[Sample]]:
    """Write the logged predictions as a VLMEvalKit predictions TSV and score it with our MMBench suite."""
    import pandas as pd

    from csr_bench.runner.scoring import score_pairs
    from csr_bench.suites.mmbench import MmbenchSuite

    rows = []
    for s in ordered:
        logged = s.metric("gpt_eval_score", "index", "question", "answer", "prediction")
        row = {k: logged.get(k) for k in ("index", "question", "answer", "hint", "category", "A", "B", "C", "D", "E")}
        row["l2-category"] = logged.get("L2-category")
        row["prediction"] = logged["prediction"]
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame = frame[[c for c in frame.columns if not frame[c].isna().all() and not (frame[c] == "nan").all()]]
    with tempfile.TemporaryDirectory(prefix="csr-bench-mmbench-") as tmp:
        tsv = Path(tmp) / "predictions.tsv"
        frame.to_csv(tsv, sep="\t", index=False)
        suite = MmbenchSuite()
        pairs = suite.read_predictions(tsv)
        samples = score_pairs(suite, pairs)
    # Prompt hashes would hash the temporary TSV's path; like the other formats, an imported sample has none.
    return suite, [replace(s, prompt_hash=None) for s in samples]


# ---------------------------------------------------------------------------------------------------------
# Run folders


def converted_manifest(converted: ConvertedLog, *, model_name: str, source: str, seed: int = 0,
                       model: dict[str, Any] | None = None, mode: str = "import") -> RunManifest:
    from csr_bench.runner.store import package_versions

    suite = converted.suite
    return RunManifest(
        suite=converted.format.suite,
        suite_config=dict(converted.suite_config),
        model=model or {"name": model_name, "source": "lmms-eval", "samples": source, "fingerprint": model_name},
        seed=seed,
        stat_names=list(suite.stat_names),
        data_fingerprint="",
        n_items=len(converted.samples),
        config={"mode": mode, "lmms_unit": converted.unit},
        task=converted.task,
        versions=package_versions(("csr-bench", "numpy", "lmms_eval")),
    )


def converted_metrics(converted: ConvertedLog, lmms_aggregate: dict[str, Any] | None = None) -> dict[str, Any]:
    from csr_bench.runner.scoring import summarize

    summary = summarize(converted.suite, converted.samples)
    summary["notes"] = list(converted.notes) + summary["notes"]
    summary["lmms_eval"] = converted.lmms_summary()
    if lmms_aggregate is not None:
        summary["lmms_eval"]["aggregate"] = lmms_aggregate
    return summary


def import_lmms_samples(
    path: str | os.PathLike, task: str, out: str | os.PathLike, *, model_name: str | None = None,
    lmms_format: str | None = None,
) -> dict[str, Any]:
    """`csr-bench import lmms`: an lmms-eval sample log into a run folder; returns its metrics.json content."""
    from csr_bench.runner.store import write_run_atomically

    converted = convert_lmms_samples(read_lmms_sample_log(path), task, source=str(path), lmms_format=lmms_format)
    name = model_name or Path(path).stem
    summary = converted_metrics(converted)
    write_run_atomically(out, converted_manifest(converted, model_name=name, source=str(path)), converted.samples, summary)
    return summary


__all__ = [
    "ConvertedItem",
    "ConvertedLog",
    "LMMS_FORMATS",
    "LmmsFormat",
    "LoggedSample",
    "convert_lmms_samples",
    "converted_manifest",
    "converted_metrics",
    "import_lmms_samples",
    "join_on_doc_id",
    "lmms_format_for_task",
    "read_lmms_sample_log",
    "samples_from_memory",
]
