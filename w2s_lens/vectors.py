"""CAA steering vectors: one per layer, trained from A/B contrast pairs.

Contrastive Activation Addition (CAA): at layer l the vector is the mean, over training
prompts, of ``resid(prompt + matching letter) - resid(prompt + non-matching letter)`` read at
the answer-letter position (the last token). Pass every training item in both letter orders
(``w2s_lens.datasets.balanced``): then the vector cannot carry an "answer A vs answer B"
direction, which on small models can otherwise be the whole apparent effect.

Vectors are saved as ``vectors.safetensors`` (one tensor per layer, named by its hook, e.g.
``blocks.14.hook_resid_pre``) plus ``vectors.json`` (model, hook, layers, read position,
dataset, library versions). Loading onto another model or hook is refused.

Example:
    >>> vecs = train_caa(model, train_examples, layers=range(model.cfg.n_layers))  # doctest: +SKIP
    >>> with vecs.apply(model, layer=14, multiplier=1.0):  # doctest: +SKIP
    ...     print(model.generate("...", max_new_tokens=20))
    >>> vecs.save("out/")  # doctest: +SKIP
    >>> SteeringVectors.load("out/", model=model)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from safetensors.torch import load_file, save_file
from torch import Tensor
from transformer_lens import HookedTransformer

from w2s_lens.activations import cache_residuals, hook_name
from w2s_lens.artifacts import (
    FORMAT_VERSION,
    ArtifactMismatch,
    check_metadata,
    library_versions,
    read_json,
    write_json,
)
from w2s_lens.examples import SteeringExample
from w2s_lens.steering import Positions, SteeringHandle, steer

__all__ = ["SteeringVectors", "train_caa", "model_name"]

VECTORS_FILE = "vectors.safetensors"
META_FILE = "vectors.json"


def model_name(model: HookedTransformer) -> str:
    """The name recorded in artifacts for ``model`` (``cfg.model_name``)."""
    return str(model.cfg.model_name)


class SteeringVectors:
    """Steering vectors for a set of layers of one model at one hook.

    Attributes:
        vectors: ``[n_layers_stored, d_model]`` float32.
        layers: the layer index of each row.
        hook: ``"resid_pre"``, ``"resid_mid"`` or ``"resid_post"``.
        metadata: model name, dataset, read position, counts, versions.
    """

    def __init__(
        self,
        vectors: Float[Tensor, "layer d_model"],
        layers: Sequence[int],
        hook: str = "resid_pre",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        layers = [int(x) for x in layers]
        if vectors.ndim != 2 or vectors.shape[0] != len(layers):
            raise ValueError("vectors must be [len(layers), d_model]")
        if len(set(layers)) != len(layers):
            raise ValueError("layers must be distinct")
        self.vectors = vectors.detach().float().cpu()
        self.layers = layers
        self.hook = hook
        self.metadata = dict(metadata or {})

    def __repr__(self) -> str:
        return (f"SteeringVectors(model={self.metadata.get('model')!r}, hook={self.hook!r}, "
                f"layers={self.layers[0]}..{self.layers[-1]} ({len(self.layers)}))")

    def vector(self, layer: int) -> Float[Tensor, " d_model"]:
        """The vector for ``layer`` (KeyError with the stored layers if absent)."""
        try:
            return self.vectors[self.layers.index(int(layer))]
        except ValueError:
            raise KeyError(f"no vector for layer {layer}; stored layers: {self.layers}") from None

    def norms(self) -> Float[Tensor, " layer"]:
        """L2 norm of each stored vector."""
        return self.vectors.norm(dim=-1)

    def hook_name(self, layer: int) -> str:
        """The TransformerLens hook name this vector is added at."""
        return hook_name(layer, self.hook)

    def check_model(self, model: HookedTransformer) -> None:
        """Refuse a model other than the one the vectors were trained on."""
        check_metadata(self.metadata, {"model": model_name(model),
                                       "d_model": model.cfg.d_model}, what="steering vectors")

    def apply(
        self,
        model: HookedTransformer,
        layer: int,
        multiplier: float,
        positions: Positions = "from_last",
        scale: float = 1.0,
    ) -> SteeringHandle:
        """Add ``multiplier * scale * v_layer`` to the residual stream at ``layer``.

        Use as a context manager (``with vecs.apply(model, 14, 1.0): ...``) or keep the handle
        and call ``handle.remove()``. Works around ``model(...)``, ``run_with_hooks`` and
        ``model.generate``. See :mod:`w2s_lens.steering` for ``positions``.
        """
        self.check_model(model)
        vec = self.vector(layer) * float(multiplier) * float(scale)
        return steer(model, self.hook_name(layer), vec, positions=positions)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``vectors.safetensors`` and ``vectors.json`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {self.hook_name(layer): self.vectors[i].contiguous()
                   for i, layer in enumerate(self.layers)}
        meta = {**self.metadata, "hook": self.hook, "layers": self.layers,
                "hook_names": list(tensors), "format_version": FORMAT_VERSION,
                "versions": self.metadata.get("versions") or library_versions()}
        save_file(tensors, str(directory / VECTORS_FILE),
                  metadata={"model": str(meta.get("model")), "hook": self.hook})
        write_json(directory / META_FILE, meta)
        return directory

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike,
        model: HookedTransformer | None = None,
        hook: str | None = None,
    ) -> SteeringVectors:
        """Load vectors; with ``model``/``hook`` given, refuse a mismatch."""
        directory = Path(directory)
        meta = read_json(directory / META_FILE)
        if meta.get("format_version") != FORMAT_VERSION:
            raise ArtifactMismatch(
                f"{directory / META_FILE} has format_version {meta.get('format_version')!r}; "
                f"this w2s-lens reads {FORMAT_VERSION}")
        tensors = load_file(str(directory / VECTORS_FILE))
        layers = [int(x) for x in meta["layers"]]
        names = [hook_name(layer, meta["hook"]) for layer in layers]
        missing = [n for n in names if n not in tensors]
        if missing:
            raise ArtifactMismatch(f"{directory / VECTORS_FILE} lacks tensors {missing}")
        vecs = cls(torch.stack([tensors[n] for n in names]), layers, meta["hook"], meta)
        if hook is not None:
            check_metadata(meta, {"hook": hook}, what="steering vectors")
        if model is not None:
            vecs.check_model(model)
        return vecs


def train_caa(
    model: HookedTransformer,
    examples: Sequence[SteeringExample],
    layers: Sequence[int] | None = None,
    hook: str = "resid_pre",
    batch_size: int = 8,
    dataset: str | None = None,
    progress: bool = False,
) -> SteeringVectors:
    """Train CAA vectors: mean(resid(positive) - resid(negative)) at the answer position.

    Args:
        model: the HookedTransformer.
        examples: training prompts. Pass them in both letter orders for letter balance.
        layers: which layers (default: all); stored in ascending order.
        hook: residual hook to read (and later steer) at.
        batch_size: prompts per forward pass.
        dataset: recorded in the metadata.
        progress: show a progress bar.

    Returns:
        :class:`SteeringVectors` with per-layer vectors ``[len(layers), d_model]``.
    """
    if len(examples) == 0:
        raise ValueError("train_caa needs at least one training example")
    layers = (list(range(model.cfg.n_layers)) if layers is None
              else sorted({int(x) for x in layers}))
    seqs = [ex.positive_tokens for ex in examples] + [ex.negative_tokens for ex in examples]
    resid = cache_residuals(model, seqs, layers, [-1] * len(seqs), hook=hook,
                            batch_size=batch_size, progress=progress)
    n = len(examples)
    vectors = (resid[:n] - resid[n:]).mean(dim=0)
    letters = [ex.matching_letter for ex in examples]
    meta = {
        "model": model_name(model),
        "d_model": model.cfg.d_model,
        "dataset": dataset,
        "method": "caa",
        "read_position": -1,
        "n_pairs": n,
        "matching_letter_counts": {"A": letters.count("A"), "B": letters.count("B")},
        # typical residual norm per layer at the answer position: the unit of the relative
        # multiplier scale (w2s_lens.scales)
        "resid_norms": [float(x) for x in resid.norm(dim=-1).mean(dim=0)],
        "versions": library_versions(),
    }
    return SteeringVectors(vectors, layers, hook, meta)
