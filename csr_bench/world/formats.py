"""Writers of the official file formats, fed with the world's scenes.

Each writer mirrors the layout of the real release it imitates, so the suite loaders read the world exactly as
they read the real data:

- COCO 2014 `instances_*.json` / `captions_*.json` (info, licenses, images, annotations, categories);
- MME: the eval_tool template `eval_tool/Your_Results/<task>.txt` (`image \\t question \\t Yes|No`, the Yes line
  first, two lines per image, no header) and the release folder `MME_Benchmark_release_version/<task>/` where,
  as for the official existence/count/position/color tasks, each image sits beside `<stem>.txt` holding its two
  `question \\t answer` lines;
- MMBench dev TSV (columns of mmbench_dev_en: index, question, hint, A-D, answer, category, image as base64,
  source, l2-category, comment, split), with the circular copies at index + k * 1,000,000 as in the release;
- GQA `testdev_balanced_questions.json` (dict keyed by question id) with `images/<imageId>.jpg`;
- VizWiz-VQA `val.json` (a list; ten answers per question) with the images in `val/`;
- LLaVA-Bench in-the-wild (liuhaotian/llava-bench-in-the-wild): `questions.jsonl` (question_id, image, text,
  category; an image's conv, detail and complex questions in a row), `context.jsonl` (id, image, caption),
  `answers_gpt4.jsonl` (the reference answers, line by line with the questions) and `images/`;
- MM-Vet `mm-vet.json` (keyed "v1_<n>": imagename, capability, question, answer with <AND>/<OR>) and `images/`.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import random
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from csr_bench.world import language as L
from csr_bench.world.scenes import CATEGORIES, CATEGORY_BY_NAME, CATEGORY_NAMES, COLORS, QUADRANT_NAMES, Scene


class FileSink:
    """Writes files under a root and remembers each one (relative POSIX path) for world.json."""

    def __init__(self, root: Path):
        self.root = root
        self.written: dict[str, tuple[int, str]] = {}  # relative path -> (bytes, SHA-256)
        self._dirs: set[Path] = set()

    def bytes(self, rel: str, data: bytes) -> Path:
        p = self.root / rel
        if p.parent not in self._dirs:
            p.parent.mkdir(parents=True, exist_ok=True)
            self._dirs.add(p.parent)
        p.write_bytes(data)
        self.written[rel] = (len(data), hashlib.sha256(data).hexdigest())
        return p

    def text(self, rel: str, text: str) -> Path:
        return self.bytes(rel, text.encode("utf-8"))

    def json(self, rel: str, obj: Any, indent: int | None = None) -> Path:
        seps = (",", ":") if indent is None else (",", ": ")
        return self.text(rel, json.dumps(obj, sort_keys=True, ensure_ascii=False, indent=indent,
                                         separators=seps, allow_nan=False) + "\n")

    def jsonl(self, rel: str, rows: Iterable[dict]) -> Path:
        return self.text(rel, "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows))

    def manifest(self) -> list[dict[str, Any]]:
        """Every file under the root (the sink's and any other, e.g. POPE's), with its size and SHA-256."""
        out = []
        for p in self.root.rglob("*"):
            if p.is_file():
                rel = p.relative_to(self.root).as_posix()
                if rel not in self.written:
                    data = p.read_bytes()
                    self.written[rel] = (len(data), hashlib.sha256(data).hexdigest())
                size, digest = self.written[rel]
                out.append({"path": rel, "bytes": size, "sha256": digest})
        return sorted(out, key=lambda f: f["path"])


# --- COCO ----------------------------------------------------------------------------------------------------------

_COCO_INFO = {"description": "csr-bench embedded world (synthetic scenes in COCO 2014 format)",
              "url": "", "version": "1.0", "year": 2014, "contributor": "csr-bench", "date_created": ""}
_COCO_LICENSES = [{"id": 1, "name": "synthetic, no rights reserved", "url": ""}]


def coco_categories() -> list[dict]:
    return [{"id": c["id"], "name": c["name"], "supercategory": c["supercategory"]} for c in CATEGORIES]


def _coco_images(scenes: Sequence[Scene], size: int) -> list[dict]:
    return [{"id": s.image_id, "file_name": s.file_name, "width": size, "height": size, "license": 1,
             "coco_url": "", "flickr_url": "", "date_captured": ""} for s in scenes]


def annotation_ids(scenes: Sequence[Scene], first_id: int) -> dict[tuple[int, int], int]:
    """COCO annotation id of every object, keyed by (image id, quadrant); ids are consecutive from first_id."""
    ids: dict[tuple[int, int], int] = {}
    for s in scenes:
        for o in s.objects:
            ids[(s.image_id, o.quadrant)] = first_id + len(ids)
    return ids


def write_coco(sink: FileSink, split: str, scenes: Sequence[Scene], captions: dict[int, list[str]], size: int,
               ann_ids: dict[tuple[int, int], int], first_caption_id: int) -> tuple[Path, Path, int]:
    """instances_<split>.json and captions_<split>.json; returns their paths and the next free caption id."""
    anns = []
    for s in scenes:
        for o in s.objects:
            flat = [v for xy in o.polygon for v in xy]
            anns.append({"id": ann_ids[(s.image_id, o.quadrant)], "image_id": s.image_id,
                         "category_id": CATEGORY_BY_NAME[o.category]["id"], "bbox": o.bbox, "area": o.area,
                         "iscrowd": 0, "segmentation": [flat]})
    images = _coco_images(scenes, size)
    inst = sink.json(f"annotations/instances_{split}.json",
                     {"info": _COCO_INFO, "licenses": _COCO_LICENSES, "images": images, "annotations": anns,
                      "categories": coco_categories()})
    caps, cap_id = [], first_caption_id
    for s in scenes:
        for c in captions[s.image_id]:
            caps.append({"id": cap_id, "image_id": s.image_id, "caption": c})
            cap_id += 1
    cap = sink.json(f"annotations/captions_{split}.json",
                    {"info": _COCO_INFO, "licenses": _COCO_LICENSES, "images": images, "annotations": caps})
    return inst, cap, cap_id


# --- MME -----------------------------------------------------------------------------------------------------------

MME_TASKS = ("existence", "count", "position", "color")


def _absent_hard_negative(scene: Scene, rng: random.Random, pairs: Sequence[tuple[str, str, float]]) -> str:
    """An absent category; the co-occurrence partner of a present trigger when there is one (a hard negative)."""
    present = set(scene.counts())
    partners = sorted(p for t, p, _ in pairs if t in present and p not in present)
    if partners and rng.random() < 0.7:
        return rng.choice(partners)
    return rng.choice([c for c in CATEGORY_NAMES if c not in present])


def mme_pair(task: str, scene: Scene, rng: random.Random, pairs) -> tuple[str, str] | None:
    """The (Yes question, No question) of one image for one MME task, or None if the image does not fit it."""
    counts = scene.counts()
    if task == "existence":
        yes = rng.choice(list(counts))
        no = _absent_hard_negative(scene, rng, pairs)
        return L.MME_EXISTENCE.format(a_name=L.a_name(yes)), L.MME_EXISTENCE.format(a_name=L.a_name(no))
    if task == "count":
        name = rng.choice(list(counts))
        if counts[name] == 1:
            return L.MME_COUNT_ONE.format(name=name), L.MME_COUNT_TWO.format(plural=L.plural(name))
        wrong = rng.choice([n for n in (1, 3) if n != counts[name]])
        return (L.MME_COUNT_TOTAL.format(number=L.NUMBER_WORDS[counts[name]], plural=L.plural(name)),
                L.MME_COUNT_TOTAL.format(number=L.NUMBER_WORDS[wrong], plural=L.plural(name)))
    if task == "position":
        rel = L.relation_pairs(scene)
        if not rel:
            return None
        a, b = rel[rng.randrange(len(rel))]
        if a.row == b.row:  # side by side
            true_t, false_t = (L.MME_POSITION_LEFT, L.MME_POSITION_RIGHT)[:: 1 if a.column < b.column else -1]
        else:  # one above the other
            true_t, false_t = (L.MME_POSITION_ABOVE, L.MME_POSITION_BELOW)[:: 1 if a.row < b.row else -1]
        return true_t.format(a=a.category, b=b.category), false_t.format(a=a.category, b=b.category)
    if task == "color":
        name = rng.choice(list(counts))
        wrong = rng.choice([c for c in COLORS if c != L.color_of(name)])
        return (L.MME_COLOR.format(a_color=L.a_name(L.color_of(name)), name=name),
                L.MME_COLOR.format(a_color=L.a_name(wrong), name=name))
    raise ValueError(task)


def write_mme(sink: FileSink, scenes: Sequence[Scene], png: Callable[[Scene], bytes], n_per_task: int,
              rng: random.Random, pairs) -> dict[str, Path]:
    """n_per_task images per task (fewer for "position" if fewer scenes have two objects in a row or column)."""
    out = {}
    for task in MME_TASKS:
        lines = []
        chosen = 0
        for s in rng.sample(list(scenes), len(scenes)):
            if chosen == n_per_task:
                break
            qa = mme_pair(task, s, rng, pairs)
            if qa is None:
                continue
            chosen += 1
            name = f"{s.image_id:012d}.png"  # as the official COCO-based tasks: 000000006040.jpg
            stem = name.rsplit(".", 1)[0]
            sink.bytes(f"mme/MME_Benchmark_release_version/{task}/{name}", png(s))
            sink.text(f"mme/MME_Benchmark_release_version/{task}/{stem}.txt", f"{qa[0]}\tYes\n{qa[1]}\tNo\n")
            lines.append((s.image_id, f"{name}\t{qa[0]}\tYes\n{name}\t{qa[1]}\tNo\n"))
        lines.sort()
        out[task] = sink.text(f"mme/eval_tool/Your_Results/{task}.txt", "".join(text for _, text in lines))
    return out


# --- MMBench -------------------------------------------------------------------------------------------------------

MMBENCH_COLUMNS = ("index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "source",
                   "l2-category", "comment", "split")


def _mmbench_question(scene: Scene, rng: random.Random, pairs) -> tuple[str, list[str], int, str, str]:
    """(question, options, correct option, category, l2-category) for one image."""
    kind = rng.choice(("color", "location", "relation", "recognition"))
    singles = scene.single_objects()
    if kind == "color" and singles:
        o = rng.choice(singles)
        right = L.color_of(o.category)
        opts = [right] + rng.sample([c for c in COLORS if c != right], 3)
        q = (L.MMB_COLOR.format(name=o.category), opts, "attribute_recognition",
             "finegrained_perception (instance-level)")
    elif kind == "location" and singles:
        o = rng.choice(singles)
        opts = [QUADRANT_NAMES[o.quadrant]] + [n for i, n in enumerate(QUADRANT_NAMES) if i != o.quadrant]
        q = (L.MMB_LOCATION.format(name=o.category), opts, "object_localization",
             "finegrained_perception (instance-level)")
    elif kind == "relation" and L.relation_pairs(scene):
        rel = L.relation_pairs(scene)
        a, b = rel[rng.randrange(len(rel))]
        left, right, above, below = L.MMB_RELATION_OPTIONS
        truth = (left if a.column < b.column else right) if a.row == b.row else (above if a.row < b.row else below)
        opts = [truth] + [x for x in L.MMB_RELATION_OPTIONS if x != truth]
        q = (L.MMB_RELATION.format(a=a.category, b=b.category), opts, "spatial_relationship",
             "finegrained_perception (cross-instance)")
    else:
        present = list(scene.counts())
        right = rng.choice(present)
        absent = [c for c in CATEGORY_NAMES if c not in present]
        hard = sorted(p for t, p, _ in pairs if t in present and p in absent)
        distractors = hard[:1] + rng.sample([c for c in absent if c not in hard[:1]], 3 - len(hard[:1]))
        opts = [right] + distractors
        q = (L.MMB_RECOGNITION, opts, "object_recognition", "coarse_perception")
    question, opts, cat, l2 = q
    order = rng.sample(range(4), 4)
    shuffled = [opts[i] for i in order]
    return question, shuffled, shuffled.index(opts[0]), cat, l2


def write_mmbench(sink: FileSink, scenes: Sequence[Scene], png: Callable[[Scene], bytes], n_questions: int,
                  rng: random.Random, pairs) -> Path:
    rows = []
    for base in range(1, n_questions + 1):
        s = rng.choice(list(scenes))
        question, opts, answer, cat, l2 = _mmbench_question(s, rng, pairs)
        hint = L.MMB_HINT if rng.random() < 0.3 else ""
        image = base64.b64encode(png(s)).decode("ascii")
        for k in range(len(opts)):  # circular copies: options rotated by k, index + k * 1e6
            rot = opts[k:] + opts[:k]
            rows.append({"index": base + k * 1_000_000, "question": question, "hint": hint,
                         "A": rot[0], "B": rot[1], "C": rot[2], "D": rot[3], "answer": "ABCD"[(answer - k) % 4],
                         "category": cat, "image": image, "source": "csr-bench-world", "l2-category": l2,
                         "comment": "", "split": "dev"})
    rows.sort(key=lambda r: r["index"])
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=MMBENCH_COLUMNS, delimiter="\t", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return sink.text("mmbench/mmbench_dev_en.tsv", buf.getvalue())


# --- GQA -----------------------------------------------------------------------------------------------------------

def _gqa_entry(scene: Scene, rng: random.Random, pairs, ann_ids: dict[tuple[int, int], int]) -> dict:
    kind = rng.choice(("exist", "color", "rel"))
    singles = scene.single_objects()
    def obj_ref(o) -> str:  # GQA cites an object as "name (annotation id)"
        return f"{o.category} ({ann_ids[(scene.image_id, o.quadrant)]})"

    if kind == "color" and singles:
        o = rng.choice(singles)
        color = L.color_of(o.category)
        return {"question": L.GQA_COLOR.format(name=o.category), "answer": color,
                "fullAnswer": L.GQA_COLOR_FULL.format(name=o.category, color=color),
                "types": {"detailed": "queryAttr", "semantic": "attr", "structural": "query"},
                "semantic": [{"operation": "select", "dependencies": [], "argument": obj_ref(o)},
                             {"operation": "query", "dependencies": [0], "argument": "color"}],
                "groups": {"global": "color", "local": f"10q-{o.category}_color"}}
    rel = [(a, b) for a, b in L.relation_pairs(scene) if a.row == b.row]
    if kind == "rel" and rel:
        a, b = rel[rng.randrange(len(rel))]
        side = "left" if a.column < b.column else "right"
        a_id = ann_ids[(scene.image_id, a.quadrant)]
        return {"question": L.GQA_LEFT_RIGHT.format(a=a.category, b=b.category), "answer": side,
                "fullAnswer": L.GQA_LEFT_RIGHT_FULL.format(a=a.category, b=b.category, side=side),
                "types": {"detailed": "chooseRel", "semantic": "rel", "structural": "choose"},
                "semantic": [{"operation": "select", "dependencies": [], "argument": obj_ref(b)},
                             {"operation": "choose rel", "dependencies": [0],
                              "argument": f"{a.category},to the left of|to the right of,s ({a_id})"}],
                "groups": {"global": None, "local": f"13-{b.category}_{a.category}"}}
    if rng.random() < 0.5:
        o = rng.choice(list(scene.objects))
        name, answer, full, ref = o.category, "yes", L.GQA_EXIST_YES.format(a_name=L.a_name(o.category)), obj_ref(o)
    else:
        name = _absent_hard_negative(scene, rng, pairs)
        answer, full, ref = "no", L.GQA_EXIST_NO.format(name=name), f"{name} (-)"
    return {"question": L.GQA_EXIST.format(a_name=L.a_name(name)), "answer": answer, "fullAnswer": full,
            "types": {"detailed": "exist", "semantic": "obj", "structural": "verify"},
            "semantic": [{"operation": "select", "dependencies": [], "argument": ref},
                         {"operation": "exist", "dependencies": [0], "argument": "?"}],
            "groups": {"global": None, "local": f"06-{name}"}}


def gqa_image_id(scene: Scene) -> str:
    return f"n{scene.image_id:06d}"


def write_gqa(sink: FileSink, scenes: Sequence[Scene], jpeg: Callable[[Scene], bytes], n_questions: int,
              rng: random.Random, pairs, ann_ids: dict[tuple[int, int], int]) -> Path:
    questions: dict[str, dict] = {}
    used: dict[str, Scene] = {}
    qid = 0
    while len(questions) < n_questions:
        s = rng.choice(list(scenes))
        e = _gqa_entry(s, rng, pairs, ann_ids)
        qid += 1
        key = f"{20000000 + qid:08d}"
        e.update({"imageId": gqa_image_id(s), "isBalanced": True, "entailed": [], "equivalent": [key],
                  "annotations": {"answer": {}, "question": {}, "fullAnswer": {}},
                  "semanticStr": "->".join(f"{op['operation']}: {op['argument']}" for op in e["semantic"])})
        questions[key] = e
        used[gqa_image_id(s)] = s
    for image_id in sorted(used):
        sink.bytes(f"gqa/images/{image_id}.jpg", jpeg(used[image_id]))
    return sink.json("gqa/testdev_balanced_questions.json", questions)


# --- VizWiz --------------------------------------------------------------------------------------------------------

def _ten_answers(rng: random.Random, right: str, alternatives: Sequence[str]) -> list[dict]:
    """Ten crowd answers: mostly the right one, a few alternatives, confidences as VizWiz records them."""
    n_alt = rng.choice((0, 0, 1, 2, 3)) if alternatives else 0
    answers = [right] * (10 - n_alt) + [rng.choice(alternatives) for _ in range(n_alt)]
    rng.shuffle(answers)
    return [{"answer": a, "answer_confidence": rng.choice(("yes", "yes", "yes", "maybe"))} for a in answers]


def _vizwiz_entry(scene: Scene, rng: random.Random, pairs) -> dict:
    counts = scene.counts()
    kinds = ["color", "count", "exist", "unanswerable"] + (["what"] if len(scene.objects) == 1 else [])
    kind = rng.choice(kinds)
    if kind == "color" and scene.single_objects():
        o = rng.choice(scene.single_objects())
        c = L.color_of(o.category)
        return {"question": L.VIZWIZ_COLOR.format(name=o.category), "answer_type": "other", "answerable": 1,
                "answers": _ten_answers(rng, c, [f"light {c}", f"dark {c}"])}
    if kind == "count" or kind == "color":
        name = rng.choice(list(counts))
        n = counts[name]
        return {"question": L.VIZWIZ_COUNT.format(plural=L.plural(name)), "answer_type": "number", "answerable": 1,
                "answers": _ten_answers(rng, str(n), [L.NUMBER_WORDS[n]])}
    if kind == "what":
        cat = CATEGORY_BY_NAME[scene.objects[0].category]
        alts = [cat["noun"]] if cat["noun"] != cat["name"] else []
        return {"question": L.VIZWIZ_WHAT, "answer_type": "other", "answerable": 1,
                "answers": _ten_answers(rng, cat["name"], alts)}
    if kind == "exist":
        if rng.random() < 0.5:
            name, right = rng.choice(list(counts)), "yes"
        else:
            name, right = _absent_hard_negative(scene, rng, pairs), "no"
        return {"question": L.VIZWIZ_EXIST.format(a_name=L.a_name(name)), "answer_type": "yes/no", "answerable": 1,
                "answers": _ten_answers(rng, right, [])}
    return {"question": L.VIZWIZ_UNANSWERABLE, "answer_type": "unanswerable", "answerable": 0,
            "answers": _ten_answers(rng, L.UNANSWERABLE, ["unsuitable"])}


def write_vizwiz(sink: FileSink, scenes: Sequence[Scene], png: Callable[[Scene], bytes], n_questions: int,
                 rng: random.Random, pairs) -> Path:
    """One question per image, as in VizWiz; image names VizWiz_val_%08d.png in vizwiz/val/."""
    entries = []
    for i, s in enumerate(rng.sample(list(scenes), n_questions)):
        name = f"VizWiz_val_{i:08d}.png"
        sink.bytes(f"vizwiz/val/{name}", png(s))
        entries.append({"image": name, **_vizwiz_entry(s, rng, pairs)})
    return sink.json("vizwiz/val.json", entries)


# --- LLaVA-Bench in-the-wild ---------------------------------------------------------------------------------------

LLAVA_W_QUESTIONS = (("conv", L.LLAVA_W_CONV), ("detail", L.LLAVA_W_DETAIL), ("complex", L.LLAVA_W_COMPLEX))


def write_llava_wild(sink: FileSink, scenes: Sequence[Scene], png: Callable[[Scene], bytes], n_questions: int,
                     rng: random.Random) -> Path:
    """n_questions over ceil(n / 3) images (conv, detail, complex per image, as the release groups them); the
    context caption and every reference answer name all the objects of the image."""
    n_images = -(-n_questions // len(LLAVA_W_QUESTIONS))
    questions, contexts, answers = [], [], []
    for k, s in enumerate(rng.sample(list(scenes), n_images)):
        image = f"{k + 1:03d}.png"  # the release names its images 001.jpg, 002.jpg, ...
        sink.bytes(f"llava_wild/images/{image}", png(s))
        contexts.append({"id": f"world_{s.image_id:012d}", "image": image, "caption": L.llava_w_context(s)})
        for category, text in LLAVA_W_QUESTIONS:
            if len(questions) == n_questions:
                break
            qid = len(questions)
            questions.append({"question_id": qid, "image": image, "text": text, "category": category})
            answers.append({"question_id": qid, "prompt": text, "text": L.llava_w_reference(s, category),
                            "answer_id": f"world_reference_{qid}", "model_id": "world-reference", "metadata": {}})
    sink.jsonl("llava_wild/context.jsonl", contexts)
    sink.jsonl("llava_wild/answers_gpt4.jsonl", answers)
    return sink.jsonl("llava_wild/questions.jsonl", questions)


# --- MM-Vet --------------------------------------------------------------------------------------------------------

def _mmvet_entry(scene: Scene, rng: random.Random) -> dict:
    counts = scene.counts()
    words = [L.caption_word(c, counts[c]) for c in counts]
    kind = rng.choice(("objects", "color", "relation", "total", "describe"))
    singles = scene.single_objects()
    rel = L.relation_pairs(scene)
    if kind == "color" and singles:
        o = rng.choice(singles)
        return {"question": L.MMVET_COLOR.format(name=o.category), "answer": L.color_of(o.category),
                "capability": ["rec"]}
    if kind == "relation" and rel:
        a, b = rel[rng.randrange(len(rel))]
        if a.row == b.row:
            a, b = (a, b) if a.column < b.column else (b, a)
            question = L.MMVET_LEFT_OF.format(b=b.category)
        else:
            a, b = (a, b) if a.row < b.row else (b, a)
            question = L.MMVET_ABOVE.format(b=b.category)
        noun = CATEGORY_BY_NAME[a.category]["noun"]
        answer = a.category if noun == a.category else f"{a.category}<OR>{noun}"
        return {"question": question, "answer": answer, "capability": ["rec", "spat"]}
    if kind == "total":
        return {"question": L.MMVET_TOTAL, "answer": str(len(scene.objects)), "capability": ["rec", "math"]}
    if kind == "describe":
        return {"question": L.MMVET_DESCRIBE, "answer": "<AND>".join(words), "capability": ["rec", "gen"]}
    return {"question": L.MMVET_OBJECTS, "answer": "<AND>".join(words), "capability": ["rec"]}


def write_mmvet(sink: FileSink, scenes: Sequence[Scene], png: Callable[[Scene], bytes], n_questions: int,
                rng: random.Random) -> Path:
    """mm-vet.json keyed v1_0, v1_1, ... with one image per question, named v1_<n>.png as in the release."""
    entries = {}
    for n in range(n_questions):
        s = rng.choice(list(scenes))
        image = f"v1_{n}.png"
        sink.bytes(f"mmvet/images/{image}", png(s))
        e = _mmvet_entry(s, rng)
        entries[f"v1_{n}"] = {"imagename": image, "capability": e["capability"], "question": e["question"],
                              "answer": e["answer"]}
    # Keys in release order (v1_0, v1_1, ..., v1_10), not sorted as strings; the order is fixed, so bytes are too.
    return sink.text("mmvet/mm-vet.json", json.dumps(entries, ensure_ascii=False, indent=2) + "\n")


# --- prompts and training files ------------------------------------------------------------------------------------

def prompt_rows(scenes: Sequence[Scene]) -> list[dict]:
    return [{"image_id": s.image_id, "image": s.image_path, "prompt": L.CAPTION_PROMPT} for s in scenes]


def yesno_rows(scene: Scene, rng: random.Random, pairs, partner_negative_prob: float) -> list[dict]:
    """One Yes question per present category and as many No questions; a No is often a missing partner."""
    present = scene.categories()
    absent = [c for c in CATEGORY_NAMES if c not in present]
    partners = [p for t, p, _ in pairs if t in present and p in absent]
    negatives: list[str] = []
    for _ in present:
        pool = [c for c in absent if c not in negatives]
        free_partners = [p for p in partners if p not in negatives]
        if not pool:
            break
        pick = rng.choice(free_partners) if free_partners and rng.random() < partner_negative_prob else rng.choice(pool)
        negatives.append(pick)
    rows = [{"image": scene.image_path, "prompt": L.POPE_QUESTION.format(a_name=L.a_name(c)), "answer": L.YES}
            for c in present]
    rows += [{"image": scene.image_path, "prompt": L.POPE_QUESTION.format(a_name=L.a_name(c)), "answer": L.NO}
             for c in negatives]
    rng.shuffle(rows)
    return rows


def vqa_rows(scene: Scene, rng: random.Random) -> list[dict]:
    """Short-answer questions worded as the evaluation files word them (color, count, left/right)."""
    counts = scene.counts()
    rows = []
    name = rng.choice(list(counts))
    rows.append({"prompt": L.VIZWIZ_COUNT.format(plural=L.plural(name)), "answer": str(counts[name])})
    if scene.single_objects():
        o = rng.choice(scene.single_objects())
        rows.append({"prompt": L.GQA_COLOR.format(name=o.category), "answer": L.color_of(o.category)})
    rel = [(a, b) for a, b in L.relation_pairs(scene) if a.row == b.row]
    if rel:
        a, b = rel[rng.randrange(len(rel))]
        rows.append({"prompt": L.GQA_LEFT_RIGHT.format(a=a.category, b=b.category),
                     "answer": "left" if a.column < b.column else "right"})
    return [{"image": scene.image_path, **r} for r in rows]
