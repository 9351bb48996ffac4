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
    lineage_identity,
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


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder below `folder`; {} when it does not exist."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def test_refusals_happen_at_the_call_and_leave_nothing_behind(tmp_path):
    """`improve` checks everything when called (before iterating) and creates no folder or file when it refuses."""
    new = tmp_path / "new" / "deeper"
    for bad in (dict(iterations=0), dict(prompts=[])):
        with pytest.raises(UserError):
            improve(FakeImprover(), "base-model", out_dir=new, config={"lr": 1.0},
                    **{"prompts": PROMPTS, "iterations": 1, **bad})
    assert not (tmp_path / "new").exists()
    with pytest.raises(UserError, match="no trust_remote_code option"):
        improve(FakeImprover(), "base-model", out_dir=new, prompts=PROMPTS, config={}, iterations=1,
                trust_remote_code=True)
    assert not (tmp_path / "new").exists()

    out = tmp_path / "out"
    run(FakeImprover(), out, 1)
    (out / f".{LINEAGE_FILE}.abc.tmp").write_text("{")  # a killed write, cleaned up only by a run that goes ahead
    before = tree(out)
    imp = FakeImprover()
    for changes in (dict(seed=1), dict(config={"lr": 2.0}), dict(model="other")):
        args = {"out_dir": out, "prompts": PROMPTS, "config": {"lr": 1.0}, "iterations": 2, "seed": 0,
                "model": "base-model", **changes}
        model = args.pop("model")
        with pytest.raises(UserError, match="different"):
            improve(imp, model, **args)  # raised by the call itself: no iteration needed
    assert imp.calls == [] and tree(out) == before
    (out / LINEAGE_FILE).write_text(json.dumps({"schema_version": 99}))
    before = tree(out)
    with pytest.raises(UserError, match="newer"):
        improve(imp, "base-model", out_dir=out, prompts=PROMPTS, config={"lr": 1.0}, iterations=2)
    assert tree(out) == before


def test_malformed_lineage_is_a_user_error(tmp_path):
    out = tmp_path / "out"
    run(FakeImprover(), out, 1)
    good = json.loads((out / LINEAGE_FILE).read_text())
    bad_versions = ["1", None, True]
    for version in bad_versions:
        (out / LINEAGE_FILE).write_text(json.dumps({**good, "schema_version": version}))
        with pytest.raises(UserError, match="no integer schema_version"):
            read_lineage(out)
    for key, value, message in (("seed", "0", "key 'seed' must be an integer"),
                                ("config", None, "key 'config' must be an object"),
                                ("prompts", {"n": 2}, "'prompts.fingerprint' must be a string"),
                                ("iterations", [{"iteration": 1}], r"'iterations\[0\]' must be an object with keys"),
                                ("iterations", [{**good["iterations"][0], "iteration": "1"}],
                                 r"'iterations\[0\].iteration' must be an integer")):
        (out / LINEAGE_FILE).write_text(json.dumps({**good, key: value}))
        with pytest.raises(UserError, match=message) as e:
            run(FakeImprover(), out, 1)
        assert str(e.value).startswith(str(out / LINEAGE_FILE))


def test_lineage_identity(tmp_path):
    run(FakeImprover(), tmp_path / "out", 2, config={"lr": 1.0, "iterations": 2, "betas": (0.1, 0.2)})
    lineage = read_lineage(tmp_path / "out")
    identity = lineage_identity(lineage)
    assert identity == {"improver": "fake", "base_model": "base-model", "config": {"lr": 1.0, "betas": [0.1, 0.2]},
                        "seed": 0, "prompts": lineage["prompts"]["fingerprint"]}
    # A new run asking for more iterations, with tuples where JSON has lists, is the same run.
    fresh = {"improver": "fake", "base_model": "base-model", "config": {"lr": 1.0, "iterations": 5, "betas": (0.1, 0.2)},
             "seed": 0, "prompts": {"fingerprint": lineage["prompts"]["fingerprint"]}}
    assert lineage_identity(fresh) == identity
    assert lineage_identity({**fresh, "seed": 1}) != identity


class RemoteCodeImprover(FakeImprover):
    """An improver that accepts the trust_remote_code option and records what it was given."""

    name = "remote"

    def run_iteration(self, parent, *, iteration, work_dir, config, prompts, seed, progress, trust_remote_code=False):
        self.trusted = getattr(self, "trusted", []) + [trust_remote_code]
        return super().run_iteration(parent, iteration=iteration, work_dir=work_dir, config=config, prompts=prompts,
                                     seed=seed, progress=progress)


def test_trust_remote_code_reaches_the_improver_and_is_recorded(tmp_path):
    imp = RemoteCodeImprover()
    run(imp, tmp_path / "out", 1)
    list(improve(imp, "base-model", out_dir=tmp_path / "out", prompts=PROMPTS, config={"lr": 1.0}, iterations=2,
                 trust_remote_code=True))
    assert imp.trusted == [False, True]
    lineage = read_lineage(tmp_path / "out")
    assert [it["stats"]["trust_remote_code"] for it in lineage["iterations"]] == [False, True]
    # The flag is no part of the run's identity: a resume may add or drop it.
    assert "trust_remote_code" not in json.dumps(lineage_identity(lineage))


class RefusingImprover(FakeImprover):
    """Refuses its first iteration with a UserError, after writing `writes` into its folder."""

    def __init__(self, writes: bool):
        super().__init__()
        self.writes = writes

    def run_iteration(self, parent, *, iteration, work_dir, config, prompts, seed, progress):
        if self.writes:
            (work_dir / "search.jsonl").write_text("{}\n")
        raise UserError(f"{parent}: cannot load")


def test_a_first_iteration_refused_before_any_work_leaves_nothing_behind(tmp_path):
    with pytest.raises(UserError, match="cannot load"):
        run(RefusingImprover(writes=False), tmp_path / "new", 1)
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="cannot load"):
        run(RefusingImprover(writes=False), tmp_path / "empty", 1)
    assert tree(tmp_path / "empty") == {}
    # Work already on disk (here a search log) is kept, with its lineage, for a resume.
    with pytest.raises(UserError, match="cannot load"):
        run(RefusingImprover(writes=True), tmp_path / "worked", 1)
    assert set(tree(tmp_path / "worked")) == {LINEAGE_FILE, "iter1", "iter1/search.jsonl"}
