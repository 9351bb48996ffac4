"""Sentence-level search on a random tiny LLaVA: the prefix cache changes nothing but speed, the diverse beam
search matches transformers' beam search where both exist, and every search yields distinct chosen/rejected."""

import math
from dataclasses import replace

import pytest

from csr_bench.errors import UserError
from csr_bench.improvers.csr.config import SearchConfig


def _search(model, processor, clip, config, seed=0):
    from csr_bench.improvers.csr.search import SentenceSearch

    return SentenceSearch(model, processor, config, clip, seed=seed)


def _trees(results):
    return [[(n.parent, n.text, n.final, n.pruned, round(n.cumulative_reward, 4)) for n in r.nodes] for r in results]


@pytest.mark.parametrize(
    "config",
    [
        SearchConfig(decoding="greedy", candidates=1, beam_groups=1, max_new_tokens=6, max_sentences=3),
        SearchConfig(decoding="diverse_beam", candidates=4, beam_groups=2, diversity_penalty=3.0, max_new_tokens=5,
                     max_sentences=2, keep_best=1, keep_worst=1),
        SearchConfig(decoding="sample", candidates=3, max_new_tokens=5, max_sentences=2, calibration="official"),
    ],
    ids=["greedy", "diverse_beam", "sample"],
)
def test_prefix_cache_gives_the_same_candidates_as_reencoding(loaded, config):
    model, processor, clip, prompts = loaded
    runs = {}
    for cached in (True, False):
        trace: list = []
        results = _search(model, processor, clip, replace(config, prefix_cache=cached)).search_batch(
            prompts, batch_seed=7, trace=trace)
        runs[cached] = (trace, _trees(results))
    (trace_cached, trees_cached), (trace_reencoded, trees_reencoded) = runs[True], runs[False]
    assert len(trace_cached) >= 2  # at least two sentence steps were compared
    assert trace_cached == trace_reencoded  # every step's candidate sentences, prompt by prompt
    assert trees_cached == trees_reencoded


def test_beam_search_matches_transformers(loaded):
    """With one group (no diversity), our beam search is transformers' beam search: same hypotheses and scores."""
    import torch

    model, processor, clip, prompts = loaded
    config = SearchConfig(decoding="diverse_beam", candidates=3, beam_groups=1, diversity_penalty=0.0, max_new_tokens=6)
    searcher = _search(model, processor, clip, config)
    ours = searcher.first_sentences(prompts[:2])
    ids, pixels = searcher._encode_prompts(prompts[:2])
    for i in range(2):
        inputs = {"input_ids": torch.tensor([ids[i]]), "attention_mask": torch.ones(1, len(ids[i]), dtype=torch.long),
                  "pixel_values": pixels[i]}
        with torch.inference_mode():
            out = model.generate(**inputs, do_sample=False, num_beams=3, num_return_sequences=3, max_new_tokens=6,
                                 eos_token_id=searcher.terminators.tolist(), pad_token_id=searcher.pad_id,
                                 length_penalty=1.0, early_stopping=False, output_scores=True, return_dict_in_generate=True)
        generated = out.sequences[:, len(ids[i]):].tolist()
        for cand, seq, score in zip(ours[i], generated, out.sequences_scores.tolist()):
            assert seq[: len(cand.tokens)] == cand.tokens
            assert all(t == searcher.pad_id for t in seq[len(cand.tokens):])
            assert cand.beam_score == pytest.approx(score, abs=1e-4)


def test_diverse_groups_start_differently(loaded):
    model, processor, clip, prompts = loaded
    config = SearchConfig(decoding="diverse_beam", candidates=5, beam_groups=5, diversity_penalty=100.0, max_new_tokens=4)
    for cands in _search(model, processor, clip, config).first_sentences(prompts):
        firsts = [c.tokens[0] for c in cands]
        # Each group is penalised for the earlier groups' tokens, so with a huge penalty the first tokens differ
        # (except hypotheses that ended at once, which are not live beams).
        live = [f for c, f in zip(cands, firsts) if len(c.tokens) > 1]
        assert len(set(live)) == len(live)


@pytest.mark.parametrize("calibration", ["paper", "official"])
def test_search_yields_distinct_chosen_and_rejected(loaded, calibration):
    from csr_bench.improvers.csr.pairs import response_of

    model, processor, clip, prompts = loaded
    config = SearchConfig(calibration=calibration, decoding="diverse_beam", candidates=4, beam_groups=4,
                          max_new_tokens=5, max_sentences=2, min_sentence_chars=0)
    results = _search(model, processor, clip, config).run(prompts)
    assert len(results) == len(prompts)
    selected = [r for r in results if r.selection is not None]
    assert selected
    for r in selected:
        chosen, rejected = r.nodes[r.selection.chosen], r.nodes[r.selection.rejected]
        assert chosen.final and rejected.final and chosen.id != rejected.id
        assert response_of(r.nodes, chosen.id) != response_of(r.nodes, rejected.id)
        if calibration == "paper":
            assert r.selection.chosen_score >= max(n.cumulative_reward for n in r.nodes if n.final) - 1e-9
            assert r.selection.rejected_score <= min(n.cumulative_reward for n in r.nodes if n.final) + 1e-9
            # The paper's reward: λ·R_I + (1−λ)·R_T with R_I = max(100·cos, 0), R_T = exp(sum of log-probs).
            for n in r.nodes[1:]:
                if n.text:
                    assert n.image_reward == pytest.approx(max(100 * n.clip_cosine, 0.0))
                    assert n.text_reward == pytest.approx(math.exp(n.logprob))
                    assert n.reward == pytest.approx(0.9 * n.image_reward + 0.1 * n.text_reward)
        else:
            assert r.selection.chosen_score < r.selection.rejected_score  # the official chosen has the lowest score


def test_search_needs_a_chat_template(loaded):
    from csr_bench.improvers.csr.search import SentenceSearch

    model, processor, clip, _ = loaded
    template = processor.chat_template
    processor.chat_template = None
    try:
        with pytest.raises(UserError, match="no chat template"):
            SentenceSearch(model, processor, SearchConfig(), clip)
    finally:
        processor.chat_template = template


def test_model_without_chat_template_is_refused(tiny_assets, tmp_path):
    import shutil

    from csr_bench.improvers.csr.improver import load_model

    folder = tmp_path / "no-template"
    shutil.copytree(tiny_assets["llava"], folder)
    for name in ("chat_template.jinja", "chat_template.json"):
        (folder / name).unlink(missing_ok=True)
    proc_cfg = folder / "processor_config.json"
    if proc_cfg.exists():
        import json

        data = json.loads(proc_cfg.read_text())
        data.pop("chat_template", None)
        proc_cfg.write_text(json.dumps(data))
    with pytest.raises(UserError, match="chat template"):
        load_model(str(folder), dtype="float32", device="cpu")


def test_clip_that_cannot_be_loaded(tmp_path):
    from csr_bench.improvers.csr.clip import load_clip_scorer

    broken = tmp_path / "clip"
    broken.mkdir()
    (broken / "open_clip_config.json").write_text("{\"model_cfg\": {\"embed_dim\": 4}}")
    (broken / "open_clip_model.safetensors").write_bytes(b"not weights")
    (broken / "tokenizer.json").write_text("{}")
    with pytest.raises(UserError) as e:
        load_clip_scorer(str(broken))
    assert "\n" not in str(e.value) and "clip" in str(e.value)
    with pytest.raises(UserError, match="cannot load the CLIP checkpoint"):
        load_clip_scorer(str(tmp_path / "missing-clip"))
    (tmp_path / "file.bin").write_bytes(b"x")
    with pytest.raises(UserError, match="found a file"):
        load_clip_scorer(str(tmp_path / "file.bin"))
