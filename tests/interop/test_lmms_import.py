"""`csr-bench import lmms` on sample logs written by lmms-eval 0.7.3 itself (no lmms-eval needed here).

The logs and lmms-eval's results JSON in fixtures/lmms_logs/ were produced by
`lmms-eval eval --model csr_bench --model_args model=tiny --tasks csr_pope,... --include_path TASKS --log_samples`
over the local tasks of fixtures/lmms_tasks/ (see lmms_fixture_data.py); machine paths are replaced by @DATA@ etc.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from csr_bench.interop.lmms_import import (
    LMMS_FORMATS,
    convert_lmms_samples,
    converted_metrics,
    read_lmms_sample_log,
    samples_from_memory,
)

LOGS = Path(__file__).parent / "fixtures" / "lmms_logs"
TASKS = ["csr_pope", "csr_mme", "csr_seedbench", "csr_scienceqa_img", "csr_gqa", "csr_vizwiz_vqa_val"]


def lmms_aggregate(task: str) -> dict:
    for path in LOGS.glob("results_*.json"):
        results = json.loads(path.read_text())["results"]
        if task in results:
            return {k.removesuffix(",none"): v for k, v in results[task].items() if k.endswith(",none")}
    raise AssertionError(f"no lmms-eval results for {task}")


def cli(*args):
    return subprocess.run([sys.executable, "-m", "csr_bench", *map(str, args)], capture_output=True, text=True)


def assert_user_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("task", TASKS)
def test_import_reproduces_lmms_eval_aggregate(task):
    log = LOGS / f"samples_{task}.jsonl"
    converted = convert_lmms_samples(read_lmms_sample_log(log), task, source=str(log))
    ours = converted_metrics(converted)["metrics"]
    theirs = lmms_aggregate(task)
    checked = 0
    for lmms_metric, our_metric, factor in converted.format.agreement:
        if lmms_metric not in theirs:
            continue  # e.g. MME cognition: the world has perception tasks only
        assert ours[our_metric] * factor == pytest.approx(theirs[lmms_metric], abs=1e-9), (lmms_metric, our_metric)
        checked += 1
    assert checked >= 1
    # Every metric lmms-eval reports is either reproduced or a documented difference.
    reported = {k for k, v in theirs.items() if "_stderr" not in k and isinstance(v, (int, float))}
    covered = {m for m, _, _ in converted.format.agreement} | set(converted.format.differences)
    assert reported <= covered, reported - covered
    assert len(converted.samples) == sum(1 for line in log.read_text().splitlines() if line.strip())


def test_pope_yes_ratio_follows_pope_not_lmms_eval():
    """lmms-eval's pope_yes_ratio is the share of ground-truth yes; ours the share of answers parsed as yes."""
    log = LOGS / "samples_csr_pope.jsonl"
    records = [json.loads(line)["pope_accuracy"] for line in log.read_text().splitlines()]
    truth_yes = sum(r["ground_truth"] == "yes" for r in records) / len(records)
    answered_yes = sum(r["prediction"] == "yes" for r in records) / len(records)
    assert lmms_aggregate("csr_pope")["pope_yes_ratio"] == pytest.approx(truth_yes)
    converted = convert_lmms_samples(read_lmms_sample_log(log), "csr_pope", source=str(log))
    assert converted_metrics(converted)["metrics"]["yes_ratio"] == pytest.approx(answered_yes)
    assert answered_yes != truth_yes  # the fixture shows the difference (the tiny model says yes a lot)


def test_rank_ordered_log_joins_on_doc_id(tmp_path):
    """A multi-process log holds each rank's docs in turn; joined on doc_id it gives the same run."""
    lines = (LOGS / "samples_csr_mme.jsonl").read_text().splitlines()
    world = 3
    by_rank = [line for rank in range(world) for line in lines[rank::world]]
    assert by_rank != lines
    shuffled = tmp_path / "ranks.jsonl"
    shuffled.write_text("\n".join(by_rank) + "\n")
    a = convert_lmms_samples(read_lmms_sample_log(LOGS / "samples_csr_mme.jsonl"), "mme", source="a")
    b = convert_lmms_samples(read_lmms_sample_log(shuffled), "mme", source="b")
    assert [s.to_json() for s in a.samples] == [s.to_json() for s in b.samples]


def test_in_memory_samples_with_docs_cluster_by_image():
    """simple_evaluate's in-memory samples keep the doc: POPE units are then images, as in our POPE suite."""
    records = [json.loads(line) for line in (LOGS / "samples_csr_pope.jsonl").read_text().splitlines()]
    for i, r in enumerate(records):
        r["doc"] = {"image_source": f"img{i // 6}", "question_id": r["pope_accuracy"]["question_id"]}
        r["filtered_resps"] = [r["filtered_resps"]]
    converted = convert_lmms_samples(samples_from_memory(records), "pope", source="memory")
    assert converted.unit == "image"
    assert len({s.unit for s in converted.samples}) == len(records) // 6
    assert converted.samples[0].output == records[0]["filtered_resps"][0]


def test_cli_import_writes_a_run(tmp_path):
    out = tmp_path / "run"
    proc = cli("import", "lmms", LOGS / "samples_csr_pope.jsonl", "--task", "pope", "--out", out, "--model-name", "tiny", "--json")
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    assert printed["suite"] == "pope" and printed["n"] == 24
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["suite"] == "pope" and manifest["task"] == "pope" and manifest["model"]["name"] == "tiny"
    assert manifest["suite_config"]["variant"] == "lmms" and manifest["suite_config"]["lmms_task"] == "pope"
    assert manifest["suite_config"]["parser"] == "strict"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["metrics"] == printed["metrics"]
    assert metrics["metrics"]["accuracy"] == pytest.approx(lmms_aggregate("csr_pope")["pope_accuracy"])
    # The run is an ordinary run: compare reads it (a run against itself has delta 0).
    proc = cli("compare", out, out, "--resamples", "200", "--json")
    assert proc.returncode == 0, proc.stderr
    assert all(row["delta"] in (0.0, None) for row in json.loads(proc.stdout))


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_bad_logs_are_refused_in_one_line(tmp_path):
    lines = (LOGS / "samples_csr_pope.jsonl").read_text().splitlines()
    out = tmp_path / "run"

    malformed = _write_lines(tmp_path / "malformed.jsonl", lines[:3] + ["{not json"] + lines[4:])
    assert_user_error(cli("import", "lmms", malformed, "--task", "pope", "--out", out), "malformed.jsonl:4", "malformed JSON")

    duplicated = _write_lines(tmp_path / "dup.jsonl", lines[:5] + [lines[2]] + lines[5:])
    assert_user_error(cli("import", "lmms", duplicated, "--task", "pope", "--out", out), "dup.jsonl:6", "duplicate doc_id 2",
                      "line 3")

    missing = _write_lines(tmp_path / "gap.jsonl", lines[:7] + lines[8:])
    assert_user_error(cli("import", "lmms", missing, "--task", "pope", "--out", out), "gap.jsonl", "doc_id 7")

    assert_user_error(cli("import", "lmms", LOGS / "samples_csr_gqa.jsonl", "--task", "textvqa", "--out", out),
                      "textvqa", "unknown task")
    assert not out.exists()
    assert not any(p.name.startswith(".run") for p in tmp_path.iterdir())  # no temporary folder left either


def test_format_by_name_and_wrong_fields():
    """A local copy of a task is named <prefix>_<task>; a log of another task's fields names the line."""
    log = read_lmms_sample_log(LOGS / "samples_csr_gqa.jsonl")
    assert convert_lmms_samples(log, "my_gqa", source="x").format is LMMS_FORMATS["gqa"]
    from csr_bench.errors import UserError

    with pytest.raises(UserError, match=r"samples_csr_gqa.jsonl:1: missing key 'pope_accuracy'"):
        convert_lmms_samples(log, "pope", source="x")


def test_mme_split_pair_is_refused(tmp_path):
    lines = (LOGS / "samples_csr_mme.jsonl").read_text().splitlines()
    odd = _write_lines(tmp_path / "odd.jsonl", lines[:-1])
    from csr_bench.errors import UserError

    with pytest.raises(UserError, match="needs 2 per image"):
        convert_lmms_samples(read_lmms_sample_log(odd), "mme", source=str(odd))


def test_every_format_is_one_of_the_ten_suites():
    assert {f.suite for f in LMMS_FORMATS.values()} == {
        "pope", "mme", "mmbench", "seed_bench", "scienceqa", "gqa", "vizwiz", "llava_wild", "mmvet", "chair"}


def _reloaded_metrics(run_dir: Path) -> dict:
    """The metrics a run folder's own manifest and samples give when read back (as compare and report read it)."""
    from csr_bench.runner.scoring import summarize
    from csr_bench.runner.store import load_run

    run = load_run(run_dir)
    return summarize(run.suite_object(), run.samples, n_resamples=100)["metrics"]


@pytest.mark.parametrize("task", TASKS)
def test_imported_run_reads_back_with_the_same_metrics(task, tmp_path):
    """Every format writes a manifest whose suite_config rebuilds the suite that scored it."""
    from csr_bench.interop.lmms_import import import_lmms_samples

    summary = import_lmms_samples(LOGS / f"samples_{task}.jsonl", task, tmp_path / "run")
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["metrics"] == summary["metrics"]
    assert _reloaded_metrics(tmp_path / "run") == summary["metrics"]


def _judged_and_caption_logs() -> dict[str, list[dict]]:
    """In-memory logs in the fields lmms-eval 0.7.3's process_results log for the formats without fixture logs."""
    chair = [{"doc_id": i, "filtered_resps": [f"caption {i}"],
              "coco_cap_chair_i": {"image_id": 100 + i, "answer": ["dog", "cat", "car"][: 1 + i % 3],
                                   "pred": ["dog", "bus", "cat"][: i % 4]}} for i in range(7)]
    llava = [{"doc_id": i, "filtered_resps": ["answer"], "doc": {"question_id": 10 + i},
              "gpt_eval_llava_all": {"scores": [-1, -1] if i == 4 else [8, 1 + i % 9],
                                     "category": ("llava_bench_conv", "llava_bench_detail", "llava_bench_complex")[i % 3]}}
             for i in range(9)]
    mmvet = [{"doc_id": i, "filtered_resps": ["answer"],
              "gpt_eval_score": {"question_id": f"v{i}", "score": i / 8, "capabilities": ("rec,ocr", "know", "math")[i % 3]}}
             for i in range(8)]
    mmbench = [{"doc_id": i, "filtered_resps": ["A"],
                "gpt_eval_score": {"index": i % 3 + 1_000_000 * (i // 3), "question": f"question {i % 3}", "answer": "A",
                                   "A": "red", "B": "blue", "category": "color", "L2-category": "attribute",
                                   "prediction": ("A", "B", "A")[i % 3]}} for i in range(6)]
    return {"coco_cap_chair": chair, "llava_in_the_wild": llava, "mmvet": mmvet, "mmbench_en_dev": mmbench}


@pytest.mark.parametrize("task", ["coco_cap_chair", "llava_in_the_wild", "mmvet", "mmbench_en_dev"])
def test_formats_without_fixture_logs_write_runs_that_read_back(task, tmp_path):
    from csr_bench.interop.lmms_import import converted_manifest
    from csr_bench.runner.store import write_run_atomically

    records = _judged_and_caption_logs()[task]
    converted = [convert_lmms_samples(samples_from_memory(records), task, source="memory") for _ in range(2)]
    # Converting the same log twice gives the same samples (MMBench's are scored through a temporary TSV).
    assert [s.to_json() for s in converted[0].samples] == [s.to_json() for s in converted[1].samples]
    summary = converted_metrics(converted[0])
    write_run_atomically(tmp_path / "run", converted_manifest(converted[0], model_name="m", source="memory"),
                         converted[0].samples, summary)
    assert _reloaded_metrics(tmp_path / "run") == summary["metrics"]
    if task == "coco_cap_chair":  # CHAIR_i: logged objects not in the ground truth / logged objects
        logged = [r["coco_cap_chair_i"] for r in records]
        mentions = sum(len(r["pred"]) for r in logged)
        hallucinated = sum(w not in r["answer"] for r in logged for w in r["pred"])
        assert summary["metrics"]["CHAIR_i"] == pytest.approx(hallucinated / mentions)
    if task == "llava_in_the_wild":  # LLaVA's relative score over the reviews that gave scores
        scores = [r["gpt_eval_llava_all"]["scores"] for r in records if r["gpt_eval_llava_all"]["scores"][0] >= 0]
        assert summary["metrics"]["score"] == pytest.approx(100 * sum(m for _, m in scores) / sum(r for r, _ in scores))


def test_lmms_aggregate_is_kept_as_strict_json():
    """lmms-eval's aggregate goes into metrics.json, which holds no NaN or infinity: those become null."""
    from csr_bench.interop.lmms_run import _plain

    aggregate = _plain({"acc": 0.5, "n": 3, "nan": float("nan"), "inf": float("inf"), "stderr": "N/A", "ok": True})
    assert aggregate == {"acc": 0.5, "n": 3, "nan": None, "inf": None, "stderr": "N/A", "ok": True}
    json.dumps(aggregate, allow_nan=False)
