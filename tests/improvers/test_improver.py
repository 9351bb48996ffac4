"""The CSR improver end to end on a random tiny LLaVA: iterations, files, lineage, resume, checkpoints that load."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from csr_bench.improvers.base import get_improver, improve, load_prompts, read_lineage
from csr_bench.improvers.csr.config import CSRConfig, LoraConfig, SearchConfig, TrainConfig


def _config(clip: str) -> CSRConfig:
    return CSRConfig(
        iterations=2, clip=clip, dtype="float32", device="cpu",
        search=SearchConfig(decoding="diverse_beam", candidates=3, beam_groups=3, max_new_tokens=4, max_sentences=2,
                            keep_best=1, keep_worst=1, prompt_batch=2),
        train=TrainConfig(learning_rate=1e-3, max_steps=1, batch_size=2, warmup_ratio=0.0),
        lora=LoraConfig(r=2, alpha=4, dropout=0.0),
    )


def test_registered_and_listed():
    from csr_bench.improvers.base import improver_names, improver_rows

    imp = get_improver("csr")
    assert imp.name == "csr" and "csr" in improver_names()
    row = next(r for r in improver_rows() if r["name"] == "csr")
    assert "paper" in row["configs"] and "tiny" in row["configs"]


def test_two_iterations_then_resume(tiny_assets, tmp_path, monkeypatch):
    from csr_bench.improvers.csr import search as search_module
    from csr_bench.models.base import load_adapter

    imp = get_improver("csr")
    prompts = load_prompts(tiny_assets["prompts"])
    config = _config(tiny_assets["clip"])
    out = tmp_path / "run"
    records = list(improve(imp, tiny_assets["llava"], out_dir=out, prompts=prompts, config=config, iterations=2, seed=3))
    assert [r.iteration for r in records] == [1, 2]
    assert records[1].parent == records[0].path and records[0].parent == tiny_assets["llava"]
    for r in records:
        work = Path(r.path).parent
        pairs = [json.loads(line) for line in Path(r.preference_data).read_text().splitlines()]
        assert pairs and all(p["chosen"] != p["rejected"] for p in pairs)
        trees = [json.loads(line) for line in (work / "search.jsonl").read_text().splitlines()]
        assert len(trees) == len(prompts) and trees[0]["nodes"][0]["parent"] is None
        log = json.loads(Path(r.training_log).read_text())
        assert log["steps"] == 1 and log["log_history"]
        assert r.stats["pairs"] == len(pairs)
        adapter = load_adapter(f"hf:{r.path}", dtype="float32", device="cpu")  # a checkpoint `hf:` loads
        assert adapter.fingerprint()
    lineage = read_lineage(out)
    assert [it["path"] for it in lineage["iterations"]] == [r.path for r in records]
    assert lineage["config"]["search"]["candidates"] == 3

    # Resuming runs nothing for finished iterations.
    def no_search(*args, **kwargs):
        raise AssertionError("the search ran again")

    monkeypatch.setattr(search_module.SentenceSearch, "run", no_search)
    again = list(improve(imp, tiny_assets["llava"], out_dir=out, prompts=prompts, config=config, iterations=2, seed=3))
    assert [r.reused for r in again] == [True, True] and [r.path for r in again] == [r.path for r in records]

    # A killed iteration whose pairs were written resumes at training, without searching again.
    (out / "iter3").mkdir()
    (out / "iter3" / "pairs.jsonl").write_text(Path(records[1].preference_data).read_text())
    third = list(improve(imp, tiny_assets["llava"], out_dir=out, prompts=prompts, config=replace(config, iterations=3),
                         iterations=3, seed=3))
    assert third[-1].iteration == 3 and third[-1].parent == records[1].path
    assert Path(third[-1].path, "model.safetensors").is_file()


def test_missing_clip_fails_before_work(tiny_assets, tmp_path):
    from csr_bench.errors import UserError

    imp = get_improver("csr")
    prompts = load_prompts(tiny_assets["prompts"])
    with pytest.raises(UserError, match="CLIP"):
        list(improve(imp, tiny_assets["llava"], out_dir=tmp_path / "run", prompts=prompts,
                     config=_config(str(tmp_path / "no-clip")), iterations=1))
