"""Reward arithmetic of CSR's two calibrations, on plain numbers (no torch; tested on hand-computed cases).

paper (arXiv 2405.14622, §3.1):
    R_T(s) = Π_t p(token_t | image, instruction, previous tokens)      (the product of the token probabilities)
    R_I(s) = max(100 · cos(CLIP image embedding, CLIP sentence embedding), 0)
    R(s)   = λ · R_I(s) + (1 − λ) · R_T(s)
    R(response) = Σ over its sentences of R(s)

official (github.com/YiyangZhou/CSR, inference_csr/utils.py Rank_Node.calculate_ranks and construct.py dfs):
    among the children of one node, sorted by a score with the highest first (ties keep their order), the
    child at position i (0-based) of n gets rank (i + 1) / n, so the best child has the smallest rank;
    rank_T ranks by the cumulative beam score, rank_I by the CLIP logit (logit_scale · cos, no clamp);
    a path from the root to a finished sentence scores Σ ((1 − λ)·rank_T + λ·rank_I) / (its sentences + 1);
    the chosen response has the lowest path score and the rejected one the highest.
"""

from __future__ import annotations

import math
from typing import Sequence


def paper_image_reward(cosine: float) -> float:
    """R_I of the paper: 100 · cos, clamped at 0 (CLIPScore without its 2.5 weight)."""
    return max(100.0 * cosine, 0.0)


def official_image_reward(cosine: float, logit_scale: float) -> float:
    """The authors' CLIP score: `logits_per_image` = logit_scale · cos (100 · cos for OpenAI CLIP), no clamp."""
    return logit_scale * cosine


def paper_text_reward(token_logprob_sum: float) -> float:
    """R_T of the paper: the product of the sentence's token probabilities, from their summed log-probabilities."""
    return math.exp(token_logprob_sum)


def sentence_reward(image_reward: float, text_reward: float, image_weight: float) -> float:
    """R = λ · R_I + (1 − λ) · R_T (λ = `image_weight`)."""
    return image_weight * image_reward + (1.0 - image_weight) * text_reward


def response_reward(sentence_rewards: Sequence[float]) -> float:
    """The paper's cumulative reward of a response: the sum of its sentence rewards."""
    return float(sum(sentence_rewards))


def sibling_ranks(scores: Sequence[float]) -> list[float]:
    """Official ranks among siblings: sort by score, highest first (stable), position i of n -> (i + 1) / n."""
    n = len(scores)
    order = sorted(range(n), key=lambda i: scores[i], reverse=True)  # sorted() is stable with reverse=True too
    ranks = [0.0] * n
    for position, i in enumerate(order):
        ranks[i] = (position + 1) / n
    return ranks


def official_step_score(text_rank: float, image_rank: float, image_weight: float) -> float:
    """One sentence's contribution to an official path score: (1 − λ)·rank_T + λ·rank_I."""
    return (1.0 - image_weight) * text_rank + image_weight * image_rank


def official_path_score(step_scores: Sequence[float]) -> float:
    """Σ step scores / path length, the length counting the root (the prompt) as the authors' dfs does."""
    return float(sum(step_scores)) / (len(step_scores) + 1)


def keep_best_and_worst(scores: Sequence[float], keep_best: int, keep_worst: int, *, prune_from: int | None = None) -> list[int]:
    """Indices kept by pruning: the `keep_best` highest and `keep_worst` lowest scores (ties keep their order).

    Pruning happens only with at least `prune_from` candidates (default keep_best + keep_worst + 1); with
    fewer all are kept. The authors' sample.py prunes from its sentence-level beam count (5) on, keeping the
    best 1 and worst 2. Returns the kept indices in order of descending score.
    """
    n = len(scores)
    order = sorted(range(n), key=lambda i: scores[i], reverse=True)
    threshold = keep_best + keep_worst + 1 if prune_from is None else prune_from
    if n < threshold or n <= keep_best + keep_worst:
        return order
    return order[:keep_best] + (order[n - keep_worst :] if keep_worst else [])
