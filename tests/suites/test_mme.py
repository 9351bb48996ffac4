"""MME suite: item by item and metric by metric against the official calculation.py (fixtures/mme/README.md)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from csr_bench.core.types import ImagePart, TextPart
from csr_bench.errors import UserError
from csr_bench.suites.mme import (
    COGNITION_TASKS,
    PERCEPTION_TASKS,
    STAT_NAMES,
    TASKS,
    MmeSuite,
    parse_mme_answer,
)

FIXTURES = Path(__file__).parent / "fixtures" / "mme"
RESULTS = FIXTURES / "results"
DATA = FIXTURES / "data"
PARQUET = FIXTURES / "lmms_lab_mme.parquet"
OFFICIAL = json.loads((FIXTURES / "official_results.json").read_text())


def unit_rows(suite: MmeSuite, pairs) -> dict[str, np.ndarray]:
    by_unit: dict[str, list[list[float]]] = {}
    for item, output in pairs:
        by_unit.setdefault(item.unit, []).append(suite.score(item, output).stats)
    return {u: suite.unit_stats(np.asarray(rows)) for u, rows in by_unit.items()}


def metric_values(suite: MmeSuite, sums: np.ndarray) -> dict[str, float]:
    return {m.name: float(m(sums)) for m in suite.metrics()}


def write_task(folder: Path, task: str, lines: list[str], newline: str = "\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{task}.txt"
    path.write_bytes("".join(line + newline for line in lines).encode())
    return path


def test_each_response_parses_and_scores_as_official():
    suite = MmeSuite()
    pairs = suite.read_predictions(RESULTS)
    assert len(pairs) == len(OFFICIAL["lines"]) == 82
    for (item, output), official in zip(pairs, OFFICIAL["lines"]):
        scored = suite.score(item, output)
        source_line = int(item.meta["source"].rsplit(":", 1)[1])
        assert (item.meta["task"], source_line) == (official["task"], official["line"])
        assert scored.details["parsed"] == official["parsed"], (item.id, output)
        assert scored.scores["correct"] == official["correct"]
        assert item.target == official["gt"]


def test_task_scores_and_totals_equal_the_official_printout_exactly():
    suite = MmeSuite()
    units = unit_rows(suite, suite.read_predictions(RESULTS))
    values = metric_values(suite, np.sum(list(units.values()), axis=0))
    assert set(OFFICIAL["task_scores"]) == set(TASKS)
    for task, score in OFFICIAL["task_scores"].items():
        assert values[task] == score, task  # same float operations, same bits
    assert values["perception"] == OFFICIAL["totals"]["perception"]
    assert values["cognition"] == OFFICIAL["totals"]["cognition"]  # 212.49999999999997: summed in the official order


def test_metrics_are_functions_of_summed_unit_statistics():
    """Any multiset of images (a bootstrap resample) gives the MME formula recomputed from scratch."""
    suite = MmeSuite()
    pairs = suite.read_predictions(RESULTS)
    units = unit_rows(suite, pairs)
    names = list(units)
    correct_by_unit: dict[str, list[int]] = {}
    for item, output in pairs:
        correct_by_unit.setdefault(item.unit, []).append(int(parse_mme_answer(output) == item.target))
    rng = np.random.default_rng(0)
    for _ in range(20):
        sample = rng.choice(len(names), size=len(names), replace=True)
        values = metric_values(suite, np.sum([units[names[i]] for i in sample], axis=0))
        for task in TASKS:
            chosen = [correct_by_unit[names[i]] for i in sample if names[i].startswith(task + "/")]
            if not chosen:
                assert np.isnan(values[task])
                continue
            acc = sum(map(sum, chosen)) / sum(map(len, chosen))
            acc_plus = sum(all(c) for c in chosen) / len(chosen)
            assert values[task] == pytest.approx(100 * acc + 100 * acc_plus)


def test_unit_statistics_count_images_and_pairs_both_right():
    suite = MmeSuite()
    pairs = suite.read_predictions(RESULTS)
    units = unit_rows(suite, pairs)
    sums = np.sum(list(units.values()), axis=0)
    named = dict(zip(STAT_NAMES, sums))
    for task in TASKS:
        task_lines = [line for line in OFFICIAL["lines"] if line["task"] == task]
        assert named[f"{task}/n_questions"] == len(task_lines)
        assert named[f"{task}/n_images"] == len(task_lines) // 2
        assert named[f"{task}/n_correct"] == sum(line["correct"] for line in task_lines)
        both = sum(a["correct"] and b["correct"] for a, b in zip(task_lines[::2], task_lines[1::2]))
        assert named[f"{task}/n_images_both_correct"] == both


def test_pairs_follow_line_order_not_image_names():
    suite = MmeSuite()
    pairs = suite.read_predictions(RESULTS)
    position = [item for item, _ in pairs if item.meta["task"] == "position"]
    # position.txt pairs line 3 (pos_001.png) with line 4 (pos_other.png), as the official script does.
    assert position[2].unit == position[3].unit == "position/pos_001.png+pos_other.png"
    artwork_units = [item.unit for item, _ in pairs if item.meta["task"] == "artwork"]
    assert artwork_units.count("artwork/art_000.png") == 2
    assert artwork_units.count("artwork/art_000.png#2") == 2
    assert len({item.id for item, _ in pairs}) == len(pairs)


@pytest.mark.parametrize(
    "response, label",
    [
        ("Yes", "yes"), ("no", "no"), (" yes", "yes"), ("  yes", "other"), ("know", "no"), ("Snow", "no"),
        ("nope", "no"), ("None", "no"), ("I think yes", "other"), ("", "other"), ("yesno", "yes"),
        ("No, yes", "no"), ("notyes", "no"), ("ayes", "yes"), ("The answer is yes", "other"), ("YES!", "yes"),
    ],
)
def test_parser_rules(response, label):
    assert parse_mme_answer(response) == label


def test_missing_output_is_wrong():
    suite = MmeSuite()
    item, _ = suite.read_predictions(RESULTS)[0]
    scored = suite.score(item, None)
    assert scored.details["parsed"] == "other" and scored.scores["correct"] == 0


def test_extra_files_are_ignored_and_missing_task_is_an_error(tmp_path):
    pairs = MmeSuite().read_predictions(RESULTS)
    assert not any("notes" in item.id or "existence_old" in item.meta["source"] for item, _ in pairs)
    folder = tmp_path / "results"
    shutil.copytree(RESULTS, folder)
    (folder / "OCR.txt").unlink()
    with pytest.raises(UserError, match=r"missing MME task OCR.*tasks='present'"):
        MmeSuite().read_predictions(folder)


def test_present_tasks_score_like_the_official_tasks_and_sum_only_those(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    chosen = ["existence", "color", "code_reasoning"]
    for task in chosen:
        shutil.copy(RESULTS / f"{task}.txt", folder)
    suite = MmeSuite(tasks="present")
    units = unit_rows(suite, suite.read_predictions(folder))
    assert suite.tasks == ("existence", "color", "code_reasoning")
    assert suite.config_dict()["tasks"] == chosen
    values = metric_values(suite, np.sum(list(units.values()), axis=0))
    assert set(values) == {"perception", "cognition", *chosen}
    for task in chosen:
        assert values[task] == OFFICIAL["task_scores"][task]
    perception = OFFICIAL["task_scores"]["existence"] + OFFICIAL["task_scores"]["color"]
    assert values["perception"] == pytest.approx(perception)
    assert values["cognition"] == OFFICIAL["task_scores"]["code_reasoning"]


def test_explicit_task_list_and_unknown_task(tmp_path):
    suite = MmeSuite(tasks=["OCR", "existence"])
    pairs = suite.read_predictions(RESULTS)
    assert suite.tasks == ("existence", "OCR")  # official order
    assert {item.meta["task"] for item, _ in pairs} == {"existence", "OCR"}
    assert [m.name for m in suite.metrics()] == ["perception", "existence", "OCR"]
    with pytest.raises(UserError, match="unknown MME task ocr"):
        MmeSuite(tasks=["ocr"])


def test_every_answer_other_scores_zero_where_the_official_script_crashes(tmp_path):
    folder = tmp_path / "r"
    write_task(folder, "existence", ["a.png\tIs it?\tYes\tmaybe", "a.png\tIs it?\tNo\tperhaps"])
    suite = MmeSuite(tasks="present")
    units = unit_rows(suite, suite.read_predictions(folder))
    assert metric_values(suite, np.sum(list(units.values()), axis=0))["existence"] == 0.0


def test_crlf_and_missing_final_newline_read_like_text_mode():
    suite = MmeSuite()
    pairs = suite.read_predictions(RESULTS)
    color = [out for item, out in pairs if item.meta["task"] == "color"]
    assert not any("\r" in out or "\n" in out for out in color)
    count = [out for item, out in pairs if item.meta["task"] == "count"]
    assert count[-1] == "Snow covers the ground"


@pytest.mark.parametrize(
    "lines, message",
    [
        (
            ["a.png\tq?\tYes\tyes\textra", "a.png\tq?\tNo\tno"],
            r"existence.txt:1: expected 4 tab-separated fields .* found 5 \(a response must not contain tabs",
        ),
        (["a.png\tq?\tYes", "a.png\tq?\tNo\tno"], r"existence.txt:1: expected 4 .* found 3"),
        (
            ["a.png\tq?\tYes\tyes", "a.png\tq?\tNo\tno", "b.png\tq?\tYes\tyes"],
            r"existence.txt:3: odd number of lines \(3\)",
        ),
        (["a.png\tq?\tMaybe\tyes", "a.png\tq?\tNo\tno"], r"existence.txt:1: GT .* must be Yes or No, got 'Maybe'"),
        (["a.png\tq?\tYes\tyes", "", "a.png\tq?\tNo\tno"], r"existence.txt:2: expected 4 .* found 1"),
        ([], r"existence.txt: empty MME task file"),
    ],
)
def test_bad_results_files_name_file_and_line(tmp_path, lines, message):
    folder = tmp_path / "r"
    write_task(folder, "existence", lines)
    with pytest.raises(UserError, match=message):
        MmeSuite(tasks=["existence"]).read_predictions(folder)


def test_lone_carriage_return_in_a_response_breaks_the_line_as_officially(tmp_path):
    folder = tmp_path / "r"
    write_task(folder, "existence", ["a.png\tq?\tYes\tyes\rand more", "a.png\tq?\tNo\tno"])
    with pytest.raises(UserError, match=r"existence.txt:2: expected 4 tab-separated fields .* found 1"):
        MmeSuite(tasks=["existence"]).read_predictions(folder)


def test_data_folder_items_match_results_items(tmp_path):
    data = MmeSuite(DATA)
    items = data.items()
    results = MmeSuite()
    pairs = results.read_predictions(RESULTS)
    assert [it.id for it in items] == [it.id for it, _ in pairs]
    assert [it.unit for it in items] == [it.unit for it, _ in pairs]
    assert [it.target for it in items] == [it.target for it, _ in pairs]
    assert data.data_fingerprint() == results.data_fingerprint() != ""
    first = items[0]
    image, text = first.messages[0].parts
    assert isinstance(image, ImagePart) and isinstance(text, TextPart)
    assert text.text == "Is there a red square in this image? Please answer yes or no."
    # With data given, results are checked against it and keep the data's items.
    assert [it.id for it, _ in data.read_predictions(RESULTS)] == [it.id for it in items]


def test_results_must_match_the_data(tmp_path):
    folder = tmp_path / "r"
    shutil.copytree(RESULTS, folder)
    text = (folder / "OCR.txt").read_text()
    (folder / "OCR.txt").write_text(text.replace("Is there a", "Is there one", 1))
    with pytest.raises(UserError, match=r"OCR.txt:1: question or GT differs from the MME data"):
        MmeSuite(DATA).read_predictions(folder)


def test_image_paths_follow_the_mme_release_layout(tmp_path):
    data = tmp_path / "mme"
    write_task(data, "existence", ["a.png\tq1?\tYes", "a.png\tq2?\tNo", "b.png\tq3?\tYes", "b.png\tq4?\tNo"])
    write_task(data, "OCR", ["c.png\tq5?\tYes", "c.png\tq6?\tNo"])
    (data / "existence").mkdir()
    (data / "existence" / "a.png").write_bytes(b"x")
    (data / "OCR" / "images").mkdir(parents=True)
    (data / "OCR" / "images" / "c.png").write_bytes(b"x")
    (data / "b.png").write_bytes(b"x")
    suite = MmeSuite(data, tasks="present")
    paths = {it.id: it.messages[0].parts[0].path for it in suite.items()}
    assert paths["existence/a.png/0"] == str(data / "existence" / "a.png")
    assert paths["existence/b.png/1"] == str(data / "b.png")
    assert paths["OCR/c.png/0"] == str(data / "OCR" / "images" / "c.png")


def test_images_of_the_eval_tool_template_are_found_in_the_release_folder(tmp_path):
    template = tmp_path / "MME" / "eval_tool" / "Your_Results"
    write_task(template, "color", ["a.png\tq1?\tYes", "a.png\tq2?\tNo"])
    release = tmp_path / "MME" / "MME_Benchmark_release_version" / "color"
    release.mkdir(parents=True)
    (release / "a.png").write_bytes(b"x")
    items = MmeSuite(template, tasks="present").items()
    assert {it.messages[0].parts[0].path for it in items} == {str(release / "a.png")}


def test_lmms_eval_prompt_drops_the_yes_no_sentence():
    items = MmeSuite(DATA, prompt="lmms-eval").items()
    assert items[0].messages[0].parts[1].text == (
        "Is there a red square in this image?\nAnswer the question using a single word or phrase."
    )
    with pytest.raises(UserError, match="unknown MME prompt"):
        MmeSuite(prompt="llava")


def test_lmms_lab_parquet_items(tmp_path):
    import pandas as pd

    suite = MmeSuite(PARQUET, tasks="present", image_cache=tmp_path / "cache")
    assert suite.tasks == ("existence", "OCR", "code_reasoning")
    items = suite.items()
    folder = MmeSuite(DATA, tasks=list(suite.tasks))
    assert [it.id for it in items] == [it.id for it in folder.items()]
    assert [it.target for it in items] == [it.target for it in folder.items()]
    assert suite.data_fingerprint() == folder.data_fingerprint()
    frame = pd.read_parquet(PARQUET)
    for item, row in zip(items, frame.itertuples()):
        path = Path(item.messages[0].parts[0].path)
        assert path.parent.parent == tmp_path / "cache" and path.suffix == ".png"
        assert path.read_bytes() == row.image["bytes"]
        assert item.messages[0].parts[1].text == row.question
    # Results are read for the data's tasks only and scored like the folder's.
    pairs = suite.read_predictions(RESULTS)
    assert [it.id for it, _ in pairs] == [it.id for it in items]
    with pytest.raises(UserError, match="missing MME task"):
        MmeSuite(PARQUET)  # "all" needs 14 categories


def test_parquet_errors(tmp_path):
    import pandas as pd

    frame = pd.read_parquet(PARQUET)
    frame.drop(columns=["category"]).to_parquet(tmp_path / "a.parquet")
    with pytest.raises(UserError, match=r"a.parquet: missing column 'category'"):
        MmeSuite(tmp_path / "a.parquet", tasks="present")
    odd = frame.iloc[:3]
    odd.to_parquet(tmp_path / "b.parquet")
    with pytest.raises(UserError, match=r"b.parquet: row 2: question_id 'existence/exi_001.png' has 1 questions"):
        MmeSuite(tmp_path / "b.parquet", tasks="present")


def test_for_scoring_rebuilds_metrics_without_data():
    suite = MmeSuite(tasks=["color", "OCR", "text_translation"])
    units = unit_rows(suite, suite.read_predictions(RESULTS))
    sums = np.sum(list(units.values()), axis=0)
    rebuilt = MmeSuite.for_scoring(json.loads(json.dumps(suite.config_dict())))
    assert [m.name for m in rebuilt.metrics()] == [m.name for m in suite.metrics()]
    assert metric_values(rebuilt, sums) == metric_values(suite, sums)
    rows = np.asarray([[1.0] * len(STAT_NAMES), [0.0] * len(STAT_NAMES)])
    assert np.array_equal(rebuilt.unit_stats(rows), suite.unit_stats(rows))


def test_headline_and_groups():
    suite = MmeSuite()
    assert suite.headline == ("perception", "cognition")
    assert [m.name for m in suite.metrics()][:2] == ["perception", "cognition"]
    assert len(PERCEPTION_TASKS) == 10 and len(COGNITION_TASKS) == 4 and len(STAT_NAMES) == 56


def test_registered_and_imports_no_torch():
    from csr_bench.core.registry import suites

    assert suites.get("mme") is MmeSuite
    code = (
        "import sys, csr_bench.suites.mme, csr_bench.suites.mmbench; "
        "print('torch' in sys.modules, 'pandas' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
