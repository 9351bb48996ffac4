"""The embedded world: synthetic scenes written in the official file formats of the real suites.

`generate_world(out_dir)` writes, under out_dir (the "world root"; every path below is relative to it):

    images/train2014/COCO_train2014_%012d.png     training images
    images/val2014/COCO_val2014_%012d.png         validation and probe images (probe ids are in world.json)
    annotations/instances_{train,val}2014.json    COCO instances (polygons, boxes, categories)
    annotations/captions_{train,val}2014.json     COCO captions: several references per image, naming exactly
                                                  the objects present
    pope/                                         POPE random / popular / adversarial questions built from the
                                                  val2014 instances by csr_bench.suites.pope.build_pope_questions
    mme/eval_tool/Your_Results/<task>.txt         MME template: image \\t question \\t Yes|No, two lines per image
    mme/MME_Benchmark_release_version/<task>/     the MME release layout: <image>.png beside <image>.txt
    mmbench/mmbench_dev_en.tsv                    MMBench dev TSV (base64 images, circular copies)
    gqa/testdev_balanced_questions.json, gqa/images/<imageId>.jpg
    vizwiz/val.json, vizwiz/val/VizWiz_val_%08d.png
    llava_wild/{questions,context,answers_gpt4}.jsonl, llava_wild/images/%03d.png
                                                  LLaVA-Bench in-the-wild: conv/detail/complex questions, a context
                                                  caption and reference answers naming every object (WorldJudge)
    mmvet/mm-vet.json, mmvet/images/v1_<n>.png    MM-Vet: <AND>/<OR> ground truths over rec/spat/math/gen
    captions/{val,probe}_prompts.jsonl            {"image_id", "image", "prompt"} for CHAIR captioning
    train/captions.jsonl, train/yesno.jsonl,      {"image", "prompt", "answer"} for training the tiny model
    train/vqa.jsonl                               (vqa: short answers worded as the GQA/VizWiz files word them)
    world.json                                    seed, config, categories, pairs, probe ids, file list + SHA-256

The "image" of every JSON Lines file above is a path relative to the world root (e.g.
"images/val2014/COCO_val2014_000000003001.png"); POPE, MME, GQA and VizWiz name their images as the real files do.

Splits. Train: for each co-occurrence pair (trigger, partner, p), a scene holding the trigger holds the partner
with probability p (a strong bias a tiny model learns, then hallucinates). Val: the same pairs at probability
p * val_cooccurrence_scale (0.5 by default), so the bias is visible to POPE's adversarial sampling yet about half
of the trigger scenes lack the partner. Probe: every scene holds a trigger and no partner of any pair, which is
where CHAIR on the probe captions measures hallucinated partners.

The same seed gives byte-identical files (fixed PNG/JPEG settings, sorted JSON keys, no timestamps, no absolute
paths), whatever out_dir is.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from csr_bench.errors import UserError
from csr_bench.world import formats as F
from csr_bench.world import language as L
from csr_bench.world.language import tokenize, vocabulary
from csr_bench.world.scenes import (
    CATEGORIES,
    CATEGORY_BY_NAME,
    COLORS,
    Scene,
    encode_jpeg,
    encode_png,
    place_objects,
    render,
    sample_categories,
)

GENERATOR_VERSION = "1.0"

__all__ = ["CATEGORIES", "GENERATOR_VERSION", "WorldConfig", "WorldPaths", "generate_world", "tokenize",
           "vocabulary"]


@dataclass(frozen=True)
class WorldConfig:
    """What the world holds. Every field changes the files; world.json records them all."""

    seed: int = 0
    n_train: int = 3000  # training images (train2014)
    n_val: int = 300  # validation images (val2014), the source of MME / MMBench / GQA / VizWiz questions
    n_probe: int = 200  # probe images (val2014): a trigger without its partner, for CHAIR
    image_size: int = 64
    # (trigger, partner, p): in training scenes with the trigger, the partner is present with probability p.
    cooccurrence: tuple[tuple[str, str, float], ...] = (
        ("knife", "fork", 0.9),
        ("sports ball", "dog", 0.9),
        ("car", "person", 0.85),
    )
    val_cooccurrence_scale: float = 0.5  # val scenes use p * this (a weaker, still visible bias)
    objects_per_image_weights: tuple[float, ...] = (0.15, 0.25, 0.3, 0.3)  # P(1), P(2), P(3), P(4) objects
    duplicate_prob: float = 0.2  # chance that one category gets a second instance (for counting questions)
    captions_per_image: int = 5  # COCO has five references per image
    partner_negative_prob: float = 0.5  # training yes/no: chance a "No" asks about a missing partner
    n_pope_images: int = 100  # POPE images per split (3 Yes + 3 No questions each)
    mme_images_per_task: int = 30  # as the official existence/count/position/color tasks
    n_mmbench_questions: int = 100  # each written with its circular copies
    n_gqa_questions: int = 300
    n_vizwiz_questions: int = 200  # one question per image, as VizWiz
    n_llava_wild_questions: int = 30  # conv, detail and complex on each of ceil(n / 3) images
    n_mmvet_questions: int = 30  # one image per question

    def __post_init__(self) -> None:
        for name in ("n_train", "n_val", "n_probe", "captions_per_image", "n_pope_images", "mme_images_per_task",
                     "n_mmbench_questions", "n_gqa_questions", "n_vizwiz_questions", "n_llava_wild_questions",
                     "n_mmvet_questions"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise UserError(f"WorldConfig.{name}: expected a positive integer, got {getattr(self, name)!r}")
        if self.image_size < 32 or self.image_size % 2:
            raise UserError(f"WorldConfig.image_size: expected an even number >= 32, got {self.image_size}")
        if self.n_vizwiz_questions > self.n_val:
            raise UserError(f"WorldConfig.n_vizwiz_questions: VizWiz asks one question per image, so at most "
                            f"n_val={self.n_val}, got {self.n_vizwiz_questions}")
        if self.n_llava_wild_questions > 3 * self.n_val:
            raise UserError(f"WorldConfig.n_llava_wild_questions: three questions per image, so at most "
                            f"3 * n_val={3 * self.n_val}, got {self.n_llava_wild_questions}")
        w = self.objects_per_image_weights
        if not 1 <= len(w) <= 4 or any(x < 0 for x in w) or sum(w) <= 0:
            raise UserError(f"WorldConfig.objects_per_image_weights: expected 1 to 4 non-negative weights "
                            f"(objects 1..4), got {w!r}")
        triggers = [t for t, _, _ in self.cooccurrence]
        partners = [p for _, p, _ in self.cooccurrence]
        if not triggers:
            raise UserError("WorldConfig.cooccurrence: expected at least one (trigger, partner, p) pair")
        for t, p, prob in self.cooccurrence:
            for n in (t, p):
                if n not in CATEGORY_BY_NAME:
                    raise UserError(f"WorldConfig.cooccurrence: unknown category {n!r}; expected one of "
                                    f"{sorted(CATEGORY_BY_NAME)}")
            if not 0 <= prob <= 1:
                raise UserError(f"WorldConfig.cooccurrence: probability of ({t!r}, {p!r}) must be in [0, 1]")
        if len(set(triggers)) != len(triggers) or set(triggers) & set(partners) or len(set(triggers + partners)) > len(
                CATEGORIES) - 3:
            raise UserError("WorldConfig.cooccurrence: each trigger once, no category both trigger and partner, "
                            f"and at least 3 categories outside the pairs; got {self.cooccurrence!r}")
        for name in ("val_cooccurrence_scale", "duplicate_prob", "partner_negative_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise UserError(f"WorldConfig.{name}: expected a number in [0, 1], got {getattr(self, name)!r}")

    @classmethod
    def quick(cls, seed: int = 0, **overrides: Any) -> "WorldConfig":
        """A small world for tests and smoke runs (about a tenth of the default)."""
        small = dict(n_train=400, n_val=80, n_probe=40, n_pope_images=30, mme_images_per_task=10,
                     n_mmbench_questions=20, n_gqa_questions=60, n_vizwiz_questions=40,
                     n_llava_wild_questions=12, n_mmvet_questions=12)
        return cls(seed=seed, **{**small, **overrides})

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["cooccurrence"] = [list(x) for x in self.cooccurrence]
        d["objects_per_image_weights"] = list(self.objects_per_image_weights)
        return d


@dataclass(frozen=True)
class WorldPaths:
    """Where each file of a generated world lies (all under `root`)."""

    root: Path
    world_json: Path
    images_train: Path
    images_val: Path
    instances_train: Path
    instances_val: Path
    captions_train: Path
    captions_val: Path
    pope_dir: Path
    pope: dict[str, Path] = field(hash=False)  # "random" / "popular" / "adversarial" -> question file
    mme_dir: Path
    mme_results: Path  # eval_tool/Your_Results: <task>.txt
    mme_images: Path  # MME_Benchmark_release_version: <task>/<image_name>
    mmbench_tsv: Path
    gqa_questions: Path
    gqa_images: Path  # <imageId>.jpg
    vizwiz_annotations: Path
    vizwiz_images: Path  # <image>
    llava_wild_dir: Path  # the LLaVA-Bench folder: LlavaWildSuite(llava_wild_dir)
    llava_wild_questions: Path
    llava_wild_context: Path
    llava_wild_answers: Path  # answers_gpt4.jsonl: the reference answers
    llava_wild_images: Path
    mmvet_dir: Path  # the MM-Vet folder: MMVetSuite(mmvet_dir)
    mmvet_json: Path
    mmvet_images: Path
    val_prompts: Path
    probe_prompts: Path
    train_captions: Path
    train_yesno: Path
    train_vqa: Path

    @classmethod
    def at(cls, root: str | os.PathLike) -> "WorldPaths":
        """The paths of the world under root; the POPE files are read from its world.json when it exists."""
        r = Path(root)
        pope: dict[str, Path] = {}
        if (r / "world.json").is_file():
            pope = {k: r / v for k, v in json.loads((r / "world.json").read_text("utf-8"))["pope"].items()}
        return cls(
            root=r, world_json=r / "world.json", images_train=r / "images/train2014", images_val=r / "images/val2014",
            instances_train=r / "annotations/instances_train2014.json",
            instances_val=r / "annotations/instances_val2014.json",
            captions_train=r / "annotations/captions_train2014.json",
            captions_val=r / "annotations/captions_val2014.json",
            pope_dir=r / "pope", pope=pope, mme_dir=r / "mme", mme_results=r / "mme/eval_tool/Your_Results",
            mme_images=r / "mme/MME_Benchmark_release_version", mmbench_tsv=r / "mmbench/mmbench_dev_en.tsv",
            gqa_questions=r / "gqa/testdev_balanced_questions.json", gqa_images=r / "gqa/images",
            vizwiz_annotations=r / "vizwiz/val.json", vizwiz_images=r / "vizwiz/val",
            llava_wild_dir=r / "llava_wild", llava_wild_questions=r / "llava_wild/questions.jsonl",
            llava_wild_context=r / "llava_wild/context.jsonl", llava_wild_answers=r / "llava_wild/answers_gpt4.jsonl",
            llava_wild_images=r / "llava_wild/images", mmvet_dir=r / "mmvet", mmvet_json=r / "mmvet/mm-vet.json",
            mmvet_images=r / "mmvet/images",
            val_prompts=r / "captions/val_prompts.jsonl", probe_prompts=r / "captions/probe_prompts.jsonl",
            train_captions=r / "train/captions.jsonl", train_yesno=r / "train/yesno.jsonl",
            train_vqa=r / "train/vqa.jsonl",
        )


def _rng(seed: int, purpose: str) -> random.Random:
    # One stream per purpose (a str seed is hashed with SHA-512 by random, so it is stable across runs), so
    # changing, say, the number of GQA questions leaves the images untouched.
    return random.Random(f"csr-bench-world:{seed}:{purpose}")


def _scenes(cfg: WorldConfig, split: str, n: int, first_id: int) -> list[Scene]:
    rng = _rng(cfg.seed, f"scenes/{split}")
    scale = 1.0 if split == "train" else cfg.val_cooccurrence_scale
    coco_split = "train2014" if split == "train" else "val2014"
    out = []
    for i in range(n):
        cats = sample_categories(rng, cfg.objects_per_image_weights, cfg.cooccurrence, scale,
                                 probe=split == "probe", duplicate_prob=cfg.duplicate_prob)
        objects = place_objects(rng, cats, cfg.image_size)
        image_id = first_id + i
        out.append(Scene(image_id=image_id, split=split, file_name=f"COCO_{coco_split}_{image_id:012d}.png",
                         background=rng.randint(112, 144), objects=objects))
    return out


def _check_out_dir(out: Path) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "world.json").is_file())):
        raise UserError(f"{out}: exists and is not a csr-bench world (no world.json); pass a new or empty folder")


def _install(built: Path, out: Path) -> None:
    """Move the finished world into place, so a reader never sees half a world."""
    if out.exists() and any(out.iterdir()):
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
        os.replace(out, old / "world")
        os.replace(built, out)
        shutil.rmtree(old)
    else:
        if out.exists():
            out.rmdir()
        os.replace(built, out)


def generate_world(out_dir: str | os.PathLike, *, seed: int | None = None,
                   config: WorldConfig | None = None) -> WorldPaths:
    """Write the world under out_dir (replacing an earlier world there) and return its paths.

    seed, when given, overrides config.seed (default config: WorldConfig()).
    """
    cfg = config or WorldConfig()
    if seed is not None and seed != cfg.seed:
        cfg = replace(cfg, seed=seed)
    out = Path(out_dir)
    _check_out_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{out.name}.building.", dir=out.parent))
    try:
        _build(build, cfg)
        _install(build, out)
    finally:
        if build.exists():
            shutil.rmtree(build)
    return WorldPaths.at(out)


def _build(root: Path, cfg: WorldConfig) -> None:
    sink = F.FileSink(root)
    pairs = cfg.cooccurrence
    train = _scenes(cfg, "train", cfg.n_train, 1)
    val = _scenes(cfg, "val", cfg.n_val, cfg.n_train + 1)
    probe = _scenes(cfg, "probe", cfg.n_probe, cfg.n_train + cfg.n_val + 1)
    val2014 = val + probe

    png: dict[int, bytes] = {}
    for s in train + val2014:
        data = encode_png(render(s, cfg.image_size))
        sink.bytes(s.image_path, data)
        if s.split != "train":
            png[s.image_id] = data

    def png_of(s: Scene) -> bytes:
        return png[s.image_id]

    def jpeg_of(s: Scene) -> bytes:
        return encode_jpeg(render(s, cfg.image_size))

    # COCO annotations. Annotation and caption ids are unique across both splits, as in COCO.
    cap_rng = _rng(cfg.seed, "captions")
    captions = {s.image_id: L.reference_captions(s, cap_rng, cfg.captions_per_image) for s in train + val2014}
    train_ids = F.annotation_ids(train, 1)
    val_ids = F.annotation_ids(val2014, len(train_ids) + 1)
    _, _, next_cap = F.write_coco(sink, "train2014", train, captions, cfg.image_size, train_ids, 1)
    inst_val, _, _ = F.write_coco(sink, "val2014", val2014, captions, cfg.image_size, val_ids, next_cap)

    # Captioning prompts (CHAIR) and the training files of the tiny model.
    sink.jsonl("captions/val_prompts.jsonl", F.prompt_rows(val))
    sink.jsonl("captions/probe_prompts.jsonl", F.prompt_rows(probe))
    sink.jsonl("train/captions.jsonl", [{"image": s.image_path, "prompt": L.CAPTION_PROMPT, "answer": c}
                                        for s in train for c in captions[s.image_id]])
    yn_rng = _rng(cfg.seed, "train/yesno")
    sink.jsonl("train/yesno.jsonl", [r for s in train for r in F.yesno_rows(s, yn_rng, pairs,
                                                                              cfg.partner_negative_prob)])
    vqa_rng = _rng(cfg.seed, "train/vqa")
    sink.jsonl("train/vqa.jsonl", [r for s in train for r in F.vqa_rows(s, vqa_rng)])

    # Benchmark-format files, all from the validation scenes (not the probe ones).
    F.write_mme(sink, val, png_of, cfg.mme_images_per_task, _rng(cfg.seed, "mme"), pairs)
    F.write_mmbench(sink, val, png_of, cfg.n_mmbench_questions, _rng(cfg.seed, "mmbench"), pairs)
    F.write_gqa(sink, val, jpeg_of, cfg.n_gqa_questions, _rng(cfg.seed, "gqa"), pairs, val_ids)
    F.write_vizwiz(sink, val, png_of, cfg.n_vizwiz_questions, _rng(cfg.seed, "vizwiz"), pairs)
    F.write_llava_wild(sink, val, png_of, cfg.n_llava_wild_questions, _rng(cfg.seed, "llava_wild"))
    F.write_mmvet(sink, val, png_of, cfg.n_mmvet_questions, _rng(cfg.seed, "mmvet"))

    # POPE, as the real one: sampled from val2014 images with at least 3 annotated categories.
    from csr_bench.suites.pope import build_pope_questions

    eligible = sum(1 for s in val2014 if len(s.counts()) >= 3)
    pope = build_pope_questions(inst_val, root / "pope", n_images=min(cfg.n_pope_images, eligible), n_per_image=3,
                                seed=cfg.seed, dataset_name="coco")

    world = {
        "generator_version": GENERATOR_VERSION,
        "seed": cfg.seed,
        "config": cfg.to_json(),
        "image_size": cfg.image_size,
        "categories": [{"id": c["id"], "name": c["name"], "supercategory": c["supercategory"], "shape": c["shape"],
                        "color": c["color"], "rgb": list(COLORS[c["color"]]), "caption_noun": c["noun"],
                        "plural": c["plural"]} for c in CATEGORIES],
        "cooccurrence": [{"trigger": t, "partner": p, "train_probability": prob,
                          "val_probability": prob * cfg.val_cooccurrence_scale} for t, p, prob in pairs],
        "splits": {
            "train": {"coco_split": "train2014", "image_ids": [s.image_id for s in train]},
            "val": {"coco_split": "val2014", "image_ids": [s.image_id for s in val]},
            "probe": {"coco_split": "val2014", "image_ids": [s.image_id for s in probe]},
        },
        "probe_image_ids": [s.image_id for s in probe],
        "pope": {k: Path(v).resolve().relative_to(root.resolve()).as_posix() for k, v in sorted(pope.items())},
        "layout": {
            "image_root": "images/<coco_split>/<file_name>",
            "mme": "mme/eval_tool/Your_Results/<task>.txt; images in mme/MME_Benchmark_release_version/<task>/",
            "gqa": "gqa/testdev_balanced_questions.json; images in gqa/images/<imageId>.jpg",
            "vizwiz": "vizwiz/val.json; images in vizwiz/val/<image>",
            "llava_wild": "llava_wild/questions.jsonl, context.jsonl, answers_gpt4.jsonl; images in llava_wild/images/",
            "mmvet": "mmvet/mm-vet.json; images in mmvet/images/<imagename>",
            "jsonl_image_paths": "relative to the world root",
        },
        "vocabulary_sha256": hashlib.sha256("\n".join(vocabulary()).encode()).hexdigest(),
        "files": sink.manifest(),
    }
    sink.json("world.json", world, indent=1)
