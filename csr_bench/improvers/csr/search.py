"""Sentence-level search: grow responses sentence by sentence, score each sentence, keep the best and worst.

For each prompt (an image and an instruction) the search keeps a set of partial responses. At each step every
partial response gets `candidates` next sentences from a token-level decoder (diverse beam search as in the
authors' code, sampling, or greedy), each sentence ending at a token that decodes to `sentence_end` or at the
model's end of sequence. Each new sentence is scored (the model's own likelihood and its CLIP relevance to the
image); finished responses are set aside and the other partial responses are pruned to the best `keep_best`
and worst `keep_worst` (by cumulative reward under `paper`, by cumulative beam score under `official`). The
search ends when no partial response is left. A candidate that is the end of sequence alone ends its parent's
response and scores 0 (it has no text to score).

Efficiency (benchmarks/speed/csr_search.py measures it):
- Prefix cache: the key-value cache of each partial response (image, instruction, sentences so far) is kept,
  so a step encodes only the new sentences, never the shared prefix again. With `prefix_cache = false` each
  step re-encodes every prefix from its tokens instead, as the authors' code does; the two give the same
  candidates.
- Shared prefix across candidates: the `candidates` continuations of one partial response are decoded in one
  batch row that holds the prefix once; each step's tokens of all candidates enter that row together, and a
  4-D attention mask lets each token see the prefix and its own candidate's earlier tokens only
  (`_SharedPrefixDecoder`). Cache layers have room for the new tokens, so a step writes in place instead of
  copying the whole cache (transformers' DynamicLayer concatenates at every token).
- All partial responses of all prompts of a batch expand together (left-padded rows, explicit positions),
  and all sentences of a step are scored by CLIP in one batched call (each distinct text encoded once).

Diverse beam search. transformers 4.43+ broke group beam search for LLaVA (transformers issue #32234) and
transformers 5 moved it out of the library to a hub `custom_generate` repository, which an offline machine
cannot load. `_diverse_beam` re-implements transformers' group beam search (HammingDiversityLogitsProcessor and
BeamSearchScorer as of 4.40): beams split into groups; group g's log-probabilities are lowered by
diversity_penalty × (how often each token was just chosen by groups 0..g−1 for the same partial response);
within a group, ordinary beam search with length-normalised finished hypotheses (length penalty 1, early
stopping off), over max(2, 1 + number of terminators) × group size candidates. The returned score of a
hypothesis is its summed processed log-probabilities / its length, as `sequences_scores`. With one group it
gives transformers' own beam search results (tests/improvers/test_search.py checks this).

Differences from the authors' sample.py, on purpose: their token-level end is only the period token, so a
beam that emits the end of sequence keeps generating after it; here the end of sequence also ends the
sentence (and the response). Their 1024-character limit counts the whole decoded sequence including the
system prompt and instruction; here it counts the response. The image placeholder token is never generated.
The language model must use 1-D positions (LLaVA-1.5 and the tiny LLaVA do; models with multimodal rotary
positions such as Qwen2-VL do not).
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Collection, Sequence

from csr_bench.errors import UserError
from csr_bench.improvers.base import NullProgress, Progress, PromptRecord
from csr_bench.improvers.csr.config import SearchConfig
from csr_bench.improvers.csr.pairs import SentenceNode, Selection, select_official, select_paper
from csr_bench.improvers.csr.rewards import (
    keep_best_and_worst,
    official_image_reward,
    paper_image_reward,
    paper_text_reward,
    sentence_reward,
)


@dataclass
class Candidate:
    """One sentence proposed by the token-level decoder for one partial response."""

    tokens: list[int]  # including the terminator when it ended on one
    beam_score: float  # length-normalised score (diverse beam: processed log-probs; sampling: raw log-probs)
    logprob: float  # summed raw log-probabilities
    ended_by: str  # "sentence_end", "eos" or "length"


@dataclass
class SearchResult:
    prompt: PromptRecord
    nodes: list[SentenceNode]
    selection: Selection | None


@dataclass
class _Prefix:
    """A partial response's state: its full token ids and (with the prefix cache) its key-value cache."""

    prompt_index: int
    ids: list[int]  # prompt tokens (image tokens expanded) + the sentences' tokens
    kv: list[tuple[Any, Any]] | None = None  # per layer (keys, values) of shape (1, heads, len, dim)
    next_logits: Any = None  # (vocab,) logits of the token after `ids`


class _Hypotheses:
    """Finished hypotheses of one beam group (transformers' BeamHypotheses, length penalty 1)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.items: list[tuple[float, list[int], float, str]] = []  # (score, tokens, raw logprob, ended_by)
        self.worst = 1e9

    def add(self, score: float, tokens: list[int], raw: float, ended_by: str) -> None:
        if len(self.items) < self.capacity or score > self.worst:
            self.items.append((score, tokens, raw, ended_by))
            if len(self.items) > self.capacity:
                ranked = sorted((s, i) for i, (s, *_rest) in enumerate(self.items))
                del self.items[ranked[0][1]]
                self.worst = ranked[1][0]
            else:
                self.worst = min(score, self.worst)

    def is_done(self, best_running: float, generated: int) -> bool:
        if len(self.items) < self.capacity:
            return False
        return self.worst >= best_running / generated


def _cache_kwarg(model) -> str:
    """transformers 5 calls the cache argument `cache`; earlier versions `past_key_values`."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _layers_of(cache) -> list[tuple[Any, Any]]:
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    return list(zip(cache.key_cache, cache.value_cache))  # transformers 4.x


def _make_cache(layers: list[tuple[Any, Any]]):
    from transformers import DynamicCache

    if hasattr(DynamicCache, "from_legacy_cache"):
        return DynamicCache.from_legacy_cache(tuple(layers))
    return DynamicCache(ddp_cache_data=layers)


@functools.lru_cache(maxsize=1)
def _buffer_layer_class():
    """A cache layer that writes each token into preallocated room (None before transformers 5).

    transformers' DynamicLayer concatenates at every token, copying the whole cache each time; with a
    576-token image prefix and 25 rows per prompt that copy, not the model, is what a token step costs.
    """
    try:
        from transformers.cache_utils import DynamicLayer
    except ImportError:  # transformers 4.x: no per-layer cache objects
        return None

    class BufferLayer(DynamicLayer):
        def fill(self, keys, values, length: int) -> None:
            self._keys, self._values, self.length = keys, values, length
            self.is_initialized = True
            self.dtype, self.device = keys.dtype, keys.device
            self._view()

        def _view(self) -> None:
            self.keys = self._keys[:, :, : self.length]
            self.values = self._values[:, :, : self.length]

        def update(self, key_states, value_states, *args, **kwargs):
            import torch

            end = self.length + key_states.shape[-2]
            if end > self._keys.shape[-2]:  # out of room: grow (does not happen within max_new_tokens)
                grow = end - self._keys.shape[-2]
                pad = lambda t: torch.cat([t, t.new_empty(*t.shape[:2], grow, t.shape[-1])], dim=-2)  # noqa: E731
                self._keys, self._values = pad(self._keys), pad(self._values)
            self._keys[:, :, self.length : end] = key_states
            self._values[:, :, self.length : end] = value_states
            self.length = end
            self._view()
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.length

    return BufferLayer


class _SharedPrefixDecoder:
    """Token-level decoding of `rows` candidates per prefix, all reading one copy of the prefix's cache.

    Each prefix is one batch row. At every step the `rows` candidates' new tokens enter that row together
    (so the row's cache holds the prefix once, then `rows` slots per step), and a 4-D attention mask lets
    each candidate's token see the prefix and only its own earlier tokens. Nothing of the prefix is copied or
    re-read per candidate; a beam that continues another beam's hypothesis just changes which earlier slots
    it sees. Positions are the prefix length plus the step, as in ordinary decoding, so the outputs are those
    of decoding each candidate on its own.
    """

    def __init__(self, search: "SentenceSearch", layers, prefix_mask, lengths, rows: int):
        import torch

        self.search = search
        self.rows = rows
        self.prefix_mask = prefix_mask.bool()  # (prefixes, width): False on left padding
        self.lengths = lengths  # (prefixes,) true prefix lengths
        n = prefix_mask.shape[0]
        room = rows * search.config.max_new_tokens
        layer_class = _buffer_layer_class()
        if layer_class is None:  # transformers 4.x: a DynamicCache that concatenates
            self.layers: list | None = list(layers)
        else:
            from transformers.cache_utils import Cache

            self.layers = None
            built = []
            for k, v in layers:
                buffers = []
                for t in (k, v):
                    buf = t.new_empty(t.shape[0], t.shape[1], t.shape[2] + room, t.shape[3])
                    buf[:, :, : t.shape[2]] = t
                    buffers.append(buf)
                layer = layer_class()
                layer.fill(buffers[0], buffers[1], k.shape[2])
                built.append(layer)
            self.cache = Cache(layers=built)
        # sees[p, r, s, q]: candidate r of prefix p sees the token in slot q of step s.
        self.sees = torch.zeros((n, rows, 0, rows), dtype=torch.bool, device=prefix_mask.device)
        self.step = 0

    def follow(self, source) -> None:
        """Candidate r now continues candidate source[p, r]'s tokens (beam search); (prefixes, rows) indices."""
        import torch

        index = source[:, :, None, None].expand(-1, -1, self.sees.shape[2], self.rows)
        self.sees = torch.gather(self.sees, 1, index)

    def feed(self, tokens):
        """Feed each candidate's next token ((prefixes, rows)); returns next-token logits (prefixes * rows, vocab)."""
        import torch

        n, rows = tokens.shape
        own = torch.eye(rows, dtype=torch.bool, device=tokens.device).expand(n, rows, rows)
        self.sees = torch.cat([self.sees, own[:, :, None, :]], dim=2)
        seen_slots = self.sees.reshape(n, rows, -1)
        prefix = self.prefix_mask[:, None, :].expand(n, rows, self.prefix_mask.shape[1])
        mask = torch.cat([prefix, seen_slots], dim=2)[:, None]  # (prefixes, 1, rows, width + rows * steps)
        positions = (self.lengths + self.step)[:, None].expand(n, rows)
        cache = self.cache if self.layers is None else _make_cache(self.layers)
        hidden, returned = self.search._forward(tokens, mask, positions, cache=cache)
        if self.layers is not None:
            self.layers = _layers_of(returned)
        self.step += 1
        return self.search.head(hidden).float().reshape(n * rows, -1)


class SentenceSearch:
    """The search over one model (kept in eval mode) and one CLIP scorer."""

    def __init__(self, model, processor, config: SearchConfig, clip, *, seed: int = 0):
        import torch

        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.config = config
        self.clip = clip
        self.seed = seed
        self.device = next(model.parameters()).device
        if not getattr(processor, "chat_template", None):
            raise UserError("the model's processor has no chat template (expected chat_template.jinja or .json)")
        self.body = model.base_model
        self.head = model.get_output_embeddings()
        self._cache_kw = _cache_kwarg(self.body)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        eos = set()
        for source in (self.tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
            if isinstance(source, int):
                eos.add(source)
            elif source:
                eos.update(int(x) for x in source)
        self.eos_ids = sorted(eos)
        self.end_ids = self._sentence_end_ids(config.sentence_end)
        if not self.end_ids:
            raise UserError(f"search.sentence_end {config.sentence_end!r}: no token of the model's vocabulary decodes to it")
        self.terminators = torch.tensor(sorted(set(self.end_ids) | set(self.eos_ids)), device=self.device)
        # The image placeholder token is never a valid output (re-encoding it would ask for another image).
        banned = {getattr(model.config, name, None) for name in ("image_token_id", "image_token_index")}
        self.banned_ids = torch.tensor(sorted(i for i in banned if isinstance(i, int)), dtype=torch.long, device=self.device)

    def _sentence_end_ids(self, end: str) -> list[int]:
        """Token ids that decode (stripped) to exactly `end`, e.g. the period tokens ("." and "▁.")."""
        special = set(self.tokenizer.all_special_ids)
        out = []
        for token, token_id in self.tokenizer.get_vocab().items():
            if token_id in special or end not in self.tokenizer.convert_tokens_to_string([token]):
                continue
            if self.tokenizer.decode([token_id]).strip() == end:
                out.append(token_id)
        return sorted(out)

    # --------------------------------------------------------------------------------------- encoding

    def _encode_prompts(self, prompts: Sequence[PromptRecord]):
        """Token ids (image tokens expanded) and pixel values of each prompt, rendered as the hf adapter does."""
        from csr_bench.core.types import ImagePart, Message
        from csr_bench.models.hf import _load_image, adds_special_tokens, render_prompt

        ids, pixels = [], []
        for p in prompts:
            text, _ = render_prompt(self.processor, [Message.user(ImagePart(p.image), p.prompt)])
            enc = self.processor(text=[text], images=[_load_image(p.image)], return_tensors="pt",
                                 add_special_tokens=adds_special_tokens(self.tokenizer, text))
            ids.append(enc["input_ids"][0].tolist())
            pixels.append(enc["pixel_values"])
        return ids, pixels

    def _forward(self, input_ids, attention_mask, position_ids, cache=None, pixel_values=None):
        """Hidden states of the language model for new tokens, and the updated cache."""
        kwargs = {self._cache_kw: cache} if cache is not None else {}
        if pixel_values is not None:
            kwargs["pixel_values"] = pixel_values
        out = self.body(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                        use_cache=True, **kwargs)
        new_cache = out.cache if hasattr(out, "cache") and out.cache is not None else out.past_key_values
        return out.last_hidden_state, new_cache

    def _encode_full(self, prefixes: Sequence[_Prefix], pixels: Sequence[Any]):
        """Encode whole prefixes (image + prompt + sentences) from scratch, left-padded in one batch.

        Returns (per-layer key/value tensors, attention mask, next positions, next-token logits).
        """
        import torch

        width = max(len(p.ids) for p in prefixes)
        ids = torch.full((len(prefixes), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prefixes), width), dtype=torch.long)
        for row, p in enumerate(prefixes):
            ids[row, width - len(p.ids):] = torch.tensor(p.ids)
            mask[row, width - len(p.ids):] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        pixel_values = torch.cat([pixels[p.prompt_index] for p in prefixes]).to(self.device, self.model.dtype)
        hidden, cache = self._forward(ids, mask, positions, pixel_values=pixel_values)
        logits = self.head(hidden[:, -1]).float()
        lengths = torch.tensor([len(p.ids) for p in prefixes], device=self.device)
        return _layers_of(cache), mask, lengths, logits

    def _stack_cached(self, prefixes: Sequence[_Prefix]):
        """The prefixes' own caches, left-padded to one batch (nothing is re-encoded)."""
        import torch

        width = max(len(p.ids) for p in prefixes)
        n_layers = len(prefixes[0].kv)
        layers = []
        for layer in range(n_layers):
            keys, values = [], []
            for p in prefixes:
                k, v = p.kv[layer]
                pad = width - k.shape[-2]
                keys.append(torch.nn.functional.pad(k, (0, 0, pad, 0)) if pad else k)
                values.append(torch.nn.functional.pad(v, (0, 0, pad, 0)) if pad else v)
            layers.append((torch.cat(keys), torch.cat(values)))
        mask = torch.zeros((len(prefixes), width), dtype=torch.long, device=self.device)
        for row, p in enumerate(prefixes):
            mask[row, width - len(p.ids):] = 1
        lengths = torch.tensor([len(p.ids) for p in prefixes], device=self.device)
        logits = torch.stack([p.next_logits for p in prefixes])
        return layers, mask, lengths, logits

    def _split_rows(self, layers, mask, rows: Sequence[int]) -> list[list[tuple[Any, Any]]]:
        """Per row of a left-padded batch: its own key/value tensors without the padding."""
        out = []
        for row in rows:
            start = int((mask[row] == 0).sum())  # left padding, then the row's tokens (right padding cut below)
            out.append([(k[row : row + 1, :, start:], v[row : row + 1, :, start:]) for k, v in layers])
        return out

    def _prime(self, prefixes: list[_Prefix], pixels) -> None:
        """Cache of each prompt (the first prefixes): one batched encoding with the images."""
        layers, mask, _, logits = self._encode_full(prefixes, pixels)
        for p, kv, row_logits in zip(prefixes, self._split_rows(layers, mask, range(len(prefixes))), logits):
            p.kv, p.next_logits = kv, row_logits

    def _extend(self, parents: Sequence[_Prefix], sentences: Sequence[list[int]]) -> list[_Prefix]:
        """Children prefixes: each parent's cache plus its new sentence, encoded in one batch."""
        import torch

        layers, mask, lengths, _ = self._stack_cached(parents)
        width = max(len(s) for s in sentences)
        ids = torch.full((len(parents), width), self.pad_id, dtype=torch.long, device=self.device)
        new_mask = torch.zeros((len(parents), width), dtype=torch.long, device=self.device)
        for row, s in enumerate(sentences):
            ids[row, : len(s)] = torch.tensor(s, device=self.device)
            new_mask[row, : len(s)] = 1
        full_mask = torch.cat([mask, new_mask], dim=1)
        positions = lengths[:, None] + torch.arange(width, device=self.device)[None]
        hidden, cache = self._forward(ids, full_mask, positions, cache=_make_cache(layers))
        last = torch.tensor([len(s) - 1 for s in sentences], device=self.device)
        logits = self.head(hidden[torch.arange(len(parents), device=self.device), last]).float()
        out_layers = _layers_of(cache)
        children = []
        for row, (p, s) in enumerate(zip(parents, sentences)):
            start = int((mask[row] == 0).sum())
            end = mask.shape[1] + len(s)  # the row's right padding is dropped
            kv = [(k[row : row + 1, :, start:end], v[row : row + 1, :, start:end]) for k, v in out_layers]
            children.append(_Prefix(p.prompt_index, p.ids + s, kv, logits[row]))
        return children

    # ---------------------------------------------------------------------------------- token decoding

    def expand(self, prefixes: Sequence[_Prefix], pixels, *, step_seed: int = 0) -> list[list[Candidate]]:
        """Candidate next sentences for each prefix, from its cache (or re-encoded when prefix_cache is off)."""
        import torch

        if self.config.prefix_cache:
            layers, mask, lengths, logits = self._stack_cached(prefixes)
        else:
            layers, mask, lengths, logits = self._encode_full(prefixes, pixels)
        rows = self.config.candidates
        decoder = _SharedPrefixDecoder(self, layers, mask, lengths, rows)
        logits = logits.repeat_interleave(rows, 0)
        with torch.inference_mode():
            if self.config.decoding == "diverse_beam":
                return self._diverse_beam(decoder, logits, len(prefixes))
            return self._sample(decoder, logits, len(prefixes), step_seed)

    def _ended_by(self, token: int) -> str:
        return "eos" if token in self.eos_ids else "sentence_end"

    def _diverse_beam(self, decoder: _SharedPrefixDecoder, logits, n_prefixes: int) -> list[list[Candidate]]:
        import torch

        cfg = self.config
        beams, groups = cfg.candidates, cfg.beam_groups
        size = beams // groups  # beams per group
        vocab = logits.shape[-1]
        n_terminators = len(self.terminators)
        top_k = max(2, 1 + n_terminators) * size
        dev = self.device
        beam_scores = torch.full((n_prefixes, beams), -1e9, device=dev)
        beam_scores[:, ::size] = 0.0  # one live beam per group at the start, as transformers does
        raw_scores = torch.zeros((n_prefixes, beams), device=dev)
        seqs = torch.zeros((n_prefixes * beams, 0), dtype=torch.long, device=dev)
        done = torch.zeros((n_prefixes, groups), dtype=torch.bool, device=dev)
        hyps = [[_Hypotheses(size) for _ in range(groups)] for _ in range(n_prefixes)]
        row_base = (torch.arange(n_prefixes, device=dev) * beams)[:, None]
        own_beam = torch.arange(beams, device=dev).expand(n_prefixes, beams)
        rank = torch.arange(top_k, device=dev)[None]
        generated = 0
        for step in range(cfg.max_new_tokens):
            generated = step + 1  # tokens each hypothesis has once this step's token is added
            logp = torch.log_softmax(logits, dim=-1)
            logp[:, self.banned_ids] = float("-inf")
            logp = logp.view(n_prefixes, beams, vocab)
            current = torch.full((n_prefixes, beams), self.pad_id, dtype=torch.long, device=dev)
            source = torch.arange(beams, device=dev).expand(n_prefixes, beams).clone()
            new_scores, new_raw = beam_scores.clone(), raw_scores.clone()
            for g in range(groups):
                lo, hi = g * size, (g + 1) * size
                group_logp = logp[:, lo:hi]
                processed = group_logp
                if g and cfg.diversity_penalty:
                    counts = torch.zeros((n_prefixes, vocab), device=dev)
                    counts.scatter_add_(1, current[:, :lo], torch.ones_like(current[:, :lo], dtype=counts.dtype))
                    processed = group_logp - cfg.diversity_penalty * counts[:, None, :]
                totals = (processed + beam_scores[:, lo:hi, None]).reshape(n_prefixes, size * vocab)
                top_scores, top_ids = totals.topk(top_k, dim=1)
                src, tok = top_ids // vocab, top_ids % vocab
                is_term = torch.isin(tok, self.terminators)
                raw_tok = group_logp.reshape(n_prefixes, size * vocab).gather(1, top_ids)
                active = ~done[:, g]
                finished = is_term & (rank < size) & active[:, None]
                for n, k in finished.nonzero().tolist():
                    row = n * beams + lo + int(src[n, k])
                    token = int(tok[n, k])
                    hyps[n][g].add(float(top_scores[n, k]) / generated, seqs[row].tolist() + [token],
                                   float(raw_scores[n, lo + int(src[n, k])] + raw_tok[n, k]), self._ended_by(token))
                # The first `size` candidates that are not terminators continue as the group's beams.
                pick = (is_term.long() * top_k + rank).argsort(dim=1)[:, :size]
                sel_src = src.gather(1, pick)
                keep = active[:, None]
                new_scores[:, lo:hi] = torch.where(keep, top_scores.gather(1, pick), beam_scores[:, lo:hi])
                new_raw[:, lo:hi] = torch.where(keep, raw_scores[:, lo:hi].gather(1, sel_src) + raw_tok.gather(1, pick),
                                                raw_scores[:, lo:hi])
                current[:, lo:hi] = torch.where(keep, tok.gather(1, pick), current[:, lo:hi])
                source[:, lo:hi] = torch.where(keep, lo + sel_src, source[:, lo:hi])
                best = top_scores[:, 0].tolist()
                counts_full = [len(hyps[n][g].items) >= size for n in range(n_prefixes)]
                for n in range(n_prefixes):
                    if active[n] and counts_full[n] and hyps[n][g].is_done(best[n], generated):
                        done[n, g] = True
            beam_scores, raw_scores = new_scores, new_raw
            flat = (row_base + source).reshape(-1)
            seqs = torch.cat([seqs[flat], current.reshape(-1, 1)], dim=1)
            if bool(done.all()) or step == cfg.max_new_tokens - 1:
                break
            if not torch.equal(source, own_beam):  # groups of one beam never switch hypotheses
                decoder.follow(source)
            logits = decoder.feed(current)
        # Groups still running add their live beams, as transformers' finalize.
        for n in range(n_prefixes):
            for g in range(groups):
                if done[n, g]:
                    continue
                for b in range(g * size, (g + 1) * size):
                    hyps[n][g].add(float(beam_scores[n, b]) / generated, seqs[n * beams + b].tolist(),
                                   float(raw_scores[n, b]), "length")
        out = []
        for n in range(n_prefixes):
            pool = [h for g in range(groups) for h in hyps[n][g].items]
            ranked = list(reversed(sorted(pool, key=lambda h: h[0])))[:beams]  # as transformers pops the best
            out.append([Candidate(tokens, score, raw, ended) for score, tokens, raw, ended in ranked])
        return out

    def _sample(self, decoder: _SharedPrefixDecoder, logits, n_prefixes: int, step_seed: int) -> list[list[Candidate]]:
        import torch

        cfg = self.config
        rows = logits.shape[0]
        dev = self.device
        generator = torch.Generator(device=dev).manual_seed(step_seed)
        alive = torch.ones(rows, dtype=torch.bool, device=dev)
        raw = torch.zeros(rows, device=dev)
        length = torch.zeros(rows, dtype=torch.long, device=dev)
        tokens_so_far = []
        for step in range(cfg.max_new_tokens):
            logp = torch.log_softmax(logits, dim=-1)
            logits = logits.clone()
            logits[:, self.banned_ids] = float("-inf")
            if cfg.decoding == "greedy":
                tok = logits.argmax(-1)
            else:
                probs = torch.softmax(logits / cfg.temperature, dim=-1)
                tok = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            tok = torch.where(alive, tok, torch.full_like(tok, self.pad_id))
            raw = raw + torch.where(alive, logp.gather(1, tok[:, None]).squeeze(1), torch.zeros_like(raw))
            length = length + alive.long()
            tokens_so_far.append(tok)
            alive = alive & ~torch.isin(tok, self.terminators)
            if not bool(alive.any()) or step == cfg.max_new_tokens - 1:
                break
            logits = decoder.feed(tok.view(n_prefixes, cfg.candidates))
        seqs = torch.stack(tokens_so_far, dim=1).tolist()
        out: list[list[Candidate]] = []
        for n in range(n_prefixes):
            cands = []
            for r in range(n * cfg.candidates, (n + 1) * cfg.candidates):
                toks = seqs[r][: int(length[r])]
                ended = self._ended_by(toks[-1]) if toks and toks[-1] in self.terminators.tolist() else "length"
                cands.append(Candidate(toks, float(raw[r]) / max(1, len(toks)), float(raw[r]), ended))
            out.append(cands)
        return out

    # --------------------------------------------------------------------------------------- the search

    def batch_seed(self, batch_index: int) -> int:
        """The seed of the `batch_index`-th batch: a function of (seed, batch index) alone, no RNG state carried
        from batch to batch, so a batch searched again after a kill draws what it drew the first time."""
        return self.seed * 1_000_003 + batch_index

    def run(
        self,
        prompts: Sequence[PromptRecord],
        progress: Progress | None = None,
        *,
        done: Collection[str] = frozenset(),
        on_batch: Callable[[list[SearchResult]], None] | None = None,
    ) -> list[SearchResult]:
        """Search the prompts in batches of `prompt_batch`; one result per prompt searched, in order.

        Resuming: batches whose prompt ids are all in `done` are skipped. A batch is the unit of
        reproducibility (its prompts share a sampling generator and padded forward passes), so a batch with
        only some prompts done is searched whole again, with its own seed: its results are the ones an
        uninterrupted search gets, given the same prompt list and `prompt_batch`. `on_batch` receives each
        searched batch's results as soon as they exist (the improver appends them to its search log).
        """
        progress = progress or NullProgress()
        if self.clip is not None and hasattr(self.clip, "embed_images") and len(done) < len(prompts):
            # Every image up front, in chunks fixed by the whole prompt list: batched image encoding is not
            # bitwise batch-invariant, so an image's CLIP embedding (and every reward) must not depend on which
            # batch first needs it, nor on the batches a resumed search skips.
            self.clip.embed_images([p.image for p in prompts])
        results: list[SearchResult] = []
        for batch_index, start in enumerate(range(0, len(prompts), self.config.prompt_batch)):
            batch = prompts[start : start + self.config.prompt_batch]
            todo = sum(p.id not in done for p in batch)
            if not todo:
                continue
            batch_results = self.search_batch(batch, batch_seed=self.batch_seed(batch_index))
            if on_batch is not None:
                on_batch(batch_results)
            results.extend(batch_results)
            progress.advance(todo)
        return results

    def first_sentences(self, prompts: Sequence[PromptRecord], *, seed: int = 0) -> list[list[Candidate]]:
        """The candidate first sentences of each prompt (one step of the search, nothing pruned or scored)."""
        import torch

        ids, pixels = self._encode_prompts(prompts)
        prefixes = [_Prefix(i, list(ids[i])) for i in range(len(prompts))]
        with torch.inference_mode():
            if self.config.prefix_cache:
                self._prime(prefixes, pixels)
            return self.expand(prefixes, pixels, step_seed=seed)

    def search_batch(self, prompts: Sequence[PromptRecord], *, batch_seed: int = 0, trace: list | None = None) -> list[SearchResult]:
        """Search a batch of prompts together. `trace`, if given, receives each step's candidate texts."""
        import torch

        cfg = self.config
        ids, pixels = self._encode_prompts(prompts)
        trees: list[list[SentenceNode]] = [[SentenceNode(id=0, parent=None, depth=0)] for _ in prompts]
        active: list[tuple[_Prefix, SentenceNode]] = [(_Prefix(i, list(ids[i])), trees[i][0]) for i in range(len(prompts))]
        with torch.inference_mode():
            if cfg.prefix_cache:
                self._prime([p for p, _ in active], pixels)
            step = 0
            while active:
                expansions = self.expand([p for p, _ in active], pixels, step_seed=batch_seed * 1_000 + step)
                if trace is not None:
                    trace.append([[self.tokenizer.decode(c.tokens) for c in cands] for cands in expansions])
                children: list[tuple[_Prefix, SentenceNode, Candidate, SentenceNode]] = []
                for (prefix, parent), cands in zip(active, expansions):
                    tree = trees[prefix.prompt_index]
                    path_tokens = prefix.ids[len(ids[prefix.prompt_index]):]
                    for cand in cands:
                        response = self.tokenizer.decode(path_tokens + cand.tokens, skip_special_tokens=True).strip()
                        node = SentenceNode(
                            id=len(tree), parent=parent.id, depth=parent.depth + 1,
                            text=self.tokenizer.decode(cand.tokens, skip_special_tokens=True).strip(),
                            response=response, tokens=list(cand.tokens), beam_score=cand.beam_score,
                            logprob=cand.logprob, cumulative_beam_score=parent.cumulative_beam_score + cand.beam_score,
                            ended_by=cand.ended_by,
                        )
                        node.final = (cand.ended_by == "eos" or node.depth >= cfg.max_sentences
                                      or len(response) >= cfg.max_response_chars)
                        tree.append(node)
                        children.append((prefix, parent, cand, node))
                self._score([(prompts[p.prompt_index].image, node, parent) for p, parent, _, node in children])
                next_active = self._prune(children)
                if cfg.prefix_cache and next_active:
                    extended = self._extend([p for p, _, c, _ in next_active], [c.tokens for _, _, c, _ in next_active])
                    active = [(child, node) for child, (_, _, _, node) in zip(extended, next_active)]
                else:
                    active = [(_Prefix(p.prompt_index, p.ids + c.tokens), node) for p, _, c, node in next_active]
                step += 1
        results = []
        for prompt, nodes in zip(prompts, trees):
            if cfg.calibration == "paper":
                selection = select_paper(nodes)
            else:
                selection = select_official(nodes, cfg.image_weight, cfg.min_sentence_chars)
            results.append(SearchResult(prompt, nodes, selection))
        return results

    def _score(self, items: Sequence[tuple[str, SentenceNode, SentenceNode]]) -> None:
        """CLIP relevance and rewards of a step's new sentences (one batched CLIP call).

        A candidate with no text (the end of sequence alone) ends its response and scores 0 in both
        calibrations: it adds nothing to the response's reward and has no image relevance.
        """
        cfg = self.config
        scored = [(im, node, parent) for im, node, parent in items if node.text]
        if self.clip is not None and scored:
            cosines = self.clip.cosines([im for im, _, _ in scored], [n.text for _, n, _ in scored],
                                        batch_size=cfg.clip_batch)
        else:
            cosines = [0.0] * len(scored)
        for (_, node, parent), cos in zip(scored, cosines):
            node.clip_cosine = float(cos)
            if cfg.calibration == "paper":
                node.image_reward = paper_image_reward(cos)
                node.text_reward = paper_text_reward(node.logprob)
            else:
                node.image_reward = official_image_reward(cos, self.clip.logit_scale if self.clip else 100.0)
                node.text_reward = node.beam_score
            node.reward = sentence_reward(node.image_reward, node.text_reward, cfg.image_weight)
        for _, node, parent in items:
            node.cumulative_reward = parent.cumulative_reward + node.reward

    def _prune(self, children):
        """Keep the best and worst unfinished partial responses of each prompt; the rest are marked pruned."""
        cfg = self.config
        by_prompt: dict[int, list] = {}
        for item in children:
            if not item[3].final:
                by_prompt.setdefault(item[0].prompt_index, []).append(item)
        kept = []
        for prompt_index in sorted(by_prompt):
            group = by_prompt[prompt_index]
            if cfg.calibration == "paper":
                scores = [node.cumulative_reward for *_, node in group]
                keep = keep_best_and_worst(scores, cfg.keep_best, cfg.keep_worst)
            else:  # the authors prune by the model's cumulative beam score, from `candidates` nodes on
                scores = [node.cumulative_beam_score for *_, node in group]
                keep = keep_best_and_worst(scores, cfg.keep_best, cfg.keep_worst, prune_from=cfg.candidates)
            keep_set = set(keep)
            for i, item in enumerate(group):
                item[3].pruned = i not in keep_set
            kept.extend(group[i] for i in keep)
        return kept
