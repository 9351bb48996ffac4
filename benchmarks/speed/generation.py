"""Greedy captioning speed of the shipped tiny LLaVA through the `hf` adapter: batch 1 against batch 16.

Captions ("Describe this image.", up to 40 new tokens, greedy) of the validation images of a world generated
with seed 0 (or of --world), one torch thread. Each batch size captions the same images after one warm-up
batch; the best of --repeats runs is reported as items per second. Goal: batch 16 at least 5x batch 1.

Run: python benchmarks/speed/generation.py [--world DIR] [--items 64] [--repeats 3] [--max-new-tokens 40]
     [--json FILE]   (also write the result as JSON, for run_all.py)
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from csr_bench.core.types import ImagePart, Message  # noqa: E402
from csr_bench.models import GenRequest, load_adapter  # noqa: E402


def caption_requests(world: Path, n: int) -> list[GenRequest]:
    images = sorted((world / "images" / "val2014").glob("*.png"))[:n]
    if len(images) < n:
        raise SystemExit(f"{world}: only {len(images)} validation images, asked for {n}")
    return [GenRequest((Message.user(ImagePart(str(p)), "Describe this image."),)) for p in images]


def items_per_second(adapter, requests, batch_size: int, max_new_tokens: int, repeats: int) -> float:
    adapter.generate(requests[:batch_size], max_new_tokens=max_new_tokens, batch_size=batch_size)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        adapter.generate(requests, max_new_tokens=max_new_tokens, batch_size=batch_size)
        best = min(best, time.perf_counter() - start)
    return len(requests) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, help="a generated world (default: generate one with seed 0)")
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--json", help="also write the result here as JSON (read by run_all.py)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        world = args.world
        if world is None:
            from csr_bench.world import WorldConfig, generate_world

            world = generate_world(Path(tmp) / "world", config=WorldConfig.quick(seed=0)).root
        adapter = load_adapter(args.model, device="cpu")
        requests = caption_requests(world, args.items)
        rate1 = items_per_second(adapter, requests, 1, args.max_new_tokens, args.repeats)
        rate16 = items_per_second(adapter, requests, 16, args.max_new_tokens, args.repeats)
    print(f"model {adapter.name} ({adapter.fingerprint()}), {args.items} captions, greedy, "
          f"max {args.max_new_tokens} new tokens, 1 thread, best of {args.repeats}")
    print(f"batch 1:  {rate1:7.1f} items/s")
    print(f"batch 16: {rate16:7.1f} items/s")
    print(f"ratio:    {rate16 / rate1:7.1f}x (goal >= 5x)")
    if args.json:
        row = {
            "benchmark": "generation.py",
            "what": f"greedy captions of {args.items} world images, tiny LLaVA, max {args.max_new_tokens} new tokens, "
                    "1 thread, batch 16",
            "baseline": "the same captions at batch 1",
            "ours_s": args.items / rate16, "baseline_s": args.items / rate1, "ratio": rate16 / rate1,
            "same_result": None, "note": f"best of {args.repeats}; {rate16:.0f} vs {rate1:.0f} items/s",
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"rows": [row]}, f, indent=2)


if __name__ == "__main__":
    main()
