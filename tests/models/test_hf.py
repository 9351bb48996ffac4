"""The `hf` adapter on the shipped tiny LLaVA: loading, batching, decoding modes, likelihoods and errors."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

from csr_bench.core.types import ImagePart, Message, TextPart
from csr_bench.errors import UserError
from csr_bench.models import TINY_LLAVA_PATH, GenRequest, ModelSpec, SentenceLogProb, load_adapter, resolve_model_spec

torch.set_num_threads(1)

CAPTION_PROMPT = "Describe this image."


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from csr_bench.world import WorldConfig, generate_world

    # A different seed from the shipped model's training world: new images from the same distribution.
    return generate_world(tmp_path_factory.mktemp("world") / "w", config=WorldConfig.quick(seed=1))


@pytest.fixture(scope="module")
def tiny():
    return load_adapter("tiny")


def _pope_rows(world, split: str, n: int) -> list[dict]:
    lines = world.pope[split].read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()][:n]


def _val_images(world, n: int) -> list[str]:
    return [str(p) for p in sorted(world.images_val.glob("*.png"))[:n]]


def _caption_request(image: str) -> GenRequest:
    return GenRequest((Message.user(ImagePart(image), CAPTION_PROMPT),))


def test_tiny_resolves_to_shipped_checkpoint_and_loads_offline(tiny):
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    assert resolve_model_spec("tiny") == ModelSpec("hf", str(TINY_LLAVA_PATH))
    assert (TINY_LLAVA_PATH / "model.safetensors").is_file()
    assert tiny.name == "tiny"
    assert type(tiny.model).__name__ == "LlavaForConditionalGeneration"
    assert sum(p.numel() for p in tiny.model.parameters()) < 5_000_000
    assert re.fullmatch(r"[0-9a-f]{16}", tiny.fingerprint())


def test_tiny_beats_chance_on_pope(world, tiny):
    rows = [r for split in ("random", "popular", "adversarial") for r in _pope_rows(world, split, 40)]
    reqs = [
        GenRequest((Message.user(ImagePart(str(world.images_val / r["image"])), r["text"]),)) for r in rows
    ]
    outs = tiny.generate(reqs, max_new_tokens=3, batch_size=16)
    first_words = [re.sub(r"\W", "", o.split()[0]).lower() if o.split() else "" for o in outs]
    accuracy = sum(w == r["label"] for w, r in zip(first_words, rows)) / len(rows)
    # 120 balanced questions: chance gives 0.5 (P(>= 0.65) < 0.001 by the binomial tail).
    assert accuracy >= 0.65, (accuracy, outs[:10])
    assert set(first_words) == {"yes", "no"}


def test_batched_generation_equals_one_at_a_time(world, tiny):
    images = _val_images(world, 4)
    rows = _pope_rows(world, "random", 4)
    reqs = [_caption_request(im) for im in images] + [
        GenRequest((Message.user(ImagePart(str(world.images_val / r["image"])), r["text"]),)) for r in rows
    ]
    reqs = [reqs[i] for i in (0, 4, 1, 5, 2, 6, 3, 7)]  # mixed prompt lengths in each batch: left padding at work
    batched = tiny.generate(reqs, max_new_tokens=24, batch_size=4)
    single = [tiny.generate([r], max_new_tokens=24, batch_size=1)[0] for r in reqs]
    assert batched == single
    assert all(batched)


def test_captions_are_sentences_about_objects(world, tiny):
    outs = tiny.generate([_caption_request(im) for im in _val_images(world, 4)], max_new_tokens=40)
    nouns = {"person", "people", "car", "cars", "bird", "birds", "cat", "cats", "dog", "dogs", "ball", "balls",
             "cup", "cups", "fork", "forks", "knife", "knives", "apple", "apples", "clock", "clocks"}
    for out in outs:
        assert out.endswith("."), out
        assert nouns & set(re.findall(r"\w+", out.lower())), out


def _expected_continuation_logprob(adapter, image: str, prompt: str, sentences: list[str]) -> tuple[float, int]:
    """-loss * n_tokens of the model's own labels-masked loss over the continuation tokens."""
    proc, tok = adapter.processor, adapter.processor.tokenizer
    conv = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    prefix = proc.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)
    full = prefix + "".join(sentences)
    n = len(tok(full, add_special_tokens=False)["input_ids"]) - len(tok(prefix, add_special_tokens=False)["input_ids"])
    from PIL import Image

    with Image.open(image) as im:
        inputs = proc(text=[full], images=[im.convert("RGB")], return_tensors="pt", add_special_tokens=False)
    labels = inputs["input_ids"].clone()
    labels[:, :-n] = -100
    with torch.no_grad():
        loss = adapter.model(**inputs, labels=labels).loss
    return -float(loss) * n, n


def test_sentence_logprobs_add_up_to_the_models_loss(world, tiny):
    images = _val_images(world, 3)
    conts = [
        [" A picture of a dog.", " It is next to a cat."],
        [" There is a red person in the picture."],
        [" Yes", ",", " a fork and a knife."],
    ]
    reqs = [_caption_request(im) for im in images]
    got = tiny.loglikelihood(reqs, conts, batch_size=2)
    assert [len(g) for g in got] == [len(c) for c in conts]
    for image, sentences, lps in zip(images, conts, got):
        expected, n = _expected_continuation_logprob(tiny, image, CAPTION_PROMPT, sentences)
        assert sum(lp.n_tokens for lp in lps) == n
        assert sum(lp.sum for lp in lps) == pytest.approx(expected, rel=1e-5, abs=1e-4)
        for lp in lps:
            assert isinstance(lp, SentenceLogProb) and lp.sum < 0
            assert lp.mean == pytest.approx(lp.sum / lp.n_tokens)


def test_each_sentence_is_conditioned_on_the_ones_before(world, tiny):
    image = _val_images(world, 1)[0]
    first, second = " A picture of a dog.", " A cat is next to it."
    both = tiny.loglikelihood([_caption_request(image)], [[first, second]])[0]
    # The same second sentence, continuing an assistant message that already holds the first one.
    prefilled = GenRequest((Message.user(ImagePart(image), CAPTION_PROMPT), Message("assistant", (TextPart(first.strip()),))))
    alone = tiny.loglikelihood([prefilled], [[second]])[0]
    assert alone[0].n_tokens == both[1].n_tokens
    assert alone[0].sum == pytest.approx(both[1].sum, rel=1e-5, abs=1e-5)
    # Order matters: the model scores the sentences differently without the first one before.
    unconditioned = tiny.loglikelihood([_caption_request(image)], [[second]])[0]
    assert unconditioned[0].sum != pytest.approx(both[1].sum, rel=1e-3)


def test_continuing_an_assistant_prefix_generates_its_rest(world, tiny):
    image = _val_images(world, 1)[0]
    full = tiny.generate([_caption_request(image)], max_new_tokens=40)[0]
    words = full.split()
    prefix = " ".join(words[:2])
    req = GenRequest((Message.user(ImagePart(image), CAPTION_PROMPT), Message("assistant", (TextPart(prefix),))))
    rest = tiny.generate([req], max_new_tokens=40)[0]
    assert f"{prefix} {rest}" == full


def test_beam_search_and_sampling(world, tiny):
    reqs = [_caption_request(im) for im in _val_images(world, 6)]
    beams = tiny.generate(reqs[:2], max_new_tokens=30, num_beams=3, batch_size=2)
    assert len(beams) == 2 and all(b.endswith(".") for b in beams)

    state = torch.get_rng_state()
    a = tiny.generate(reqs, max_new_tokens=30, do_sample=True, temperature=1.5, seed=7, batch_size=3)
    b = tiny.generate(reqs, max_new_tokens=30, do_sample=True, temperature=1.5, seed=7, batch_size=3)
    c = tiny.generate(reqs, max_new_tokens=30, do_sample=True, temperature=1.5, seed=8, batch_size=3)
    assert torch.equal(state, torch.get_rng_state())  # the caller's random state is left alone
    assert a == b
    assert a != c
    greedy = tiny.generate(reqs, max_new_tokens=30, batch_size=3)
    # top_p that keeps only the most likely token is greedy decoding
    nucleus = tiny.generate(reqs, max_new_tokens=30, do_sample=True, top_p=1e-6, seed=3, batch_size=3)
    assert nucleus == greedy


def test_stop_strings_end_generation_and_are_kept(world, tiny):
    reqs = [_caption_request(im) for im in _val_images(world, 4)]
    full = tiny.generate(reqs, max_new_tokens=40)
    stopped = tiny.generate(reqs, max_new_tokens=40, stop=[" and", ","])
    for f, s in zip(full, stopped):
        assert f.startswith(s)
        cut = [f.index(x) + len(x) for x in (" and", ",") if x in f]
        assert s == (f[: min(cut)] if cut else f)


def test_fingerprint_is_stable_and_follows_the_weights(tmp_path, tiny):
    again = load_adapter("tiny")
    assert again.fingerprint() == tiny.fingerprint()
    copy = tmp_path / "copy"
    shutil.copytree(TINY_LLAVA_PATH, copy)
    assert load_adapter(str(copy)).fingerprint() == tiny.fingerprint()
    changed = load_adapter(str(copy))
    with torch.no_grad():
        changed.model.lm_head.weight[0, 0] += 1.0
    changed.model.save_pretrained(copy)
    assert load_adapter(str(copy)).fingerprint() != tiny.fingerprint()


# ------------------------------------------------------------------------------------------------- errors


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg and msg
    return msg


def test_folder_without_weights_is_a_user_error(tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    shutil.copy(TINY_LLAVA_PATH / "config.json", folder)
    with pytest.raises(UserError) as e:
        load_adapter(str(folder))
    assert str(folder) in _one_line(e) and "weights" in str(e.value)
    (folder / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(UserError, match="not safetensors") as e:
        load_adapter(str(folder))
    _one_line(e)


def test_folder_without_config_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no config.json") as e:
        load_adapter(str(tmp_path))
    _one_line(e)


def test_model_without_chat_template_is_a_user_error(tmp_path):
    folder = tmp_path / "no-template"
    shutil.copytree(TINY_LLAVA_PATH, folder)
    (folder / "chat_template.jinja").unlink()
    for name in ("processor_config.json", "tokenizer_config.json"):
        cfg = json.loads((folder / name).read_text())
        cfg.pop("chat_template", None)
        (folder / name).write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="no chat template") as e:
        load_adapter(str(folder))
    _one_line(e)


@pytest.mark.parametrize("spec", ["./no/such/checkpoint", "/no/such/checkpoint", "not a model"])
def test_unknown_path_is_a_user_error(spec):
    with pytest.raises(UserError) as e:
        load_adapter(spec)
    assert "not found" in _one_line(e)


def test_hub_id_outside_the_cache_is_a_user_error():
    with pytest.raises(UserError, match="not in the local Hugging Face cache") as e:
        load_adapter("csr-bench-test/no-such-model")
    _one_line(e)


def test_missing_image_is_a_user_error_naming_it(tiny, tmp_path):
    missing = tmp_path / "nowhere.png"
    req = GenRequest((Message.user(ImagePart(str(missing)), CAPTION_PROMPT),))
    with pytest.raises(UserError) as e:
        tiny.generate([req], max_new_tokens=3)
    assert str(missing) in _one_line(e)
    with pytest.raises(UserError) as e:
        tiny.loglikelihood([req], [[" A dog."]])
    assert str(missing) in _one_line(e)


def test_bad_options_are_user_errors():
    with pytest.raises(UserError, match="dtype"):
        load_adapter("tiny", dtype="float8")
    with pytest.raises(UserError, match="device"):
        load_adapter("tiny", device="tpu")


def test_model_specs(tmp_path):
    assert resolve_model_spec("hf:tiny") == ModelSpec("hf", str(TINY_LLAVA_PATH))
    assert resolve_model_spec(f"hf:{tmp_path}") == ModelSpec("hf", str(tmp_path))
    assert resolve_model_spec(str(tmp_path)) == ModelSpec("hf", str(tmp_path.resolve()))
    assert resolve_model_spec("llava-hf/llava-1.5-7b-hf") == ModelSpec("hf", "llava-hf/llava-1.5-7b-hf")
    for bad in ("", "nosuchadapter:thing", "hf:", "/no/such/dir"):
        with pytest.raises(UserError):
            resolve_model_spec(bad)


def test_importing_models_does_not_import_torch():
    code = "import sys, csr_bench.models; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


# ----------------------------------------------------------------------- a Qwen2-VL style checkpoint


QWEN_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def qwen2_vl_checkpoint(tmp_path_factory):
    """A randomly initialised, very small Qwen2-VL (byte-level BPE, M-RoPE, dynamic image tokens, no BOS)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    corpus = ["A picture of a red dog and a blue cat.", "Describe this image.", "Is there a knife? Yes No",
              "system user assistant You are a helpful assistant."] * 10
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=specials,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
    )
    image_processor = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=4 * 56 * 56, patch_size=14, merge_size=2,
                                            temporal_patch_size=2)
    processor = Qwen2VLProcessor(image_processor=image_processor, tokenizer=tok,
                                 video_processor=Qwen2VLVideoProcessor(), chat_template=QWEN_TEMPLATE)
    ids = tok.convert_tokens_to_ids
    config = Qwen2VLConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
                         eos_token_id=ids("<|im_end|>"), pad_token_id=ids("<|endoftext|>"), bos_token_id=None),
        vision_config=dict(depth=1, embed_dim=32, hidden_size=64, num_heads=2, patch_size=14, spatial_merge_size=2,
                           temporal_patch_size=2, in_channels=3),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
    )
    torch.manual_seed(0)
    model = Qwen2VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = ids("<|im_end|>")
    folder = tmp_path_factory.mktemp("qwen2-vl") / "ckpt"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_qwen2_vl_style_checkpoint_batches_and_scores_like_one_at_a_time(world, qwen2_vl_checkpoint):
    adapter = load_adapter(str(qwen2_vl_checkpoint))
    assert type(adapter.model).__name__ == "Qwen2VLForConditionalGeneration"
    images = _val_images(world, 4)
    reqs = [GenRequest((Message.user(ImagePart(im), CAPTION_PROMPT + " Is there a dog?" * (i % 2)),))
            for i, im in enumerate(images)]
    batched = adapter.generate(reqs, max_new_tokens=6, batch_size=4)
    assert batched == [adapter.generate([r], max_new_tokens=6)[0] for r in reqs]
    conts = [[" A dog.", " A cat."]] * 4
    together = adapter.loglikelihood(reqs, conts, batch_size=4)
    for req, got in zip(reqs, together):
        alone = adapter.loglikelihood([req], conts[:1])[0]
        assert [x.n_tokens for x in got] == [x.n_tokens for x in alone]
        assert [x.sum for x in got] == pytest.approx([x.sum for x in alone], rel=1e-4, abs=1e-4)
