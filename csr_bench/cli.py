"""The `csr-bench` command line (typer + rich).

Every user error surfaces as one line on stderr and exit code 2, with no traceback (see `main`).
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from csr_bench.errors import UserError

app = typer.Typer(
    name="csr-bench",
    help="Evaluate vision-language models with official-scorer suites, improve them with CSR, and report honest deltas.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
score_app = typer.Typer(help="Score predictions made elsewhere into a run folder (no model needed).", no_args_is_help=True)
app.add_typer(score_app, name="score")
world_app = typer.Typer(help="The embedded world: synthetic scenes in the official file formats, tiny models.", no_args_is_help=True)
app.add_typer(world_app, name="world")
import_app = typer.Typer(help="Import results of other harnesses into run folders (no model needed).", no_args_is_help=True)
app.add_typer(import_app, name="import")

out_console = Console()
err_console = Console(stderr=True)


def _print_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def _warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/yellow] {message}", highlight=False)


@app.command("suites")
def suites_cmd() -> None:
    """List the registered suites."""
    from csr_bench.core.registry import suites

    table = Table("suite", "description", "headline metrics")
    for name in suites.names():
        cls = suites.get(name)
        headline = getattr(cls, "headline", None)
        table.add_row(name, getattr(cls, "description", "") or "", ", ".join(headline) if headline else "all")
    out_console.print(table)


def _finish_scoring(suite, pairs, *, predictions: Path, out: Optional[Path], model_name: Optional[str], as_json: bool) -> None:
    from csr_bench.runner.scoring import offline_manifest, score_pairs, summarize
    from csr_bench.runner.store import write_run_atomically

    samples = score_pairs(suite, pairs)
    summary = summarize(suite, samples)
    for note in summary["notes"]:
        _warn(note)
    if out is not None:
        manifest = offline_manifest(
            suite, model_name=model_name or predictions.stem, n_items=len(samples), predictions_file=str(predictions)
        )
        write_run_atomically(out, manifest, samples, summary)
    _print_summary(summary, out=out, as_json=as_json)


def _print_summary(summary: dict, *, out: Optional[Path], as_json: bool, task: Optional[str] = None) -> None:
    """A metrics.json summary: {"suite"[, "task"], "n", "metrics"} as JSON, else a table with the intervals."""
    suite, n = summary["suite"], summary["n_items"]
    if as_json:
        _print_json({"suite": suite, **({"task": task} if task is not None else {}), "n": n, "metrics": summary["metrics"]})
        return
    title = f"{suite}: {n} items" if task is None else f"{task} ({suite}): {n} items"
    table = Table("metric", "value", "95% interval", title=f"{title}, {summary['n_units']} units")
    ivals = summary["intervals"]["values"]
    for name, value in summary["metrics"].items():
        lo, hi = ivals[name]["low"], ivals[name]["high"]
        table.add_row(
            name,
            "null" if value is None else f"{value:.4f}",
            "" if lo is None else f"[{lo:.4f}, {hi:.4f}]",
        )
    out_console.print(table)
    if out is not None:
        out_console.print(f"run written to {out}")


def _score(suite, predictions: Path, *, out: Optional[Path], model_name: Optional[str], as_json: bool) -> None:
    """Read a prediction file with the suite's own reader (ids checked against the data) and score it."""
    read = suite.read_predictions(predictions)
    pairs = [(item, read[item.id]) for item in suite.items()] if isinstance(read, dict) else list(read)
    _finish_scoring(suite, pairs, predictions=predictions, out=out, model_name=model_name, as_json=as_json)


OutOption = typer.Option(None, "--out", help="Write a run folder here (atomically; refuses a non-empty folder).")
ModelNameOption = typer.Option(None, "--model-name", help="Model label in the run (default: the prediction file's stem).")
JsonOption = typer.Option(False, "--json", help='Print {"suite", "n", "metrics"} as JSON.')


@score_app.command("pope")
def score_pope(
    questions: Path = typer.Option(..., help="POPE question file (JSON Lines: question_id, image, text, label)."),
    answers: Path = typer.Option(..., help="Answer file (JSON Lines: question_id and answer, or LLaVA's text)."),
    parser: str = typer.Option("rucaibox", help="Answer parser: rucaibox (official POPE), opera, strict (lmms-eval)."),
    out: Optional[Path] = OutOption,
    model_name: Optional[str] = ModelNameOption,
    as_json: bool = JsonOption,
) -> None:
    """Score POPE answers exactly like the official POPE evaluate.py (or another parser)."""
    from csr_bench.suites.pope import PopeSuite

    _score(PopeSuite(questions, parser=parser), answers, out=out, model_name=model_name, as_json=as_json)


@score_app.command("chair")
def score_chair(
    annotations: Path = typer.Option(..., help="COCO-2014 folder: instances_{train,val}2014.json, captions_{train,val}2014.json."),
    captions: Path = typer.Option(..., help='Model captions: JSON Lines {"image_id", "caption"} (keys configurable).'),
    variant: str = typer.Option("pattern", help="pattern (LisaAnne/Maxlinn chair.py, CSR's via LURE) or nltk (OPERA, lmms-eval family)."),
    image_id_key: str = typer.Option("image_id", help="Key of the COCO image id in each caption record."),
    caption_key: str = typer.Option("caption", help="Key of the caption text in each caption record."),
    out: Optional[Path] = OutOption,
    model_name: Optional[str] = ModelNameOption,
    as_json: bool = JsonOption,
) -> None:
    """Score captions with CHAIR exactly like the reference chair.py (CHAIR_s, CHAIR_i, recall)."""
    from csr_bench.suites.chair import ChairSuite

    suite = ChairSuite(annotations, variant=variant, image_id_key=image_id_key, caption_key=caption_key)
    _score(suite, captions, out=out, model_name=model_name, as_json=as_json)


@score_app.command("mme")
def score_mme(
    results: Path = typer.Option(..., help="Folder of <task>.txt files: image, question, GT, response (tab-separated)."),
    tasks: str = typer.Option("all", help="'all' (every MME task must be present, as the official tool expects), 'present', or a comma list."),
    out: Optional[Path] = OutOption,
    model_name: Optional[str] = ModelNameOption,
    as_json: bool = JsonOption,
) -> None:
    """Score MME results exactly like the official eval_tool/calculation.py."""
    from csr_bench.suites.mme import MmeSuite

    task_arg = tasks if tasks in ("all", "present") else [t.strip() for t in tasks.split(",") if t.strip()]
    suite = MmeSuite(results, tasks=task_arg)
    _score(suite, results, out=out, model_name=model_name, as_json=as_json)


@score_app.command("mmbench")
def score_mmbench(
    predictions: Path = typer.Option(..., help="VLMEvalKit prediction TSV (circular rows with a prediction column)."),
    matcher: str = typer.Option("current", help="Answer matcher: current (VLMEvalKit e8e78f05) or legacy (c026693a)."),
    judge: Optional[str] = typer.Option(None, help="OpenAI-compatible base URL of an LLM judge for undecided answers."),
    judge_model: str = typer.Option("gpt-3.5-turbo-0125", help="Judge model name (VLMEvalKit's default judge)."),
    out: Optional[Path] = OutOption,
    model_name: Optional[str] = ModelNameOption,
    as_json: bool = JsonOption,
) -> None:
    """Score MMBench with circular evaluation exactly like VLMEvalKit (undecided answers: judge or needs_judge)."""
    from csr_bench.suites.mmbench import MmbenchSuite

    judge_fn = None
    if judge is not None:
        from csr_bench.judges import JudgeRequest, OpenAIJudge

        client = OpenAIJudge(judge_model, base_url=judge)
        judge_fn = lambda prompt: client.complete(JudgeRequest.user(prompt)).text  # noqa: E731
    judge_name = f"{judge_model}@{client.describe()['url']}" if judge else None  # credentials in the URL never recorded
    suite = MmbenchSuite(predictions, matcher=matcher, judge=judge_fn, judge_name=judge_name)
    _score(suite, predictions, out=out, model_name=model_name, as_json=as_json)


QA_SUITES = {
    "seed_bench": ("SEED-Bench (image)", "SEED-Bench.json, or an lmms-lab parquet/datasets folder"),
    "scienceqa": ("ScienceQA-IMG", "folder with problems.json and pid_splits.json, or lmms-lab parquet"),
    "gqa": ("GQA testdev balanced", "testdev_balanced_questions.json, or an lmms-lab folder"),
    "vizwiz": ("VizWiz-VQA val", "val.json, or lmms-lab parquet"),
    "llava_wild": ("LLaVA-Bench in-the-wild (judged)", "folder with questions.jsonl, context.jsonl, answers_gpt4.jsonl"),
    "mmvet": ("MM-Vet (judged)", "folder with mm-vet.json, or lmms-lab parquet"),
}
JUDGED = {"llava_wild", "mmvet"}


def _add_qa_score_command(name: str, title: str, data_help: str) -> None:
    def command(
        data: Path = typer.Option(..., help=f"The questions: {data_help}."),
        answers: Path = typer.Option(..., help="Answer file (LLaVA's JSON Lines: question_id and text)."),
        variant: str = typer.Option("llava", help="Scorer: llava (LLaVA's eval scripts, as the CSR paper) or lmms (lmms-eval 0.7.3)" + (" or vqa_eval" if name == "vizwiz" else "") + "."),
        image_root: Optional[Path] = typer.Option(None, help="Folder of the images (default: beside the data)."),
        judge: Optional[str] = typer.Option(None, help="Judge: openai[:MODEL] (CSR_BENCH_JUDGE_URL), hf:MODEL or world.") if name in JUDGED else None,
        judge_cache: Optional[Path] = typer.Option(None, help="Folder of the judge-call cache.") if name in JUDGED else None,
        out: Optional[Path] = OutOption,
        model_name: Optional[str] = ModelNameOption,
        as_json: bool = JsonOption,
    ) -> None:
        from csr_bench.core.registry import suites

        kwargs = {"image_root": image_root, "variant": variant}
        if name in JUDGED:
            kwargs.update(judge=judge, judge_cache=judge_cache)
        suite = suites.get(name)(data, **kwargs)
        _score(suite, answers, out=out, model_name=model_name, as_json=as_json)

    if name not in JUDGED:  # typer reads the signature: drop the judge options of unjudged suites
        import inspect

        sig = inspect.signature(command)
        command.__signature__ = sig.replace(parameters=[p for p in sig.parameters.values() if p.name not in ("judge", "judge_cache")])
    command.__doc__ = f"Score {title} answers like LLaVA's evaluation scripts (or lmms-eval with --variant lmms)."
    score_app.command(name)(command)


for _name, (_title, _help) in QA_SUITES.items():
    _add_qa_score_command(_name, _title, _help)


@import_app.command("lmms")
def import_lmms(
    samples: Path = typer.Argument(..., help="lmms-eval sample log (the *_samples_<task>.jsonl of --log_samples)."),
    task: str = typer.Option(..., help="The lmms-eval task of the log (pope*, mme, mmbench_en_dev, seedbench, scienceqa_img, gqa, vizwiz_vqa_val, llava_in_the_wild, mmvet, coco_cap_chair)."),
    out: Path = typer.Option(..., help="Run folder to write (atomically; refuses a non-empty folder)."),
    lmms_format: Optional[str] = typer.Option(None, "--format", help="Which of those tasks' formats a task of your own uses (default: from --task)."),
    model_name: Optional[str] = typer.Option(None, "--model-name", help="Model label in the run (default: the log's stem)."),
    as_json: bool = typer.Option(False, "--json", help='Print {"suite", "task", "n", "metrics"} as JSON.'),
) -> None:
    """Convert an lmms-eval sample log into a run folder: our metrics, intervals and comparisons for it."""
    from csr_bench.interop.lmms_import import import_lmms_samples

    summary = import_lmms_samples(samples, task, out, model_name=model_name, lmms_format=lmms_format)
    for note in summary["notes"]:
        _warn(note)
    _print_summary(summary, out=out, as_json=as_json, task=task)


def _int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{option} '{text}': expected comma-separated integers, e.g. 0,1,2") from None
    if not values:
        raise UserError(f"{option} is empty")
    return values


@app.command("eval")
def eval_cmd(
    model: str = typer.Option(..., help="Model spec: 'tiny', 'hf:PATH_OR_HUB_ID' or a checkpoint folder."),
    suite: str = typer.Option(..., "--suite", "--task", help="Task names, comma-separated (world tasks with --world, else one suite; lmms-eval task names with --backend lmms-eval)."),
    out: Path = typer.Option(..., help="Results folder; runs go to OUT/<name>/<task>/seed<k>."),
    world: Optional[Path] = typer.Option(None, help="A world folder from 'csr-bench world generate'."),
    data: Optional[Path] = typer.Option(None, help="The suite's data file or folder (real data)."),
    image_root: Optional[Path] = typer.Option(None, help="Folder the data's image paths are relative to."),
    seeds: str = typer.Option("0", help="Decoding seeds, comma-separated."),
    name: Optional[str] = typer.Option(None, help="Model label in runs and leaderboards (default from the spec)."),
    batch_size: int = typer.Option(8, min=1, help="Generation batch size."),
    limit: Optional[int] = typer.Option(None, min=1, help="Evaluate only the first N items of each task."),
    max_new_tokens: Optional[int] = typer.Option(None, min=1, help="Override the suite's generation length."),
    do_sample: bool = typer.Option(False, "--sample", help="Sample instead of greedy decoding."),
    temperature: float = typer.Option(1.0, help="Sampling temperature (with --sample)."),
    num_beams: int = typer.Option(1, min=1, help="Beam search width (1: greedy or sampling)."),
    threads: Optional[int] = typer.Option(None, min=1, help="CPU threads for torch (default: torch's choice)."),
    backend: str = typer.Option("native", help="native (our suites) or lmms-eval (run lmms-eval tasks, keep per-item scores; needs csr-bench[lmms])."),
    include_path: Optional[Path] = typer.Option(None, help="With --backend lmms-eval: a folder of extra lmms-eval task YAMLs."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Let the checkpoint run its own Python code (auto_map in config.json) while loading; only for code you have read."),
) -> None:
    """Evaluate a model on suites (resumable: rerun the same command to continue a killed run)."""
    from csr_bench.runner.evaluate import evaluate
    from csr_bench.runner.tasks import resolve_tasks

    if backend not in ("native", "lmms-eval"):
        raise UserError(f"--backend '{backend}': expected native or lmms-eval")
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    if backend == "lmms-eval":
        # lmms-eval's task defines its data and decoding: our options for them would be silently ignored.
        ignored = [flag for flag, given in (("--world", world is not None), ("--data", data is not None),
                                            ("--image-root", image_root is not None),
                                            ("--max-new-tokens", max_new_tokens is not None), ("--sample", do_sample),
                                            ("--temperature", temperature != 1.0), ("--num-beams", num_beams != 1))
                   if given]
        if ignored:
            raise UserError(f"{', '.join(ignored)}: not used with --backend lmms-eval (the lmms-eval task sets its "
                            "data and generation); drop them")
        _eval_lmms(model, suite, out=out, seeds=_int_list(seeds, "--seeds"), name=name, batch_size=batch_size,
                   limit=limit, include_path=include_path, trust_remote_code=trust_remote_code)
        return
    if include_path is not None:
        raise UserError("--include-path is an lmms-eval option: add --backend lmms-eval")

    tasks = resolve_tasks([s.strip() for s in suite.split(",") if s.strip()], world=world, data=data, image_root=image_root)
    run_dirs = evaluate(
        model, tasks, out=out, seeds=_int_list(seeds, "--seeds"), name=name, batch_size=batch_size, limit=limit,
        max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature, num_beams=num_beams,
        trust_remote_code=trust_remote_code,
    )
    from csr_bench.runner.distributed import is_main_process

    if not is_main_process():  # under accelerate/torchrun only rank 0 reports the merged runs
        return
    for d in run_dirs:
        _print_run_line(d)


def _print_run_line(run_dir: Path) -> None:
    """One line per finished run: its folder and its first six metrics."""
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    shown = ", ".join(f"{k}={'null' if v is None else f'{v:.4f}'}" for k, v in list(metrics.items())[:6])
    out_console.print(f"{run_dir}: {shown}")


def _eval_lmms(model: str, tasks: str, *, out: Path, seeds: list[int], name: Optional[str], batch_size: int,
               limit: Optional[int], include_path: Optional[Path], trust_remote_code: bool = False) -> None:
    """`eval --backend lmms-eval`: each lmms-eval task into OUT/<name>/<task>/seed<k>, as native runs."""
    from csr_bench.interop.lmms_run import require_lmms_eval, run_lmms_task
    from csr_bench.models import load_adapter
    from csr_bench.runner.evaluate import model_label

    require_lmms_eval()
    names = [s.strip() for s in tasks.split(",") if s.strip()]
    if not names:
        raise UserError("--task is empty")
    label = name or model_label(model)
    adapter = load_adapter(model, **({"trust_remote_code": True} if trust_remote_code else {}))
    for task in names:
        for seed in seeds:
            _print_run_line(run_lmms_task(model, task, out / label / task / f"seed{seed}", include_path=include_path,
                                          limit=limit, seed=seed, batch_size=batch_size, name=label, adapter=adapter))


@app.command("improve")
def improve_cmd(
    model: str = typer.Option(..., help="Model spec to improve: 'tiny', 'hf:PATH_OR_HUB_ID' or a checkpoint folder."),
    out: Path = typer.Option(..., help="Folder of the run: lineage.json and one checkpoint per iteration."),
    improver: str = typer.Option("csr", help="Improver name ('csr-bench improvers' lists them)."),
    config: Optional[str] = typer.Option(None, help="Improver config: a TOML file or a shipped config name."),
    prompts: Optional[Path] = typer.Option(None, help='Prompts: JSON Lines of {"image", "prompt"}, or a world folder.'),
    iterations: Optional[int] = typer.Option(None, min=1, help="Iterations (default: the config's)."),
    seed: int = typer.Option(0, help="Training seed."),
    threads: Optional[int] = typer.Option(None, min=1, help="CPU threads for torch (default: torch's choice)."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Let the checkpoint run its own Python code (auto_map in config.json) while loading; only for code you have read."),
) -> None:
    """Improve a model for several iterations, one checkpoint per iteration (resumable: rerun to continue)."""
    from csr_bench.improvers.base import run_improve

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    records = run_improve(model, improver, out=out, config=config, prompts=prompts, iterations=iterations, seed=seed,
                          trust_remote_code=trust_remote_code, console=err_console)
    for r in records:
        out_console.print(f"iteration {r.iteration}: {r.path}")


@app.command("improvers")
def improvers_cmd() -> None:
    """List the registered improvers and their shipped configs."""
    from csr_bench.improvers.base import improver_rows

    table = Table("improver", "description", "shipped configs")
    for row in improver_rows():
        table.add_row(row["name"], row["description"], row["configs"])
    out_console.print(table)


@app.command("compare")
def compare_cmd(
    baseline: Path = typer.Argument(..., help="Baseline run folder (or a folder of its runs, one per seed)."),
    candidate: Path = typer.Argument(..., help="Candidate run folder (or a folder of its runs, one per seed)."),
    resamples: int = typer.Option(10_000, help="Bootstrap resamples."),
    seed: int = typer.Option(0, help="Seed of the bootstrap."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as a JSON list."),
) -> None:
    """Paired comparison: delta, 95% interval, p-value and Holm-adjusted p-value per metric."""
    from csr_bench.report.compare import compare_runs
    from csr_bench.runner.store import find_runs

    if resamples < 100:
        raise UserError(f"--resamples {resamples}: expected at least 100")
    rows = compare_runs(find_runs([baseline]), find_runs([candidate]), n_resamples=resamples, seed=seed)
    if as_json:
        keys = ("suite", "metric", "baseline", "candidate", "delta", "low", "high", "p_value", "p_adjusted", "significant")
        _print_json([{k: r[k] for k in keys} for r in rows])
        return
    table = Table("suite", "metric", "baseline", "candidate", "Δ", "95% CI", "p", "p (Holm)", "", title=f"{candidate} vs {baseline}")
    f = lambda x: "null" if x is None else f"{x:.4f}"  # noqa: E731
    for r in rows:
        table.add_row(
            r["suite"], r["metric"], f(r["baseline"]), f(r["candidate"]), f(r["delta"]),
            f"[{f(r['low'])}, {f(r['high'])}]", f(r["p_value"]), f(r["p_adjusted"]), "*" if r["significant"] else "",
        )
    out_console.print(table)


@app.command("leaderboard")
def leaderboard_cmd(
    runs: list[Path] = typer.Argument(..., help="Run folders, or folders holding run folders."),
    out: Path = typer.Option(..., help="Markdown file to write; the forest plot goes beside it."),
    baseline: Optional[str] = typer.Option(None, help="Model label to compare against (default: the first model)."),
    plot: Optional[Path] = typer.Option(None, help="Forest plot PNG (default: OUT's stem + '-forest.png')."),
    title: str = typer.Option("Leaderboard", help="Title of the markdown page."),
    resamples: int = typer.Option(10_000, help="Bootstrap resamples."),
    seed: int = typer.Option(0, help="Seed of the bootstrap."),
) -> None:
    """Models × metrics with intervals, and deltas against a baseline with Holm-adjusted p-values and MDE."""
    from csr_bench.report.leaderboard import build_leaderboard, write_leaderboard
    from csr_bench.runner.store import find_runs

    board = build_leaderboard(find_runs(runs), baseline=baseline, n_resamples=resamples, seed=seed, title=title)
    md, png = write_leaderboard(board, out, plot)
    out_console.print(f"wrote {md}" + (f" and {png}" if png else ""))


@app.command("paper-table")
def paper_table_cmd(
    table: Optional[Path] = typer.Option(None, help="CSV with a 'model' column and the paper's twelve metric columns."),
    runs: Optional[list[Path]] = typer.Option(None, help="Run folders (or folders of runs) instead of a CSV: adds a bootstrap interval."),
    partial: bool = typer.Option(False, "--partial", help="With --runs: average the columns that have runs (not the paper's aggregate)."),
    resamples: int = typer.Option(10_000, help="Bootstrap resamples (with --runs)."),
    as_json: bool = typer.Option(False, "--json", help='Print a list of {"model", "average", "delta", "relative"} (+ "low", "high", "columns" with --runs).'),
) -> None:
    """The CSR paper's average score (MME-P/16, MME-C/4, 100 - CHAIR) per model, and its change against the first."""
    from csr_bench.report.paper_table import PAPER_COLUMNS, paper_table, paper_table_from_runs, paper_table_markdown

    if (table is None) == (not runs):
        raise UserError("give either --table FILE.csv or --runs DIR")
    if table is not None:
        if as_json:
            _print_json(paper_table(table))
        else:
            sys.stdout.write(paper_table_markdown(table))
        return
    from csr_bench.runner.store import find_runs

    rows = paper_table_from_runs(find_runs(runs), n_resamples=resamples, partial=partial)
    if as_json:
        _print_json(rows)
        return
    shown = [c for c in PAPER_COLUMNS if any(c in r["columns"] for r in rows)]
    t = Table("model", *shown, "average [95% CI]", "Δ")
    for r in rows:
        cells = [f"{r['columns'][c]:.1f}" if c in r["columns"] else "—" for c in shown]
        ci = "" if r["low"] is None else f" [{r['low']:.2f}, {r['high']:.2f}]"
        t.add_row(r["model"], *cells, f"{r['average']:.2f}{ci}", f"{r['delta']:+.2f}")
    out_console.print(t)
    if any(r["missing"] for r in rows):
        _warn("partial aggregate: columns without runs are left out, so this is not the paper's average")


@app.command("demo")
def demo_cmd(
    out: Path = typer.Option(Path("results/demo"), help="Folder of the demo's world, runs and reports."),
    quick: bool = typer.Option(False, "--quick", help="Smaller world and one training seed (a few minutes)."),
    publish: Optional[Path] = typer.Option(None, help="Also write the leaderboard here (e.g. leaderboard/demo.md)."),
) -> None:
    """The main job: evaluate the shipped tiny model, improve it with CSR, compare, write the leaderboard."""
    from csr_bench.demo import run_demo

    run_demo(out, quick=quick, publish=publish, say=lambda msg: out_console.print(msg, highlight=False))


@app.command("sweep")
def sweep_cmd(
    file: Path = typer.Argument(..., help="Sweep file (TOML): models × tasks × seeds, improver chains, leaderboard."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (each unit done or to do) and run nothing."),
    threads: Optional[int] = typer.Option(None, min=1, help="CPU threads for torch (default: the file's 'threads')."),
) -> None:
    """Run a sweep file: skips finished runs and checkpoints, runs the rest, writes the leaderboard (idempotent)."""
    from csr_bench.runner.sweep import run_sweep

    run_sweep(file, dry_run=dry_run, threads=threads, say=lambda msg: out_console.print(msg, highlight=False, soft_wrap=True))


@world_app.command("generate")
def world_generate(
    out: Path = typer.Option(..., help="World folder to write (replaces an earlier world there)."),
    seed: int = typer.Option(0, help="Seed: the same seed writes byte-identical files."),
    quick: bool = typer.Option(False, "--quick", help="A smaller world (fewer images)."),
) -> None:
    """Write a synthetic world in the official formats (COCO, POPE, MME, MMBench, GQA, VizWiz)."""
    import time

    from csr_bench.world import WorldConfig, generate_world

    t0 = time.perf_counter()
    generate_world(out, seed=seed, config=WorldConfig.quick(seed=seed) if quick else WorldConfig(seed=seed))
    out_console.print(f"world written to {out} in {time.perf_counter() - t0:.1f} s")


@world_app.command("train")
def world_train(
    world: Path = typer.Option(..., help="World folder (from 'csr-bench world generate')."),
    out: Path = typer.Option(..., help="Checkpoint folder to write."),
    model: str = typer.Option("lvlm", help="Which tiny model: lvlm (LLaVA) or clip (open_clip)."),
    steps: Optional[int] = typer.Option(None, min=1, help="Training steps (default: the shipped recipe)."),
    seed: int = typer.Option(0, help="Training seed."),
) -> None:
    """Train the tiny LLaVA or the tiny CLIP on a world (this is how the shipped checkpoints were made)."""
    import torch

    torch.set_num_threads(1)  # the shipped checkpoints were trained on one thread; results depend on it
    kwargs = {} if steps is None else {"steps": steps}
    if model == "lvlm":
        from csr_bench.world.tiny_lvlm import train_tiny_llava as train
    elif model == "clip":
        from csr_bench.world.tiny_clip import train_tiny_clip as train
    else:
        raise UserError(f"--model '{model}': expected lvlm or clip")
    summary = train(world, out, seed=seed, log=lambda msg: out_console.print(msg, highlight=False), **kwargs)
    out_console.print(f"{model} checkpoint written to {out}")
    if isinstance(summary, dict):
        out_console.print({k: v for k, v in summary.items() if isinstance(v, (int, float, str))})


def _click_exceptions():
    """click's exceptions as typer raises them (recent typer ships its own copy of click as typer._click)."""
    try:
        from typer import _click as click_module
    except ImportError:  # typer before 0.26 uses click itself
        import click as click_module
    return click_module.exceptions


def main() -> None:
    errors = _click_exceptions()
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        # Not standalone: click's usage errors (an unknown command, a missing option) come here, to be one line too.
        code = app(standalone_mode=False)
    except UserError as e:
        err_console.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except getattr(errors, "NoArgsIsHelpError", ()) as e:  # `csr-bench` alone: its help, as typer shows it
        from typer import rich_utils

        rich_utils.rich_format_error(e)
        sys.exit(e.exit_code)
    except errors.ClickException as e:
        ctx = getattr(e, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if isinstance(e, errors.UsageError) and ctx is not None else ""
        err_console.print(f"error: {e.format_message()}{hint}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except typer.Abort:
        err_console.print("aborted", markup=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted", markup=False)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
