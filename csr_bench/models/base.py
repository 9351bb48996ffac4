"""The Adapter contract between suites/improvers and a model, and model specs.

Light on purpose: no torch here. An adapter turns our one message format (csr_bench.core.types.Message with
TextPart/ImagePart) into its model's chat template; suites never know which model they talk to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

from csr_bench.core.types import Message
from csr_bench.errors import UserError

# The shipped tiny LLaVA (trained by csr_bench.world.tiny_lvlm); resolved by the short name "tiny".
TINY_LLAVA_PATH = Path(__file__).resolve().parent.parent / "world" / "assets" / "tiny-llava"
TINY_MODEL_NAME = "tiny"

# "org/name" as the Hugging Face Hub spells repository ids.
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class GenRequest:
    """One prompt: a conversation whose image paths are already absolute.

    If the last message is from the assistant, the model continues that message (a prefix to extend)
    instead of starting a new answer.
    """

    messages: tuple[Message, ...]
    id: str = ""


@dataclass(frozen=True)
class SentenceLogProb:
    """Log-probability of one continuation sentence given the prompt and the sentences before it.

    `sum` is the sum of the sentence's token log-probabilities (natural log), `mean` is sum / n_tokens
    (0.0 for a sentence that tokenizes to nothing).
    """

    sum: float
    mean: float
    n_tokens: int


@runtime_checkable
class Adapter(Protocol):
    """What every model adapter provides."""

    name: str

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
        """One output text per request, in request order.

        Greedy unless `do_sample`; `num_beams` > 1 is beam search. Sampling is deterministic given `seed`
        and `batch_size`. A sequence ends at the first `stop` string, which is kept in its output (so a
        sentence keeps its period).
        """
        ...

    def loglikelihood(
        self,
        requests: Sequence[GenRequest],
        continuations: Sequence[Sequence[str]],
        *,
        batch_size: int = 8,
    ) -> list[list[SentenceLogProb]]:
        """Per request, the log-probability of each continuation sentence.

        The sentences are appended verbatim, in order, after the assistant prefix (the generation prompt,
        or the last assistant message if the conversation ends with one); sentence j is conditioned on the
        prompt and sentences 0..j-1. Include the separating spaces in the sentences (" The cat sits.").
        """
        ...

    def fingerprint(self) -> str:
        """A short hash that changes when the weights, tokenizer, template or numeric dtype change."""
        ...


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec: which adapter, which checkpoint (local folder or hub id), adapter options."""

    adapter: str
    model: str
    options: dict[str, Any] = field(default_factory=dict)


def check_generation_args(*, max_new_tokens: int, batch_size: int, num_beams: int, do_sample: bool, temperature: float,
                          top_p: float) -> None:
    """The decoding arguments every adapter accepts, checked once: a bad value is a UserError naming it."""
    if max_new_tokens < 1:
        raise UserError(f"max_new_tokens={max_new_tokens}: expected at least 1")
    if batch_size < 1:
        raise UserError(f"batch_size={batch_size}: expected at least 1")
    if num_beams < 1:
        raise UserError(f"num_beams={num_beams}: expected at least 1")
    if do_sample and not (temperature > 0 and 0 < top_p <= 1):
        raise UserError(f"temperature={temperature}, top_p={top_p}: expected temperature > 0 and 0 < top_p <= 1")


def require_safetensors_weights(folder: Path) -> None:
    """Weights load from safetensors only, so a pickle is never unpickled: a checkpoint folder (a model's or a
    CLIP's) without *.safetensors is a UserError, which names the pickled weights when it holds some."""
    if any(folder.glob("*.safetensors")):
        return
    if any(next(folder.glob(pattern), None) for pattern in ("*.bin", "*.pt", "*.pth")):
        raise UserError(f"{folder}: weights are not safetensors (*.bin/*.pt/*.pth found, never unpickled); "
                        "convert them to safetensors")
    raise UserError(f"{folder}: no model weights (expected *.safetensors in the folder)")


def resolve_model_spec(spec: str) -> ModelSpec:
    """Parse a model spec given on the command line.

    - "tiny": the shipped tiny LLaVA through the `hf` adapter.
    - "ADAPTER:MODEL" for a registered adapter name (e.g. "hf:/models/llava-1.5-7b-hf", "hf:tiny").
    - a path to an existing folder: the `hf` adapter on that folder.
    - "org/name": a Hugging Face Hub id for the `hf` adapter (loaded from the local cache unless downloads
      are allowed).
    """
    from csr_bench.core.registry import adapters

    spec = spec.strip()
    if not spec:
        raise UserError("model spec is empty; expected 'tiny', 'hf:PATH_OR_HUB_ID' or a checkpoint folder")
    if spec == TINY_MODEL_NAME:
        return ModelSpec("hf", str(TINY_LLAVA_PATH))
    name, sep, rest = spec.partition(":")
    # A Windows drive ("C:\\...") is a path, not an adapter name.
    if sep and len(name) > 1 and re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name):
        if name in adapters.names() or name == "hf":
            if not rest:
                raise UserError(f"model spec '{spec}': expected a model after '{name}:'")
            if name == "hf" and rest == TINY_MODEL_NAME:
                return ModelSpec("hf", str(TINY_LLAVA_PATH))
            return ModelSpec(name, rest)
        if not Path(spec).exists():
            raise UserError(f"model spec '{spec}': unknown adapter '{name}'; known: {', '.join(adapters.names())}")
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UserError(f"{path}: expected a checkpoint folder, found a file")
        return ModelSpec("hf", str(path.resolve()))
    if _HUB_ID.match(spec) and not spec.startswith((".", "/")):
        return ModelSpec("hf", spec)
    raise UserError(f"{spec}: model not found; expected 'tiny', 'hf:PATH_OR_HUB_ID', a checkpoint folder or 'org/name'")


def load_adapter(spec: str | ModelSpec, **options: Any) -> Adapter:
    """Build the adapter a spec names; `options` (e.g. dtype, device) override the spec's own."""
    from csr_bench.core.registry import adapters

    parsed = resolve_model_spec(spec) if isinstance(spec, str) else spec
    cls = adapters.get(parsed.adapter)
    return cls(parsed.model, **{**parsed.options, **options})
