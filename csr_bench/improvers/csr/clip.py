"""The CLIP that scores image-sentence relevance: the shipped tiny open_clip model or a transformers CLIP.

`load_clip_scorer(spec)` accepts "tiny" (csr_bench/world/assets/tiny-clip), an open_clip folder in the
local-dir layout (open_clip_config.json + weights), or a transformers CLIP folder or cached hub id (the paper
uses openai/clip-vit-large-patch14-336). Nothing is downloaded. Sentences longer than CLIP's text context are
truncated to it. Image embeddings are cached by path, so scoring many sentences of one image encodes it once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from csr_bench.errors import UserError
from csr_bench.models.base import require_safetensors_weights

TINY_CLIP_NAME = "tiny"


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


class ClipScorer:
    """Cosine similarity between images (paths) and sentences, and the model's logit scale."""

    def __init__(self, spec: str, *, device: str = "cpu"):
        import torch

        self.spec = spec
        self.device = torch.device(device)
        self._image_cache: dict[str, Any] = {}
        path = Path(spec).expanduser()
        if spec == TINY_CLIP_NAME:
            from csr_bench.world.tiny_clip import TINY_CLIP_PATH

            path = TINY_CLIP_PATH
            if not path.is_dir():
                raise UserError(f"{path}: the shipped tiny CLIP is missing; reinstall csr-bench or pass a CLIP folder")
        try:
            if path.is_dir() and (path / "open_clip_config.json").is_file():
                self._load_open_clip(path)
            elif path.exists() and not path.is_dir():
                raise UserError(f"{path}: expected a CLIP checkpoint folder, found a file")
            else:
                self._load_transformers(spec if not path.exists() else str(path))
        except UserError:
            raise
        except Exception as e:  # any loader failure is a bad CLIP spec for the user
            raise UserError(f"{spec}: cannot load the CLIP checkpoint ({_first_line(e)})") from None

    # ------------------------------------------------------------------------------------------ loading

    def _load_open_clip(self, path: Path) -> None:
        require_safetensors_weights(path)
        if (path / "tokenizer.json").is_file():
            from csr_bench.world.tiny_clip import load_tiny_clip

            clip = load_tiny_clip(path, device=str(self.device))
            model, preprocess, tokenize = clip.model, clip.preprocess, clip.tokenize
        else:
            import open_clip

            model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{path}", device=self.device)
            tokenize = open_clip.get_tokenizer(f"local-dir:{path}")
        model.eval()
        self._kind = "open_clip"
        self._model, self._preprocess, self._tokenize = model, preprocess, tokenize
        self.logit_scale = float(model.logit_scale.detach().exp())

    def _load_transformers(self, source: str) -> None:
        from transformers import CLIPModel, CLIPProcessor

        if Path(source).is_dir():
            require_safetensors_weights(Path(source))
        try:
            model = CLIPModel.from_pretrained(source, local_files_only=True, use_safetensors=True)
            processor = CLIPProcessor.from_pretrained(source, local_files_only=True)
        except OSError as e:
            raise UserError(f"{source}: cannot load the CLIP checkpoint (not a local folder or cached model: "
                            f"{_first_line(e)})") from None
        model.to(self.device).eval()
        self._kind = "transformers"
        self._model, self._processor = model, processor
        self.logit_scale = float(model.logit_scale.detach().exp())
        self._context = int(getattr(model.config.text_config, "max_position_embeddings", 77))

    # ------------------------------------------------------------------------------------------ scoring

    def _features(self, out: Any):
        import torch

        return out if torch.is_tensor(out) else out.pooler_output

    def embed_images(self, paths: Sequence[str | os.PathLike]) -> None:
        """Encode these images now and cache them, in chunks of 64 of the distinct paths in this order.

        Batched image encoding is not bitwise invariant to what else is in the batch (on CPU, an image encoded
        with three others differs in its last bits from the same image encoded alone). A caller that needs
        reproducible scores across restarts (the CSR search, resumed after a kill) encodes its whole image list
        up front, so an image's embedding never depends on which batch first asked for it.
        """
        import torch

        from csr_bench.models.hf import _load_image

        # Chunks are cut from the distinct paths asked for, cached or not, so a chunk's content (and so its
        # embeddings' bits) does not depend on what an earlier call cached; only chunks with a new image run.
        distinct = list(dict.fromkeys(str(p) for p in paths))
        for start in range(0, len(distinct), 64):
            chunk = distinct[start : start + 64]
            if all(p in self._image_cache for p in chunk):
                continue
            images = [_load_image(p) for p in chunk]
            with torch.inference_mode():
                if self._kind == "open_clip":
                    pixels = torch.stack([self._preprocess(im) for im in images]).to(self.device)
                    feats = self._model.encode_image(pixels, normalize=True)
                else:
                    batch = self._processor(images=images, return_tensors="pt").to(self.device)
                    feats = self._features(self._model.get_image_features(**batch))
                    feats = torch.nn.functional.normalize(feats, dim=-1)
            for p, f in zip(chunk, feats.float()):
                self._image_cache.setdefault(p, f)

    def _embed_texts(self, texts: Sequence[str]):
        import torch

        with torch.inference_mode():
            if self._kind == "open_clip":
                tokens = self._tokenize(list(texts)).to(self.device)  # truncates to the context length
                feats = self._model.encode_text(tokens, normalize=True)
            else:
                batch = self._processor(text=list(texts), padding=True, truncation=True, max_length=self._context,
                                        return_tensors="pt").to(self.device)
                feats = self._features(self._model.get_text_features(**batch))
                feats = torch.nn.functional.normalize(feats, dim=-1)
        return feats.float()

    def cosines(self, images: Sequence[str | os.PathLike], texts: Sequence[str], *, batch_size: int = 64) -> list[float]:
        """cos(CLIP image embedding of images[i], CLIP text embedding of texts[i]) for each i.

        Each distinct image and each distinct text is encoded once.
        """
        import torch

        if len(images) != len(texts):
            raise ValueError(f"{len(images)} images but {len(texts)} texts")
        paths = [str(p) for p in images]
        self.embed_images(paths)
        unique = list(dict.fromkeys(texts))
        text_feats = {}
        for start in range(0, len(unique), batch_size):
            chunk = unique[start : start + batch_size]
            text_feats.update(zip(chunk, self._embed_texts(chunk)))
        image_feats = torch.stack([self._image_cache[p] for p in paths])
        return (image_feats * torch.stack([text_feats[t] for t in texts])).sum(-1).tolist()


def load_clip_scorer(spec: str, *, device: str = "cpu") -> ClipScorer:
    if not spec:
        raise UserError("clip: expected 'tiny', an open_clip folder or a transformers CLIP folder / hub id")
    return ClipScorer(spec, device=device)
