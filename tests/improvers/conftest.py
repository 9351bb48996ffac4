"""Small random-initialised tiny LLaVA and tiny CLIP checkpoints and a few scene images, built once per session.

Random weights keep these tests independent of the shipped trained assets; the code paths are the same.
"""

import json

import pytest


def _draw(path, colors):
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (64, 64), (128, 128, 128))
    d = ImageDraw.Draw(img)
    for i, c in enumerate(colors):
        x, y = (i % 2) * 32 + 4, (i // 2) * 32 + 4
        d.rectangle([x, y, x + 22, y + 22], fill=c)
    img.save(path)


@pytest.fixture(scope="session")
def tiny_assets(tmp_path_factory):
    import torch

    from csr_bench.world import vocabulary
    from csr_bench.world.tiny_clip import build_tiny_clip, save_tiny_clip
    from csr_bench.world.tiny_lvlm import build_tiny_llava

    root = tmp_path_factory.mktemp("csr_assets")
    model, processor = build_tiny_llava(vocabulary(), seed=0)
    model.save_pretrained(root / "llava")
    processor.save_pretrained(root / "llava")
    clip, model_cfg = build_tiny_clip(vocabulary(), seed=0)
    save_tiny_clip(clip, model_cfg, root / "clip")
    (root / "images").mkdir()
    palette = [(220, 30, 30), (30, 60, 230), (245, 225, 20), (30, 170, 50)]
    prompts = []
    for i in range(4):
        _draw(root / "images" / f"{i}.png", palette[: i + 1])
        # Different instruction lengths exercise the left padding of batched prefixes.
        text = ["Describe this image.", "Describe this image in detail.", "What is this?", "Describe this image briefly."][i]
        prompts.append({"id": str(i), "image": f"images/{i}.png", "prompt": text})
    (root / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
    torch.manual_seed(0)
    return {"llava": str(root / "llava"), "clip": str(root / "clip"), "prompts": root / "prompts.jsonl", "root": root}


@pytest.fixture()
def loaded(tiny_assets):
    from csr_bench.improvers.base import load_prompts
    from csr_bench.improvers.csr.clip import load_clip_scorer
    from csr_bench.improvers.csr.improver import load_model

    model, processor = load_model(tiny_assets["llava"], dtype="float32", device="cpu")
    return model, processor, load_clip_scorer(tiny_assets["clip"]), load_prompts(tiny_assets["prompts"])
