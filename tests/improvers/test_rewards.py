"""Reward arithmetic and response selection of both calibrations (no torch).

Hand-computed cases for the formulas; the official selection is checked against the outputs of the authors'
own score.py + construct.py on 40 random trees (fixtures/official_selection.json, produced by running their
code outside this repository).
"""

import json
import math
from pathlib import Path

import pytest

from csr_bench.improvers.csr.pairs import SentenceNode, is_degenerate, select_official, select_paper
from csr_bench.improvers.csr.rewards import (
    keep_best_and_worst,
    official_image_reward,
    official_path_score,
    official_step_score,
    paper_image_reward,
    paper_text_reward,
    response_reward,
    sentence_reward,
    sibling_ranks,
)

FIXTURES = Path(__file__).parent / "fixtures"


def test_paper_sentence_reward_by_hand():
    # A sentence of two tokens with probabilities 0.5 and 0.4: R_T = 0.2.
    r_t = paper_text_reward(math.log(0.5) + math.log(0.4))
    assert r_t == pytest.approx(0.2)
    # cos = 0.31: R_I = 31; R = 0.9 * 31 + 0.1 * 0.2 = 27.92.
    r_i = paper_image_reward(0.31)
    assert r_i == pytest.approx(31.0)
    assert sentence_reward(r_i, r_t, 0.9) == pytest.approx(27.92)
    # A negative cosine is clamped to 0, so only the text term is left: 0.1 * 0.2.
    assert paper_image_reward(-0.2) == 0.0
    assert sentence_reward(paper_image_reward(-0.2), r_t, 0.9) == pytest.approx(0.02)
    # λ = 0 is the model's own reward alone, λ = 1 CLIP alone.
    assert sentence_reward(31.0, 0.2, 0.0) == pytest.approx(0.2)
    assert sentence_reward(31.0, 0.2, 1.0) == pytest.approx(31.0)
    # The response reward sums its sentences: 27.92 + 0.02 + 10.
    assert response_reward([27.92, 0.02, 10.0]) == pytest.approx(37.94)


def test_official_image_reward_is_the_unclamped_clip_logit():
    assert official_image_reward(0.25, 100.0) == pytest.approx(25.0)
    assert official_image_reward(-0.1, 100.0) == pytest.approx(-10.0)  # no clamp, unlike the paper's R_I
    assert official_image_reward(0.5, 20.0) == pytest.approx(10.0)


def test_sibling_ranks_by_hand():
    # Highest score first: 3.0 -> 1/3, 2.0 -> 2/3, 1.0 -> 3/3.
    assert sibling_ranks([3.0, 1.0, 2.0]) == pytest.approx([1 / 3, 1.0, 2 / 3])
    # Ties keep their order (Python's stable sort with reverse=True, as the authors' code).
    assert sibling_ranks([2.0, 2.0, 1.0]) == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert sibling_ranks([5.0]) == [1.0]


def test_official_path_score_by_hand():
    # Two sentences: (rank_T, rank_I) = (1/3, 2/3) then (1/2, 1/2), λ = 0.9.
    s1 = official_step_score(1 / 3, 2 / 3, 0.9)
    s2 = official_step_score(0.5, 0.5, 0.9)
    assert s1 == pytest.approx(0.1 / 3 + 0.6)
    assert s2 == pytest.approx(0.5)
    # Divided by the path length counting the root: 3.
    assert official_path_score([s1, s2]) == pytest.approx((0.1 / 3 + 0.6 + 0.5) / 3)


def test_pruning_keeps_best_and_worst():
    scores = [0.5, 3.0, -1.0, 2.0, 0.0, 1.0]
    # Best 1 (3.0 at index 1) and worst 2 (0.0 at 4, -1.0 at 2), in descending order.
    assert keep_best_and_worst(scores, 1, 2) == [1, 4, 2]
    assert keep_best_and_worst(scores, 2, 2) == [1, 3, 4, 2]
    # The authors prune only from 5 candidates on: with 4 all are kept.
    assert keep_best_and_worst([1.0, 2.0, 3.0, 4.0], 1, 2, prune_from=5) == [3, 2, 1, 0]
    assert keep_best_and_worst([1.0, 2.0, 3.0, 4.0, 5.0], 1, 2, prune_from=5) == [4, 1, 0]


def _node(i, parent, depth, text, beam=0.0, image=0.0, reward=0.0, final=False):
    return SentenceNode(id=i, parent=parent, depth=depth, text=text, response=text, cumulative_beam_score=beam,
                        image_reward=image, cumulative_reward=reward, final=final)


def test_select_paper_takes_highest_and_lowest_cumulative_reward():
    nodes = [
        _node(0, None, 0, ""),
        _node(1, 0, 1, "A red circle.", reward=30.0),
        _node(2, 0, 1, "A dog.", reward=5.0, final=True),
        _node(3, 1, 2, "And a cat.", reward=55.0, final=True),
        _node(4, 1, 2, "And a fork.", reward=41.0, final=True),
    ]
    sel = select_paper(nodes)
    assert (sel.chosen, sel.rejected) == (3, 2)
    assert (sel.chosen_score, sel.rejected_score) == (55.0, 5.0)
    # A single finished response gives no pair.
    assert select_paper(nodes[:3]) is None


def test_select_official_by_hand():
    # Root with three children (one too short, dropped with its subtree); child 1 has two finished children.
    nodes = [
        _node(0, None, 0, ""),
        _node(1, 0, 1, "A red circle.", beam=-0.5, image=20.0),
        _node(2, 0, 1, "A dog on gray.", beam=-0.9, image=25.0, final=True),
        _node(3, 0, 1, "A.", beam=-0.1, image=99.0, final=True),
        _node(4, 1, 2, "And a cat.", beam=-1.0, image=10.0, final=True),
        _node(5, 1, 2, "And a fork.", beam=-1.2, image=30.0, final=True),
    ]
    sel = select_official(nodes, 0.9, 4)
    # Among {1, 2}: rank_T (1: 1/2, 2: 1), rank_I (1: 1, 2: 1/2). Among {4, 5}: rank_T (4: 1/2, 5: 1),
    # rank_I (4: 1, 5: 1/2).
    step1 = 0.1 * 0.5 + 0.9 * 1.0  # node 1
    path_2 = (0.1 * 1.0 + 0.9 * 0.5) / 2
    path_4 = (step1 + 0.1 * 0.5 + 0.9 * 1.0) / 3
    path_5 = (step1 + 0.1 * 1.0 + 0.9 * 0.5) / 3
    expected = sorted([(2, path_2), (4, path_4), (5, path_5)], key=lambda p: p[1])
    assert sel.chosen == expected[0][0] and sel.rejected == expected[-1][0]
    assert sel.chosen_score == pytest.approx(expected[0][1])
    assert sel.rejected_score == pytest.approx(expected[-1][1])


def test_degenerate_text():
    assert is_degenerate("yes yes yes yes yes yes.")
    assert is_degenerate("aaaaaaaaaaa")
    assert is_degenerate("Это кошка.")
    assert is_degenerate("a\nb\nc\nd\ne\nf\ng")
    assert not is_degenerate("A red circle next to a blue square.")
    assert not is_degenerate("yes yes yes yes yes.")  # five repeats are allowed


def test_select_official_matches_the_authors_code():
    data = json.loads((FIXTURES / "official_selection.json").read_text())
    assert len(data["cases"]) == 40
    checked = 0
    for case in data["cases"]:
        nodes = [
            SentenceNode(id=n["id"], parent=n["parent"], depth=0, text=n["text"], response=n["text"],
                         cumulative_beam_score=n["score"], image_reward=n["clip"] or 0.0, final=n["final"])
            for n in case["nodes"]
        ]
        sel = select_official(nodes, case["image_weight"], 4)
        expected = case["expected"]
        if expected is None or expected["chosen"] == expected["rejected"]:
            assert sel is None  # no path, or one path: no pair
            continue
        assert (sel.chosen, sel.rejected) == (expected["chosen"], expected["rejected"])
        assert sel.chosen_score == pytest.approx(expected["chosen_score"])
        assert sel.rejected_score == pytest.approx(expected["rejected_score"])
        checked += 1
    assert checked >= 20
