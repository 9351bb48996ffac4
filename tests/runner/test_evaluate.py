import json

import pytest

from csr_bench.errors import UserError
from csr_bench.runner.evaluate import run_items
from csr_bench.runner.store import load_run
from tests.toy_suite import ToySuite, toy_manifest


def answer(items):
    # deterministic "model": right on even ids
    return [it.target if int(it.id) % 2 == 0 else "x" for it in items]


class Killed(Exception):
    pass


def test_resume_after_k_items_equals_uninterrupted(tmp_path):
    suite = ToySuite(n=10)
    items = suite.items()
    full = tmp_path / "full"
    run_items(suite, items, answer, full, toy_manifest(), batch_size=3)

    calls = {"n": 0}

    def dies_after_two_batches(batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise Killed()
        return answer(batch)

    part = tmp_path / "part"
    with pytest.raises(Killed):
        run_items(suite, items, dies_after_two_batches, part, toy_manifest(), batch_size=3)
    assert len((part / "samples.jsonl").read_text().splitlines()) == 6
    assert not (part / "metrics.json").exists()

    seen = []

    def record(batch):
        seen.extend(it.id for it in batch)
        return answer(batch)

    run_items(suite, items, record, part, toy_manifest(), batch_size=3)
    assert seen == [str(i) for i in range(6, 10)]  # nothing recomputed
    assert (part / "samples.jsonl").read_bytes() == (full / "samples.jsonl").read_bytes()
    assert (part / "metrics.json").read_bytes() == (full / "metrics.json").read_bytes()
    ids = [json.loads(l)["item_id"] for l in (part / "samples.jsonl").read_text().splitlines()]
    assert sorted(ids, key=int) == [str(i) for i in range(10)] and len(set(ids)) == 10


def test_torn_last_line_is_dropped_and_redone(tmp_path):
    suite = ToySuite(n=6)
    run = tmp_path / "r"
    run_items(suite, suite.items(), answer, run, toy_manifest(), batch_size=2)
    good = (run / "samples.jsonl").read_bytes()
    lines = good.splitlines(keepends=True)
    (run / "samples.jsonl").write_bytes(b"".join(lines[:4]) + lines[4][:10])  # a kill mid-write
    run_items(suite, suite.items(), answer, run, toy_manifest(), batch_size=2)
    assert (run / "samples.jsonl").read_bytes() == good


def test_metrics_and_clustered_units(tmp_path):
    suite = ToySuite(n=10, per_unit=2)
    summary = run_items(suite, suite.items(), answer, tmp_path / "r", toy_manifest())
    assert summary["metrics"]["accuracy"] == pytest.approx(5 / 10)
    assert summary["n_units"] == 5
    run = load_run(tmp_path / "r")
    units, matrix = run.unit_matrix()
    assert units == ["u0", "u1", "u2", "u3", "u4"]
    assert matrix.tolist() == [[1, 2]] * 5
    lo, hi = summary["intervals"]["values"]["accuracy"]["low"], summary["intervals"]["values"]["accuracy"]["high"]
    assert lo == hi == 0.5  # every unit has accuracy 1/2: no sampling variability at the unit level


def test_resume_refuses_a_different_run(tmp_path):
    suite = ToySuite(n=4)
    run_items(suite, suite.items(), answer, tmp_path / "r", toy_manifest(seed=0))
    with pytest.raises(UserError, match="different run"):
        run_items(suite, suite.items(), answer, tmp_path / "r", toy_manifest(seed=1))


def test_newer_schema_is_refused(tmp_path):
    suite = ToySuite(n=4)
    run_items(suite, suite.items(), answer, tmp_path / "r", toy_manifest())
    m = json.loads((tmp_path / "r" / "manifest.json").read_text())
    m["schema_version"] = 99
    (tmp_path / "r" / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(UserError, match="newer"):
        load_run(tmp_path / "r")
