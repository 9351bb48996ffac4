import pytest

from csr_bench.errors import UserError
from csr_bench.report.compare import compare_runs
from csr_bench.report.leaderboard import build_leaderboard, write_leaderboard
from csr_bench.runner.evaluate import run_items
from csr_bench.runner.store import find_runs
from tests.toy_suite import ToySuite, toy_manifest


def make_run(path, model, right, seed=0, n=40):
    suite = ToySuite(n=n, per_unit=2)
    run_items(suite, suite.items(), lambda items: [it.target if right(int(it.id)) else "x" for it in items],
              path, toy_manifest(seed=seed, model=model))
    return path


def test_paired_delta_equals_difference_and_rows(tmp_path):
    a = make_run(tmp_path / "a", "base", lambda i: i % 4 != 0)      # 30/40
    b = make_run(tmp_path / "b", "cand", lambda i: True)             # 40/40
    rows = compare_runs(find_runs([a]), find_runs([b]), n_resamples=2000, seed=0)
    assert len(rows) == 1
    r = rows[0]
    assert r["suite"] == "toy" and r["metric"] == "accuracy"
    assert r["baseline"] == pytest.approx(0.75) and r["candidate"] == pytest.approx(1.0)
    assert r["delta"] == pytest.approx(0.25)
    assert r["low"] <= r["delta"] <= r["high"]
    assert r["p_value"] < 0.05 and r["p_adjusted"] == r["p_value"] and r["significant"] is True


def test_identical_runs_are_not_significant(tmp_path):
    a = make_run(tmp_path / "a", "base", lambda i: i % 3 != 0)
    b = make_run(tmp_path / "b", "cand", lambda i: i % 3 != 0)
    (r,) = compare_runs(find_runs([a]), find_runs([b]), n_resamples=1000)
    assert r["delta"] == 0 and r["p_value"] == 1.0 and r["significant"] is False


def test_different_units_are_refused(tmp_path):
    a = make_run(tmp_path / "a", "base", lambda i: True, n=40)
    b = make_run(tmp_path / "b", "cand", lambda i: True, n=20)
    with pytest.raises(UserError, match="different units"):
        compare_runs(find_runs([a]), find_runs([b]))


def test_seeds_are_grouped(tmp_path):
    a = make_run(tmp_path / "a", "base", lambda i: i % 4 != 0)
    make_run(tmp_path / "c" / "s0", "cand", lambda i: i % 5 != 0, seed=0)
    make_run(tmp_path / "c" / "s1", "cand", lambda i: i % 7 != 0, seed=1)
    (r,) = compare_runs(find_runs([a]), find_runs([tmp_path / "c"]), n_resamples=1000)
    # candidate value is the seed average of the per-unit statistics
    assert r["candidate"] == pytest.approx((32 / 40 + 34 / 40) / 2)


def test_leaderboard_markdown_and_plot(tmp_path):
    make_run(tmp_path / "runs" / "base", "base", lambda i: i % 4 != 0)
    make_run(tmp_path / "runs" / "cand", "cand", lambda i: True)
    board = build_leaderboard(find_runs([tmp_path / "runs"]), baseline="base", n_resamples=1000)
    md, png = write_leaderboard(board, tmp_path / "lb.md")
    text = md.read_text()
    assert "## toy" in text and "| base" in text and "| cand" in text
    assert "0.750 [" in text and "+0.250 [" in text and "*" in text
    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "lb-forest.png" in text
    with pytest.raises(UserError, match="baseline model 'nope'"):
        build_leaderboard(find_runs([tmp_path / "runs"]), baseline="nope")
