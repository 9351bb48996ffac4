"""The `vllm` adapter: generation for large models through vLLM (optional extra `csr-bench[vllm]`, a CUDA GPU).

Same outputs contract as `hf`: one text per request, in order; greedy unless `do_sample`; a sequence ends at the
first stop string, which is kept; surrounding whitespace stripped. Prompts are rendered and tokenized with the
checkpoint's transformers processor exactly as `hf` does (`render_prompt`, `adds_special_tokens`), so both
adapters feed the model the same token ids; images go to vLLM as `multi_modal_data`, which expands the image
placeholder itself.

Differences, on purpose: sampling is seeded per request from (seed, request id), so outputs do not depend on
how requests are batched (vLLM schedules its own batches; `batch_size` is accepted and unused); beam search
(`num_beams` > 1) is refused; vLLM generates only, so `loglikelihood` (CSR's search) needs the `hf` adapter.

    csr-bench eval --model vllm:llava-hf/llava-1.5-7b-hf --suite pope --data coco_pope_random.json ...
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

from csr_bench.core.registry import adapter
from csr_bench.errors import UserError
from csr_bench.models.base import (
    TINY_LLAVA_PATH,
    TINY_MODEL_NAME,
    GenRequest,
    SentenceLogProb,
    check_generation_args,
)

DTYPES = ("auto", "float32", "bfloat16", "float16")
INSTALL_HINT = "pip install 'csr-bench[vllm]'"


def import_vllm():
    """The vllm module, or a UserError saying how to get it."""
    try:
        import vllm
    except ImportError as e:
        raise UserError(f"the vllm adapter needs the vllm package and a CUDA GPU; install it with {INSTALL_HINT} "
                        f"({type(e).__name__}: {e}) or use the hf adapter") from None
    return vllm


def require_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        raise UserError("the vllm adapter needs a CUDA GPU and none is visible; use the hf adapter (hf:MODEL) here")


def resolve_checkpoint(model: str, *, allow_download: bool = False, revision: str | None = None) -> tuple[str, Path | None]:
    """(what vLLM loads, the local folder or None): "tiny", a checkpoint folder, or a Hub id.

    Without `allow_download` a Hub id must be in the local Hugging Face cache, and vLLM gets its snapshot folder.
    """
    from csr_bench.models.hf import _check_local_checkpoint, resolve_local_or_hub

    source, local = resolve_local_or_hub(model)
    if local is not None or allow_download:
        return source, local
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(model, revision=revision, local_files_only=True))
    except Exception:  # noqa: BLE001 - any failure here means "not in the cache"
        raise UserError(f"{model}: not a local folder and not in the local Hugging Face cache "
                        "(downloads are off; allow them or pass a folder)") from None
    _check_local_checkpoint(folder)  # safetensors weights only, as for a local folder
    return str(folder), folder


def vllm_prompt(processor, request: GenRequest) -> dict[str, Any]:
    """One vLLM prompt: the token ids `hf` feeds its model (before image expansion) and the request's images."""
    from csr_bench.models.hf import _load_image, adds_special_tokens, render_prompt

    text, paths = render_prompt(processor, request.messages)
    tokenizer = processor.tokenizer
    ids = tokenizer(text, add_special_tokens=adds_special_tokens(tokenizer, text))["input_ids"]
    prompt: dict[str, Any] = {"prompt_token_ids": list(ids)}
    if paths:
        images = [_load_image(p) for p in paths]
        prompt["multi_modal_data"] = {"image": images[0] if len(images) == 1 else images}
    return prompt


def request_seed(seed: int, request_id: str) -> int:
    """A sampling seed per request from the run's seed and the request's id (independent of batching)."""
    digest = hashlib.sha256(f"{int(seed)}:{request_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def sampling_kwargs(*, max_new_tokens: int, do_sample: bool, temperature: float, top_p: float, seed: int,
                    stop: Sequence[str]) -> dict[str, Any]:
    """vLLM SamplingParams arguments for the decoding the Adapter protocol asks for (nothing else applied)."""
    kwargs: dict[str, Any] = {
        "n": 1,
        "max_tokens": max_new_tokens,
        "stop": [s for s in stop if s] or None,
        "include_stop_str_in_output": True,  # as hf: the stop string stays in the output
        "skip_special_tokens": True,
    }
    if do_sample:
        kwargs.update(temperature=temperature, top_p=top_p, seed=seed)  # top_k, min_p, penalties: vLLM's off defaults
    else:
        kwargs.update(temperature=0.0)  # greedy
    return kwargs


@adapter("vllm")
class VLLMAdapter:
    """A vision-language checkpoint served by vLLM's offline engine, behind the Adapter protocol (generation)."""

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
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        tensor_parallel_size: int = 1,
        max_images: int = 1,
    ):
        if dtype not in DTYPES:
            raise UserError(f"dtype '{dtype}': expected one of {', '.join(DTYPES)}")
        if device not in ("auto", "cuda"):
            raise UserError(f"device '{device}': the vllm adapter runs on the visible CUDA GPUs (choose them with "
                            "CUDA_VISIBLE_DEVICES and tensor_parallel_size); expected auto or cuda")
        self._vllm = import_vllm()
        require_cuda()
        from transformers import AutoProcessor

        from csr_bench.models.hf import _first_line, check_processor, quiet_transformers

        self.source, self.local_path = resolve_checkpoint(model, allow_download=allow_download, revision=revision)
        if name:
            self.name = name
        elif self.local_path == TINY_LLAVA_PATH.resolve():
            self.name = TINY_MODEL_NAME
        elif Path(model).expanduser().exists():
            self.name = Path(model).expanduser().resolve().name
        else:
            self.name = model  # a Hub id
        self.dtype_name = dtype
        try:
            with quiet_transformers():
                self.processor = AutoProcessor.from_pretrained(
                    self.source, local_files_only=not allow_download, trust_remote_code=trust_remote_code, revision=revision
                )
        except (OSError, ValueError) as e:
            raise UserError(f"{model}: cannot load the processor ({_first_line(e)})") from None
        check_processor(self.processor, model)
        self.llm = self._vllm.LLM(
            model=self.source, tokenizer=self.source, dtype=dtype, seed=0, trust_remote_code=trust_remote_code,
            revision=revision if self.local_path is None else None, gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len, tensor_parallel_size=tensor_parallel_size,
            limit_mm_per_prompt={"image": max_images},
            load_format="safetensors",  # never unpickle .bin weights, as in the hf adapter
        )
        self._fingerprint: str | None = None

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
        from csr_bench.models.hf import _cut_at_stop

        check_generation_args(max_new_tokens=max_new_tokens, batch_size=batch_size, num_beams=num_beams,
                              do_sample=do_sample, temperature=temperature, top_p=top_p)
        if num_beams != 1:
            raise UserError(f"num_beams={num_beams}: the vllm adapter does greedy decoding and sampling only; "
                            "use the hf adapter for beam search")
        if not requests:
            return []
        prompts = [vllm_prompt(self.processor, r) for r in requests]
        params = [
            self._vllm.SamplingParams(**sampling_kwargs(
                max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature, top_p=top_p,
                seed=request_seed(seed, r.id or str(i)), stop=stop,
            ))
            for i, r in enumerate(requests)
        ]
        results = self.llm.generate(prompts, sampling_params=params, use_tqdm=False)
        return [_cut_at_stop(res.outputs[0].text, stop).strip() for res in results]

    def loglikelihood(
        self,
        requests: Sequence[GenRequest],
        continuations: Sequence[Sequence[str]],
        *,
        batch_size: int = 8,
    ) -> list[list[SentenceLogProb]]:
        raise UserError("the vllm adapter generates only; sentence log-likelihoods (CSR's search) need the hf adapter")

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            from csr_bench.models.hf import hash_checkpoint_files

            try:
                dtype = str(self.llm.llm_engine.model_config.dtype)
            except AttributeError:  # engine internals differ across vLLM versions
                dtype = self.dtype_name
            h = hashlib.sha256(json.dumps({"adapter": "vllm", "dtype": dtype}).encode())
            root = self.local_path
            if root is not None and root.is_dir():
                hash_checkpoint_files(h, root)
            else:  # downloaded by vLLM itself: the hub id and revision name the weights
                h.update(json.dumps({"source": self.source}).encode())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def __repr__(self) -> str:
        return f"VLLMAdapter({self.name!r}, source={self.source!r}, dtype={self.dtype_name!r})"
