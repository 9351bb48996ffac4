"""The bad-input catalogue: every kind of bad input a user can give csr-bench, one command each.

Each case writes its bad input under a temporary folder, runs the command line in-process (as `csr-bench` runs:
`csr_bench.cli.main`), and checks what a user sees: exit code 2; exactly one line on stderr, starting with
"error:" and naming the file and the line or key; nothing on stdout; no traceback; and a results folder that
held finished runs before the command is byte for byte as it was, with no new file or folder in it.

README.md's "Bad input" table is this catalogue, row for row (a test below compares them). After adding or
changing a case, print the table with

    python -m tests.cli.test_bad_inputs --readme
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "suites" / "fixtures"
POPE_QUESTIONS = FIXTURES / "pope" / "questions.json"
README = REPO / "README.md"


# ---------------------------------------------------------------------------------------------------------
# Running the command line in-process


@dataclass
class Outcome:
    exit_code: int
    stdout: str
    stderr: str


def run_cli(*argv: str | os.PathLike) -> Outcome:
    """`csr-bench ARGV` in this process, through `csr_bench.cli.main` (the console script), streams captured."""
    from typer.testing import CliRunner

    from csr_bench.cli import main

    saved_argv = sys.argv
    code: int | str | None = 0
    with CliRunner().isolation() as streams:
        out, err = streams[0], streams[1]
        sys.argv = ["csr-bench", *map(str, argv)]
        try:
            main()
        except SystemExit as e:
            code = e.code
        finally:
            sys.argv = saved_argv
            sys.stdout.flush()
            sys.stderr.flush()
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    return Outcome(code if isinstance(code, int) else (0 if code is None else 1), stdout, stderr)


# ---------------------------------------------------------------------------------------------------------
# The workspace a case writes its bad input into


class Workspace:
    """A temporary folder holding `results/` (finished runs, prepared before each case) and `data/`."""

    def __init__(self, root: Path):
        self.root = root
        self.results = root / "results"
        self.data = root / "data"
        self.data.mkdir(parents=True, exist_ok=True)

    def write(self, rel: str, content: str | bytes) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content, encoding="utf-8")
        return p

    def jsonl(self, rel: str, rows: list[dict]) -> Path:
        return self.write(rel, "".join(json.dumps(r) + "\n" for r in rows))

    def image(self, rel: str) -> Path:
        from PIL import Image

        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (200, 30, 30)).save(p)
        return p

    def copy(self, source: Path, rel: str) -> Path:
        target = self.root / rel
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
        return target

    # -- inputs several cases start from

    def pope_answers(self, rel: str = "data/answers.jsonl", n: int | None = None) -> Path:
        rows = [{"question_id": q["question_id"], "answer": "Yes"} for q in pope_questions()]
        return self.jsonl(rel, rows[:n])

    def pope_data(self, images: tuple[str, ...] = ("a.png", "b.png"), *, make_images: bool = True) -> list[str]:
        """A two-question POPE file with its images; returns the `eval` arguments that evaluate it."""
        rows = [{"question_id": i + 1, "image": name, "text": f"Is there a dog in image {i}?", "label": "yes"}
                for i, name in enumerate(images)]
        questions = self.jsonl("data/pope/questions.jsonl", rows)
        if make_images:
            for name in images:
                if not name.startswith(("/", ".")):
                    self.image(f"data/pope/images/{name}")
        return ["eval", "--model", "tiny", "--suite", "pope", "--data", str(questions),
                "--image-root", str(self.data / "pope" / "images"), "--out", str(self.results)]

    def break_manifest(self, run: str, **changes) -> Path:
        path = self.results / run / "manifest.json"
        manifest = json.loads(path.read_text())
        manifest.update(changes)
        path.write_text(json.dumps(manifest, indent=2) + "\n")
        return path

    def paper_csv(self, header: str, row: str) -> Path:
        return self.write("data/table.csv", f"{header}\n{row}\n")


def pope_questions() -> list[dict]:
    return [json.loads(line) for line in POPE_QUESTIONS.read_text().splitlines() if line.strip()]


PAPER_HEADER = "model,MME-P,MME-C,SEED,LLaVA-W,MMB,MM-Vet,SQA-I,VizWiz,GQA,POPE,CHAIR-S,CHAIR-I"
PAPER_ROW = "LLaVA-1.5-7B,1510.7,348.2,58.6,63.4,64.3,30.5,66.8,50.0,62.0,85.90,48.8,14.9"
# The limit of one JSON Lines line (csr_bench.core.files.MAX_JSONL_LINE_BYTES).
SIXTEEN_MIB = 16 * 1024 * 1024


# ---------------------------------------------------------------------------------------------------------
# The catalogue


@dataclass(frozen=True)
class BadInput:
    """One row of the catalogue and of README.md's "Bad input" table."""

    id: str  # the test id (after the row number)
    input: str  # what is wrong, as the README shows it
    message: str  # how the error line starts after "error: ", paths shown relative to the workspace
    build: Callable[[Workspace], list[str]]  # writes the bad input; returns the command's arguments
    exit_code: int = 2


def _pope_score(ws: Workspace, answers: Path, *extra: str) -> list[str]:
    return ["score", "pope", "--questions", str(POPE_QUESTIONS), "--answers", str(answers),
            "--out", str(ws.results / "new-run"), *extra]


def _malformed_line(ws: Workspace) -> list[str]:
    answers = ws.pope_answers()
    lines = answers.read_text().splitlines()
    lines[4] = lines[4][:-1]  # the closing brace lost
    answers.write_text("\n".join(lines) + "\n")
    return _pope_score(ws, answers)


def _wrong_key(ws: Workspace) -> list[str]:
    rows = [{"question_id": q["question_id"], "response": "Yes"} for q in pope_questions()]
    return _pope_score(ws, ws.jsonl("data/answers.jsonl", rows))


def _answer_not_text(ws: Workspace) -> list[str]:
    rows = [{"question_id": q["question_id"], "answer": "Yes"} for q in pope_questions()]
    rows[1]["answer"] = 1
    return _pope_score(ws, ws.jsonl("data/answers.jsonl", rows))


def _not_utf8(ws: Workspace) -> list[str]:
    answers = ws.pope_answers()
    lines = answers.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b'"Yes"', b'"Y\xe9s"')  # Latin-1, not UTF-8
    answers.write_bytes(b"\n".join(lines))
    return _pope_score(ws, answers)


def _empty_answers(ws: Workspace) -> list[str]:
    return _pope_score(ws, ws.write("data/answers.jsonl", ""))


def _duplicate_answer(ws: Workspace) -> list[str]:
    rows = [{"question_id": q["question_id"], "answer": "Yes"} for q in pope_questions()]
    rows[3]["question_id"] = rows[2]["question_id"]
    return _pope_score(ws, ws.jsonl("data/answers.jsonl", rows))


def _too_few_answers(ws: Workspace) -> list[str]:
    return _pope_score(ws, ws.pope_answers(n=22))


def _unknown_parser(ws: Workspace) -> list[str]:
    return _pope_score(ws, ws.pope_answers(), "--parser", "rucabox")


def _missing_questions(ws: Workspace) -> list[str]:
    return ["score", "pope", "--questions", str(ws.data / "questions.jsonl"), "--answers", str(ws.pope_answers()),
            "--out", str(ws.results / "new-run")]


def _enormous_answer(ws: Workspace) -> list[str]:
    rows = [{"question_id": q["question_id"], "answer": "Yes"} for q in pope_questions()]
    rows[0]["answer"] = "Yes " * (SIXTEEN_MIB // 4)
    return _pope_score(ws, ws.jsonl("data/answers.jsonl", rows))


def _out_is_a_run(ws: Workspace) -> list[str]:
    args = _pope_score(ws, ws.pope_answers())
    args[args.index("--out") + 1] = str(ws.results / "pope" / "base")
    return args


def _score_unknown_suite(ws: Workspace) -> list[str]:
    return ["score", "popee", "--questions", str(POPE_QUESTIONS), "--answers", str(ws.pope_answers())]


def _chair_args(ws: Workspace, annotations: Path, captions: Path | None = None, *extra: str) -> list[str]:
    captions = captions or FIXTURES / "chair" / "captions.jsonl"
    return ["score", "chair", "--annotations", str(annotations), "--captions", str(captions),
            "--out", str(ws.results / "new-run"), *extra]


def _chair_unknown_variant(ws: Workspace) -> list[str]:
    return _chair_args(ws, FIXTURES / "chair" / "annotations", None, "--variant", "patern")


def _chair_missing_annotation(ws: Workspace) -> list[str]:
    coco = ws.copy(FIXTURES / "chair" / "annotations", "data/coco")
    (coco / "captions_val2014.json").unlink()
    return _chair_args(ws, coco)


def _chair_annotation_not_utf8(ws: Workspace) -> list[str]:
    coco = ws.copy(FIXTURES / "chair" / "annotations", "data/coco")
    path = coco / "instances_val2014.json"
    path.write_bytes(path.read_bytes().replace(b'"dog"', b'"d\xf6g"', 1))
    return _chair_args(ws, coco)


def _chair_caption_key(ws: Workspace) -> list[str]:
    rows = [{"image_id": 101, "text": "A dog."}]
    return _chair_args(ws, FIXTURES / "chair" / "annotations", ws.jsonl("data/captions.jsonl", rows))


def _mme_field_count(ws: Workspace) -> list[str]:
    results = ws.copy(FIXTURES / "mme" / "results", "data/mme")
    path = results / "OCR.txt"
    lines = path.read_text().split("\n")
    lines[2] = lines[2].rsplit("\t", 1)[0]  # the response column lost
    path.write_text("\n".join(lines))
    return ["score", "mme", "--results", str(results), "--out", str(ws.results / "new-run")]


def _mmbench_missing_column(ws: Workspace) -> list[str]:
    import pandas as pd

    table = pd.read_csv(FIXTURES / "mmbench" / "predictions.tsv", sep="\t").drop(columns=["answer"])
    path = ws.data / "mmbench.tsv"
    table.to_csv(path, sep="\t", index=False)
    return ["score", "mmbench", "--predictions", str(path), "--out", str(ws.results / "new-run")]


def _parquet_missing_column(ws: Workspace) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = {"question_id": ["v1"], "image": [{"bytes": b"", "path": "v1.jpg"}], "question": ["What is it?"]}
    path = ws.data / "vizwiz.parquet"
    pq.write_table(pa.table(rows), path)
    return ["score", "vizwiz", "--data", str(path), "--answers", str(ws.jsonl("data/answers.jsonl", [])),
            "--out", str(ws.results / "new-run")]


def _vizwiz_malformed_json(ws: Workspace) -> list[str]:
    path = ws.copy(FIXTURES / "vizwiz" / "val.json", "data/vizwiz/val.json")
    text = path.read_text().split("\n")
    text[2] = text[2].rstrip(",")  # "image": "..." without its comma
    path.write_text("\n".join(text))
    return ["score", "vizwiz", "--data", str(path), "--answers", str(FIXTURES / "vizwiz" / "answers.jsonl"),
            "--out", str(ws.results / "new-run")]


def _llava_wild_counts(ws: Workspace) -> list[str]:
    folder = ws.copy(FIXTURES / "llava_wild", "data/llava_wild")
    path = folder / "answers_gpt4.jsonl"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))
    return ["score", "llava_wild", "--data", str(folder), "--answers", str(folder / "answers.jsonl"),
            "--judge", "world", "--out", str(ws.results / "new-run")]


def _eval_unknown_suite(ws: Workspace) -> list[str]:
    args = ws.pope_data()
    args[args.index("--suite") + 1] = "popee"
    return args


def _eval_unknown_model(ws: Workspace) -> list[str]:
    args = ws.pope_data()
    args[args.index("--model") + 1] = "tinyy"
    return args


def _eval_lmms_with_native_options(ws: Workspace) -> list[str]:
    return ["eval", "--backend", "lmms-eval", "--model", "tiny", "--task", "pope", "--world", str(ws.root / "data"),
            "--sample", "--out", str(ws.results)]


def _eval_bad_seeds(ws: Workspace) -> list[str]:
    return [*ws.pope_data(), "--seeds", "0,one"]


def _eval_duplicate_question(ws: Workspace) -> list[str]:
    args = ws.pope_data()
    path = ws.data / "pope" / "questions.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[1]["question_id"] = rows[0]["question_id"]
    ws.jsonl("data/pope/questions.jsonl", rows)
    return args


def _eval_missing_image(ws: Workspace) -> list[str]:
    args = ws.pope_data()
    (ws.data / "pope" / "images" / "b.png").unlink()
    return args


def _eval_corrupt_image(ws: Workspace) -> list[str]:
    args = ws.pope_data()
    ws.write("data/pope/images/b.png", b"\x89PNG\r\n\x1a\n but the rest is not an image")
    return args


def _eval_image_dotdot(ws: Workspace) -> list[str]:
    ws.write("data/secret.txt", "not for the model")
    return ws.pope_data(("a.png", "../../secret.txt"))


def _eval_image_absolute(ws: Workspace) -> list[str]:
    entry = {"image": "/etc/passwd", "question": "What is it?", "answers": [{"answer": "red"}] * 10}
    path = ws.write("data/vizwiz/val.json", json.dumps([entry], indent=1))
    return ["eval", "--model", "tiny", "--suite", "vizwiz", "--data", str(path), "--out", str(ws.results)]


def _eval_image_symlink(ws: Workspace) -> list[str]:
    outside = ws.image("elsewhere/photo.jpg")
    (ws.data / "gqa" / "images").mkdir(parents=True)
    (ws.data / "gqa" / "images" / "n1.jpg").symlink_to(outside)
    questions = {"q1": {"imageId": "n1", "question": "What is it?", "answer": "dog"}}
    path = ws.write("data/gqa/testdev_balanced_questions.json", json.dumps(questions))
    return ["eval", "--model", "tiny", "--suite", "gqa", "--data", str(path), "--out", str(ws.results)]


def _eval_newer_run(ws: Workspace) -> list[str]:
    args = ws.pope_data()
    shutil.copytree(ws.results / "pope" / "base", ws.results / "tiny" / "pope" / "seed0")
    ws.break_manifest("tiny/pope/seed0", schema_version=99)
    return args


def _eval_not_a_world(ws: Workspace) -> list[str]:
    return ["eval", "--model", "tiny", "--world", str(ws.data), "--suite", "pope_random", "--out", str(ws.results)]


def _compare_newer(ws: Workspace) -> list[str]:
    ws.break_manifest("pope/yes", schema_version=99)
    return ["compare", str(ws.results / "pope" / "base"), str(ws.results / "pope" / "yes"), "--resamples", "200"]


def _compare_different_units(ws: Workspace) -> list[str]:
    questions = ws.jsonl("data/questions.jsonl", pope_questions()[:12])
    answers = ws.pope_answers(n=12)
    outcome = run_cli("score", "pope", "--questions", questions, "--answers", answers, "--model-name", "half",
                      "--out", ws.results / "pope" / "half")
    assert outcome.exit_code == 0, outcome.stderr
    return ["compare", str(ws.results / "pope" / "base"), str(ws.results / "pope" / "half"), "--resamples", "200"]


def _compare_nan_stats(ws: Workspace) -> list[str]:
    path = ws.results / "pope" / "yes" / "samples.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    sample = json.loads(lines[1])
    sample["stats"][0] = float("nan")
    lines[1] = json.dumps(sample) + "\n"  # json.dumps writes NaN, as some tools do
    path.write_text("".join(lines))
    return ["compare", str(ws.results / "pope" / "base"), str(ws.results / "pope" / "yes"), "--resamples", "200"]


def _compare_same_seed_twice(ws: Workspace) -> list[str]:
    shutil.copytree(ws.results / "pope" / "yes", ws.results / "again" / "yes-copy")
    shutil.copytree(ws.results / "pope" / "yes", ws.results / "again" / "yes")
    return ["compare", str(ws.results / "pope" / "base"), str(ws.results / "again"), "--resamples", "200"]


def _compare_torn_line(ws: Workspace) -> list[str]:
    path = ws.results / "pope" / "yes" / "samples.jsonl"
    path.write_bytes(path.read_bytes()[:-20])
    return ["compare", str(ws.results / "pope" / "base"), str(ws.results / "pope" / "yes"), "--resamples", "200"]


def _compare_malformed_manifest(ws: Workspace) -> list[str]:
    path = ws.results / "pope" / "yes" / "manifest.json"
    path.write_text(path.read_text().replace('"suite":', '"suite"', 1))
    return ["compare", str(ws.results / "pope" / "base"), str(ws.results / "pope" / "yes"), "--resamples", "200"]


def _leaderboard_newer(ws: Workspace) -> list[str]:
    ws.break_manifest("pope/base", schema_version=99)
    return ["leaderboard", str(ws.results), "--out", str(ws.results / "board.md"), "--resamples", "200"]


def _leaderboard_unknown_baseline(ws: Workspace) -> list[str]:
    return ["leaderboard", str(ws.results), "--out", str(ws.results / "board.md"), "--baseline", "bsae",
            "--resamples", "200"]


def _paper_missing_column(ws: Workspace) -> list[str]:
    header = PAPER_HEADER.replace(",MME-C", "")
    row = PAPER_ROW.replace(",348.2", "")
    return ["paper-table", "--table", str(ws.paper_csv(header, row))]


def _paper_nan(ws: Workspace) -> list[str]:
    return ["paper-table", "--table", str(ws.paper_csv(PAPER_HEADER, PAPER_ROW.replace("85.90", "nan")))]


def _improve_args(ws: Workspace, *extra: str) -> list[str]:
    ws.image("data/prompts/a.png")
    prompts = ws.jsonl("data/prompts/prompts.jsonl", [{"image": "a.png", "prompt": "Describe the image."}])
    return ["improve", "--model", "tiny", "--prompts", str(prompts), "--out", str(ws.results / "improve"), *extra]


def _improve_unknown_improver(ws: Workspace) -> list[str]:
    return _improve_args(ws, "--improver", "csrr")


def _improve_toml_unknown_key(ws: Workspace) -> list[str]:
    config = ws.write("data/csr.toml", 'iterations = 1\nclip = "tiny"\n\n[search]\ncandidats = 5\n')
    return _improve_args(ws, "--config", str(config))


def _improve_missing_image(ws: Workspace) -> list[str]:
    args = _improve_args(ws)
    (ws.data / "prompts" / "a.png").unlink()
    return args


def _improve_newer_lineage(ws: Workspace) -> list[str]:
    args = _improve_args(ws)
    ws.write("results/improve/lineage.json", json.dumps({"schema_version": 99, "improver": "csr"}) + "\n")
    return args


def _improve_image_outside_root(ws: Workspace) -> list[str]:
    args = _improve_args(ws)
    ws.image("secret.png")  # exists, next to data/: only the confinement refuses it
    ws.jsonl("data/prompts/prompts.jsonl", [{"image": "a.png", "prompt": "Describe the image."},
                                            {"image": "../../secret.png", "prompt": "Describe the image."}])
    return args


CATALOGUE: list[BadInput] = [
    # score: prediction files made elsewhere
    BadInput("malformed-json-line", "`score pope`: an answer file with a malformed JSON line",
             "data/answers.jsonl:5: malformed JSON", _malformed_line),
    BadInput("wrong-key", "`score pope`: answer lines with the wrong key (`response` for `answer`)",
             "data/answers.jsonl:1: missing key 'answer'", _wrong_key),
    BadInput("answer-not-text", "`score pope`: an answer that is a number, not text",
             "data/answers.jsonl:2: key 'answer' must be a string", _answer_not_text),
    BadInput("not-utf8", "`score pope`: an answer file that is not UTF-8 (Latin-1 bytes)",
             "data/answers.jsonl:3: not UTF-8 text", _not_utf8),
    BadInput("empty-file", "`score pope`: an empty answer file",
             "data/answers.jsonl: no answers (empty file)", _empty_answers),
    BadInput("duplicate-answer-id", "`score pope`: two answers to the same question id",
             "data/answers.jsonl:4: duplicate question_id", _duplicate_answer),
    BadInput("count-mismatch", "`score pope`: 22 answers for 24 questions",
             "data/answers.jsonl has 22 answers but", _too_few_answers),
    BadInput("unknown-parser", "`score pope --parser rucabox` (a misspelt parser)",
             "unknown POPE parser 'rucabox'; known:", _unknown_parser),
    BadInput("missing-file", "`score pope`: a question file that does not exist",
             "data/questions.jsonl: POPE question file not found", _missing_questions),
    BadInput("enormous-line", "`score pope`: an answer of 16 MiB (a JSON Lines line over the 16 MiB limit)",
             "data/answers.jsonl:1: line longer than 16 MiB", _enormous_answer),
    BadInput("out-holds-a-run", "`score pope --out` a folder that already holds a run",
             "results/pope/base: folder exists and is not empty", _out_is_a_run),
    BadInput("score-unknown-suite", "`score popee` (a misspelt suite)",
             "No such command 'popee'. Did you mean 'pope'?", _score_unknown_suite),
    BadInput("chair-unknown-variant", "`score chair --variant patern` (a misspelt CHAIR variant)",
             "unknown CHAIR variant 'patern'", _chair_unknown_variant),
    BadInput("chair-missing-annotation", "`score chair`: a COCO folder without captions_val2014.json",
             "data/coco/captions_val2014.json: COCO 2014 annotation file missing", _chair_missing_annotation),
    BadInput("chair-annotation-not-utf8", "`score chair`: a COCO annotation file that is not UTF-8",
             "data/coco/instances_val2014.json: not UTF-8 text", _chair_annotation_not_utf8),
    BadInput("chair-caption-key", "`score chair`: caption records without the `caption` key",
             "data/captions.jsonl:1: missing key 'caption'", _chair_caption_key),
    BadInput("mme-field-count", "`score mme`: a result line with 3 tab-separated fields instead of 4",
             "data/mme/OCR.txt:3: expected 4 tab-separated fields", _mme_field_count),
    BadInput("mmbench-missing-column", "`score mmbench`: a prediction TSV without the `answer` column",
             "data/mmbench.tsv: missing column 'answer'", _mmbench_missing_column),
    BadInput("parquet-missing-column", "`score vizwiz`: an lmms-lab parquet file without the `answers` column",
             "data/vizwiz.parquet: missing column 'answers'", _parquet_missing_column),
    BadInput("json-malformed", "`score vizwiz`: a VizWiz annotation file that is not valid JSON",
             "data/vizwiz/val.json:4: malformed JSON", _vizwiz_malformed_json),
    BadInput("reference-count-mismatch", "`score llava_wild`: answers_gpt4.jsonl one line shorter than questions.jsonl",
             "data/llava_wild/answers_gpt4.jsonl has 5 answers but", _llava_wild_counts),
    # eval: data, images, models, the run folder
    BadInput("eval-unknown-suite", "`eval --suite popee` (a misspelt suite)",
             "unknown suite 'popee'; did you mean pope?", _eval_unknown_suite),
    BadInput("eval-unknown-model", "`eval --model tinyy` (a model spec that names nothing)",
             "tinyy: model not found", _eval_unknown_model),
    BadInput("eval-lmms-native-options", "`eval --backend lmms-eval` with `--world` and `--sample` (options the lmms-eval task sets)",
             "--world, --sample: not used with --backend lmms-eval", _eval_lmms_with_native_options),
    BadInput("eval-bad-seeds", "`eval --seeds 0,one`",
             "--seeds '0,one': expected comma-separated integers", _eval_bad_seeds),
    BadInput("eval-duplicate-question-id", "`eval`: a POPE question file with a question id twice",
             "data/pope/questions.jsonl:2: duplicate question_id 1", _eval_duplicate_question),
    BadInput("eval-missing-image", "`eval`: a question whose image file is missing",
             "item 2: image file not found: data/pope/images/b.png", _eval_missing_image),
    BadInput("eval-corrupt-image", "`eval`: an image file that does not decode",
             "item 2: image file not readable: data/pope/images/b.png", _eval_corrupt_image),
    BadInput("image-path-dotdot", "`eval`: an image path that climbs out of the image root (`../../secret.txt`)",
             "data/pope/questions.jsonl:2: image '../../secret.txt' is outside the data root", _eval_image_dotdot),
    BadInput("image-path-absolute", "`eval`: an absolute image path outside the data root (`/etc/passwd`, VizWiz)",
             "data/vizwiz/val.json: entry 0: image '/etc/passwd' is outside the data root", _eval_image_absolute),
    BadInput("image-path-symlink", "`eval`: an image that is a symlink to a file outside the data root (GQA)",
             "data/gqa/testdev_balanced_questions.json: question 'q1': image 'n1.jpg' is outside the data root",
             _eval_image_symlink),
    BadInput("eval-newer-run", "`eval` into a run folder written by a newer csr-bench (schema_version 99)",
             "results/tiny/pope/seed0/manifest.json: schema_version 99 is newer", _eval_newer_run),
    BadInput("eval-not-a-world", "`eval --world` a folder that is not a world",
             "data: not a world folder (no world.json)", _eval_not_a_world),
    # compare, leaderboard, paper-table: reading run folders and tables
    BadInput("compare-newer-run", "`compare` a run folder written by a newer csr-bench (schema_version 99)",
             "results/pope/yes/manifest.json: schema_version 99 is newer", _compare_newer),
    BadInput("compare-different-units", "`compare` runs over different items (12 vs 24 POPE questions)",
             "results/pope/base and results/pope/half: runs of pope read different data", _compare_different_units),
    BadInput("compare-nan-stats", "`compare` a run whose samples.jsonl holds NaN statistics",
             "results/pope/yes/samples.jsonl:2: statistics must be finite numbers", _compare_nan_stats),
    BadInput("compare-same-seed-twice", "`compare` against a folder holding two runs of one model, suite and seed",
             "results/again/yes-copy and results/again/yes: two runs of model 'yes'", _compare_same_seed_twice),
    BadInput("compare-torn-line", "`compare` a run whose samples.jsonl ends in a torn line (a killed run)",
             "results/pope/yes/samples.jsonl: last line is incomplete", _compare_torn_line),
    BadInput("compare-malformed-manifest", "`compare` a run whose manifest.json is not valid JSON",
             "results/pope/yes/manifest.json:3: malformed JSON", _compare_malformed_manifest),
    BadInput("leaderboard-newer-run", "`leaderboard` over a run written by a newer csr-bench (schema_version 99)",
             "results/pope/base/manifest.json: schema_version 99 is newer", _leaderboard_newer),
    BadInput("leaderboard-unknown-baseline", "`leaderboard --baseline bsae` (no runs of that model)",
             "baseline model 'bsae' not among the runs", _leaderboard_unknown_baseline),
    BadInput("paper-missing-column", "`paper-table`: a CSV without the `MME-C` column",
             "data/table.csv: missing column 'MME-C'", _paper_missing_column),
    BadInput("paper-nan-cell", "`paper-table`: a CSV with a NaN cell",
             "data/table.csv:2: column 'POPE' must be finite", _paper_nan),
    # improve
    BadInput("improve-unknown-improver", "`improve --improver csrr` (a misspelt improver)",
             "unknown improver 'csrr'; did you mean csr?", _improve_unknown_improver),
    BadInput("improve-toml-unknown-key", "`improve --config`: a TOML file with an unknown key",
             "data/csr.toml: unknown key 'search.candidats'", _improve_toml_unknown_key),
    BadInput("improve-missing-image", "`improve --prompts`: a prompt whose image file is missing",
             "data/prompts/prompts.jsonl: line 1: image data/prompts/a.png not found", _improve_missing_image),
    BadInput("improve-newer-lineage", "`improve --out` a folder whose lineage.json is from a newer csr-bench (schema_version 99)",
             "results/improve/lineage.json: schema_version 99 is newer", _improve_newer_lineage),
    BadInput("improve-image-outside-root", "`improve --prompts`: an image path that climbs out of the prompts' folder (`../../secret.png`)",
             "data/prompts/prompts.jsonl: line 2: image '../../secret.png' is outside the data root", _improve_image_outside_root),
]


# ---------------------------------------------------------------------------------------------------------
# The tests


def snapshot(folder: Path) -> dict[str, str]:
    """Every file (its sha256) and folder below `folder`, by relative path."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames:
            out[os.path.relpath(os.path.join(dirpath, name), folder) + "/"] = "folder"
        for name in filenames:
            p = os.path.join(dirpath, name)
            out[os.path.relpath(p, folder)] = "link" if os.path.islink(p) else hashlib.sha256(Path(p).read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory) -> Path:
    """results/pope/{base,yes}: two finished POPE runs (official fixture answers, and all "Yes")."""
    root = tmp_path_factory.mktemp("template")
    ws = Workspace(root)
    yes = ws.pope_answers("data/yes.jsonl")
    for name, answers in (("base", FIXTURES / "pope" / "answers.json"), ("yes", yes)):
        outcome = run_cli("score", "pope", "--questions", POPE_QUESTIONS, "--answers", answers,
                          "--model-name", name, "--out", ws.results / "pope" / name)
        assert outcome.exit_code == 0, outcome.stderr
    return ws.results


def _case_id(n: int, case: BadInput) -> str:
    return f"{n:02d}-{case.id}"


@pytest.mark.parametrize("case", CATALOGUE, ids=[_case_id(n, c) for n, c in enumerate(CATALOGUE, start=1)])
def test_bad_input(case: BadInput, tmp_path: Path, finished_runs: Path):
    shutil.copytree(finished_runs, tmp_path / "results", symlinks=True)
    ws = Workspace(tmp_path)
    argv = case.build(ws)
    before = snapshot(ws.results)

    outcome = run_cli(*argv)

    shown = outcome.stderr.replace(str(tmp_path) + os.sep, "")
    lines = [line for line in shown.splitlines() if line.strip()]
    assert outcome.exit_code == case.exit_code, shown
    assert len(lines) == 1, shown
    assert lines[0].startswith("error: " + case.message), lines[0]
    assert "Traceback" not in outcome.stderr + outcome.stdout
    assert outcome.stdout == "", outcome.stdout
    assert snapshot(ws.results) == before, "the results folder changed"


def test_catalogue_is_complete():
    ids = [c.id for c in CATALOGUE]
    assert len(ids) >= 30 and len(set(ids)) == len(ids)
    for c in CATALOGUE:
        assert "|" not in c.input + c.message and "`" not in c.message, c.id


# ---------------------------------------------------------------------------------------------------------
# README.md's table


README_SECTION = "## Bad input"
README_HEADER = ["| # | Input | Message (first words) | Exit |", "|---|---|---|---|"]


def readme_rows() -> list[str]:
    """The README table's lines, generated from the catalogue."""
    return README_HEADER + [
        f"| {n} | {c.input} | `error: {c.message}` | {c.exit_code} |" for n, c in enumerate(CATALOGUE, start=1)
    ]


def test_readme_table_matches_the_catalogue():
    text = README.read_text(encoding="utf-8")
    assert README_SECTION + "\n" in text, f"README.md has no '{README_SECTION}' section"
    section = text.split(README_SECTION + "\n", 1)[1].split("\n## ", 1)[0]
    table = [line for line in section.splitlines() if line.startswith("|")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table[2:]]
    assert table[:2] == README_HEADER
    # Row for row: number (the test id's prefix), input, message and exit code.
    assert [r[0] for r in rows] == [str(n) for n in range(1, len(CATALOGUE) + 1)]
    assert [r[1] for r in rows] == [c.input for c in CATALOGUE]
    assert [r[2] for r in rows] == [f"`error: {c.message}`" for c in CATALOGUE]
    assert [r[3] for r in rows] == [str(c.exit_code) for c in CATALOGUE]
    assert table == readme_rows()


if __name__ == "__main__":
    if sys.argv[1:] != ["--readme"]:
        sys.exit("usage: python -m tests.cli.test_bad_inputs --readme")
    print("\n".join(readme_rows()))
