"""The command line end to end, in subprocesses, as a user runs it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

FIX = Path(__file__).resolve().parents[1] / "suites" / "fixtures" / "pope"


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "csr_bench", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def assert_user_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in proc.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def write_answers(path, answers):
    path.write_text("".join(json.dumps({"question_id": q, "answer": a}) + "\n" for q, a in answers))
    return path


def questions():
    return [json.loads(l) for l in (FIX / "questions.json").read_text().splitlines() if l.strip()]


def test_score_pope_json_matches_official_numbers(tmp_path):
    proc = cli("score", "pope", "--questions", FIX / "questions.json", "--answers", FIX / "answers.json", "--json", "--out", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["suite"] == "pope" and out["n"] == 24
    # the official evaluate.py printout for these files (produced by running it; see fixtures/pope/README.md)
    printed = dict(
        line.rsplit(": ", 1) for line in (FIX / "expected_pope_evaluate_answers.txt").read_text().splitlines() if ": " in line
    )
    names = {"Accuracy": "accuracy", "Precision": "precision", "Recall": "recall", "F1 score": "f1", "Yes ratio": "yes_ratio"}
    assert set(printed) == set(names)
    for name, key in names.items():
        assert out["metrics"][key] == pytest.approx(float(printed[name]), abs=1e-12), key
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == ["manifest.json", "metrics.json", "samples.jsonl"]
    lines = (run / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 24
    first = json.loads(lines[0])
    assert set(first) >= {"item_id", "unit", "output", "scores", "stats", "details"}
    assert first["details"]["parsed"] in ("yes", "no")


def test_score_pope_division_by_zero_is_null_with_warning(tmp_path):
    proc = cli("score", "pope", "--questions", FIX / "questions.json", "--answers", FIX / "answers_all_no.json", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["metrics"]["precision"] is None and out["metrics"]["f1"] is None
    assert out["metrics"]["yes_ratio"] == 0.0
    assert "warning" in proc.stderr and "precision" in proc.stderr


@pytest.mark.parametrize(
    "case",
    ["missing_file", "malformed_line", "unknown_parser", "mismatched_counts"],
)
def test_score_pope_bad_input(tmp_path, case):
    q = FIX / "questions.json"
    ids = [x["question_id"] for x in questions()]
    args = ["--answers", FIX / "answers.json", "--parser", "rucaibox"]
    expect: tuple = ()
    if case == "missing_file":
        args[1] = tmp_path / "nope.json"
        expect = ("nope.json", "not found")
    elif case == "malformed_line":
        bad = write_answers(tmp_path / "bad.json", [(i, "Yes") for i in ids])
        text = bad.read_text().splitlines()
        text[4] = '{"question_id": 5, "answer": "Yes"'
        bad.write_text("\n".join(text) + "\n")
        args[1] = bad
        expect = ("bad.json:5", "malformed JSON")
    elif case == "unknown_parser":
        args[3] = "rucabox"
        expect = ("rucabox", "rucaibox")
    elif case == "mismatched_counts":
        args[1] = write_answers(tmp_path / "short.json", [(i, "Yes") for i in ids[:-2]])
        expect = ("short.json", "questions.json", "22", "24")
    proc = cli("score", "pope", "--questions", q, *args, "--out", tmp_path / "results" / "run")
    assert_user_error(proc, *expect)
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_compare_and_leaderboard_commands(tmp_path):
    qs = questions()
    base = write_answers(tmp_path / "base.json", [(x["question_id"], "Yes") for x in qs])
    good = write_answers(tmp_path / "good.json", [(x["question_id"], x["label"].capitalize()) for x in qs])
    for name, answers in (("base", base), ("good", good)):
        proc = cli("score", "pope", "--questions", FIX / "questions.json", "--answers", answers, "--out", tmp_path / "runs" / name, "--model-name", name)
        assert proc.returncode == 0, proc.stderr
    proc = cli("compare", tmp_path / "runs" / "base", tmp_path / "runs" / "good", "--json", "--resamples", 2000)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    keys = {"suite", "metric", "baseline", "candidate", "delta", "low", "high", "p_value", "p_adjusted", "significant"}
    assert all(set(r) == keys for r in rows)
    acc = next(r for r in rows if r["metric"] == "accuracy")
    assert acc["baseline"] == pytest.approx(0.5) and acc["candidate"] == 1.0 and acc["delta"] == pytest.approx(0.5)
    assert acc["low"] <= acc["delta"] <= acc["high"] and acc["p_adjusted"] >= acc["p_value"]

    proc = cli("leaderboard", tmp_path / "runs", "--out", tmp_path / "lb" / "board.md", "--baseline", "base", "--resamples", 1000)
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "lb" / "board.md").read_text()
    assert "| good" in md and "| base" in md and "board-forest.png" in md
    assert (tmp_path / "lb" / "board-forest.png").stat().st_size > 1000


def test_compare_refuses_runs_of_different_units(tmp_path):
    qs = questions()
    write_answers(tmp_path / "a.json", [(x["question_id"], "Yes") for x in qs])
    sub = tmp_path / "q_sub.json"
    sub.write_text("".join(json.dumps(x) + "\n" for x in qs[:12]))
    write_answers(tmp_path / "b.json", [(x["question_id"], "Yes") for x in qs[:12]])
    assert cli("score", "pope", "--questions", FIX / "questions.json", "--answers", tmp_path / "a.json", "--out", tmp_path / "ra").returncode == 0
    assert cli("score", "pope", "--questions", sub, "--answers", tmp_path / "b.json", "--out", tmp_path / "rb").returncode == 0
    proc = cli("compare", tmp_path / "ra", tmp_path / "rb")
    assert_user_error(proc, "ra", "rb")


def test_unknown_suite_and_help():
    assert cli("--help").returncode == 0
    proc = cli("suites")
    assert proc.returncode == 0 and "pope" in proc.stdout


SUITES = Path(__file__).resolve().parents[1] / "suites" / "fixtures"


def test_paper_table_reproduces_the_papers_base_average(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text(
        "model,MME-P,MME-C,SEED,LLaVA-W,MMB,MM-Vet,SQA-I,VizWiz,GQA,POPE,CHAIR-S,CHAIR-I\n"
        "LLaVA-1.5-7B,1510.7,348.2,58.6,63.4,64.3,30.5,66.8,50.0,62.0,85.90,48.8,14.9\n"
        "LLaVA-1.5-13B,1531.3,295.4,61.6,70.7,67.7,35.4,71.6,53.6,63.3,85.90,48.3,14.1\n"
    )
    proc = cli("paper-table", "--table", csv, "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    # the paper prints 66.61 and 68.08 for these rows
    assert round(rows[0]["average"], 2) == 66.61 and round(rows[1]["average"], 2) == 68.08
    assert rows[0]["delta"] == 0 and rows[1]["delta"] == pytest.approx(rows[1]["average"] - rows[0]["average"])
    bad = tmp_path / "bad.csv"
    bad.write_text("model,MME-P\nx,1\n")
    assert_user_error(cli("paper-table", "--table", bad), "bad.csv", "MME-C")


def test_score_mme_mmbench_and_gqa_commands(tmp_path):
    official = json.loads((SUITES / "mme" / "official_results.json").read_text())
    proc = cli("score", "mme", "--results", SUITES / "mme" / "results", "--json", "--out", tmp_path / "mme")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["suite"] == "mme" and out["metrics"]["perception"] == official["totals"]["perception"] and out["metrics"]["cognition"] == official["totals"]["cognition"]

    proc = cli("score", "mmbench", "--predictions", SUITES / "mmbench" / "predictions.tsv", "--json")
    assert proc.returncode == 0, proc.stderr
    assert 0 <= json.loads(proc.stdout)["metrics"]["overall"] <= 1

    proc = cli("score", "gqa", "--data", SUITES / "gqa" / "testdev_balanced_questions.json", "--answers", SUITES / "gqa" / "answers.jsonl", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["suite"] == "gqa"

    # a judge URL that does not answer: one line, exit 2
    proc = cli("score", "mmbench", "--predictions", SUITES / "mmbench" / "predictions.tsv", "--judge", "http://127.0.0.1:9")
    assert_user_error(proc, "127.0.0.1:9")


def test_score_chair_command_and_missing_annotation_file(tmp_path):
    fix = SUITES / "chair"
    expected = json.loads((fix / "expected_pattern.json").read_text())
    proc = cli("score", "chair", "--annotations", fix / "annotations", "--captions", fix / "captions.jsonl", "--json")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)["metrics"]
    official = expected["overall"]  # the reference chair.py's own output keys
    assert metrics["CHAIR_s"] == official["CHAIRs"] and metrics["CHAIR_i"] == official["CHAIRi"]
    assert metrics["recall"] == official["Recall"]
    import shutil

    partial = tmp_path / "coco"
    shutil.copytree(fix / "annotations", partial)
    (partial / "captions_val2014.json").unlink()
    proc = cli("score", "chair", "--annotations", partial, "--captions", fix / "captions.jsonl")
    assert_user_error(proc, "captions_val2014.json")
