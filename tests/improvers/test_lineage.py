"""The generic improvement loop: one record per iteration, lineage.json, resume without redoing work (no torch)."""

import json
from pathlib import Path

import pytest

from csr_bench.errors import UserError
from csr_bench.improvers.base import (
    LINEAGE_FILE,
    IterationOutput,
    NullProgress,
    PromptRecord,
    improve,
    read_lineage,
)


class FakeImprover:
    """Writes a checkpoint folder per iteration and remembers which parents it was asked to improve."""

    name = "fake"
    description = "test double"

    def __init__(self, fail_at: int | None = None):
        self.calls: list[tuple[int, str]] = []
        self.fail_at = fail_at

    def load_config(self, source):
        return {"lr": 1.0, "iterations": 2}

    def run_iteration(self, parent, *, iteration, work_dir, config, prompts, seed, progress):
        self.calls.append((iteration, parent))
        if iteration == self.fail_at:
            raise RuntimeError("killed")
        (work_dir / "model").mkdir()
        (work_dir / "model" / "config.json").write_text(json.dumps({"parent": parent}))
        (work_dir / "pairs.jsonl").write_text("{}\n")
        (work_dir / "log.json").write_text("{}")
        return IterationOutput("model", "pairs.jsonl", "log.json", stats={"pairs": 1})


PROMPTS = [PromptRecord("1", "/img/1.png", "Describe this image."), PromptRecord("2", "/img/2.png", "Describe it.")]


def run(imp, out, iterations, config=None, seed=0, prompts=PROMPTS):
    return list(improve(imp, "base-model", out_dir=out, prompts=prompts, config=config or {"lr": 1.0},
                        iterations=iterations, seed=seed, progress=NullProgress()))


def test_records_and_lineage(tmp_path):
    imp = FakeImprover()
    records = run(imp, tmp_path / "out", 3)
    assert [r.iteration for r in records] == [1, 2, 3]
    # Each iteration improves the previous checkpoint.
    assert [p for _, p in imp.calls] == ["base-model", records[0].path, records[1].path]
    assert records[0].parent == "base-model" and records[2].parent == records[1].path
    assert all(Path(r.path, "config.json").is_file() and Path(r.preference_data).is_file() for r in records)
    lineage = read_lineage(tmp_path / "out")
    assert lineage["improver"] == "fake" and lineage["base_model"] == "base-model" and lineage["seed"] == 0
    assert [it["iteration"] for it in lineage["iterations"]] == [1, 2, 3]
    assert lineage["iterations"][1]["parent"] == records[0].path
    assert lineage["prompts"]["n"] == 2 and lineage["schema_version"] == 1
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "out").iterdir())


def test_resume_skips_finished_iterations(tmp_path):
    out = tmp_path / "out"
    first = FakeImprover(fail_at=2)
    with pytest.raises(RuntimeError):
        run(first, out, 3)
    assert [i for i, _ in first.calls] == [1, 2]
    second = FakeImprover()
    records = run(second, out, 3)
    # Iteration 1 is not redone; 2 and 3 start from the checkpoint of 1.
    assert [i for i, _ in second.calls] == [2, 3]
    assert second.calls[0][1] == records[0].path
    assert records[0].reused and not records[1].reused
    third = FakeImprover()
    assert [r.reused for r in run(third, out, 3)] == [True, True, True] and third.calls == []
    # More iterations continue the same run.
    fourth = FakeImprover()
    assert [r.iteration for r in run(fourth, out, 4)] == [1, 2, 3, 4] and [i for i, _ in fourth.calls] == [4]
    assert len(read_lineage(out)["iterations"]) == 4


def test_a_different_run_is_refused(tmp_path):
    out = tmp_path / "out"
    run(FakeImprover(), out, 1)
    with pytest.raises(UserError, match="different seed"):
        run(FakeImprover(), out, 1, seed=1)
    with pytest.raises(UserError, match="different config"):
        run(FakeImprover(), out, 1, config={"lr": 2.0})
    with pytest.raises(UserError, match="different prompts"):
        run(FakeImprover(), out, 1, prompts=PROMPTS[:1])
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        run(FakeImprover(), other, 1)
    with pytest.raises(UserError, match="iterations=0"):
        run(FakeImprover(), tmp_path / "new", 0)


def test_lineage_from_a_newer_schema_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / LINEAGE_FILE).write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(UserError, match="newer"):
        run(FakeImprover(), out, 1)
