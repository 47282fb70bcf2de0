"""CAA steering vectors: one per layer, trained from A/B contrast pairs; and per-input vectors.

Contrastive Activation Addition (CAA): at layer l the vector is the mean, over training
prompts, of ``resid(prompt + matching answer) - resid(prompt + non-matching answer)`` read at
the answer position (the last token). Pass every training item in both letter orders
(``w2s_lens.data.datasets.balanced``): then the vector cannot carry an "answer A vs answer B"
direction, which on small models can otherwise be the whole apparent effect.

:class:`SteeringVectors` holds one vector per layer (CAA); :class:`InputVectors` holds one
vector per (input, layer) (L2S's predictions, or cross-fitted CAA vectors), the form the sweep
engines take for input-dependent steering.

Vectors are saved as ``vectors.safetensors`` (one tensor per layer, named by its hook, e.g.
``blocks.14.hook_resid_pre``) plus ``vectors.json`` (model, hook, layers, read position,
dataset, norms, library versions), through :mod:`w2s_lens.artifacts`. Loading onto another
model or hook is refused. ``vectors.json`` is sealed (:func:`w2s_lens.artifacts.seals.seal`: the
SHA-256 of ``vectors.safetensors`` and of its own content); loading refuses a damaged or edited
pair, non-finite values and norms that differ from the recorded ones, naming the file. A
dataset given as a file path is recorded by file name and SHA-256 (:func:`shareable_paths`),
so the JSON carries no path of the machine that made it.

Example:
    >>> vecs = train_caa(model, train_examples, layers=range(1, 24))  # doctest: +SKIP
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
from torch import Tensor
from transformer_lens import HookedTransformer

from w2s_lens.artifacts.json_files import read_json, write_json
from w2s_lens.artifacts.provenance import ArtifactMismatch, check_format, check_metadata, stamp
from w2s_lens.artifacts.seals import INTEGRITY_KEY, check_seal, seal
from w2s_lens.artifacts.tensors import load_tensors, save_tensors
from w2s_lens.assets import sha256_of
from w2s_lens.data.examples import SteeringExample
from w2s_lens.steering.activations import contrast_residuals, hook_name
from w2s_lens.steering.hooks import Positions, SteeringHandle, steer

__all__ = ["InputVectors", "SteeringVectors", "caa_from_differences", "check_values",
           "model_name", "shareable_paths", "train_caa"]

VECTORS_FILE = "vectors.safetensors"
META_FILE = "vectors.json"
REDO = "train the vectors again, e.g. rerun the `w2s-lens sweep`/`evaluate` command that made them"


def model_name(model: HookedTransformer) -> str:
    """The name recorded in artifacts for ``model`` (``cfg.model_name``)."""
    return str(model.cfg.model_name)


def shareable_paths(meta: dict[str, Any], keys: Sequence[str] = ("dataset",),
                    root: str | os.PathLike | None = None) -> dict[str, Any]:
    """``meta`` without local paths: each of ``keys`` whose value is a file path becomes the
    path relative to ``root`` when it lies inside it, else the file's name (and, for a file
    that exists, its SHA-256 in ``<key>_sha256``), so shared artifacts carry no local path.

    Example:
        >>> shareable_paths({"dataset": "/home/me/data/openness.jsonl"})["dataset"]
        'openness.jsonl'
        >>> shareable_paths({"vectors": "/runs/r1/vectors"}, ["vectors"], root="/runs/r1")
        {'vectors': 'vectors'}
        >>> shareable_paths({"dataset": "openness"})
        {'dataset': 'openness'}
    """
    out = dict(meta)
    for key in keys:
        value = out.get(key)
        if not isinstance(value, str) or ("/" not in value and os.sep not in value):
            continue
        path = Path(value)
        if root is not None and path.is_absolute() and path.is_relative_to(Path(root)):
            out[key] = path.relative_to(Path(root)).as_posix()
            continue
        out[key] = path.name
        if path.is_file():
            out[f"{key}_sha256"] = sha256_of(path)
    return out


def check_values(tensor: Tensor, path: str | os.PathLike,
                 norms: Sequence[float] | None = None, redo: str = REDO) -> None:
    """Refuse non-finite values, or row norms other than the recorded ``norms``.

    Example:
        >>> check_values(torch.ones(2, 3), "v.safetensors", norms=[3 ** 0.5] * 2)
        >>> check_values(torch.tensor([[float("nan")]]), "v.safetensors")
        Traceback (most recent call last):
        ...
        w2s_lens.artifacts.provenance.ArtifactMismatch: v.safetensors holds non-finite values ...
    """
    if not bool(torch.isfinite(tensor).all()):
        raise ArtifactMismatch(f"{path} holds non-finite values (NaN or inf); {redo}")
    if norms is None:
        return
    want = torch.tensor([float(x) for x in norms], dtype=torch.float64)
    have = tensor.double().norm(dim=-1) if tensor.ndim == 2 else want.new_full(want.shape, -1.0)
    if have.shape != want.shape or not torch.allclose(have, want, rtol=1e-5, atol=1e-8):
        raise ArtifactMismatch(f"{path}: the vectors' norms differ from those recorded in its "
                               f"JSON; {redo}")


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
        ``model.generate``. See :mod:`w2s_lens.steering.hooks` for ``positions``.
        """
        self.check_model(model)
        vec = self.vector(layer) * float(multiplier) * float(scale)
        return steer(model, self.hook_name(layer), vec, positions=positions)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``vectors.safetensors`` and ``vectors.json`` into ``directory``."""
        directory = Path(directory)
        tensors = {self.hook_name(layer): self.vectors[i].contiguous()
                   for i, layer in enumerate(self.layers)}
        meta = stamp({**shareable_paths(self.metadata), "hook": self.hook,
                      "layers": self.layers, "hook_names": list(tensors),
                      "norms": [float(x) for x in self.vectors.double().norm(dim=-1)]})
        save_tensors(directory / VECTORS_FILE, tensors,
                     metadata={"model": str(meta.get("model")), "hook": self.hook})
        write_json(directory / META_FILE, seal(meta, directory, [VECTORS_FILE]))
        return directory

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike,
        model: HookedTransformer | None = None,
        hook: str | None = None,
    ) -> SteeringVectors:
        """Load vectors; with ``model``/``hook`` given, refuse a mismatch.

        Raises:
            ArtifactMismatch: another format, model or hook; a damaged or edited file (named);
                non-finite values or norms other than the recorded ones.

        Example:
            >>> vecs = SteeringVectors.load("runs/r/caa/vectors", model=model)  # doctest: +SKIP
        """
        directory = Path(directory)
        meta = read_json(directory / META_FILE)
        check_format(meta, directory / META_FILE, REDO)
        check_seal(meta, directory / META_FILE, REDO)
        meta.pop(INTEGRITY_KEY, None)
        tensors = load_tensors(directory / VECTORS_FILE)
        layers = [int(x) for x in meta["layers"]]
        names = [hook_name(layer, meta["hook"]) for layer in layers]
        missing = [n for n in names if n not in tensors]
        if missing:
            raise ArtifactMismatch(f"{directory / VECTORS_FILE} lacks tensors {missing}")
        stacked = torch.stack([tensors[n] for n in names])
        check_values(stacked, directory / VECTORS_FILE, meta.get("norms"))
        vecs = cls(stacked, layers, meta["hook"], meta)
        if hook is not None:
            check_metadata(meta, {"hook": hook}, what="steering vectors")
        if model is not None:
            vecs.check_model(model)
        return vecs


def caa_from_differences(
    model: HookedTransformer,
    diffs: Float[Tensor, "n layer d_model"],
    examples: Sequence[SteeringExample],
    layers: Sequence[int],
    hook: str = "resid_pre",
    dataset: str | None = None,
    resid_norms: Float[Tensor, " layer"] | None = None,
) -> SteeringVectors:
    """CAA vectors as the mean of per-pair contrasts (``contrast_residuals(...).diffs``), e.g.
    of one cross-fitting fold.

    Example:
        >>> fold = caa_from_differences(model, diffs[k], [exs[i] for i in k], ls)  # doctest: +SKIP
    """
    if diffs.shape[0] != len(examples) or diffs.shape[0] == 0:
        raise ValueError(f"{diffs.shape[0]} contrasts for {len(examples)} examples")
    letters = [ex.matching_letter for ex in examples]
    meta = {
        "model": model_name(model),
        "d_model": model.cfg.d_model,
        "dataset": dataset,
        "method": "caa",
        "read_position": -1,
        "n_pairs": len(examples),
        "matching_letter_counts": {"A": letters.count("A"), "B": letters.count("B")},
        # typical residual norm per layer at the answer position: the unit of the relative
        # multiplier scale (w2s_lens.steering.scales)
        "resid_norms": None if resid_norms is None else [float(x) for x in resid_norms],
    }
    return SteeringVectors(diffs.mean(dim=0), list(layers), hook, meta)


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

    Example:
        >>> vecs = train_caa(model, fmt.format_many(balanced(train)))  # doctest: +SKIP
    """
    if len(examples) == 0:
        raise ValueError("train_caa needs at least one training example")
    layers = (list(range(model.cfg.n_layers)) if layers is None
              else sorted({int(x) for x in layers}))
    acts = contrast_residuals(model, examples, layers, hook, input_layer=layers[0],
                              batch_size=batch_size, progress=progress)
    return caa_from_differences(model, acts.diffs, examples, layers, hook, dataset,
                                acts.answer_resid_norms)


class InputVectors:
    """One steering vector per (input, layer): input-dependent steering (L2S, cross-fitting).

    The sweep engines accept it in place of :class:`SteeringVectors`; row ``i`` belongs to
    ``ids[i]``, the i-th swept example.

    Attributes:
        vectors: ``[n_inputs, n_layers, d_model]`` float32.
        layers: the layer of each column.
        ids: the example id of each row.
        hook: the residual hook the vectors are added at.
        metadata: model name, method, ...

    Example:
        >>> iv = InputVectors(torch.zeros(2, 3, 8), [1, 2, 3], ["a", "b"],
        ...                   metadata={"model": "m", "d_model": 8})
        >>> iv.vector(1, layer=3).shape
        torch.Size([8])
    """

    def __init__(
        self,
        vectors: Float[Tensor, "n layer d_model"],
        layers: Sequence[int],
        ids: Sequence[str],
        hook: str = "resid_pre",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        layers = [int(x) for x in layers]
        if vectors.ndim != 3 or vectors.shape[1] != len(layers) or vectors.shape[0] != len(ids):
            raise ValueError(f"vectors must be [len(ids)={len(ids)}, len(layers)={len(layers)}, "
                             f"d_model], got {tuple(vectors.shape)}")
        self.vectors = vectors.detach().float().cpu()
        self.layers = layers
        self.ids = list(ids)
        self.hook = hook
        self.metadata = dict(metadata or {})

    def __repr__(self) -> str:
        return (f"InputVectors(method={self.metadata.get('method')!r}, n={len(self.ids)}, "
                f"layers={self.layers})")

    def vector(self, index: int, layer: int) -> Float[Tensor, " d_model"]:
        """The vector of input ``index`` at ``layer``."""
        try:
            return self.vectors[index, self.layers.index(int(layer))]
        except ValueError:
            raise KeyError(f"no vector for layer {layer}; stored layers: {self.layers}") from None

    def check_model(self, model: HookedTransformer) -> None:
        """Refuse a model other than the one the vectors were made for."""
        check_metadata(self.metadata, {"model": model_name(model),
                                       "d_model": model.cfg.d_model}, what="input vectors")

    @classmethod
    def broadcast(cls, vectors: SteeringVectors, ids: Sequence[str]) -> InputVectors:
        """The same per-layer vectors for every input (a view, no copy of the data).

        Example:
            >>> InputVectors.broadcast(caa, ["a", "b"]).vectors.shape  # doctest: +SKIP
            torch.Size([2, 23, 896])
        """
        v = vectors.vectors[None].expand(len(ids), -1, -1)
        out = cls.__new__(cls)
        out.vectors, out.layers, out.ids = v, list(vectors.layers), list(ids)
        out.hook, out.metadata = vectors.hook, dict(vectors.metadata)
        return out
