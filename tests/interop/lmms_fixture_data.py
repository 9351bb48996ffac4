"""Local lmms-eval tasks over the embedded world: datasets in the lmms-lab schemas and the task YAMLs.

lmms-eval's tasks load their data from the Hugging Face Hub; the tasks in fixtures/lmms_tasks/ are lmms-eval's
own task definitions (its doc_to_text / process_results / aggregation functions, referenced by `!function`)
pointed at `datasets.save_to_disk` folders written here from a world (`csr-bench world generate --quick`).
Needs `datasets` (installed with lmms-eval). Also a script: `python -m tests.interop.lmms_fixture_data WORLD OUT`.
"""

from __future__ import annotations

import base64
import csv
import json
import sys
from pathlib import Path

TASK_TEMPLATES = Path(__file__).parent / "fixtures" / "lmms_tasks"
# Enough for a few dozen items per task: the tiny model answers them in seconds on one CPU thread.
N_POPE = 24
N_MME_PER_TASK = 4  # images per MME task (two questions each)
N_CHOICE = 16
N_GQA = 24
N_VIZWIZ = 16


def _png(path: Path) -> dict:
    return {"bytes": path.read_bytes(), "path": path.name}


def _save(rows: list[dict], features, out: Path, split: str) -> None:
    import datasets

    datasets.DatasetDict({split: datasets.Dataset.from_list(rows, features=features)}).save_to_disk(str(out))


def _mmbench_base_rows(world: Path) -> list[dict]:
    csv.field_size_limit(10**9)
    with (world / "mmbench" / "mmbench_dev_en.tsv").open(encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if int(r["index"]) < 1_000_000]
    return rows


def build_lmms_datasets(world: Path, data: Path) -> None:
    from datasets import Features, Image, Sequence, Value

    world, data = Path(world), Path(data)
    image = Image()

    # POPE (lmms-lab/POPE: id, question_id, question, answer, image_source, image, category)
    questions = [json.loads(line) for line in (world / "pope" / "coco_pope_adversarial.json").read_text().splitlines()]
    rows = [{"id": str(i), "question_id": str(q["question_id"]), "question": q["text"], "answer": q["label"],
             "image_source": Path(q["image"]).stem, "image": _png(world / "images" / "val2014" / q["image"]),
             "category": "adversarial"} for i, q in enumerate(questions[:N_POPE])]
    _save(rows, Features({"id": Value("string"), "question_id": Value("string"), "question": Value("string"),
                          "answer": Value("string"), "image_source": Value("string"), "image": image,
                          "category": Value("string")}), data / "pope", "test")

    # MME (lmms-lab/MME: question_id "<task>/<image>", image, question, answer, category)
    rows = []
    results = world / "mme" / "eval_tool" / "Your_Results"
    for task_file in sorted(results.glob("*.txt")):
        task = task_file.stem
        lines = task_file.read_text(encoding="utf-8").splitlines()[: 2 * N_MME_PER_TASK]
        for line in lines:
            name, question, answer = line.split("\t")[:3]
            image_file = world / "mme" / "MME_Benchmark_release_version" / task / name
            rows.append({"question_id": f"{task}/{name}", "image": _png(image_file), "question": question,
                         "answer": answer, "category": task})
    _save(rows, Features({"question_id": Value("string"), "image": image, "question": Value("string"),
                          "answer": Value("string"), "category": Value("string")}), data / "mme", "test")

    # SEED-Bench and ScienceQA-IMG from the world's MMBench questions (four options, one image each).
    base = _mmbench_base_rows(world)[:N_CHOICE]
    rows = [{"question_id": str(r["index"]), "question": r["question"], "choice_a": r["A"], "choice_b": r["B"],
             "choice_c": r["C"], "choice_d": r["D"], "answer": r["answer"], "data_type": "image",
             "question_type_id": 1 + i % 9, "data_id": f"mmbench/{r['index']}.png",
             "image": [{"bytes": base64.b64decode(r["image"]), "path": f"{r['index']}.png"}]}
            for i, r in enumerate(base)]
    _save(rows, Features({"question_id": Value("string"), "question": Value("string"), "choice_a": Value("string"),
                          "choice_b": Value("string"), "choice_c": Value("string"), "choice_d": Value("string"),
                          "answer": Value("string"), "data_type": Value("string"), "question_type_id": Value("int64"),
                          "data_id": Value("string"), "image": Sequence(image)}), data / "seedbench", "test")
    subjects = ("natural science", "social science", "language science")
    rows = [{"question": r["question"], "choices": [r[c] for c in "ABCD"], "answer": "ABCD".index(r["answer"]),
             "hint": r["hint"], "image": {"bytes": base64.b64decode(r["image"]), "path": f"{r['index']}.png"},
             "subject": subjects[i % 3], "task": "closed choice", "grade": "grade1", "topic": "world",
             "category": r["category"], "skill": r["category"], "lecture": "", "solution": ""}
            for i, r in enumerate(base)]
    _save(rows, Features({"question": Value("string"), "choices": Sequence(Value("string")), "answer": Value("int64"),
                          "hint": Value("string"), "image": image, "subject": Value("string"), "task": Value("string"),
                          "grade": Value("string"), "topic": Value("string"), "category": Value("string"),
                          "skill": Value("string"), "lecture": Value("string"), "solution": Value("string")}),
          data / "scienceqa_img", "test")

    # GQA (lmms-lab/GQA testdev_balanced_instructions + the image that gqa_process_docs joins in)
    gqa = json.loads((world / "gqa" / "testdev_balanced_questions.json").read_text(encoding="utf-8"))
    rows = [{"id": qid, "imageId": q["imageId"], "question": q["question"], "answer": q["answer"],
             "fullAnswer": q["fullAnswer"], "isBalanced": q["isBalanced"],
             "types": {"structural": q["types"]["structural"], "semantic": q["types"]["semantic"],
                       "detailed": q["types"]["detailed"]},
             "image": {"bytes": (world / "gqa" / "images" / f"{q['imageId']}.jpg").read_bytes(), "path": f"{q['imageId']}.jpg"}}
            for qid, q in list(gqa.items())[:N_GQA]]
    _save(rows, Features({"id": Value("string"), "imageId": Value("string"), "question": Value("string"),
                          "answer": Value("string"), "fullAnswer": Value("string"), "isBalanced": Value("bool"),
                          "types": {"structural": Value("string"), "semantic": Value("string"),
                                    "detailed": Value("string")}, "image": image}), data / "gqa", "testdev")

    # VizWiz-VQA (lmms-lab/VizWiz-VQA: question_id, image, question, answers, category)
    vizwiz = json.loads((world / "vizwiz" / "val.json").read_text(encoding="utf-8"))[:N_VIZWIZ]
    rows = [{"question_id": Path(v["image"]).stem, "image": _png(world / "vizwiz" / "val" / v["image"]),
             "question": v["question"], "answers": [a["answer"] for a in v["answers"]], "category": v["answer_type"]}
            for v in vizwiz]
    _save(rows, Features({"question_id": Value("string"), "image": image, "question": Value("string"),
                          "answers": Sequence(Value("string")), "category": Value("string")}), data / "vizwiz_vqa", "val")


def write_lmms_tasks(data: Path, tasks_dir: Path) -> Path:
    """Copy the task YAMLs into tasks_dir with @DATA@ set to the datasets folder; returns tasks_dir."""
    tasks_dir.mkdir(parents=True, exist_ok=True)
    for template in sorted(TASK_TEMPLATES.glob("*.yaml")):
        text = template.read_text(encoding="utf-8").replace("@DATA@", str(Path(data).resolve()))
        (tasks_dir / template.name).write_text(text, encoding="utf-8")
    return tasks_dir


def build_lmms_tasks(world: Path, out: Path) -> Path:
    """Datasets under OUT/data and task YAMLs under OUT/tasks (the include_path); returns OUT/tasks."""
    build_lmms_datasets(world, out / "data")
    return write_lmms_tasks(out / "data", out / "tasks")


if __name__ == "__main__":
    print(build_lmms_tasks(Path(sys.argv[1]), Path(sys.argv[2])))
