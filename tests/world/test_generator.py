"""The embedded world generator: determinism, the official formats, the co-occurrence bias and the vocabulary.

Truth is checked against the COCO instances file (what is in each image, where), not against generator internals.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from pycocotools.coco import COCO

from csr_bench.errors import UserError
from csr_bench.world import CATEGORIES, WorldConfig, WorldPaths, generate_world, tokenize, vocabulary

SMALL = WorldConfig.quick(n_train=300, n_val=70, n_probe=30, n_pope_images=12, mme_images_per_task=8,
                          n_mmbench_questions=12, n_gqa_questions=40, n_vizwiz_questions=25)
NAMES = {c["name"] for c in CATEGORIES}
COLOR_OF = {c["name"]: c["color"] for c in CATEGORIES}


def file_hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> WorldPaths:
    return generate_world(tmp_path_factory.mktemp("w") / "world", config=SMALL)


@pytest.fixture(scope="module")
def truth(world):
    """image file name -> {"cats": {name: count}, "boxes": {name: [bbox, ...]}} from instances_*2014.json."""
    out = {}
    for path in (world.instances_train, world.instances_val):
        data = json.loads(path.read_text())
        names = {c["id"]: c["name"] for c in data["categories"]}
        by_id = {im["id"]: im["file_name"] for im in data["images"]}
        for fn in by_id.values():
            out[fn] = {"cats": defaultdict(int), "boxes": defaultdict(list)}
        for a in data["annotations"]:
            t = out[by_id[a["image_id"]]]
            t["cats"][names[a["category_id"]]] += 1
            t["boxes"][names[a["category_id"]]].append(a["bbox"])
    return out


def center(b):
    return b[0] + b[2] / 2, b[1] + b[3] / 2


def relation_holds(boxes, a: str, rel: str, b: str) -> bool:
    (ax, ay), (bx, by) = center(boxes[a][0]), center(boxes[b][0])
    return {"left": ax < bx, "right": ax > bx, "above": ay < by, "below": ay > by}[rel]


# --- determinism -----------------------------------------------------------------------------------------------

def test_same_seed_gives_byte_identical_files_in_any_folder(world, tmp_path):
    again = generate_world(tmp_path / "elsewhere", config=SMALL)
    a, b = file_hashes(world.root), file_hashes(again.root)
    assert a == b
    assert len(a) > 300  # images, annotations, every format


def test_different_seeds_differ(world, tmp_path):
    other = generate_world(tmp_path / "w1", seed=1, config=SMALL)
    a, b = file_hashes(world.root), file_hashes(other.root)
    assert a.keys() & b.keys()
    differing = [k for k in a.keys() & b.keys() if a[k] != b[k]]
    assert len(differing) > 0.9 * len(a.keys() & b.keys())
    assert json.loads(other.world_json.read_text())["seed"] == 1


def test_regenerating_replaces_a_world_but_refuses_a_foreign_folder(tmp_path):
    cfg = WorldConfig.quick(n_train=20, n_val=30, n_probe=10, n_pope_images=3, n_vizwiz_questions=10,
                            n_gqa_questions=5, n_mmbench_questions=3, mme_images_per_task=2)
    generate_world(tmp_path / "w", config=cfg)
    (tmp_path / "w" / "stale.txt").write_text("left over")
    generate_world(tmp_path / "w", config=cfg)
    assert not (tmp_path / "w" / "stale.txt").exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not a csr-bench world"):
        generate_world(foreign, config=cfg)
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "w"]  # no temporary folders left behind


def test_bad_config_is_a_user_error():
    with pytest.raises(UserError, match="unknown category 'spoon'"):
        WorldConfig(cooccurrence=(("knife", "spoon", 0.9),))
    with pytest.raises(UserError, match="n_vizwiz_questions"):
        WorldConfig(n_val=10, n_vizwiz_questions=20)


def test_import_does_not_load_torch():
    code = "import sys, csr_bench.world; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- COCO ------------------------------------------------------------------------------------------------------

def test_coco_files_load_with_pycocotools_and_match_the_pixels(world):
    cats_by_name = {c["name"]: c for c in json.loads(world.world_json.read_text())["categories"]}
    for inst_path, cap_path, folder in ((world.instances_train, world.captions_train, world.images_train),
                                        (world.instances_val, world.captions_val, world.images_val)):
        inst, caps = COCO(str(inst_path)), COCO(str(cap_path))
        assert {c["name"] for c in inst.loadCats(inst.getCatIds())} == NAMES
        assert sorted(inst.getImgIds()) == sorted(caps.getImgIds())
        for img_id in inst.getImgIds()[:60]:
            info = inst.loadImgs(img_id)[0]
            pixels = np.asarray(Image.open(folder / info["file_name"]).convert("RGB"))
            assert pixels.shape == (info["height"], info["width"], 3)
            anns = inst.loadAnns(inst.getAnnIds(imgIds=img_id))
            assert 1 <= len(anns) <= 4
            assert len(caps.getAnnIds(imgIds=img_id)) == SMALL.captions_per_image
            for a in anns:
                mask = inst.annToMask(a).astype(bool)
                cat = cats_by_name[inst.loadCats(a["category_id"])[0]["name"]]
                painted = (np.abs(pixels.astype(int) - cat["rgb"]).sum(axis=2) == 0)
                # The polygon is the drawn shape: its mask is (almost) exactly the pixels of its colour there.
                x, y, w, h = a["bbox"]
                window = np.zeros_like(mask)
                window[int(y):int(np.ceil(y + h)) + 1, int(x):int(np.ceil(x + w)) + 1] = True
                inter = (mask & painted & window).sum()
                union = ((mask | painted) & window).sum()
                assert inter / union > 0.85, (info["file_name"], cat["name"])
                assert abs(mask.sum() - a["area"]) < 0.15 * a["area"]


def caption_mentions(caption: str) -> set[str]:
    toks = tokenize(caption)
    text = " " + " ".join(toks) + " "
    found = set()
    for c in CATEGORIES:
        for form in {c["name"], c["plural"], c["noun"], c["noun_plural"]}:
            if f" {form} " in text:
                found.add(c["name"])
    return found


def test_reference_captions_mention_exactly_the_present_objects(world, truth):
    for cap_path in (world.captions_train, world.captions_val):
        data = json.loads(cap_path.read_text())
        names = {im["id"]: im["file_name"] for im in data["images"]}
        for a in data["annotations"]:
            present = truth[names[a["image_id"]]]["cats"]
            assert caption_mentions(a["caption"]) == set(present), a["caption"]
            assert a["caption"][0].isupper() and a["caption"].endswith(".")
            for n in present.values():  # counts are said ("two dogs") when there are two
                if n == 2:
                    assert "two" in tokenize(a["caption"])


# --- the co-occurrence bias -------------------------------------------------------------------------------------

def test_training_split_carries_the_bias_and_probe_split_breaks_it(world, truth):
    w = json.loads(world.world_json.read_text())
    pairs = [(p["trigger"], p["partner"], p["train_probability"], p["val_probability"]) for p in w["cooccurrence"]]
    val_ids, probe_ids = set(w["splits"]["val"]["image_ids"]), set(w["probe_image_ids"])
    assert probe_ids and not probe_ids & val_ids

    def split_images(split):
        if split == "train":
            return [v for k, v in truth.items() if "train2014" in k]
        ids = val_ids if split == "val" else probe_ids
        return [v for k, v in truth.items() if "val2014" in k and int(k[-16:-4]) in ids]

    for trigger, partner, p_train, _ in pairs:
        with_trigger = [t for t in split_images("train") if trigger in t["cats"]]
        without = [t for t in split_images("train") if trigger not in t["cats"]]
        assert len(with_trigger) >= 30
        p_given_trigger = np.mean([partner in t["cats"] for t in with_trigger])
        p_otherwise = np.mean([partner in t["cats"] for t in without])
        assert p_given_trigger >= p_train - 0.12, (trigger, partner, p_given_trigger)
        assert p_given_trigger > p_otherwise + 0.4
    probe = split_images("probe")
    assert len(probe) == SMALL.n_probe
    for t in probe:
        assert any(trigger in t["cats"] for trigger, *_ in pairs)
        for trigger, partner, *_ in pairs:
            assert not (trigger in t["cats"] and partner in t["cats"])
    # The probe prompts are exactly the probe images.
    rows = [json.loads(line) for line in world.probe_prompts.read_text().splitlines()]
    assert {r["image_id"] for r in rows} == probe_ids
    assert all((world.root / r["image"]).is_file() and r["prompt"] == "Describe this image." for r in rows)


def test_training_yesno_is_balanced_and_true(world, truth):
    rows = [json.loads(line) for line in world.train_yesno.read_text().splitlines()]
    assert {r["answer"] for r in rows} == {"Yes", "No"}
    n_yes = sum(r["answer"] == "Yes" for r in rows)
    assert abs(n_yes - (len(rows) - n_yes)) <= 0.05 * len(rows)
    partners = {p["partner"] for p in json.loads(world.world_json.read_text())["cooccurrence"]}
    partner_negatives = 0
    for r in rows:
        m = re.fullmatch(r"Is there an? (.+) in the image\?", r["prompt"])
        assert m and m.group(1) in NAMES
        present = truth[Path(r["image"]).name]["cats"]
        assert (m.group(1) in present) == (r["answer"] == "Yes")
        partner_negatives += r["answer"] == "No" and m.group(1) in partners
    assert partner_negatives > 0


# --- POPE, MME, MMBench, GQA, VizWiz ----------------------------------------------------------------------------

def test_pope_files_are_official_json_lines_and_true(world, truth):
    assert set(world.pope) == {"random", "popular", "adversarial"}
    for split, path in world.pope.items():
        assert path.name == f"coco_pope_{split}.json"
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        assert len(rows) == SMALL.n_pope_images * 6
        for r in rows:
            assert set(r) == {"question_id", "image", "text", "label"}
            m = re.fullmatch(r"Is there an? (.+) in the image\?", r["text"])
            assert m and m.group(1) in NAMES
            assert (world.images_val / r["image"]).is_file()
            assert (m.group(1) in truth[r["image"]]["cats"]) == (r["label"] == "yes")
        assert sum(r["label"] == "yes" for r in rows) == len(rows) // 2
    # The training yes/no prompts are worded exactly as POPE's questions, so the tiny model meets them verbatim.
    train_prompts = {json.loads(line)["prompt"] for line in world.train_yesno.read_text().splitlines()}
    pope_texts = {json.loads(line)["text"] for p in world.pope.values() for line in p.read_text().splitlines()}
    assert pope_texts <= train_prompts


def test_mme_template_and_release_folder(world, truth):
    for task in ("existence", "count", "position", "color"):
        lines = (world.mme_results / f"{task}.txt").read_text().split("\n")
        assert lines[-1] == "" and len(lines[:-1]) == 2 * SMALL.mme_images_per_task
        rows = [line.split("\t") for line in lines[:-1]]
        for yes, no in zip(rows[::2], rows[1::2], strict=True):
            assert len(yes) == len(no) == 3 and yes[0] == no[0]
            assert (yes[2], no[2]) == ("Yes", "No")
            assert yes[1].endswith("? Please answer yes or no.") and no[1].endswith("? Please answer yes or no.")
            image = world.mme_images / task / yes[0]
            assert image.is_file()
            assert image.with_suffix(".txt").read_text() == f"{yes[1]}\tYes\n{no[1]}\tNo\n"
            coco_name = f"COCO_val2014_{yes[0]}"
            assert (world.images_val / coco_name).read_bytes() == image.read_bytes()
            t = truth[coco_name]
            for q, answer in ((yes[1], True), (no[1], False)):
                assert mme_truth(task, q, t) == answer, (task, q)


def mme_truth(task: str, q: str, t) -> bool:
    q = q.removesuffix(" Please answer yes or no.")
    cats, boxes = t["cats"], t["boxes"]
    plural_to_name = {c["plural"]: c["name"] for c in CATEGORIES}
    if task == "existence":
        return re.fullmatch(r"Is there an? (.+) in this image\?", q).group(1) in cats
    if task == "color":
        color, name = re.fullmatch(r"Is there an? (\w+) (.+) in the image\?", q).groups()
        return name in cats and COLOR_OF[name] == color
    if task == "count":
        if m := re.fullmatch(r"Is there only one (.+) in the image\?", q):
            return cats.get(m.group(1), 0) == 1
        if m := re.fullmatch(r"Are there two (.+) in the image\?", q):
            return cats.get(plural_to_name[m.group(1)], 0) == 2
        n, plural = re.fullmatch(r"Is there a total of (\w+) (.+) in the image\?", q).groups()
        return cats.get(plural_to_name[plural], 0) == ["zero", "one", "two", "three", "four"].index(n)
    m = re.fullmatch(r"Is the (.+) (on the left side of|on the right side of|above|below) the (.+)\?", q)
    a, rel, b = m.groups()
    return relation_holds(boxes, a, rel.split()[-3] if "side" in rel else rel, b)


MMBENCH_COLUMNS = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "source",
                   "l2-category", "comment", "split"]


def test_mmbench_tsv_columns_circular_copies_and_answers(world, truth):
    df = pd.read_csv(world.mmbench_tsv, sep="\t")
    assert df.columns.tolist() == MMBENCH_COLUMNS
    assert len(df) == 4 * SMALL.n_mmbench_questions
    assert set(df["split"]) == {"dev"}
    assert df["hint"].isna().any()  # a missing hint reads as NaN, as in the release
    val_png = {p.read_bytes(): p.name for p in world.images_val.iterdir()}
    for _, group in df.groupby(df["index"] % 1_000_000):
        assert sorted(group["index"] // 1_000_000) == [0, 1, 2, 3]
        truths = {row[row["answer"]] for _, row in group.iterrows()}
        assert len(truths) == 1  # every rotation points at the same option text
        row = group.iloc[0]
        png = base64.b64decode(row["image"])
        assert Image.open(io.BytesIO(png)).size == (64, 64)
        t = truth[val_png[png]]
        answer = row[row["answer"]]
        if row["category"] == "attribute_recognition":
            name = re.fullmatch(r"What color is the (.+) in the image\?", row["question"]).group(1)
            assert answer == COLOR_OF[name]
        elif row["category"] == "object_recognition":
            assert answer in t["cats"] and sum(row[k] in t["cats"] for k in "ABCD") == 1
        elif row["category"] == "spatial_relationship":
            a, b = re.fullmatch(r"Where is the (.+) relative to the (.+)\?", row["question"]).groups()
            assert relation_holds(t["boxes"], a, answer.split()[-1], b)
        else:
            name = re.fullmatch(r"Where is the (.+) in the image\?", row["question"]).group(1)
            x, y = center(t["boxes"][name][0])
            assert answer == ("top" if y < 32 else "bottom") + " " + ("left" if x < 32 else "right")


def test_gqa_questions_official_shape_and_true(world, truth):
    qs = json.loads(world.gqa_questions.read_text())
    assert len(qs) == SMALL.n_gqa_questions
    for qid, q in qs.items():
        assert qid.isdigit() and q["equivalent"] == [qid]
        assert {"imageId", "question", "answer", "fullAnswer", "types", "semantic", "semanticStr", "isBalanced",
                "groups", "entailed", "annotations"} <= set(q)
        assert set(q["types"]) == {"detailed", "semantic", "structural"}
        image = world.gqa_images / f"{q['imageId']}.jpg"
        assert Image.open(image).format == "JPEG"
        t = truth[f"COCO_val2014_{int(q['imageId'][1:]):012d}.png"]
        if q["types"]["structural"] == "verify":
            name = re.fullmatch(r"Is there an? (.+) in the picture\?", q["question"]).group(1)
            assert q["answer"] == ("yes" if name in t["cats"] else "no")
        elif q["types"]["structural"] == "query":
            name = re.fullmatch(r"What color is the (.+)\?", q["question"]).group(1)
            assert q["answer"] == COLOR_OF[name] and q["fullAnswer"] == f"The {name} is {q['answer']}."
        else:
            a, b = re.fullmatch(r"Is the (.+) to the left or to the right of the (.+)\?", q["question"]).groups()
            assert relation_holds(t["boxes"], a, q["answer"], b)


def test_vizwiz_annotations_official_shape(world):
    entries = json.loads(world.vizwiz_annotations.read_text())
    assert isinstance(entries, list) and len(entries) == SMALL.n_vizwiz_questions
    assert len({e["image"] for e in entries}) == len(entries)  # one question per image
    for e in entries:
        assert set(e) == {"image", "question", "answers", "answer_type", "answerable"}
        assert re.fullmatch(r"VizWiz_val_\d{8}\.png", e["image"]) and (world.vizwiz_images / e["image"]).is_file()
        assert len(e["answers"]) == 10
        assert all(set(a) == {"answer", "answer_confidence"} for a in e["answers"])
        assert {a["answer_confidence"] for a in e["answers"]} <= {"yes", "maybe", "no"}
        assert e["answer_type"] in {"other", "yes/no", "number", "unanswerable"}
        assert e["answerable"] == (0 if e["answer_type"] == "unanswerable" else 1)


# --- LLaVA-Bench in-the-wild and MM-Vet, graded by WorldJudge -------------------------------------------------------

def metric_values(suite, outputs: dict[str, str]) -> tuple[list, dict[str, float]]:
    items = suite.items()
    scored = [suite.score(it, outputs[it.id]) for it in items]
    total = np.sum([s.stats for s in scored], axis=0)
    return scored, {m.name: float(m.fn(total)) for m in suite.metrics()}


@pytest.fixture(scope="module")
def png_to_coco(world):
    return {p.read_bytes(): p.name for p in world.images_val.iterdir()}


def absent_object(present) -> str:
    return next(c["noun"] for c in CATEGORIES if c["name"] not in present)


def test_llava_wild_files_load_and_world_judge_rewards_the_references(world, truth, png_to_coco):
    from csr_bench.judges import WorldJudge
    from csr_bench.suites.llava_wild import LlavaWildSuite

    suite = LlavaWildSuite(world.llava_wild_dir, judge="world")
    items = suite.items()
    assert len(items) == SMALL.n_llava_wild_questions
    questions = [json.loads(line) for line in world.llava_wild_questions.read_text().splitlines()]
    references = [json.loads(line) for line in world.llava_wild_answers.read_text().splitlines()]
    assert [q["question_id"] for q in questions] == [r["question_id"] for r in references] == list(range(len(items)))
    assert [q["category"] for q in questions] == (["conv", "detail", "complex"] * len(items))[:len(items)]
    judge = WorldJudge()
    present_of = {}
    for q, it in zip(questions, items, strict=True):
        image = world.llava_wild_images / q["image"]
        present = set(truth[png_to_coco[image.read_bytes()]]["cats"])  # the image is a val2014 image
        present_of[it.id] = present
        assert judge.mentioned(it.target["context"]) == present, it.target["context"]
        assert judge.mentioned(it.target["reference"]) == present, it.target["reference"]
        assert it.meta["question"] == q["text"]

    refs = {str(r["question_id"]): r["text"] for r in references}
    scored, values = metric_values(suite, refs)
    assert values["judge_missing"] == 0 and values["score"] >= 95
    assert all(s.scores["model_score"] >= 9 for s in scored)

    wrong = {k: f"{v} There is {absent_object(present_of[k])} too." for k, v in refs.items()}
    scored_wrong, values_wrong = metric_values(suite, wrong)
    assert all(w.scores["model_score"] < s.scores["model_score"] for s, w in zip(scored, scored_wrong))
    assert values_wrong["score"] < values["score"] - 10


def mmvet_truth_holds(q: dict, t) -> bool:
    cats, boxes = t["cats"], t["boxes"]
    noun_of = {c["name"]: (c["noun"], c["noun_plural"]) for c in CATEGORIES}
    if m := re.fullmatch(r"What color is the (.+)\?", q["question"]):
        return q["answer"] == COLOR_OF[m.group(1)]
    if m := re.fullmatch(r"What is (to the left of|above) the (.+)\?", q["question"]):
        a = q["answer"].split("<OR>")[0]
        return relation_holds(boxes, a, "left" if "left" in m.group(1) else "above", m.group(2))
    if q["question"] == "How many objects are there in the image?":
        return int(q["answer"]) == sum(cats.values())
    words = {noun_of[c][cats[c] > 1] for c in cats}
    return sorted(q["answer"].split("<AND>")) == sorted(words)


def test_mmvet_file_loads_and_world_judge_rewards_the_ground_truth(world, truth, png_to_coco):
    from csr_bench.suites.mmvet import CAPABILITIES, MMVetSuite

    data = json.loads(world.mmvet_json.read_text())
    assert list(data) == [f"v1_{n}" for n in range(SMALL.n_mmvet_questions)]  # release order, not string order
    for q in data.values():
        assert list(q) == ["imagename", "capability", "question", "answer"]
        assert set(q["capability"]) <= set(CAPABILITIES) and q["capability"][0] == "rec"
        assert "<AND>" not in q["answer"] or "<OR>" not in q["answer"]
        t = truth[png_to_coco[(world.mmvet_images / q["imagename"]).read_bytes()]]
        assert mmvet_truth_holds(q, t), q
    assert {c for q in data.values() for c in q["capability"]} >= {"rec", "spat", "math"}

    suite = MMVetSuite(world.mmvet_dir, judge="world")
    assert [it.id for it in suite.items()] == list(data)
    # The ground truth said as a sentence: every <AND> part, the first <OR> option.
    said = {k: "It is " + " and ".join(p.split("<OR>")[0] for p in q["answer"].split("<AND>")) + "."
            for k, q in data.items()}
    scored, values = metric_values(suite, said)
    assert values["judge_missing"] == 0 and values["score"] == pytest.approx(100)
    assert values["cap_rec"] == pytest.approx(100)

    def present(q):
        return truth[png_to_coco[(world.mmvet_images / q["imagename"]).read_bytes()]]["cats"]

    wrong = {k: f"It is {absent_object(present(q))}." for k, q in data.items()}
    _, values_wrong = metric_values(suite, wrong)
    assert values_wrong["judge_missing"] == 0 and values_wrong["score"] < 30


def test_world_paths_name_the_llava_wild_and_mmvet_files(world):
    listed = {f["path"] for f in json.loads(world.world_json.read_text())["files"]}
    for p in (world.llava_wild_questions, world.llava_wild_context, world.llava_wild_answers, world.mmvet_json):
        assert p.relative_to(world.root).as_posix() in listed
    for folder in (world.llava_wild_images, world.mmvet_images):
        names = {p.relative_to(world.root).as_posix() for p in folder.iterdir()}
        assert names and names <= listed


# --- world.json and the vocabulary -------------------------------------------------------------------------------

def test_world_json_lists_every_file_with_its_hash(world):
    w = json.loads(world.world_json.read_text())
    on_disk = file_hashes(world.root)
    del on_disk["world.json"]
    assert {f["path"]: f["sha256"] for f in w["files"]} == on_disk
    assert w["config"]["seed"] == w["seed"] == SMALL.seed
    assert {c["name"] for c in w["categories"]} == NAMES
    assert len({(c["shape"], c["color"]) for c in w["categories"]}) == len(CATEGORIES)
    assert len({c["shape"] for c in w["categories"]}) == len({c["color"] for c in w["categories"]}) == len(CATEGORIES)


def all_texts(world) -> list[str]:
    texts = []
    for p in (world.train_captions, world.train_yesno, world.train_vqa, world.val_prompts, world.probe_prompts):
        for line in p.read_text().splitlines():
            r = json.loads(line)
            texts += [r["prompt"], r.get("answer", "")]
    for p in (world.captions_train, world.captions_val):
        texts += [a["caption"] for a in json.loads(p.read_text())["annotations"]]
    for p in world.pope.values():
        texts += [json.loads(line)["text"] for line in p.read_text().splitlines()]
    for p in world.mme_results.iterdir():
        texts += [line.split("\t")[1] for line in p.read_text().splitlines()]
    df = pd.read_csv(world.mmbench_tsv, sep="\t").fillna("")
    for col in ("question", "hint", "A", "B", "C", "D", "answer"):
        texts += df[col].astype(str).tolist()
    for q in json.loads(world.gqa_questions.read_text()).values():
        texts += [q["question"], q["answer"], q["fullAnswer"]]
    for e in json.loads(world.vizwiz_annotations.read_text()):
        texts += [e["question"]] + [a["answer"] for a in e["answers"]]
    for p in (world.llava_wild_questions, world.llava_wild_context, world.llava_wild_answers):
        for line in p.read_text().splitlines():
            r = json.loads(line)
            texts += [r.get("text", ""), r.get("caption", "")]
    for q in json.loads(world.mmvet_json.read_text()).values():
        texts += [q["question"]] + re.split(r"<AND>|<OR>", q["answer"])
    return texts


def test_every_word_written_is_in_the_vocabulary(world):
    vocab = vocabulary()
    assert vocab == sorted(set(vocab)) and all(w == w.lower() and " " not in w for w in vocab)
    assert {"?", ".", ",", "yes", "no", "sports", "ball", "knives"} <= set(vocab)
    texts = all_texts(world)
    assert len(texts) > 1000
    missing = {tok for t in texts for tok in tokenize(t)} - set(vocab)
    assert not missing
    assert len(vocab) < 250  # closed and small, for a word-level tokenizer


def test_tokenize_splits_punctuation():
    assert tokenize("Is there a Sports ball in the image?") == ["is", "there", "a", "sports", "ball", "in", "the",
                                                                "image", "?"]
    assert tokenize("option's letter.") == ["option", "'", "s", "letter", "."]
