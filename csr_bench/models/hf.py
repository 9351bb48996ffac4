"""The `hf` adapter: any transformers image-text-to-text checkpoint with a chat template.

Loads LLaVA-1.5 in the llava-hf layout, Qwen2-VL style models and the shipped tiny LLaVA through
`AutoProcessor` and `AutoModelForImageTextToText`, from a local folder or a Hub id found in the local cache
(downloads only when allowed). Weights must be safetensors. Prompts are rendered with the processor's chat
template; batches are left-padded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from csr_bench.core.registry import adapter
from csr_bench.core.types import ImagePart, Message, TextPart
from csr_bench.errors import UserError
from csr_bench.models.base import (
    _HUB_ID,
    TINY_LLAVA_PATH,
    TINY_MODEL_NAME,
    GenRequest,
    SentenceLogProb,
    check_generation_args,
    require_safetensors_weights,
)

DTYPES = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEVICES = ("cpu", "cuda", "auto")
# Files that define a checkpoint's behaviour besides its weights (hashed into the fingerprint).
_DEFINING_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "processor_config.json",
    "preprocessor_config.json",
    "chat_template.json",
    "chat_template.jinja",
)
# Weight files larger than this are fingerprinted by size, header and edges instead of a full read.
_FULL_HASH_LIMIT = 64 * 2**20
_EDGE_BYTES = 4 * 2**20


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """No per-tensor progress bars while loading (they are noise for the tiny model in a CLI)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _check_local_checkpoint(path: Path) -> None:
    if not path.is_dir():
        raise UserError(f"{path}: expected a checkpoint folder, found a file")
    if not (path / "config.json").is_file():
        raise UserError(f"{path}: not a transformers checkpoint (no config.json)")
    require_safetensors_weights(path)


def resolve_local_or_hub(model: str) -> tuple[str, Path | None]:
    """(what from_pretrained loads, the local folder or None) for "tiny", a checkpoint folder (checked: config.json,
    safetensors weights) or a Hub id (not looked up here)."""
    if model == TINY_MODEL_NAME:
        model = str(TINY_LLAVA_PATH)
    local = Path(model).expanduser()
    if local.exists():
        _check_local_checkpoint(local)
        return str(local.resolve()), local.resolve()
    if not _HUB_ID.match(model):
        raise UserError(f"{model}: checkpoint folder not found")
    return model, None


def hash_checkpoint_files(h, folder: Path) -> None:
    """Feed a checkpoint folder's weights and defining files (names and digests, in name order) into hash `h`."""
    for p in sorted(p for p in folder.iterdir() if p.suffix == ".safetensors" or p.name in _DEFINING_FILES):
        h.update(p.name.encode())
        h.update(_file_digest(p).encode())


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with path.open("rb") as f:
        if size <= _FULL_HASH_LIMIT:
            for block in iter(lambda: f.read(2**20), b""):
                h.update(block)
        else:
            # Large shards: the safetensors header (names, shapes, offsets) plus the first and last bytes.
            h.update(f.read(_EDGE_BYTES))
            f.seek(size - _EDGE_BYTES)
            h.update(f.read(_EDGE_BYTES))
    return h.hexdigest()


def _load_image(path: str):
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: image not found")
    try:
        with Image.open(p) as im:
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise UserError(f"{p}: not a readable image ({e})") from None


def _to_hf_messages(messages: Sequence[Message]) -> tuple[list[dict[str, Any]], list[str]]:
    """Our messages as transformers chat messages, and the image paths in order of appearance."""
    conv: list[dict[str, Any]] = []
    images: list[str] = []
    for m in messages:
        content: list[dict[str, Any]] = []
        for part in m.parts:
            if isinstance(part, ImagePart):
                content.append({"type": "image"})
                images.append(part.path)
            elif isinstance(part, TextPart):
                content.append({"type": "text", "text": part.text})
            else:
                raise UserError(f"unsupported message part {type(part).__name__}; expected text or image")
        conv.append({"role": m.role, "content": content})
    return conv, images


def check_processor(processor, model: str) -> None:
    """A vision-language processor with a chat template (taken from the tokenizer where only it has one)."""
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is None or not hasattr(processor, "image_processor"):
        raise UserError(f"{model}: the processor has no tokenizer and image processor; expected a vision-language model")
    if not getattr(processor, "chat_template", None):
        if getattr(tokenizer, "chat_template", None):  # some checkpoints keep it on the tokenizer only
            processor.chat_template = tokenizer.chat_template
        else:
            raise UserError(f"{model}: no chat template (expected chat_template.jinja or .json in the checkpoint)")


def render_prompt(processor, messages: Sequence[Message]) -> tuple[str, list[str]]:
    """The chat-template text of a conversation (continuing a final assistant message) and its image paths.

    Shared by every adapter that renders prompts with a transformers processor (hf, vllm).
    """
    conv, images = _to_hf_messages(messages)
    if not conv:
        raise UserError("empty conversation: expected at least one message")
    continue_final = conv[-1]["role"] == "assistant"
    if continue_final and not any(p.get("text") for p in conv[-1]["content"]):
        conv = conv[:-1]  # an empty assistant prefix is the plain generation prompt
        continue_final = False
    text = processor.apply_chat_template(
        conv, add_generation_prompt=not continue_final, continue_final_message=continue_final, tokenize=False
    )
    return text, images


def adds_special_tokens(tokenizer, text: str) -> bool:
    """Whether to tokenize a rendered prompt with special tokens: as the processor's own
    apply_chat_template(tokenize=True), no second BOS when the template writes one."""
    bos = tokenizer.bos_token
    return not (bos is not None and text.startswith(bos))


class _StopOnStrings:
    """Stopping criterion: a row is done once its generated text contains one of the stop strings."""

    def __init__(self, tokenizer, stops: Sequence[str], prompt_len: int):
        self.tokenizer = tokenizer
        self.stops = [s for s in stops if s]
        self.prompt_len = prompt_len

    def __call__(self, input_ids, scores, **kwargs):
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_len :], skip_special_tokens=True)
        return torch.tensor([any(s in t for s in self.stops) for t in texts], device=input_ids.device)


def _cut_at_stop(text: str, stops: Sequence[str]) -> str:
    ends = [text.index(s) + len(s) for s in stops if s and s in text]
    return text[: min(ends)] if ends else text


@adapter("hf")
class HFAdapter:
    """A transformers image-text-to-text model behind the Adapter protocol.

    `model` is a checkpoint folder, a Hub id (from the local cache unless `allow_download`) or "tiny".
    """

    def __init__(
        self,
        model: str,
        *,
        dtype: str = "auto",
        device: str = "auto",
        trust_remote_code: bool = False,
        allow_download: bool = False,
        revision: str | None = None,
        name: str | None = None,
    ):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        if dtype not in DTYPES:
            raise UserError(f"dtype '{dtype}': expected one of {', '.join(DTYPES)}")
        # "cuda:N" picks one GPU (a rank of a sharded evaluation uses cuda:LOCAL_RANK).
        if device not in DEVICES and not re.fullmatch(r"cuda:\d+", device):
            raise UserError(f"device '{device}': expected one of {', '.join(DEVICES)} or cuda:N")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"device '{device}': no CUDA device is available; use device 'cpu' or 'auto'")
        if device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
            raise UserError(f"device '{device}': only {torch.cuda.device_count()} CUDA device(s) are visible")
        self.source, self.local_path = resolve_local_or_hub(model)
        if name:
            self.name = name
        elif self.local_path == TINY_LLAVA_PATH.resolve():
            self.name = TINY_MODEL_NAME
        else:
            self.name = self.local_path.name if self.local_path else model
        self.dtype_name = dtype
        self.revision = revision
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        load_kwargs = dict(local_files_only=not allow_download, trust_remote_code=trust_remote_code, revision=revision)
        try:
            with quiet_transformers():
                self.processor = AutoProcessor.from_pretrained(self.source, **load_kwargs)
                self._check_processor(model)  # before the weights: a wrong folder fails fast
                self.model = AutoModelForImageTextToText.from_pretrained(
                    self.source, dtype=DTYPES[dtype], use_safetensors=True, device_map=str(self.device), **load_kwargs
                )
        except OSError as e:
            if "use_safetensors" in str(e):  # found, but without safetensors weights: pickles are never loaded
                raise UserError(f"{model}: weights are not safetensors (no model.safetensors); convert them to "
                                "safetensors") from None
            if self.local_path is None and not allow_download:
                raise UserError(
                    f"{model}: not a local folder and not in the local Hugging Face cache "
                    "(downloads are off; allow them or pass a folder)"
                ) from None
            raise UserError(f"{model}: cannot load the checkpoint ({_first_line(e)})") from None
        except ValueError as e:
            if not trust_remote_code and "trust_remote_code" in str(e):  # transformers refused to run its code
                raise UserError(
                    f"{model}: the checkpoint ships Python code (auto_map in config.json) that loading would run; "
                    "read it, then pass --trust-remote-code (trust_remote_code=True) to allow it"
                ) from None
            raise UserError(f"{model}: not an image-text-to-text checkpoint ({_first_line(e)})") from None
        self.tokenizer = self.processor.tokenizer
        self.tokenizer.padding_side = "left"  # generation appends on the right
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model.eval()
        self._fingerprint: str | None = None

    def _check_processor(self, model: str) -> None:
        check_processor(self.processor, model)

    # ------------------------------------------------------------------------------------------- encoding

    def _render(self, messages: Sequence[Message]) -> tuple[str, list[str]]:
        return render_prompt(self.processor, messages)

    def _add_special_tokens(self, text: str) -> bool:
        return adds_special_tokens(self.tokenizer, text)

    def _encode(self, texts: list[str], image_paths: list[list[str]]):
        images = [_load_image(p) for paths in image_paths for p in paths]
        kwargs: dict[str, Any] = dict(text=texts, padding=True, return_tensors="pt")
        if images:
            kwargs["images"] = images
        kwargs["add_special_tokens"] = self._add_special_tokens(texts[0])
        batch = self.processor(**kwargs)
        return {k: (v.to(self.device) if hasattr(v, "to") else v) for k, v in batch.items()}

    # ----------------------------------------------------------------------------------------- generation

    def generate(
        self,
        requests: Sequence[GenRequest],
        *,
        max_new_tokens: int,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        num_beams: int = 1,
        seed: int = 0,
        batch_size: int = 8,
        stop: Sequence[str] = (),
    ) -> list[str]:
        from transformers import StoppingCriteriaList

        check_generation_args(max_new_tokens=max_new_tokens, batch_size=batch_size, num_beams=num_beams,
                              do_sample=do_sample, temperature=temperature, top_p=top_p)
        gen_config = self.model.generation_config.__class__.from_dict(self.model.generation_config.to_dict())
        # Exactly the decoding asked for: the checkpoint's own sampling defaults (top_k, ...) are not applied.
        gen_config.update(
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            num_beams=num_beams,
            num_return_sequences=1,
            temperature=temperature if do_sample else None,
            top_p=top_p if do_sample else None,
            top_k=0 if do_sample else None,
            min_p=None,
            typical_p=None,
            repetition_penalty=None,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        if gen_config.eos_token_id is None:
            gen_config.eos_token_id = self.tokenizer.eos_token_id
        outputs: list[str] = []
        for batch_index, start in enumerate(range(0, len(requests), batch_size)):
            chunk = requests[start : start + batch_size]
            rendered = [self._render(r.messages) for r in chunk]
            inputs = self._encode([t for t, _ in rendered], [imgs for _, imgs in rendered])
            prompt_len = inputs["input_ids"].shape[1]
            criteria = StoppingCriteriaList([_StopOnStrings(self.tokenizer, stop, prompt_len)]) if stop else None
            with self._seeded(seed, batch_index), torch.inference_mode():
                out = self.model.generate(**inputs, generation_config=gen_config, stopping_criteria=criteria)
            texts = self.tokenizer.batch_decode(out[:, prompt_len:], skip_special_tokens=True)
            outputs.extend(_cut_at_stop(t, stop).strip() for t in texts)
        return outputs

    @contextlib.contextmanager
    def _seeded(self, seed: int, batch_index: int) -> Iterator[None]:
        """Seed this batch from (seed, batch index) without disturbing the caller's global RNG state."""
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed((int(seed) * 1_000_003 + batch_index) % 2**63)
            yield

    # ---------------------------------------------------------------------------------------- likelihood

    def loglikelihood(
        self,
        requests: Sequence[GenRequest],
        continuations: Sequence[Sequence[str]],
        *,
        batch_size: int = 8,
    ) -> list[list[SentenceLogProb]]:
        if len(requests) != len(continuations):
            raise UserError(f"{len(requests)} requests but {len(continuations)} continuation lists; expected one each")
        results: list[list[SentenceLogProb]] = []
        for start in range(0, len(requests), batch_size):
            chunk = list(zip(requests[start : start + batch_size], continuations[start : start + batch_size]))
            texts, images, bounds = [], [], []
            for req, sentences in chunk:
                prefix, imgs = self._render(req.messages)
                texts.append(prefix + "".join(sentences))
                images.append(imgs)
                bounds.append(self._sentence_bounds(prefix, sentences))
            inputs = self._encode(texts, images)
            ids = inputs["input_ids"]
            keep = max((b[-1] for b in bounds), default=0)
            if keep == 0:
                results.extend([[SentenceLogProb(0.0, 0.0, 0) for _ in s] for _, s in chunk])
                continue
            with torch.inference_mode():
                if self._accepts_logits_to_keep():
                    logits = self.model(**inputs, logits_to_keep=keep + 1).logits
                else:
                    logits = self.model(**inputs).logits[:, -(keep + 1) :]
            # logits[:, j] predicts token (seq_len - keep - 1 + j + 1); continuation tokens are the last ones.
            logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
            targets = ids[:, -keep:]
            token_lp = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (batch, keep)
            for row, ((_, sentences), b) in enumerate(zip(chunk, bounds)):
                n_cont = b[-1]
                row_lp = token_lp[row, keep - n_cont :] if n_cont else token_lp[row, :0]
                per_sentence = []
                for j in range(len(sentences)):
                    seg = row_lp[b[j] : b[j + 1]]
                    n = int(seg.numel())
                    total = float(seg.sum()) if n else 0.0
                    per_sentence.append(SentenceLogProb(total, total / n if n else 0.0, n))
                results.append(per_sentence)
        return results

    def _accepts_logits_to_keep(self) -> bool:
        import inspect

        return "logits_to_keep" in inspect.signature(self.model.forward).parameters

    def _sentence_bounds(self, prefix: str, sentences: Sequence[str]) -> list[int]:
        """Token offsets, counted from the end of the prefix, where each sentence starts; last = total.

        Tokenizes prefix + s1 + ... + sj for each j. Where a token spans a boundary (the longer text's
        tokens do not extend the shorter's), it counts for the later sentence.
        """
        add_special = self._add_special_tokens(prefix)
        cumulative = [prefix]
        for s in sentences:
            cumulative.append(cumulative[-1] + s)
        encoded = self.tokenizer(cumulative, add_special_tokens=add_special)["input_ids"]
        full = encoded[-1]
        bounds = []
        for ids in encoded:
            common = 0
            for a, b in zip(ids, full):
                if a != b:
                    break
                common += 1
            bounds.append(common)
        base = bounds[0]
        return [b - base for b in bounds]

    # --------------------------------------------------------------------------------------- identity

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(json.dumps({"dtype": str(self.model.dtype)}).encode())
            root = self.local_path or self._hub_snapshot()
            if root is not None and root.is_dir():
                hash_checkpoint_files(h, root)
            else:
                # No folder to read (rare): hash the parameters themselves.
                for name, tensor in sorted(self.model.state_dict().items()):
                    h.update(name.encode())
                    h.update(tensor.detach().float().cpu().numpy().tobytes())
                h.update((self.processor.chat_template or "").encode())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def _hub_snapshot(self) -> Path | None:
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(self.source, revision=self.revision, local_files_only=True))
        except Exception:  # not in the cache in the usual layout: fall back to hashing parameters
            return None

    def __repr__(self) -> str:
        return f"HFAdapter({self.name!r}, source={self.source!r}, dtype={self.dtype_name!r}, device={self.device})"


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
