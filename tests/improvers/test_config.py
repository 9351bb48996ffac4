"""Improver config files (TOML) and prompt files: shipped configs load, bad input is one UserError line."""

import json

import pytest

from csr_bench.errors import UserError
from csr_bench.improvers.base import load_prompts
from csr_bench.improvers.csr.config import CSRConfig
from csr_bench.improvers.csr.improver import CSRImprover


def test_shipped_configs_load():
    imp = CSRImprover()
    paper = imp.load_config("paper")
    tiny = imp.load_config("tiny")
    # The paper's recipe (arXiv 2405.14622 and the authors' scripts).
    assert paper.iterations == 3
    assert (paper.lora.r, paper.lora.alpha, paper.lora.dropout) == (128, 256, 0.05)
    assert paper.train.learning_rate == 1e-7 and paper.train.lr_scheduler == "cosine"
    assert paper.train.warmup_ratio == 0.03 and paper.train.epochs == 1 and paper.train.batch_size == 1
    assert paper.train.beta == 0.1 and paper.train.loss == ("sigmoid",)
    assert paper.search.image_weight == 0.9 and paper.search.calibration == "paper"
    assert (paper.search.candidates, paper.search.beam_groups, paper.search.diversity_penalty) == (5, 5, 3.0)
    assert paper.search.max_new_tokens == 70 and paper.search.max_response_chars == 1024
    assert paper.clip == "openai/clip-vit-large-patch14-336"
    assert tiny.clip == "tiny" and tiny.device == "cpu" and tiny.iterations == 3
    assert imp.load_config(None) == CSRConfig()


def test_config_file_with_unknown_key_names_key_and_file(tmp_path):
    cfg = tmp_path / "my.toml"
    cfg.write_text("iterations = 2\n[search]\ncalibraton = 'paper'\n")
    with pytest.raises(UserError) as e:
        CSRImprover().load_config(cfg)
    msg = str(e.value)
    assert str(cfg) in msg and "search.calibraton" in msg and "\n" not in msg
    cfg.write_text("iteratons = 2\n")
    with pytest.raises(UserError, match=r"unknown key 'iteratons'"):
        CSRImprover().load_config(cfg)


def test_config_file_bad_values(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[train]\nlearning_rate = 'fast'\n")
    with pytest.raises(UserError, match=r"train.learning_rate.*expected a number"):
        CSRImprover().load_config(cfg)
    cfg.write_text("[search]\nimage_weight = 1.5\n")
    with pytest.raises(UserError, match=r"image_weight=1.5"):
        CSRImprover().load_config(cfg)
    cfg.write_text("[search]\ncalibration = 'mine'\n")
    with pytest.raises(UserError, match=r"'paper', 'official'"):
        CSRImprover().load_config(cfg)
    cfg.write_text("search = 3\n")
    with pytest.raises(UserError, match=r"must be a table"):
        CSRImprover().load_config(cfg)
    cfg.write_text("iterations = \n")
    with pytest.raises(UserError, match=r"malformed TOML"):
        CSRImprover().load_config(cfg)
    with pytest.raises(UserError, match=r"config file not found"):
        CSRImprover().load_config(tmp_path / "missing.toml")


def test_config_values_and_relative_paths(tmp_path):
    (tmp_path / "data").mkdir()
    cfg = tmp_path / "ok.toml"
    cfg.write_text("prompts = 'data/p.jsonl'\nclip = 'tiny'\n[search]\nimage_weight = 0\nkeep_best = 1\n"
                   "[train]\nloss = ['sigmoid', 'sft']\nlearning_rate = 1e-4\n")
    c = CSRImprover().load_config(cfg)
    assert c.search.image_weight == 0.0 and isinstance(c.search.image_weight, float)  # TOML int accepted as float
    assert c.train.loss == ("sigmoid", "sft")
    assert c.prompts == str((tmp_path / "data" / "p.jsonl").resolve())
    assert c.clip == "tiny"


def _image(path):
    from PIL import Image

    Image.new("RGB", (8, 8), (200, 10, 10)).save(path)


def test_prompt_files(tmp_path):
    _image(tmp_path / "a.png")
    good = tmp_path / "p.jsonl"
    good.write_text(json.dumps({"image": "a.png", "prompt": "Describe this image."}) + "\n\n"
                    + json.dumps({"image": str(tmp_path / "a.png"), "prompt": "<image>\nWhat is this?", "id": "x"}) + "\n")
    prompts = load_prompts(good)
    assert [p.prompt for p in prompts] == ["Describe this image.", "What is this?"]
    assert prompts[0].image == str((tmp_path / "a.png").resolve()) and prompts[1].id == "x"
    assert len(load_prompts(good, limit=1)) == 1

    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(UserError, match=r"empty.jsonl: no prompts"):
        load_prompts(empty)
    missing = tmp_path / "missing_image.jsonl"
    missing.write_text(json.dumps({"image": "nope.png", "prompt": "Describe."}) + "\n")
    with pytest.raises(UserError, match=r"line 1: image .*nope.png not found"):
        load_prompts(missing)
    no_prompt = tmp_path / "no_prompt.jsonl"
    no_prompt.write_text(json.dumps({"image": "a.png"}) + "\n")
    with pytest.raises(UserError, match=r"line 1: expected non-empty string fields"):
        load_prompts(no_prompt)
    with pytest.raises(UserError, match=r"prompt file not found"):
        load_prompts(tmp_path / "absent.jsonl")


def test_prompt_images_stay_inside_the_data_root(tmp_path):
    """As eval data: a prompt's image may not climb out of its root, by "..", an absolute path or a symlink."""
    data = tmp_path / "data"
    data.mkdir()
    _image(data / "a.png")
    _image(tmp_path / "outside.png")  # exists, readable, but outside the root
    (data / "link.png").symlink_to(tmp_path / "outside.png")
    for image in ("../outside.png", str(tmp_path / "outside.png"), "link.png"):
        f = data / "p.jsonl"
        f.write_text(json.dumps({"image": "a.png", "prompt": "Describe."}) + "\n"
                     + json.dumps({"image": image, "prompt": "Describe."}) + "\n")
        with pytest.raises(UserError) as e:
            load_prompts(f)
        message = str(e.value)
        assert message.startswith(f"{f}: line 2: image {image!r} is outside the data root {data}"), message
        assert "\n" not in message
    # With image_root, the root is that folder, not the file's: the same "../" is refused there too.
    (tmp_path / "lists").mkdir()
    f = tmp_path / "lists" / "p.jsonl"
    f.write_text(json.dumps({"image": "../outside.png", "prompt": "Describe."}) + "\n")
    with pytest.raises(UserError, match=r"line 1: image '../outside.png' is outside the data root"):
        load_prompts(f, image_root=data)
    # A path that leaves and comes back ("x/../a.png") and an absolute path inside the root are fine.
    (data / "x").mkdir()
    f.write_text(json.dumps({"image": "x/../a.png", "prompt": "Describe."}) + "\n"
                 + json.dumps({"image": str(data / "a.png"), "prompt": "Describe.", "id": "abs"}) + "\n")
    assert [p.image for p in load_prompts(f, image_root=data)] == [str((data / "a.png").resolve())] * 2


def test_world_prompt_images_stay_inside_the_world(tmp_path):
    world = tmp_path / "world"
    (world / "train").mkdir(parents=True)
    (world / "world.json").write_text("{}")
    _image(tmp_path / "outside.png")
    (world / "train" / "captions.jsonl").write_text(json.dumps({"image": "../outside.png", "prompt": "Describe."}) + "\n")
    with pytest.raises(UserError, match=r"captions.jsonl:1: image '../outside.png' is outside the data root"):
        load_prompts(world)
    (world / "improve").mkdir()
    (world / "improve" / "prompts.jsonl").write_text(json.dumps({"image": "../outside.png", "prompt": "Describe."}) + "\n")
    with pytest.raises(UserError, match=r"prompts.jsonl: line 1: image '../outside.png' is outside the data root"):
        load_prompts(world)


def test_authors_prompt_format(tmp_path):
    (tmp_path / "img").mkdir()
    _image(tmp_path / "img" / "000000442786.jpg")
    f = tmp_path / "CSR-Prompt-Dataset-12k.json"
    f.write_text(json.dumps([{"id": "000000442786", "image": "000000442786.jpg",
                              "input": "What do you see happening in this image?\n<image>"}]))
    (p,) = load_prompts(f, image_root=tmp_path / "img")
    assert (p.id, p.prompt) == ("000000442786", "What do you see happening in this image?")


def test_world_folder_prompts(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "images").mkdir()
    for i in (1, 2):
        _image(tmp_path / "images" / f"COCO_train2014_{i:012d}.png")
    (tmp_path / "world.json").write_text("{}")
    rows = [{"image": f"images/COCO_train2014_{i:012d}.png", "prompt": "Describe this image.", "answer": a}
            for i in (1, 2) for a in ("A cat.", "A picture of a cat.")]
    (tmp_path / "train" / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    prompts = load_prompts(tmp_path)
    assert [p.id for p in prompts] == ["COCO_train2014_000000000001", "COCO_train2014_000000000002"]
    with pytest.raises(UserError, match=r"not a csr-bench world"):
        load_prompts(tmp_path / "train")


def test_example_configs_in_benchmarks_load():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "benchmarks" / "improvers"
    files = sorted(folder.glob("*.toml"))
    assert files
    for f in files:
        config = CSRImprover().load_config(f)
        assert config.clip == "tiny"
    ablation = CSRImprover().load_config(folder / "csr-tiny-self-reward-only.toml")
    assert ablation.search.image_weight == 0.0
