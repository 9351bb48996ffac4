"""The tiny LLaVA shipped with the package: build it and train it on a synthetic world.

A 1M-parameter LLaVA-1.5 in the llava-hf layout (CLIP vision tower, two-layer projector, Llama language model)
over a word-level vocabulary. It is a real checkpoint: `AutoProcessor` / `AutoModelForImageTextToText` load it
like any other, so the `hf` adapter serves it and real models through the same code.

Training uses the world's `train/captions.jsonl` and `train/yesno.jsonl` ({"image", "prompt", "answer"}, image
paths relative to the world folder). The loss is averaged over each example's answer tokens first, then over
the batch, so a one-word yes/no answer weighs as much as a twenty-word caption (with a token-averaged loss the
captions drown the answers and yes/no accuracy stays near chance).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from csr_bench.core.files import atomic_write_json, read_jsonl
from csr_bench.errors import UserError

IMAGE_SIZE = 64
PATCH_SIZE = 16
N_IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2  # "default" strategy drops the CLS token

PAD, BOS, EOS, UNK, IMAGE = "<pad>", "<s>", "</s>", "<unk>", "<image>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK, IMAGE)
# Words of the chat template and of common prompts, always in the vocabulary.
TEMPLATE_WORDS = ("USER", "ASSISTANT", "system", "yes", "no", "describe", "the", "image", "is", "there", "a", "an",
                  "in", "answer", "with", "one", "word", "this", "briefly", "what", "of", "and")
PUNCTUATION = tuple(".,?!:;'\"-()/")
SPACE = "\u2581"  # Metaspace marker: a token that starts a word carries it

# LLaVA-1.5 conversation format: "USER: <image>\n{prompt} ASSISTANT: {answer}</s>".
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['content'] is string %}{% set parts = [{'type': 'text', 'text': message['content']}] %}"
    "{% else %}{% set parts = message['content'] %}{% endif %}"
    "{% if message['role'] == 'system' %}"
    "{% for part in parts | selectattr('type', 'equalto', 'text') %}{% if not loop.first %} {% endif %}"
    "{{ part['text'] }}{% endfor %} "
    "{% elif message['role'] == 'user' %}USER: "
    "{% for part in parts | selectattr('type', 'equalto', 'image') %}<image>\n{% endfor %}"
    "{% for part in parts | selectattr('type', 'equalto', 'text') %}{% if not loop.first %} {% endif %}"
    "{{ part['text'] }}{% endfor %} "
    "{% else %}ASSISTANT: "
    "{% for part in parts | selectattr('type', 'equalto', 'text') %}{% if not loop.first %} {% endif %}"
    "{{ part['text'] }}{% endfor %}{{ eos_token }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


@dataclass(frozen=True)
class TinyLlavaConfig:
    """Sizes of the tiny LLaVA (defaults: about 1M parameters with the world's vocabulary)."""

    hidden_size: int = 128
    vision_layers: int = 2
    text_layers: int = 3
    heads: int = 4
    mlp_size: int = 256
    max_positions: int = 512  # RoPE: no parameters; long enough for MMBench prompts


@dataclass(frozen=True)
class TrainConfig:
    """How the tiny LLaVA is trained (the defaults made the shipped checkpoint)."""

    steps: int = 500
    batch_size: int = 64
    lr: float = 5e-4  # 2e-3 trains captions faster but left yes/no at chance for 800 steps
    warmup_steps: int = 30
    final_lr_fraction: float = 0.5  # cosine decay from lr to lr * this (a lower floor: fewer hallucinations)
    weight_decay: float = 0.01
    yesno_fraction: float = 0.75  # share of each batch drawn from the yes/no questions
    seed: int = 0


def _word_tokenizer_backend(vocab: dict[str, int]):
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    # Whitespace runs collapse and sections are stripped, so " a  red\ncircle " == "a red circle".
    tok.normalizer = normalizers.Sequence([normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip()])
    # Metaspace keeps word starts in the tokens, so decoding restores the spacing exactly ("a circle.").
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="always", split=True),
            pre_tokenizers.Punctuation("isolated"),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement=SPACE, prepend_scheme="always", split=True)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    return tok


def _base_words(entries: Iterable[str]) -> list[str]:
    """Words and punctuation marks of the entries, in first-seen order."""
    return list(dict.fromkeys(w for e in entries for w in re.findall(r"\w+|[^\w\s]", e)))


def build_word_tokenizer(words: Iterable[str]):
    """A `PreTrainedTokenizerFast` over a word-level vocabulary: specials, template words, then `words`.

    Entries may be phrases or carry punctuation; they are split into words. Each word gets four tokens: at a
    word start ("\u2581red") or glued to punctuation before it ("red"), lower-case and capitalised, so
    "Yes." and "option's" tokenize without <unk>. Ids follow first-seen order: the same list gives the same ids.
    """
    from transformers import PreTrainedTokenizerFast

    base = _base_words([*TEMPLATE_WORDS, *PUNCTUATION, *words])
    alnum = [w for w in base if re.fullmatch(r"\w+", w)]
    marks = [w for w in base if not re.fullmatch(r"\w+", w)]
    capitalised = [w[:1].upper() + w[1:] for w in alnum]
    vocab: dict[str, int] = {}
    for t in [*SPECIAL_TOKENS, SPACE, *marks, *(SPACE + w for w in alnum), *(SPACE + w for w in capitalised),
              *alnum, *capitalised]:
        vocab.setdefault(t, len(vocab))
    backend = _word_tokenizer_backend(vocab)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        extra_special_tokens={"image_token": IMAGE},
        padding_side="left",
        model_max_length=TinyLlavaConfig.max_positions,
        clean_up_tokenization_spaces=False,
    )
    return tokenizer


def build_image_processor():
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        do_center_crop=True,
    )


def build_tiny_llava(vocab: Sequence[str], config: TinyLlavaConfig | None = None, *, seed: int = 0):
    """A freshly initialised tiny LLaVA and its processor (tokenizer, image processor, chat template)."""
    import torch
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    cfg = config or TinyLlavaConfig()
    tokenizer = build_word_tokenizer(vocab)
    processor = LlavaProcessor(
        image_processor=build_image_processor(),
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )
    ids = tokenizer.convert_tokens_to_ids
    vision = CLIPVisionConfig(
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.mlp_size,
        num_hidden_layers=cfg.vision_layers,
        num_attention_heads=cfg.heads,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        projection_dim=cfg.hidden_size,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.mlp_size,
        num_hidden_layers=cfg.text_layers,
        num_attention_heads=cfg.heads,
        num_key_value_heads=cfg.heads,
        max_position_embeddings=cfg.max_positions,
        bos_token_id=ids(BOS),
        eos_token_id=ids(EOS),
        pad_token_id=ids(PAD),
        tie_word_embeddings=False,
    )
    llava_config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=ids(IMAGE),
        image_seq_length=N_IMAGE_TOKENS,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        projector_hidden_act="gelu",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(llava_config)
    gen = model.generation_config
    gen.bos_token_id, gen.eos_token_id, gen.pad_token_id = ids(BOS), ids(EOS), ids(PAD)
    gen.max_new_tokens = 32
    return model, processor


# ----------------------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class Example:
    image: str  # path relative to the world folder
    prompt: str
    answer: str


def read_examples(path: Path) -> list[Example]:
    out = []
    for lineno, obj in read_jsonl(path):
        try:
            out.append(Example(str(obj["image"]), str(obj["prompt"]), str(obj["answer"])))
        except KeyError as e:
            raise UserError(f"{path}:{lineno}: missing key {e.args[0]!r}; expected image, prompt, answer") from None
    if not out:
        raise UserError(f"{path}: no examples")
    return out


def conversation(prompt: str, answer: str | None = None) -> list[dict[str, Any]]:
    conv: list[dict[str, Any]] = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    if answer is not None:
        conv.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return conv


def encode_example(processor, prompt: str, answer: str) -> tuple[list[int], int]:
    """Token ids of the full conversation (image token expanded) and the length of its prompt part."""
    tok = processor.tokenizer
    expand = IMAGE * N_IMAGE_TOKENS

    def ids(text: str) -> list[int]:
        return tok(text.replace(IMAGE, expand), add_special_tokens=False)["input_ids"]

    prompt_ids = ids(processor.apply_chat_template(conversation(prompt), add_generation_prompt=True, tokenize=False))
    full_ids = ids(processor.apply_chat_template(conversation(prompt, answer), tokenize=False))
    if full_ids[: len(prompt_ids)] != prompt_ids:
        raise AssertionError(f"prompt tokens are not a prefix of the conversation's: {prompt!r} / {answer!r}")
    return full_ids, len(prompt_ids)


def load_pixels(processor, world_dir: Path, images: Sequence[str], batch: int = 256):
    """Pixel tensors of the unique images, as (tensor [n, 3, H, W], index by relative path)."""
    import torch
    from PIL import Image

    unique = sorted(set(images))
    chunks = []
    for start in range(0, len(unique), batch):
        pil = []
        for rel in unique[start : start + batch]:
            p = world_dir / rel
            if not p.is_file():
                raise UserError(f"{p}: image not found (listed in the world's training files)")
            with Image.open(p) as im:
                pil.append(im.convert("RGB"))
        chunks.append(processor.image_processor(pil, return_tensors="pt")["pixel_values"])
    return torch.cat(chunks), {rel: i for i, rel in enumerate(unique)}


def _world_vocabulary(world_dir: Path) -> list[str]:
    """The generator's vocabulary plus every word of the training files (so nothing maps to <unk>)."""
    words: list[str] = []
    try:
        from csr_bench.world.generator import vocabulary

        words.extend(vocabulary())
    except ImportError:
        pass
    for name in ("captions.jsonl", "yesno.jsonl"):
        for ex in read_examples(world_dir / "train" / name):
            words.extend(_base_words([ex.prompt.lower(), ex.answer.lower()]))
    return list(dict.fromkeys(words))


def train_tiny_llava(
    world_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    steps: int | None = None,
    batch_size: int | None = None,
    seed: int | None = None,
    lr: float | None = None,
    config: TrainConfig | None = None,
    model_config: TinyLlavaConfig | None = None,
    log_every: int = 50,
    log=print,
    callback: Callable[[int, Any, Any], None] | None = None,
) -> dict[str, Any]:
    """Train the tiny LLaVA on a world's training captions and yes/no questions; save it to `out_dir`.

    `steps`, `batch_size`, `seed` and `lr` override the same fields of `config` (default: TrainConfig()).
    Writes model.safetensors, config.json, generation_config.json, the processor files and train_info.json.
    Deterministic for a given world, config and thread count. Returns the training summary.
    `callback(step, model, processor)` runs every `log_every` steps (e.g. to evaluate while training).
    """
    import torch

    world = Path(world_dir)
    overrides = {"steps": steps, "batch_size": batch_size, "seed": seed, "lr": lr}
    cfg = replace(config or TrainConfig(), **{k: v for k, v in overrides.items() if v is not None})
    if cfg.steps < 0 or cfg.batch_size < 1 or not 0 <= cfg.yesno_fraction <= 1:
        raise UserError(f"training config {cfg}: expected steps >= 0, batch_size >= 1, 0 <= yesno_fraction <= 1")
    steps, batch_size, seed = cfg.steps, cfg.batch_size, cfg.seed
    captions = read_examples(world / "train" / "captions.jsonl")
    yesno = read_examples(world / "train" / "yesno.jsonl")
    model, processor = build_tiny_llava(_world_vocabulary(world), model_config, seed=seed)
    pixels, image_index = load_pixels(processor, world, [e.image for e in captions + yesno])

    def encode(examples: list[Example]):
        enc = [encode_example(processor, e.prompt, e.answer) for e in examples]
        return enc, torch.tensor([image_index[e.image] for e in examples])

    cap_enc, cap_img = encode(captions)
    yn_enc, yn_img = encode(yesno)
    pad_id = processor.tokenizer.pad_token_id
    n_yesno = round(batch_size * cfg.yesno_fraction)
    n_captions = batch_size - n_yesno

    def collate(pool, pool_img, idx):
        rows = [pool[i] for i in idx.tolist()]
        width = max(len(ids) for ids, _ in rows)
        input_ids = torch.full((len(rows), width), pad_id)
        labels = torch.full((len(rows), width), -100)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, (ids, n_prompt) in enumerate(rows):
            input_ids[r, : len(ids)] = torch.tensor(ids)
            labels[r, n_prompt : len(ids)] = torch.tensor(ids[n_prompt:])
            mask[r, : len(ids)] = 1
        return input_ids, mask, labels, pixels[pool_img[idx]]

    def per_example_loss(input_ids, mask, labels, pix):
        logits = model(input_ids=input_ids, attention_mask=mask, pixel_values=pix).logits
        target = labels[:, 1:]
        nll = torch.nn.functional.cross_entropy(
            logits[:, :-1].transpose(1, 2).float(), target, ignore_index=-100, reduction="none"
        )
        counts = (target != -100).sum(1).clamp(min=1)
        return nll.sum(1) / counts

    gen = torch.Generator().manual_seed(seed)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr
    )

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = (step - cfg.warmup_steps) / max(1, steps - cfg.warmup_steps)
        floor = cfg.final_lr_fraction
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    start = time.perf_counter()
    recent: list[float] = []
    for step in range(steps):
        losses = []
        if n_captions:
            idx = torch.randint(len(cap_enc), (n_captions,), generator=gen)
            losses.append(per_example_loss(*collate(cap_enc, cap_img, idx)))
        if n_yesno:
            idx = torch.randint(len(yn_enc), (n_yesno,), generator=gen)
            losses.append(per_example_loss(*collate(yn_enc, yn_img, idx)))
        loss = torch.cat(losses).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        recent.append(loss.item())
        if log and log_every and ((step + 1) % log_every == 0 or step + 1 == steps):
            mean = sum(recent[-log_every:]) / len(recent[-log_every:])
            log(f"tiny-llava step {step + 1}/{steps} loss {mean:.4f} ({time.perf_counter() - start:.0f}s)")
        if callback and log_every and (step + 1) % log_every == 0:
            model.eval()
            callback(step + 1, model, processor)
            model.train()
    model.eval()

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from csr_bench.models.hf import quiet_transformers

    with quiet_transformers():
        model.save_pretrained(out)
        processor.save_pretrained(out)
    info = {
        "model": "tiny-llava",
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_config": asdict(cfg),
        "model_config": asdict(model_config or TinyLlavaConfig()),
        "world": _world_info(world),
        "train_examples": {"captions": len(captions), "yesno": len(yesno)},
        "final_loss": sum(recent[-log_every:]) / len(recent[-log_every:]) if recent else None,
        "seconds": round(time.perf_counter() - start, 1),
        "torch_threads": torch.get_num_threads(),
    }
    atomic_write_json(out / "train_info.json", info)
    return info


def _world_info(world: Path) -> dict[str, Any]:
    """What identifies the world the model was trained on (its manifest when the generator wrote one)."""
    for name in ("world.json", "manifest.json"):
        p = world / name
        if p.is_file():
            try:
                meta = json.loads(p.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                break
            return {k: meta[k] for k in ("generator_version", "seed", "config") if k in meta}
    return {}


# --------------------------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class CategoryWords:
    name: str
    color: str
    noun: str  # as captions say it ("ball" for "sports ball")
    noun_plural: str

    def mentioned_in(self, text: str) -> bool:
        words = re.findall(r"\w+", text.lower())
        return any(_has_phrase(words, p.split()) for p in {self.noun, self.noun_plural, self.name})


def _has_phrase(words: list[str], phrase: list[str]) -> bool:
    n = len(phrase)
    return any(words[i : i + n] == phrase for i in range(len(words) - n + 1))


def world_categories(world_dir: str | os.PathLike) -> dict[str, CategoryWords]:
    """Category name -> the words captions use for it, from the world's world.json."""
    from csr_bench.core.files import read_json

    meta = read_json(Path(world_dir) / "world.json", "world.json")
    out = {}
    for c in meta["categories"]:
        noun = c.get("caption_noun", c["name"])
        out[c["name"]] = CategoryWords(c["name"], c.get("color", ""), noun, c["plural"].split()[-1])
    return out


def yes_no(output: str) -> str | None:
    """'yes' / 'no' from the first word of an answer, else None (a plain comparison, no keyword search)."""
    m = re.match(r"\W*(\w+)", output)
    word = m.group(1).lower() if m else ""
    return word if word in ("yes", "no") else None


def evaluate_tiny_llava(
    model: Any,
    world_dir: str | os.PathLike,
    *,
    max_pope_per_split: int | None = None,
    max_probe: int | None = None,
    batch_size: int = 16,
) -> dict[str, Any]:
    """Quick quality check of a model (adapter or checkpoint path) on a world.

    POPE: accuracy of the first word (yes/no) against the label, per split. Probe captions: the share of
    captions that name the absent co-occurrence partner of the trigger in the image (the hallucination CSR
    should reduce; a freshly trained tiny model is meant to show it).
    """
    from csr_bench.core.types import ImagePart, Message
    from csr_bench.models.base import GenRequest, load_adapter

    world = Path(world_dir)
    adapter = load_adapter(str(model)) if isinstance(model, (str, os.PathLike)) else model
    meta = json.loads((world / "world.json").read_text(encoding="utf-8"))
    results: dict[str, Any] = {"pope": {}}
    for split, rel in sorted(meta["pope"].items()):
        rows = [obj for _, obj in read_jsonl(world / rel)][:max_pope_per_split]
        reqs = [
            GenRequest((Message.user(ImagePart(str(world / "images" / "val2014" / r["image"])), r["text"]),))
            for r in rows
        ]
        outs = adapter.generate(reqs, max_new_tokens=3, batch_size=batch_size)
        answers = [yes_no(o) for o in outs]
        correct = sum(a == r["label"].strip().lower() for a, r in zip(answers, rows))
        results["pope"][split] = {
            "n": len(rows),
            "accuracy": correct / len(rows) if rows else None,
            "yes_rate": sum(a == "yes" for a in answers) / len(rows) if rows else None,
            "unparsed": sum(a is None for a in answers),
        }
    cats = world_categories(world)
    pairs = {c["trigger"]: c["partner"] for c in meta["cooccurrence"]}
    probe_ids = set(meta["probe_image_ids"])
    instances = json.loads((world / "annotations" / "instances_val2014.json").read_text(encoding="utf-8"))
    names = {c["id"]: c["name"] for c in instances["categories"]}
    present: dict[int, set[str]] = {}
    for a in instances["annotations"]:
        present.setdefault(a["image_id"], set()).add(names[a["category_id"]])
    prompts = [obj for _, obj in read_jsonl(world / "captions" / "probe_prompts.jsonl")]
    prompts = [p for p in prompts if p["image_id"] in probe_ids][:max_probe]
    reqs = [GenRequest((Message.user(ImagePart(str(world / p["image"])), p["prompt"]),)) for p in prompts]
    captions = adapter.generate(reqs, max_new_tokens=40, batch_size=batch_size)
    named_partner = 0
    examples = []
    for p, caption in zip(prompts, captions):
        objs = present.get(p["image_id"], set())
        absent_partners = [pairs[t] for t in objs if t in pairs and pairs[t] not in objs]
        hit = any(cats[name].mentioned_in(caption) for name in absent_partners)
        named_partner += hit
        if len(examples) < 5:
            examples.append({"image_id": p["image_id"], "objects": sorted(objs), "caption": caption})
    results["probe"] = {
        "n": len(prompts),
        "partner_named_rate": named_partner / len(prompts) if prompts else None,
        "examples": examples,
    }
    return results
