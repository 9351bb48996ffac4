"""Search trees and preference pairs: the sentence nodes a search grows, how each calibration picks the chosen
and rejected responses from them, and the JSON Lines files an iteration writes. No torch here.

A search tree per prompt: node 0 is the prompt (the root); every other node is one sentence appended to its
parent's partial response. A node is `final` when its response ended (end of sequence, the sentence limit or
the character limit); `pruned` nodes were cut by the search and were not continued.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from csr_bench.core.files import atomic_write_text, read_append_log, read_jsonl
from csr_bench.errors import UserError
from csr_bench.improvers.csr.rewards import official_path_score, official_step_score, sibling_ranks


@dataclass
class SentenceNode:
    id: int
    parent: int | None  # None for the root
    depth: int  # sentences in the response so far (0 for the root)
    text: str = ""  # this sentence, decoded and stripped
    response: str = ""  # the whole response up to and including this sentence
    tokens: list[int] = field(default_factory=list)  # this sentence's token ids (with its terminator)
    beam_score: float = 0.0  # length-normalised token-level score (diverse beam: with the diversity penalty)
    logprob: float = 0.0  # sum of the model's log-probabilities of the sentence's tokens
    cumulative_beam_score: float = 0.0  # sum of beam scores along the path (the authors' pruning score)
    clip_cosine: float = 0.0
    image_reward: float = 0.0  # R_I under the run's calibration
    text_reward: float = 0.0  # R_T under the run's calibration (paper: the product of token probabilities)
    reward: float = 0.0  # λ·R_I + (1−λ)·R_T
    cumulative_reward: float = 0.0  # sum of rewards along the path (the paper's response reward)
    ended_by: str = ""  # "sentence_end", "eos" or "length" (max_new_tokens)
    final: bool = False
    pruned: bool = False


@dataclass(frozen=True)
class PreferencePair:
    id: str
    image: str  # absolute path
    prompt: str
    chosen: str
    rejected: str
    chosen_score: float
    rejected_score: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, allow_nan=False)


@dataclass(frozen=True)
class Selection:
    chosen: int  # node id of the chosen response's last sentence
    rejected: int
    chosen_score: float
    rejected_score: float


def _children(nodes: Sequence[SentenceNode]) -> dict[int, list[SentenceNode]]:
    out: dict[int, list[SentenceNode]] = {n.id: [] for n in nodes}
    for n in nodes:
        if n.parent is not None:
            out[n.parent].append(n)
    return out


def select_paper(nodes: Sequence[SentenceNode]) -> Selection | None:
    """Highest and lowest cumulative reward among finished responses (first one on ties, in node order)."""
    finals = [n for n in nodes if n.final]
    if len(finals) < 2:
        return None
    best = max(finals, key=lambda n: n.cumulative_reward)
    worst = min(finals, key=lambda n: n.cumulative_reward)
    if best.id == worst.id:
        return None
    return Selection(best.id, worst.id, best.cumulative_reward, worst.cumulative_reward)


# Text the authors' clean_tree drops with its subtree: Hangul, Cyrillic or Kana letters, repeated "&nbsp;", a
# word said six times in a row, a character repeated eleven times, ten quotes in a row, more than five line
# breaks. (Their emoji test never fires: their clean_text strips emoji before it runs.)
_OTHER_SCRIPTS = re.compile(r"[\u3130-\u318F\uAC00-\uD7AF\u0400-\u04FF\u3040-\u309F\u30A0-\u30FF]")
_REPEATED_WORD = re.compile(r"(\b\w+\b)(?:\s+\1){5,}")
_REPEATED_CHAR = re.compile(r"(.)(?:\s*\1){10}")


def is_degenerate(text: str) -> bool:
    return bool(
        _OTHER_SCRIPTS.search(text)
        or "&nbsp;&nbsp;" in text
        or _REPEATED_WORD.search(text)
        or _REPEATED_CHAR.search(text)
        or "'" * 10 in text
        or text.count("\n") > 5
    )


def _is_end_of_response(node: SentenceNode) -> bool:
    """The end of sequence alone: it ends the response and carries no text to filter."""
    return node.final and node.ended_by == "eos" and not node.text


def select_official(nodes: Sequence[SentenceNode], image_weight: float, min_sentence_chars: int) -> Selection | None:
    """The authors' construct.py on a searched tree.

    Sentences shorter than `min_sentence_chars` or degenerate are dropped with their subtrees (score.py,
    clean_tree), except an end of sequence alone, which ends its response (the authors' decoder does not stop
    there, so their last sentences carry whatever it generated after it); among the remaining children of each node, rank_T ranks by cumulative beam score and rank_I
    by CLIP score; each finished path scores Σ ((1−λ)·rank_T + λ·rank_I) / (sentences + 1). Paths are sorted
    by score (stable, depth-first order): the first is chosen, the last rejected.
    """
    children = _children(nodes)
    root = next(n for n in nodes if n.parent is None)
    paths: list[tuple[int, float]] = []

    def visit(node: SentenceNode, steps: list[float]) -> None:
        kept = [c for c in children[node.id] if _is_end_of_response(c)
                or (len(c.text) >= min_sentence_chars and not is_degenerate(c.text))]
        if not kept:
            return
        text_ranks = sibling_ranks([c.cumulative_beam_score for c in kept])
        image_ranks = sibling_ranks([c.image_reward for c in kept])
        for child, rt, ri in zip(kept, text_ranks, image_ranks):
            path = steps + [official_step_score(rt, ri, image_weight)]
            if child.final:
                paths.append((child.id, official_path_score(path)))
            else:
                visit(child, path)

    visit(root, [])
    if len(paths) < 2:
        return None
    ordered = sorted(paths, key=lambda p: p[1])
    (chosen, chosen_score), (rejected, rejected_score) = ordered[0], ordered[-1]
    if chosen == rejected:
        return None
    return Selection(chosen, rejected, chosen_score, rejected_score)


def response_of(nodes: Sequence[SentenceNode], node_id: int) -> str:
    return next(n for n in nodes if n.id == node_id).response


# --------------------------------------------------------------------------------------------- files


def write_pairs(path: str | os.PathLike, pairs: Iterable[PreferencePair]) -> None:
    atomic_write_text(path, "".join(p.to_json() + "\n" for p in pairs))


def read_pairs(path: str | os.PathLike) -> list[PreferencePair]:
    out = []
    for lineno, obj in read_jsonl(path, "preference pairs"):
        try:
            out.append(PreferencePair(**obj))
        except TypeError:
            raise UserError(f"{path}:{lineno}: expected the keys {', '.join(PreferencePair.__dataclass_fields__)}") from None
    return out


def tree_to_json(prompt_id: str, image: str, prompt: str, nodes: Sequence[SentenceNode],
                 selection: Selection | None) -> dict[str, Any]:
    return {
        "id": prompt_id,
        "image": image,
        "prompt": prompt,
        "chosen": selection.chosen if selection else None,
        "rejected": selection.rejected if selection else None,
        "chosen_score": selection.chosen_score if selection else None,
        "rejected_score": selection.rejected_score if selection else None,
        "nodes": [asdict(n) for n in nodes],
    }


def pair_from_tree(tree: dict[str, Any]) -> PreferencePair | None:
    """The preference pair a search tree (as written to search.jsonl) yields, or None when it yields none.

    None when no chosen/rejected pair was selected, or when the two responses are identical or one is empty.
    Pairs are always built from the tree lines (never from the search's objects), so an iteration resumed
    from search.jsonl trains on exactly the pairs an uninterrupted one does.
    """
    if tree.get("chosen") is None or tree.get("rejected") is None:
        return None
    responses = {n["id"]: n["response"] for n in tree["nodes"]}
    chosen, rejected = responses[tree["chosen"]], responses[tree["rejected"]]
    if chosen == rejected or not chosen or not rejected:
        return None
    return PreferencePair(tree["id"], tree["image"], tree["prompt"], chosen, rejected,
                          tree["chosen_score"], tree["rejected_score"])


def append_trees(path: str | os.PathLike, trees: Iterable[dict[str, Any]]) -> None:
    """Append search trees to a search log and fsync it: what is on disk survives a kill of the process.

    One write per call, so a kill leaves whole lines plus at most one torn last line, which
    `read_search_log` drops.
    """
    text = "".join(json.dumps(t, ensure_ascii=False, allow_nan=False) + "\n" for t in trees)
    if not text:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def read_search_log(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The trees of a search log (search.jsonl) by prompt id, in file order; {} when there is none.

    A torn last line (no final newline: the process was killed while appending it) is cut off the file, so
    the next append starts on a fresh line. Any other malformed line, or a prompt id seen twice, is a
    UserError: the log is not one this code wrote.
    """
    p = Path(path)
    trees: dict[str, dict[str, Any]] = {}
    for lineno, line in read_append_log(p, repair=True, hint="; delete the file to search this iteration again"):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{p}:{lineno}: malformed JSON ({e.msg}); delete the file to search this iteration again") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or not isinstance(obj.get("nodes"), list):
            raise UserError(f"{p}:{lineno}: expected a search tree with \"id\" and \"nodes\"")
        if obj["id"] in trees:
            raise UserError(f"{p}:{lineno}: prompt id {obj['id']!r} appears twice; delete the file to search this iteration again")
        trees[obj["id"]] = obj
    return trees
