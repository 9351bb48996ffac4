"""The shipped tiny CLIP and tiny LLaVA: loading, quality on a fresh world, and the training code."""

from __future__ import annotations

import json
import random
import re

import pytest
import torch

from csr_bench.errors import UserError
from csr_bench.world.tiny_clip import TINY_CLIP_PATH, clip_scores, evaluate_tiny_clip, load_tiny_clip, train_tiny_clip
from csr_bench.world.tiny_lvlm import build_word_tokenizer, evaluate_tiny_llava, train_tiny_llava

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from csr_bench.world import WorldConfig, generate_world

    # Not the training world's seed: new images from the same distribution.
    return generate_world(tmp_path_factory.mktemp("world") / "w", config=WorldConfig.quick(seed=1))


@pytest.fixture(scope="module")
def clip():
    return load_tiny_clip()


def _val_scenes(world) -> list[tuple[str, set[str]]]:
    """(image path, category names present) of the world's validation images, from the COCO instances."""
    meta = json.loads(world.world_json.read_text())
    inst = json.loads(world.instances_val.read_text())
    names = {c["id"]: c["name"] for c in inst["categories"]}
    files = {im["id"]: im["file_name"] for im in inst["images"]}
    present: dict[int, set[str]] = {}
    for a in inst["annotations"]:
        present.setdefault(a["image_id"], set()).add(names[a["category_id"]])
    return [(str(world.images_val / files[i]), present[i]) for i in meta["splits"]["val"]["image_ids"]]


def test_shipped_clip_loads_without_network(clip):
    assert (TINY_CLIP_PATH / "open_clip_model.safetensors").is_file()
    assert sum(p.numel() for p in clip.model.parameters()) < 5_000_000
    tokens = clip.tokenize(["A picture of a dog."])
    assert tokens.shape == (1, clip.tokenize.context_length)


def test_clip_prefers_present_objects_to_absent_ones(world, clip):
    # One-object captions in the same wording: the only difference is whether the object is in the image.
    meta = json.loads(world.world_json.read_text())
    nouns = {c["name"]: c["caption_noun"] for c in meta["categories"]}
    rng = random.Random(0)
    images, true_caps, false_caps = [], [], []
    for path, present in _val_scenes(world):
        absent = sorted(set(nouns) - present)
        images.append(path)
        true_caps.append(f"A picture of a {nouns[rng.choice(sorted(present))]}.")
        false_caps.append(f"A picture of a {nouns[rng.choice(absent)]}.")
    s_true = clip_scores(images, true_caps, clip=clip)
    s_false = clip_scores(images, false_caps, clip=clip)
    wins = sum(t > f for t, f in zip(s_true, s_false)) / len(images)
    assert wins >= 0.8, wins
    assert all(-1.0 - 1e-5 <= s <= 1.0 + 1e-5 for s in s_true + s_false)


def test_clip_ranks_true_captions_above_hallucinated_ones(world, clip):
    result = evaluate_tiny_clip(clip, world.root)
    assert result["n"] >= 50
    assert result["auc"] >= 0.85, result
    assert result["paired_win_rate"] >= 0.85, result


def test_clip_scores_are_batch_independent(world, clip):
    scenes = _val_scenes(world)[:5]
    images = [p for p, _ in scenes] * 2
    texts = ["A picture of a dog.", "A cat and a cup.", "Two knives.", "A red person.", "A clock."] * 2
    one_batch = clip_scores(images, texts, clip=clip, batch_size=64)
    small_batches = clip_scores(images, texts, clip=clip, batch_size=3)
    assert one_batch == pytest.approx(small_batches, abs=1e-5)


def test_open_clip_loads_the_shipped_folder_the_same_way(world, clip):
    import open_clip
    from PIL import Image

    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{TINY_CLIP_PATH}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{TINY_CLIP_PATH}")
    model.eval()
    path = _val_scenes(world)[0][0]
    with Image.open(path) as im, torch.no_grad():
        theirs_img = model.encode_image(preprocess(im.convert("RGB"))[None], normalize=True)
        ours_img = clip.model.encode_image(clip.preprocess(im.convert("RGB"))[None], normalize=True)
        text = ["A picture of a dog and a ball."]
        assert torch.equal(tokenizer(text), clip.tokenize(text))
        theirs_txt = model.encode_text(tokenizer(text), normalize=True)
        ours_txt = clip.model.encode_text(clip.tokenize(text), normalize=True)
    torch.testing.assert_close(theirs_img, ours_img)
    torch.testing.assert_close(theirs_txt, ours_txt)


def test_clip_errors_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_tiny_clip(tmp_path / "nowhere")
    with pytest.raises(UserError, match="open_clip_config.json"):
        load_tiny_clip(tmp_path)
    with pytest.raises(UserError, match="image not found"):
        clip_scores([str(tmp_path / "x.png")], ["A dog."])


def test_word_tokenizer_round_trips_world_text(world):
    from csr_bench.world import vocabulary

    tok = build_word_tokenizer(vocabulary())
    texts = [json.loads(line)["answer"] for line in world.train_captions.read_text().splitlines()[:200]]
    texts += [json.loads(line)["prompt"] for line in world.train_yesno.read_text().splitlines()[:200]]
    texts += [json.loads(line)["text"] for line in world.pope["adversarial"].read_text().splitlines()[:50]]
    for text in texts:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id not in ids, text
        assert tok.decode(ids) == text


def test_shipped_llava_on_pope_and_probe(world):
    result = evaluate_tiny_llava("tiny", world.root, max_pope_per_split=60, max_probe=40)
    for split in ("random", "popular", "adversarial"):
        assert result["pope"][split]["n"] == 60
        assert result["pope"][split]["accuracy"] > 0.6, result["pope"]
    # The bias the world builds in: the tiny model names the absent partner in some probe captions.
    assert result["probe"]["partner_named_rate"] > 0.1, result["probe"]


def _state(folder):
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    assert files
    return {k: v for f in files for k, v in load_file(str(f)).items()}


def test_training_the_llava_changes_every_parameter_and_is_deterministic(world, tmp_path):
    from csr_bench.models import load_adapter

    kwargs = dict(batch_size=8, seed=3, log=None)
    train_tiny_llava(world.root, tmp_path / "init", steps=0, **kwargs)
    info = train_tiny_llava(world.root, tmp_path / "a", steps=3, **kwargs)
    train_tiny_llava(world.root, tmp_path / "b", steps=3, **kwargs)
    init, a, b = _state(tmp_path / "init"), _state(tmp_path / "a"), _state(tmp_path / "b")
    assert a.keys() == init.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
        if name.startswith("vision_tower.post_layernorm."):
            continue  # LLaVA reads the encoder's hidden states, so the CLIP vision tower's final norm is unused
        assert not torch.equal(a[name], init[name]), name
    assert info["train_config"]["steps"] == 3 and info["final_loss"] > 0
    adapter = load_adapter(str(tmp_path / "a"))
    image = str(next(world.images_val.glob("*.png")))
    from csr_bench.core.types import ImagePart, Message
    from csr_bench.models import GenRequest

    out = adapter.generate([GenRequest((Message.user(ImagePart(image), "Describe this image."),))], max_new_tokens=4)
    assert isinstance(out[0], str)


def test_training_the_clip_changes_every_parameter(world, tmp_path):
    train_tiny_clip(world.root, tmp_path / "init", steps=0, batch_size=16, seed=3, log=None)
    info = train_tiny_clip(world.root, tmp_path / "a", steps=3, batch_size=16, seed=3, log=None)
    init, a = _state(tmp_path / "init"), _state(tmp_path / "a")
    for name in a:
        assert not torch.equal(a[name], init[name]), name
    assert info["final_loss"] > 0
    loaded = load_tiny_clip(tmp_path / "a")
    scenes = _val_scenes(world)[:2]
    assert len(clip_scores([p for p, _ in scenes], ["A dog.", "A cat."], clip=loaded)) == 2


def test_training_needs_the_world_files(tmp_path):
    with pytest.raises(UserError, match=re.escape("captions.jsonl")):
        train_tiny_llava(tmp_path, tmp_path / "out", steps=1, log=None)
