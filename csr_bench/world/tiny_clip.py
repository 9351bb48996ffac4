"""The tiny CLIP shipped with the package: build, train on a synthetic world, load, and score image-text pairs.

An open_clip `CLIP` (ViT with 16-pixel patches on 64-pixel images, a 2-layer causal text transformer pooled at
the EOS token) over the same word-level vocabulary as the tiny LLaVA. CSR uses its image-text similarity as
the visual-relevance part of the sentence reward.

The checkpoint folder follows open_clip's local-dir layout (open_clip_config.json with model_cfg and
preprocess_cfg, open_clip_model.safetensors, tokenizer.json), so
`open_clip.create_model_and_transforms("local-dir:PATH")` and `open_clip.get_tokenizer("local-dir:PATH")` load
it as well. Nothing is downloaded.
"""

from __future__ import annotations

import math
import re
import os
import random
import time
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

from csr_bench.core.files import atomic_write_json, read_json
from csr_bench.errors import UserError
from csr_bench.world.tiny_lvlm import BOS, EOS, IMAGE_SIZE, PATCH_SIZE, _world_vocabulary, read_examples

TINY_CLIP_PATH = Path(__file__).resolve().parent / "assets" / "tiny-clip"
CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"
# OpenAI CLIP normalisation, as open_clip's default preprocess.
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class TinyClipConfig:
    embed_dim: int = 64
    width: int = 128
    heads: int = 4
    vision_layers: int = 2
    text_layers: int = 2
    context_length: int = 32


@dataclass(frozen=True)
class ClipTrainConfig:
    """How the tiny CLIP is trained (the defaults made the shipped checkpoint)."""

    steps: int = 400
    batch_size: int = 128
    lr: float = 1e-3
    warmup_steps: int = 20
    weight_decay: float = 0.05
    seed: int = 0


class TinyClip(NamedTuple):
    """A loaded CLIP: unpacks as (model, preprocess, tokenize); `scores` gives pairwise cosine similarities."""

    model: Any  # open_clip.model.CLIP
    preprocess: Callable[[Any], Any]  # PIL image -> normalised tensor (3, H, W)
    tokenize: "ClipTokenize"  # texts -> LongTensor (n, context_length)

    def scores(self, images: Sequence[Any], texts: Sequence[str], *, batch_size: int = 64) -> list[float]:
        return clip_scores(images, texts, clip=self, batch_size=batch_size)


def _model_cfg(vocab_size: int, pad_id: int, eos_id: int, cfg: TinyClipConfig) -> dict[str, Any]:
    return {
        "embed_dim": cfg.embed_dim,
        "vision_cfg": {
            "image_size": IMAGE_SIZE,
            "patch_size": PATCH_SIZE,
            "width": cfg.width,
            "head_width": cfg.width // cfg.heads,
            "layers": cfg.vision_layers,
        },
        "text_cfg": {
            "context_length": cfg.context_length,
            "vocab_size": vocab_size,
            "width": cfg.width,
            "heads": cfg.heads,
            "layers": cfg.text_layers,
            # Pool at our own EOS id: the default "argmax" assumes EOT is the highest token id.
            "pool_type": "eos",
            "eos_id": eos_id,
            "pad_id": pad_id,
            # Makes open_clip.get_tokenizer("local-dir:PATH") use the tokenizer.json in the folder.
            "hf_tokenizer_name": "tiny-clip",
        },
    }


def _clip_tokenizer(words: Sequence[str]):
    """The tiny LLaVA's word tokenizer, adding BOS ... EOS around each text (CLIP's start/end tokens)."""
    from tokenizers import processors

    from csr_bench.world.tiny_lvlm import build_word_tokenizer

    tokenizer = build_word_tokenizer(words)
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}",
        special_tokens=[(BOS, tokenizer.bos_token_id), (EOS, tokenizer.eos_token_id)],
    )
    tokenizer.padding_side = "right"
    return tokenizer


class ClipTokenize:
    """texts -> LongTensor (n, context_length): BOS, words, EOS, then padding (cut to the context length)."""

    def __init__(self, tokenizer, context_length: int):
        self.tokenizer = tokenizer
        self.context_length = context_length

    def __call__(self, texts: Sequence[str] | str):
        if isinstance(texts, str):
            texts = [texts]
        out = self.tokenizer(
            list(texts), max_length=self.context_length, padding="max_length", truncation=True, return_tensors="pt"
        )
        return out["input_ids"]


def _make_preprocess():
    from open_clip.transform import image_transform

    return image_transform(IMAGE_SIZE, is_train=False, mean=MEAN, std=STD)


def build_tiny_clip(vocab: Sequence[str], config: TinyClipConfig | None = None, *, seed: int = 0) -> tuple[TinyClip, dict]:
    """A freshly initialised tiny CLIP (model, preprocess, tokenize) and its open_clip model_cfg."""
    import torch
    from open_clip.model import CLIP

    cfg = config or TinyClipConfig()
    tokenizer = _clip_tokenizer(vocab)
    model_cfg = _model_cfg(len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id, cfg)
    torch.manual_seed(seed)
    model = CLIP(**model_cfg, output_dict=True)
    return TinyClip(model, _make_preprocess(), ClipTokenize(tokenizer, cfg.context_length)), model_cfg


def save_tiny_clip(clip: TinyClip, model_cfg: dict, out_dir: str | os.PathLike) -> None:
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in clip.model.state_dict().items()}
    save_file(state, str(out / WEIGHTS_FILE), metadata={"format": "pt"})
    clip.tokenize.tokenizer.save_pretrained(out)
    preprocess_cfg = {"size": IMAGE_SIZE, "mode": "RGB", "mean": list(MEAN), "std": list(STD),
                      "interpolation": "bicubic", "resize_mode": "shortest"}
    atomic_write_json(out / CONFIG_FILE, {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg})


def load_tiny_clip(path: str | os.PathLike = TINY_CLIP_PATH, *, device: str = "cpu") -> TinyClip:
    """Load a tiny CLIP folder written by `train_tiny_clip` (the shipped one by default). Never downloads."""
    import torch
    from open_clip.model import CLIP
    from safetensors.torch import load_file
    from transformers import PreTrainedTokenizerFast

    folder = Path(path)
    if not folder.is_dir():
        raise UserError(f"{folder}: CLIP checkpoint folder not found")
    for name in (CONFIG_FILE, WEIGHTS_FILE, "tokenizer.json"):
        if not (folder / name).is_file():
            raise UserError(f"{folder}: missing {name}; expected a folder written by train_tiny_clip")
    meta = read_json(folder / CONFIG_FILE, "CLIP config")
    if not isinstance(meta, dict) or "model_cfg" not in meta:
        raise UserError(f"{folder / CONFIG_FILE}: missing key 'model_cfg'")
    model_cfg = meta["model_cfg"]
    model = CLIP(**model_cfg, output_dict=True)
    state = load_file(str(folder / WEIGHTS_FILE))
    model.load_state_dict(state, strict=True)
    model.to(torch.device(device)).eval()
    tokenizer = PreTrainedTokenizerFast.from_pretrained(folder, local_files_only=True)
    tokenizer.padding_side = "right"
    return TinyClip(model, _make_preprocess(), ClipTokenize(tokenizer, model_cfg["text_cfg"]["context_length"]))


@lru_cache(maxsize=1)
def _shipped_clip() -> TinyClip:
    return load_tiny_clip(TINY_CLIP_PATH)


def _open_image(image: Any):
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        p = Path(image)
        if not p.is_file():
            raise UserError(f"{p}: image not found")
        with Image.open(p) as im:
            return im.convert("RGB")
    return image.convert("RGB")


def clip_scores(
    images: Sequence[Any], texts: Sequence[str], *, clip: TinyClip | None = None, batch_size: int = 64
) -> list[float]:
    """Cosine similarity of each (images[i], texts[i]) pair; images are paths or PIL images.

    An image given several times by the same path is encoded once (CSR scores many sentences per image).
    Uses the shipped tiny CLIP unless `clip` is given.
    """
    import torch

    if len(images) != len(texts):
        raise UserError(f"{len(images)} images but {len(texts)} texts; expected one text per image")
    clip = clip or _shipped_clip()
    device = next(clip.model.parameters()).device
    keys = [str(Path(im)) if isinstance(im, (str, os.PathLike)) else id(im) for im in images]
    first: dict[Any, int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    unique = list(first)
    image_features: dict[Any, torch.Tensor] = {}
    out: list[float] = []
    with torch.inference_mode():
        for start in range(0, len(unique), batch_size):
            chunk = unique[start : start + batch_size]
            pixels = torch.stack([clip.preprocess(_open_image(images[first[k]])) for k in chunk]).to(device)
            feats = clip.model.encode_image(pixels, normalize=True)
            image_features.update(zip(chunk, feats))
        for start in range(0, len(texts), batch_size):
            tokens = clip.tokenize(list(texts[start : start + batch_size])).to(device)
            text_feats = clip.model.encode_text(tokens, normalize=True)
            img_feats = torch.stack([image_features[k] for k in keys[start : start + batch_size]])
            out.extend((img_feats * text_feats).sum(-1).float().tolist())
    return out


def train_tiny_clip(
    world_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    steps: int | None = None,
    batch_size: int | None = None,
    seed: int | None = None,
    lr: float | None = None,
    config: ClipTrainConfig | None = None,
    model_config: TinyClipConfig | None = None,
    log_every: int = 50,
    log=print,
) -> dict[str, Any]:
    """Contrastively train the tiny CLIP on a world's training captions; save it to `out_dir`.

    Each batch holds distinct images with one of their captions (so no caption is a false negative for
    another image in the batch). `steps`, `batch_size`, `seed` and `lr` override the same fields of `config`
    (default: ClipTrainConfig()). Deterministic for a given world, config and thread count.
    """
    import torch
    import torch.nn.functional as F

    world = Path(world_dir)
    overrides = {"steps": steps, "batch_size": batch_size, "seed": seed, "lr": lr}
    cfg = replace(config or ClipTrainConfig(), **{k: v for k, v in overrides.items() if v is not None})
    if cfg.steps < 0 or cfg.batch_size < 2:
        raise UserError(f"CLIP training config {cfg}: expected steps >= 0 and batch_size >= 2")
    steps, batch_size, seed, lr = cfg.steps, cfg.batch_size, cfg.seed, cfg.lr
    captions = read_examples(world / "train" / "captions.jsonl")
    clip, model_cfg = build_tiny_clip(_world_vocabulary(world), model_config, seed=seed)
    model = clip.model
    by_image: dict[str, list[str]] = {}
    for ex in captions:
        by_image.setdefault(ex.image, []).append(ex.answer)
    image_names = sorted(by_image)
    pixels = torch.stack([clip.preprocess(_open_image(world / rel)) for rel in image_names])
    tokens = {rel: clip.tokenize(texts) for rel, texts in by_image.items()}

    rng = random.Random(seed)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "positional" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "positional" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}], lr=lr
    )

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = (step - cfg.warmup_steps) / max(1, steps - cfg.warmup_steps)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    start = time.perf_counter()
    recent: list[float] = []
    n = min(batch_size, len(image_names))
    for step in range(steps):
        idx = rng.sample(range(len(image_names)), n)
        text = torch.stack([tokens[image_names[i]][rng.randrange(len(by_image[image_names[i]]))] for i in idx])
        out = model(pixels[idx], text)
        logits = out["logit_scale"] * out["image_features"] @ out["text_features"].T
        labels = torch.arange(n)
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        recent.append(loss.item())
        if log and log_every and ((step + 1) % log_every == 0 or step + 1 == steps):
            mean = sum(recent[-log_every:]) / len(recent[-log_every:])
            log(f"tiny-clip step {step + 1}/{steps} loss {mean:.4f} ({time.perf_counter() - start:.0f}s)")
    model.eval()
    save_tiny_clip(clip, model_cfg, out_dir)
    from csr_bench.world.tiny_lvlm import _world_info

    info = {
        "model": "tiny-clip",
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_config": asdict(cfg),
        "model_config": asdict(model_config or TinyClipConfig()),
        "world": _world_info(world),
        "train_images": len(image_names),
        "final_loss": sum(recent[-log_every:]) / len(recent[-log_every:]) if recent else None,
        "seconds": round(time.perf_counter() - start, 1),
        "torch_threads": torch.get_num_threads(),
    }
    atomic_write_json(Path(out_dir) / "train_info.json", info)
    return info


# --------------------------------------------------------------------------------------------- evaluation


def hallucinated_caption(caption: str, present: set[str], categories: dict, rng: random.Random) -> str | None:
    """The caption with one mentioned object swapped for an absent category (its colour word and article too).

    `categories` maps names to `CategoryWords` (see tiny_lvlm.world_categories). None when the caption names
    no object of the image or no category is absent.
    """
    from csr_bench.world.tiny_lvlm import CategoryWords

    tokens = re.findall(r"\w+|\W+", caption)
    spots: list[tuple[int, CategoryWords, bool]] = []  # (token index, category, plural)
    for i, tok in enumerate(tokens):
        for name in present:
            c = categories[name]
            if tok.lower() in (c.noun, c.noun_plural):
                spots.append((i, c, tok.lower() == c.noun_plural and c.noun_plural != c.noun))
    absent = sorted(n for n in categories if n not in present)
    if not spots or not absent:
        return None
    i, old, plural = rng.choice(spots)
    new: CategoryWords = categories[rng.choice(absent)]

    def same_case(word: str, like: str) -> str:
        return word[:1].upper() + word[1:] if like[:1].isupper() else word

    tokens[i] = same_case(new.noun_plural if plural else new.noun, tokens[i])
    first = i  # index of the first word of the noun phrase
    if i >= 2 and tokens[i - 2].lower() == old.color:
        tokens[i - 2] = same_case(new.color, tokens[i - 2])
        first = i - 2
    if first >= 2 and tokens[first - 2].lower() in ("a", "an"):
        tokens[first - 2] = same_case("an" if tokens[first][0].lower() in "aeiou" else "a", tokens[first - 2])
    return "".join(tokens)


def evaluate_tiny_clip(
    clip: TinyClip | str | os.PathLike, world_dir: str | os.PathLike, *, max_images: int | None = None, seed: int = 0
) -> dict[str, Any]:
    """How well the CLIP prefers a true caption to the same caption with one object swapped for an absent one.

    On the world's validation images (one reference caption each): `auc` compares all true scores with all
    hallucinated scores (Mann-Whitney); `paired_win_rate` is the share of images whose true caption wins.
    """
    import json

    import numpy as np

    from csr_bench.world.tiny_lvlm import world_categories

    world = Path(world_dir)
    model = clip if isinstance(clip, TinyClip) else load_tiny_clip(clip)
    meta = json.loads((world / "world.json").read_text(encoding="utf-8"))
    cats = world_categories(world)
    instances = json.loads((world / "annotations" / "instances_val2014.json").read_text(encoding="utf-8"))
    refs = json.loads((world / "annotations" / "captions_val2014.json").read_text(encoding="utf-8"))
    names = {c["id"]: c["name"] for c in instances["categories"]}
    files = {im["id"]: im["file_name"] for im in instances["images"]}
    present: dict[int, set[str]] = {}
    for a in instances["annotations"]:
        present.setdefault(a["image_id"], set()).add(names[a["category_id"]])
    by_image: dict[int, list[str]] = {}
    for a in refs["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a["caption"])
    rng = random.Random(seed)
    images, true_caps, false_caps = [], [], []
    for image_id in meta["splits"]["val"]["image_ids"][:max_images]:
        caption = rng.choice(sorted(by_image[image_id]))
        fake = hallucinated_caption(caption, present.get(image_id, set()), cats, rng)
        if fake is None:
            continue
        images.append(str(world / "images" / "val2014" / files[image_id]))
        true_caps.append(caption)
        false_caps.append(fake)
    s_true = np.array(clip_scores(images, true_caps, clip=model))
    s_false = np.array(clip_scores(images, false_caps, clip=model))
    diff = s_true[:, None] - s_false[None, :]
    auc = float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)
    return {
        "n": len(images),
        "auc": auc,
        "paired_win_rate": float(np.mean(s_true > s_false)),
        "mean_true": float(s_true.mean()),
        "mean_hallucinated": float(s_false.mean()),
        "examples": [{"true": t, "hallucinated": f} for t, f in list(zip(true_caps, false_caps))[:3]],
    }
