import hashlib
import json

import numpy as np
import pytest

from csr_bench.errors import UserError
from csr_bench.runner.evaluate import batch_seed, run_items
from csr_bench.runner.store import check_run_folder, load_run
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


# ------------------------------------------- sampled batches: a resume forms the uninterrupted run's batches


def sample_answer(batch):
    # a stand-in for a sampling model: each output depends on the batch's seed and the item's place in the batch
    rng = np.random.default_rng(batch.seed)
    return [str(d) for d in rng.integers(0, 3, len(batch))]


def test_batch_seed_is_the_documented_hash_of_seed_and_batch_index():
    for seed, index in ((0, 0), (0, 3), (7, 0), (2**40, 12345)):
        digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
        assert batch_seed(seed, index) == int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
    seeds = {batch_seed(s, b) for s in range(4) for b in range(50)}
    assert len(seeds) == 200 and all(0 <= x < 2**31 for x in seeds)


@pytest.mark.parametrize("kept", [2, 5, 8, 11])
def test_sampled_resume_of_a_partly_done_batch_equals_uninterrupted(tmp_path, kept):
    suite = ToySuite(n=12)
    items = suite.items()
    full = tmp_path / "full"
    run_items(suite, items, sample_answer, full, toy_manifest(seed=3), batch_size=4)
    lines = (full / "samples.jsonl").read_text().splitlines(keepends=True)

    part = tmp_path / "part"  # killed after `kept` samples (mid-batch unless kept is a multiple of 4)
    part.mkdir()
    (part / "manifest.json").write_text((full / "manifest.json").read_text())
    (part / "samples.jsonl").write_text("".join(lines[:kept]))
    seen = []

    def record(batch):
        seen.append((batch.index, batch.seed, [it.id for it in batch]))
        return sample_answer(batch)

    run_items(suite, items, record, part, toy_manifest(seed=3), batch_size=4)
    # The batches of the full item list from the first not all done; a partly done one whole.
    first = kept // 4
    assert seen == [(b, batch_seed(3, b), [str(i) for i in range(4 * b, 4 * b + 4)]) for b in range(first, 3)]
    for name in ("samples.jsonl", "metrics.json"):
        assert (part / name).read_bytes() == (full / name).read_bytes(), name  # no item twice, same outputs


def test_resume_keeps_the_logged_sample_and_warns_when_a_redone_item_differs(tmp_path):
    suite = ToySuite(n=4)
    run = tmp_path / "r"
    run.mkdir()
    full = tmp_path / "full"
    run_items(suite, suite.items(), sample_answer, full, toy_manifest(), batch_size=4)
    (run / "manifest.json").write_text((full / "manifest.json").read_text())
    first = json.loads((full / "samples.jsonl").read_text().splitlines()[0])
    first["output"] = "logged"  # what an earlier, not reproducible, generation gave
    (run / "samples.jsonl").write_text(json.dumps(first) + "\n")
    with pytest.warns(RuntimeWarning, match="1 item.*'0'.*logged first are kept"):
        run_items(suite, suite.items(), sample_answer, run, toy_manifest(), batch_size=4)
    got = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert [s["item_id"] for s in got] == ["0", "1", "2", "3"] and got[0]["output"] == "logged"


# ------------------------------------------------- leftovers of an atomic write killed mid-way


def test_a_folder_holding_only_a_killed_manifest_write_becomes_the_run(tmp_path):
    suite = ToySuite(n=4)
    run = tmp_path / "r"
    run.mkdir()
    (run / ".manifest.json.k3_x9q2a.tmp").write_text('{"schema_ver')  # the first manifest write, killed
    check_run_folder(run)  # not "folder exists and is not a csr-bench run"
    run_items(suite, suite.items(), answer, run, toy_manifest())
    assert {p.name for p in run.iterdir()} == {"manifest.json", "samples.jsonl", "metrics.json"}


def test_stale_temporaries_are_removed_on_resume_but_other_files_are_not_ours(tmp_path):
    suite = ToySuite(n=4)
    run = tmp_path / "r"
    run_items(suite, suite.items(), answer, run, toy_manifest())
    (run / "metrics.json").unlink()
    for name in (".metrics.json.a1b2c3d4.tmp", ".samples.jsonl.zz_9zz9z.tmp", ".manifest.json.00000000.tmp"):
        (run / name).write_text("{")
    run_items(suite, suite.items(), answer, run, toy_manifest())
    assert {p.name for p in run.iterdir()} == {"manifest.json", "samples.jsonl", "metrics.json"}

    # Only our own names count: a folder with anything else (even beside a leftover) is refused, untouched.
    for other in (".manifest.json.tmp", ".notes.json.a1b2c3d4.tmp", "manifest.json.a1b2c3d4.tmp"):
        folder = tmp_path / f"not-a-run{len(other)}"
        folder.mkdir()
        (folder / ".manifest.json.a1b2c3d4.tmp").write_text("{")
        (folder / other).write_text("{")
        with pytest.raises(UserError, match="not a csr-bench run"):
            check_run_folder(folder)
        with pytest.raises(UserError, match="not a csr-bench run"):
            run_items(suite, suite.items(), answer, folder, toy_manifest())
        assert {p.name for p in folder.iterdir()} == {".manifest.json.a1b2c3d4.tmp", other}
