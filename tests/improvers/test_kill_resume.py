"""`csr-bench improve` (CSR, tiny model) killed with SIGKILL during search, training, checkpoint saving and between
iterations, again and again on the same run folder, then left to finish: the run equals an uninterrupted one
(search trees, pairs and checkpoints byte for byte; lineage and training logs up to timings and paths), and no kill
leaves a half-written JSON, JSON Lines or safetensors file where a reader looks.

Kill moments come from a seeded numpy Generator: "as soon as k search trees of iteration i are on disk", "t seconds
after the start" (loading), "t seconds into an iteration whose search is done" (trainer set-up, DPO steps, merge),
"as soon as the trainer's scratch folder exists", "as soon as the checkpoint's temporary folder exists" (mid-save)
and "as soon as the checkpoint is published" (before or just after lineage.json records it).
"""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from tests.kill_helpers import (
    assert_nothing_half_written,
    complete_lines,
    fork_server,
    hidden_leftovers,
    run_and_kill,
    whole_lines,
)

PROMPTS, BATCH = 8, 2
# (iteration, stage) in the order the kills are tried. Every trigger stays true once it fired, so a kill lands
# while the run goes on, if not at its moment then later. Kills timed from a measured duration ("training") come
# in iteration 1 only, where a late one still lands (in iteration 2); in the last iteration the triggers are
# files appearing. Only the last kill (the last checkpoint being saved) races the end of the run, which may win.
SCHEDULE = [(1, "start"), (1, "search"), (1, "search"), (1, "training"), (1, "saving"), (1, "published"),
            (2, "search"), (2, "search"), (2, "trainer"), (2, "start"), (2, "saving")]
TIMING_KEYS = {"created", "finished", "seconds", "search_seconds", "train_seconds", "train_runtime",
               "train_samples_per_second", "train_steps_per_second"}


def _tiny_config(path: Path) -> Path:
    """The shipped tiny config, smaller: 8 prompts searched 2 at a time, 2 iterations of 2 DPO steps."""
    from csr_bench.improvers.csr.improver import CONFIG_DIR

    text = (CONFIG_DIR / "csr-tiny.toml").read_text()
    for key, value in {"iterations": 2, "max_prompts": PROMPTS, "prompt_batch": BATCH, "batch_size": 4}.items():
        text, n = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, flags=re.M)
        assert n == 1, key
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from csr_bench.world import WorldConfig, generate_world

    root = tmp_path_factory.mktemp("improve_world") / "world"
    generate_world(root, config=WorldConfig.quick(seed=0))
    return root


def _normalized(value, out: Path):
    """JSON data without timings, with the run folder's path replaced, for comparing two runs."""
    if isinstance(value, dict):
        return {k: _normalized(v, out) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_normalized(v, out) for v in value]
    if isinstance(value, str):
        return value.replace(str(out), "OUT")
    return value


def _on_disk(out: Path) -> str:
    """What a kill left, in a few words (printed with the kill schedule)."""
    lineage = json.loads((out / "lineage.json").read_text()) if (out / "lineage.json").exists() else None
    parts = [f"lineage:{len(lineage['iterations'])}" if lineage else "no lineage"]
    for work in sorted(out.glob("iter*")):
        names = sorted("." + p.name.split(".")[1] if p.name.startswith(".") else p.name for p in work.iterdir())
        parts.append(f"{work.name}[{complete_lines(work / 'search.jsonl')} trees; {' '.join(names)}]")
    return " ".join(parts)


def _trigger(stage: str, work: Path, rng, done_trees: int):
    """(trigger, delay) for one kill of `stage` in the iteration folder `work`."""
    if stage == "start":
        return (lambda: True), float(rng.uniform(0.0, 0.5))  # a resumed process loads for longer than that
    if stage == "search":
        target = int(rng.integers(done_trees + 1, PROMPTS + 1))  # PROMPTS: right after the last batch is logged
        return (lambda: complete_lines(work / "search.jsonl") >= target or (work / "pairs.jsonl").exists()), 0.0
    if stage == "training":
        return (lambda: (work / "pairs.jsonl").exists()), None  # the delay is drawn from the measured timings
    if stage == "trainer":  # as soon as the trainer's scratch folder exists (set-up starts)
        return (lambda: any(work.glob(".trainer-*")) or (work / "model").exists()), 0.0
    if stage == "saving":
        return (lambda: any(work.glob(".model.*")) or (work / "model").exists()), 0.0
    if stage == "published":
        return (lambda: (work / "model").exists()), 0.0
    raise ValueError(stage)


@pytest.mark.slow
def test_improve_killed_repeatedly_equals_an_uninterrupted_run(world, tmp_path):
    cfg = _tiny_config(tmp_path / "csr-kill.toml")
    args = ["improve", "--model", "tiny", "--config", cfg, "--prompts", world, "--seed", "0", "--threads", "1"]
    server = fork_server()
    full = tmp_path / "full"
    assert server.run([*args, "--out", full], tmp_path / "full.log") == 0
    reference = json.loads((full / "lineage.json").read_text())
    # How long an iteration takes once its search is done (loading, trainer set-up, DPO, merge, save).
    after_search = {it["iteration"]: it["stats"]["seconds"] - it["stats"]["search_seconds"] for it in reference["iterations"]}

    rng = np.random.default_rng(8)
    out = tmp_path / "killed"
    kills, torn_seen, stages = 0, 0, []
    for attempt, (iteration, stage) in enumerate(SCHEDULE):
        work = out / f"iter{iteration}"
        trigger, delay = _trigger(stage, work, rng, complete_lines(work / "search.jsonl"))
        if delay is None:
            delay = float(rng.uniform(0.0, 0.5 * after_search[iteration]))
        if not run_and_kill(server, [*args, "--out", out], tmp_path / f"kill{attempt}.log", trigger, delay):
            assert attempt == len(SCHEDULE) - 1, f"the run finished before kill {attempt + 1} ({stages})"
            break
        kills += 1
        stages.append(f"{iteration}:{stage} -> {_on_disk(out)}")
        torn_seen += len(assert_nothing_half_written(out))
        for trees in out.glob("iter*/search.jsonl"):  # no prompt searched into the log twice, even mid-way
            ids = [json.loads(line)["id"] for line in whole_lines(trees)]
            assert len(ids) == len(set(ids)), f"{trees}: a prompt was logged twice"
    assert server.run([*args, "--out", out], tmp_path / "resume.log") == 0

    lineage = json.loads((out / "lineage.json").read_text())
    assert [it["iteration"] for it in lineage["iterations"]] == [1, 2]
    assert _normalized(lineage, out) == _normalized(reference, full)
    for iteration in (1, 2):
        a, b = full / f"iter{iteration}", out / f"iter{iteration}"
        for name in ("search.jsonl", "pairs.jsonl"):
            assert (a / name).read_bytes() == (b / name).read_bytes(), f"iter{iteration}/{name} differs"
        trees = [json.loads(line)["id"] for line in whole_lines(b / "search.jsonl")]
        assert len(trees) == len(set(trees)) == PROMPTS
        log_a, log_b = (json.loads((d / "train_log.json").read_text()) for d in (a, b))
        assert _normalized(log_b, out) == _normalized(log_a, full)
        # The merged checkpoint: byte-identical files (safetensors, config, processor).
        files = sorted(p.relative_to(a / "model") for p in (a / "model").rglob("*") if p.is_file())
        assert files == sorted(p.relative_to(b / "model") for p in (b / "model").rglob("*") if p.is_file())
        for rel in files:
            assert (a / "model" / rel).read_bytes() == (b / "model" / rel).read_bytes(), f"iter{iteration}/model/{rel} differs"
    assert_nothing_half_written(out)
    assert not hidden_leftovers(out), "temporaries of killed writes were left behind"
    print(f"improve: {kills} kills, {torn_seen} torn lines seen and dropped:", *stages, sep="\n  ")


def test_search_log_drops_a_torn_last_line_and_refuses_other_damage(tmp_path):
    from csr_bench.errors import UserError
    from csr_bench.improvers.csr.pairs import append_trees, read_search_log

    log = tmp_path / "search.jsonl"
    assert read_search_log(log) == {}
    trees = [{"id": str(i), "nodes": [{"id": 0}]} for i in range(3)]
    append_trees(log, trees[:2])
    whole = log.read_bytes()
    with log.open("ab") as f:
        f.write(b'{"id": "2", "nod')  # a kill in the middle of an append
    assert list(read_search_log(log)) == ["0", "1"]
    assert log.read_bytes() == whole  # cut back to the last whole line, so the next append starts clean
    append_trees(log, trees[2:])
    assert list(read_search_log(log)) == ["0", "1", "2"]
    log.write_bytes(whole + b"not json\n" + whole)
    with pytest.raises(UserError, match=r"search.jsonl:3: malformed JSON"):
        read_search_log(log)
    log.write_bytes(whole + whole)
    with pytest.raises(UserError, match=r"search.jsonl:3: prompt id '0' appears twice"):
        read_search_log(log)


def _shared_image_prompts(path: Path) -> Path:
    """Six prompts over four images searched 4 at a time: images 1 and 2 are in both batches. (Batched image
    encoding is not bitwise batch-invariant on CPU: an image encoded with three others differs in its last bits
    from the same image encoded with one other.)"""
    texts = ["Describe this image.", "What is this?", "Describe this image in detail.", "What do you see?",
             "Describe this image briefly.", "What is in the picture?"]
    lines = [{"id": f"p{i}", "image": f"images/{image}.png", "prompt": text}
             for i, (image, text) in enumerate(zip([0, 1, 2, 3, 1, 2], texts))]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_a_search_resumed_mid_way_logs_what_an_uninterrupted_one_does(tiny_assets, tmp_path):
    """At the library level, with a fresh process's state (a new model and CLIP, nothing cached): the search
    resumed after k logged trees (and a torn line) appends exactly the bytes an uninterrupted search writes."""
    from csr_bench.improvers.base import load_prompts
    from csr_bench.improvers.csr.clip import load_clip_scorer
    from csr_bench.improvers.csr.config import CSRConfig, SearchConfig
    from csr_bench.improvers.csr.improver import CSRImprover, load_model
    from csr_bench.improvers.csr.pairs import write_pairs

    prompts = load_prompts(_shared_image_prompts(tmp_path / "prompts.jsonl"), image_root=tiny_assets["root"])
    config = CSRConfig(clip=tiny_assets["clip"], search=SearchConfig(
        decoding="sample", candidates=3, max_new_tokens=5, max_sentences=2, keep_best=1, keep_worst=1, prompt_batch=4))

    def search(trees_file: Path):
        model, processor = load_model(tiny_assets["llava"], dtype="float32", device="cpu")
        clip = load_clip_scorer(tiny_assets["clip"])  # nothing cached, as in a restarted process
        return CSRImprover().search(model, processor, clip, prompts, config, seed=5, trees_file=trees_file)

    full = tmp_path / "full" / "search.jsonl"
    full.parent.mkdir()
    pairs, stats = search(full)
    write_pairs(full.parent / "pairs.jsonl", pairs)
    whole = [line + b"\n" for line in whole_lines(full)]
    assert len(whole) == len(prompts) == stats["prompts"]
    for k in (1, 4):  # after the first tree (mid-batch) and after two whole batches
        resumed = tmp_path / f"after{k}" / "search.jsonl"
        resumed.parent.mkdir()
        resumed.write_bytes(b"".join(whole[:k]) + whole[k][:40])  # k trees and a torn line
        again, again_stats = search(resumed)
        assert resumed.read_bytes() == full.read_bytes()
        write_pairs(resumed.parent / "pairs.jsonl", again)
        assert (resumed.parent / "pairs.jsonl").read_bytes() == (full.parent / "pairs.jsonl").read_bytes()
        assert again_stats == stats
