"""Our adapters as an lmms-eval model: `lmms-eval eval --model csr_bench --model_args model=tiny ...`.

The only module of csr-bench that imports lmms_eval at import time (it subclasses `lmms_eval.api.model.lmms`);
lmms-eval finds it through the `lmms_eval.models` entry point (`model_manifest`), which imports nothing heavy
until lmms-eval loads the class. `model_args`: `model` (any csr-bench model spec: `tiny`, a checkpoint folder such
as an improver's iteration output, `hf:PATH_OR_HUB_ID`), `batch_size`, `seed`, `image_cache` (where request images
are written for the adapter; default a temporary folder), `max_new_tokens` (when a task sets none; default 1024
as lmms-eval's llava_hf).
"""

from __future__ import annotations

import hashlib
import io
import tempfile
from pathlib import Path
from typing import Any, Sequence

from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms

from csr_bench.core.types import ImagePart, Message
from csr_bench.errors import UserError
from csr_bench.models.base import Adapter, GenRequest, load_adapter

MODEL_ID = "csr_bench"
DEFAULT_MAX_NEW_TOKENS = 1024
# Image placeholders some lmms-eval prompts carry; our adapters place the images themselves.
_IMAGE_TOKENS = ("<image>",)


def model_manifest():
    """The `lmms_eval.models` entry point: registers `csr_bench` (simple model)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_ID, simple_class_path=f"{__name__}.CsrBenchLmms")


def _cut_at_until(text: str, until: Sequence[str]) -> str:
    """lmms-eval's `until`: the answer ends before the first stop string (not included)."""
    cut = len(text)
    for stop in until:
        if stop:
            at = text.find(stop)
            if at != -1:
                cut = min(cut, at)
    return text[:cut]


class CsrBenchLmms(lmms):
    """A csr-bench Adapter behind lmms-eval's `lmms` interface (single process)."""

    is_simple = True

    def __init__(
        self,
        model: str = "tiny",
        *,
        adapter: Adapter | None = None,
        batch_size: int | str = 8,
        seed: int | str = 0,
        image_cache: str | None = None,
        max_new_tokens: int | str = DEFAULT_MAX_NEW_TOKENS,
        device: str | None = None,
        max_batch_size: int | None = None,
        **unused: Any,
    ) -> None:
        super().__init__()
        self.model_spec = model
        self.adapter = adapter if adapter is not None else load_adapter(model)
        self.batch_size_per_gpu = int(batch_size) if str(batch_size).isdigit() else 8
        self.seed = int(seed)
        self.default_max_new_tokens = int(max_new_tokens)
        self._image_dir = Path(image_cache) if image_cache else Path(tempfile.mkdtemp(prefix="csr-bench-lmms-images-"))
        self._image_dir.mkdir(parents=True, exist_ok=True)

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_gpu

    # -- requests to our message format

    def _image_path(self, image: Any) -> str:
        """A request image as a file for the adapter: paths as they are, PIL images written once by content."""
        if isinstance(image, (str, Path)):
            return str(image)
        if not hasattr(image, "save"):
            raise UserError(f"lmms-eval visual of type {type(image).__name__}: csr_bench models take images only")
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="PNG")
        data = buffer.getvalue()
        path = self._image_dir / f"{hashlib.sha256(data).hexdigest()[:24]}.png"
        if not path.exists():
            path.write_bytes(data)
        return str(path)

    def _visuals(self, doc_to_visual, doc_id, task, split) -> list[str]:
        if doc_to_visual is None:
            return []
        visuals = doc_to_visual(self.task_dict[task][split][doc_id])
        if visuals is None:
            return []
        if not isinstance(visuals, (list, tuple)):
            visuals = [visuals]
        return [self._image_path(v) for v in visuals if v is not None]

    def _message(self, context: str, images: Sequence[str]) -> Message:
        for token in _IMAGE_TOKENS:
            context = context.replace(token, "")
        return Message.user(*(ImagePart(p) for p in images), context.strip() if images else context)

    # -- lmms interface

    def generate_until(self, requests: list[Instance]) -> list[str]:
        # Requests with the same decoding options go to the adapter together.
        groups: dict[tuple, list[tuple[int, GenRequest, tuple[str, ...]]]] = {}
        for i, request in enumerate(requests):
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            gen_kwargs = dict(gen_kwargs or {})
            until = gen_kwargs.get("until") or []
            if isinstance(until, str):
                until = [until]
            temperature = float(gen_kwargs.get("temperature", 0) or 0)
            # As lmms-eval's llava_hf: a positive temperature samples (do_sample or not); temperature 0 is greedy.
            do_sample = temperature > 0
            options = {
                "max_new_tokens": int(gen_kwargs.get("max_new_tokens") or self.default_max_new_tokens),
                "do_sample": do_sample,
                "temperature": temperature if do_sample else 1.0,
                "top_p": float(gen_kwargs.get("top_p") or 1.0) if do_sample else 1.0,
                "num_beams": int(gen_kwargs.get("num_beams") or 1),
            }
            message = self._message(context, self._visuals(doc_to_visual, doc_id, task, split))
            groups.setdefault(tuple(sorted(options.items())), []).append(
                (i, GenRequest((message,), id=f"{task}/{doc_id}"), tuple(until)))

        outputs: list[str] = [""] * len(requests)
        for key, members in groups.items():
            texts = self.adapter.generate(
                [req for _, req, _ in members], **dict(key), seed=self.seed, batch_size=self.batch_size_per_gpu,
                stop=tuple(sorted({s for _, _, until in members for s in until if s})),
            )
            for (i, _, until), text in zip(members, texts):
                outputs[i] = _cut_at_until(text, until)
        return outputs

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        """(log-probability of the continuation, whether greedy decoding would produce it).

        The continuation is scored as the model's answer to the context (our adapters' sentence
        log-probabilities); greedy-ness compares the greedy answer's text with the continuation.
        """
        if not hasattr(self.adapter, "loglikelihood"):
            raise NotImplementedError(f"{type(self.adapter).__name__} has no log-likelihoods; use generate_until tasks")
        gen_requests, continuations = [], []
        for request in requests:
            context, continuation, doc_to_visual, doc_id, task, split = request.args
            message = self._message(context, self._visuals(doc_to_visual, doc_id, task, split))
            gen_requests.append(GenRequest((message,), id=f"{task}/{doc_id}"))
            continuations.append([continuation])
        logprobs = self.adapter.loglikelihood(gen_requests, continuations, batch_size=self.batch_size_per_gpu)
        results = []
        for req, cont, lp in zip(gen_requests, continuations, logprobs):
            n = max(1, lp[0].n_tokens)
            greedy = self.adapter.generate([req], max_new_tokens=n, batch_size=1)[0]
            results.append((float(lp[0].sum), greedy.strip() == cont[0].strip()))
        return results

    def generate_until_multi_round(self, requests) -> list[str]:
        raise NotImplementedError("csr_bench models do not implement lmms-eval's multi-round generation")


__all__ = ["CsrBenchLmms", "MODEL_ID", "model_manifest"]
