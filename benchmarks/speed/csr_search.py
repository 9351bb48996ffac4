"""Speed of CSR's sentence-level search with the reused prefix cache against re-encoding every step.

Both modes run the same search (diverse beam search, 5 beams in 5 groups, penalty 3.0; best 1 + worst 2 kept;
a batch of prompts searched together) on the same random-initialised LLaVA; the re-encoding mode encodes every
partial response's full prefix (image, instruction, sentences so far) from its tokens at each step, as the
authors' sample.py does, while the cached mode encodes only the new sentences. The outputs must be identical
(every step's candidates and the final trees); the script stops if they are not.

The prefix is what caching saves, so the result depends on its length relative to a sentence. Two shapes:
- `llava-1.5`: 576 image tokens (336-pixel images, 14-pixel patches), as LLaVA-1.5, with a small language model
  so it runs on a CPU; the regime of the paper's recipe.
- `tiny-world`: the embedded world's tiny LLaVA (16 image tokens), where there is little to save.

Run: python benchmarks/speed/csr_search.py [--shape llava-1.5|tiny-world|both] [--prompts 4] [--sentences 8] [--repeats 2]
     [--json FILE]   (also write the results as JSON, for run_all.py)
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

# image size, patch size, language model (hidden size, MLP size, layers, heads)
SHAPES = {"llava-1.5": (336, 14, (512, 1376, 2, 4)), "tiny-world": (64, 16, (128, 256, 3, 4))}


def build_model(image_size: int, patch: int, lm: tuple[int, int, int, int]):
    """A random LLaVA with the tiny model's word tokenizer and template, and `image_size`/`patch` images."""
    import torch
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    from csr_bench.world import vocabulary
    from csr_bench.world.tiny_lvlm import BOS, CHAT_TEMPLATE, EOS, IMAGE, PAD, build_word_tokenizer

    tokenizer = build_word_tokenizer(vocabulary())
    tokenizer.model_max_length = 4096
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": image_size},
                                           crop_size={"height": image_size, "width": image_size}),
        tokenizer=tokenizer, patch_size=patch, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, chat_template=CHAT_TEMPLATE,
    )
    ids = tokenizer.convert_tokens_to_ids
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                                       image_size=image_size, patch_size=patch, projection_dim=64),
        text_config=LlamaConfig(vocab_size=len(tokenizer), hidden_size=lm[0], intermediate_size=lm[1], num_hidden_layers=lm[2],
                                num_attention_heads=lm[3], num_key_value_heads=lm[3], max_position_embeddings=2048,
                                bos_token_id=ids(BOS), eos_token_id=ids(EOS), pad_token_id=ids(PAD)),
        image_token_index=ids(IMAGE), image_seq_length=(image_size // patch) ** 2,
        vision_feature_select_strategy="default", vision_feature_layer=-1,
    )
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids(EOS)
    model.generation_config.pad_token_id = ids(PAD)
    return model, processor


def make_prompts(folder: Path, n: int, image_size: int):
    from PIL import Image, ImageDraw

    from csr_bench.improvers.base import PromptRecord

    instructions = ["Describe this image.", "Describe this image in detail.", "What is this?"]
    out = []
    for i in range(n):
        img = Image.new("RGB", (image_size, image_size), (128, 128, 128))
        d = ImageDraw.Draw(img)
        s = image_size // 3
        d.rectangle([(i % 3) * s // 2, (i % 2) * s, (i % 3) * s // 2 + s, (i % 2) * s + s], fill=(40 * (i % 6), 200, 90))
        path = folder / f"{i}.png"
        img.save(path)
        out.append(PromptRecord(str(i), str(path), instructions[i % len(instructions)]))
    return out


def run_shape(name: str, n_prompts: int, repeats: int, sentences: int) -> dict:
    import torch

    from csr_bench.improvers.csr.clip import load_clip_scorer
    from csr_bench.improvers.csr.config import SearchConfig
    from csr_bench.improvers.csr.search import SentenceSearch
    from csr_bench.world import vocabulary
    from csr_bench.world.tiny_clip import build_tiny_clip, save_tiny_clip

    torch.set_num_threads(1)
    image_size, patch, lm = SHAPES[name]
    model, processor = build_model(image_size, patch, lm)
    with tempfile.TemporaryDirectory() as tmp:
        clip_model, clip_cfg = build_tiny_clip(vocabulary(), seed=0)
        save_tiny_clip(clip_model, clip_cfg, Path(tmp) / "clip")
        clip = load_clip_scorer(str(Path(tmp) / "clip"))
        prompts = make_prompts(Path(tmp), n_prompts, image_size)
        # A random model rarely says ".", so sentences run to max_new_tokens: a fixed amount of work per step.
        config = SearchConfig(calibration="official", decoding="diverse_beam", candidates=5, beam_groups=5,
                              diversity_penalty=3.0, max_new_tokens=20, max_sentences=sentences, keep_best=1, keep_worst=2,
                              prompt_batch=n_prompts)
        times: dict[bool, list[float]] = {True: [], False: []}
        outputs: dict[bool, object] = {}
        for _ in range(repeats):
            for cached in (True, False):
                search = SentenceSearch(model, processor, replace(config, prefix_cache=cached), clip)
                trace: list = []
                start = time.perf_counter()
                results = search.search_batch(prompts, trace=trace)
                times[cached].append(time.perf_counter() - start)
                trees = [[(n.parent, n.text, n.final, n.pruned) for n in r.nodes] for r in results]
                outputs[cached] = (trace, trees)
        if outputs[True] != outputs[False]:
            raise SystemExit(f"{name}: the cached search and re-encoding gave different outputs")
        prefix = len(search._encode_prompts(prompts[:1])[0][0])
        steps = len(outputs[True][0])
        cached_s, reencoded_s = statistics.median(times[True]), statistics.median(times[False])
        ratio = reencoded_s / cached_s
        print(f"{name}: {n_prompts} prompts, prompt prefix {prefix} tokens, {steps} sentence steps, "
              f"{sum(len(t) for t in outputs[True][1])} tree nodes; outputs identical")
        print(f"  re-encoding every step {reencoded_s:7.2f} s   cached prefix {cached_s:7.2f} s   "
              f"ratio {ratio:.2f}x  (median of {repeats})")
        return {
            "benchmark": f"csr_search.py ({name})",
            "what": f"CSR sentence search, {n_prompts} prompts, {steps} sentence steps, {prefix}-token prompt prefix, "
                    "prefix KV cache shared across candidates",
            "baseline": "re-encoding the whole prefix at every step (the authors' sample.py)",
            "ours_s": cached_s, "baseline_s": reencoded_s, "ratio": ratio, "same_result": True,
            "note": f"median of {repeats}; identical candidates and trees",
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=[*SHAPES, "both"], default="both")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--sentences", type=int, default=8, help="sentence steps per response (LLaVA's run 5-10)")
    parser.add_argument("--json", help="also write the results here as JSON (read by run_all.py)")
    args = parser.parse_args()
    rows = [run_shape(name, args.prompts, args.repeats, args.sentences)
            for name in (SHAPES if args.shape == "both" else [args.shape])]
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
