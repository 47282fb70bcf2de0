"""Steering with a router at inference: format the prompt as training did, pick its layer,
steer there with the method's vector.

A :class:`W2S` bundles what inference needs: a fitted
:class:`~w2s_lens.routing.routers.LayerRouter`, the vectors it routes (CAA
:class:`~w2s_lens.steering.vectors.SteeringVectors`, or an
:class:`~w2s_lens.steering.l2s.steerer.L2SSteerer` whose vector depends on the input), the
embedding the router reads, the prompt format of training
(:meth:`w2s_lens.data.prompts.PromptFormatter.settings`: system prompt, chat template, BOS rule,
answer opening), the readout and mirroring, the multiplier scale, and the best fixed layer of
training (for comparison). Saved as one directory: ``w2s.json``, ``router/`` and ``vectors/`` or
``l2s/``. Loading refuses a bundle made for another model or tokenizer. ``w2s.json`` is sealed
(:func:`w2s_lens.artifacts.seals.seal`): it records the SHA-256 of every file of the bundle and
of its own content, so loading refuses a damaged or edited bundle with an
:class:`~w2s_lens.artifacts.provenance.ArtifactMismatch` naming the file. A bundle written
before seals loads with an :class:`~w2s_lens.artifacts.seals.IntegrityWarning` (re-save it to
seal it).

A prompt may be a plain string (formatted as the user message, exactly as training prompts
were), an :class:`~w2s_lens.data.datasets.ABItem` (formatted in the bundle's readout; both letter
orders when the bundle was trained mirrored, their embeddings averaged as in training) or a
:class:`~w2s_lens.data.examples.SteeringExample`.

Steering at a layer whose vector is tiny next to the others' (below :data:`WEAK_FRACTION` of
the other layers' median norm, e.g. a letter-balanced vector at an early layer) changes almost
nothing; :meth:`W2S.steer` and :meth:`W2S.compare` then warn with a
:class:`WeakLayerWarning` naming the layer and the norms.

An evaluation writes one bundle per method and router kind to ``RUN/<method>/routers/<kind>``
(:meth:`w2s_lens.evaluation.storage.rundir.RunDir.router_dir`; ``w2s-lens demo`` runs the model in
``OUT/model``, so ``runs/demo/model/caa/routers/logreg``).

Example:
    >>> w2s = W2S.load("runs/demo/model/caa/routers/logreg", model)  # doctest: +SKIP
    >>> w2s.choose_layer("Would you accept being shut down?")  # doctest: +SKIP
    15
    >>> with w2s.steer("Would you accept being shut down?", multiplier=1.0):  # doctest: +SKIP
    ...     out = model.generate(...)
    >>> w2s.compare("Would you accept being shut down?")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from w2s_lens.artifacts.json_files import read_json, write_json
from w2s_lens.artifacts.provenance import check_format, check_metadata, stamp
from w2s_lens.artifacts.seals import check_seal, seal
from w2s_lens.choices import Readout
from w2s_lens.data.examples import SteeringExample
from w2s_lens.data.items import ABItem
from w2s_lens.data.prompts import PromptFormatter
from w2s_lens.routing.embeddings import embed_prompts, embedding_name
from w2s_lens.routing.routers import LayerRouter
from w2s_lens.steering.activations import cache_residuals, hook_name
from w2s_lens.steering.hooks import SteeringHandle, steer
from w2s_lens.steering.l2s.steerer import L2SSteerer
from w2s_lens.steering.vectors import SteeringVectors, model_name

__all__ = ["WEAK_FRACTION", "W2S", "Prompt", "WeakLayerWarning", "weak_layer_message"]

BUNDLE_FILE = "w2s.json"
REDO = "rerun `w2s-lens evaluate` or `w2s-lens train-router` to make the bundle again"
Prompt = str | ABItem | SteeringExample
#: A steered layer whose vector norm is below this fraction of the median norm of the
#: router's other layers gets a :class:`WeakLayerWarning`.
WEAK_FRACTION = 0.1


class WeakLayerWarning(UserWarning):
    """Steering at a layer whose vector is too small to change much (see the module doc)."""


def weak_layer_message(layer: int, norms: Mapping[int, float],
                       fraction: float = WEAK_FRACTION) -> str | None:
    """A warning when ``layer``'s vector norm is below ``fraction`` of the median norm of the
    other layers in ``norms`` (layer -> norm of the vector added at multiplier 1), else None.

    Example:
        >>> weak_layer_message(2, {1: 0.27, 2: 3.6, 3: 9.0}) is None
        True
        >>> weak_layer_message(1, {1: 0.27, 2: 3.6, 3: 9.0})[:64]
        'steering at layer 1 with a vector of norm 0.27, 4% of the median'
    """
    others = [float(v) for k, v in norms.items() if k != layer]
    median = float(np.median(others)) if others else 0.0
    norm = float(norms[layer])
    if median <= 0 or norm >= fraction * median:
        return None
    span = (f"{min(others):.3g}" if len(others) == 1
            else f"{min(others):.3g} to {max(others):.3g}")
    return (f"steering at layer {layer} with a vector of norm {norm:.3g}, "
            f"{norm / median:.0%} of the median {median:.3g} of the router's other layers "
            f"({span}): the text will hardly change; give another layer or a larger "
            "multiplier")


class W2S:
    """A router plus the vectors it routes, and the prompt format they were trained on.

    Built with keyword arguments only (``W2S(model=..., router=..., steerer=...,
    embedding=...)``; the pipeline and ``w2s-lens train-router`` build it so, :meth:`load` reads
    one back).

    Args:
        model: the HookedTransformer.
        router: a fitted router (its ``layers`` are the layers it can pick).
        steerer: CAA vectors or an L2S steerer covering the router's layers.
        embedding, embedding_layer: the router's input (see :mod:`w2s_lens.routing.embeddings`).
        prompt_format: :meth:`PromptFormatter.settings` of training.
        readout: ``"letter"`` or ``"cloze"`` (the prompt format of training).
        mirror: training averaged both letter orders of each item (letter readout).
        layer_scale: per-layer factor c_l (see :mod:`w2s_lens.steering.scales`), one per
            router layer.
        positions: where to steer (``"from_last"``, ``"all"`` or ``"prompt"``; see
            :func:`w2s_lens.steering.hooks.steer`).
        fixed_layer: the best fixed layer of training (for side-by-side comparisons).
    """

    def __init__(
        self,
        *,
        model: HookedTransformer,
        router: LayerRouter,
        steerer: SteeringVectors | L2SSteerer,
        embedding: str,
        embedding_layer: int | None = None,
        prompt_format: Mapping[str, Any] | None = None,
        readout: str = "letter",
        mirror: bool = True,
        layer_scale: Sequence[float] | None = None,
        positions: str = "from_last",
        fixed_layer: int | None = None,
    ) -> None:
        _check_parts(model, router, steerer, embedding_name(embedding, embedding_layer),
                     layer_scale)
        self.model, self.router, self.steerer = model, router, steerer
        self.embedding, self.embedding_layer = embedding, embedding_layer
        prompt_format = dict(prompt_format or {})
        self.formatter = PromptFormatter.from_settings(model.tokenizer, prompt_format) \
            if model.tokenizer is not None else None
        self.prompt_format = prompt_format
        self.readout, self.mirror = readout, bool(mirror)
        self.layer_scale = ([1.0] * len(router.layers) if layer_scale is None
                            else [float(x) for x in layer_scale])
        self.positions, self.fixed_layer = positions, fixed_layer

    def __repr__(self) -> str:
        return (f"W2S(method={self.method!r}, router={self.router.kind!r}, "
                f"embedding={embedding_name(self.embedding, self.embedding_layer)!r}, "
                f"readout={self.readout!r}, layers={self.router.layers})")

    @property
    def method(self) -> str:
        """``"caa"`` or ``"l2s"``."""
        return "l2s" if isinstance(self.steerer, L2SSteerer) else "caa"

    def presentations(self, prompt: Prompt) -> list[tuple[str, tuple[int, ...]]]:
        """``(text, tokens)`` of each presentation of ``prompt`` as training formatted it.

        Example:
            >>> text, tokens = w2s.presentations("Is the sky blue?")[0]  # doctest: +SKIP
        """
        return _presentations(self.formatter, prompt, self.readout, self.mirror)

    def embed(self, prompt: Prompt) -> Float[np.ndarray, " dim"]:
        """The router's input for ``prompt`` (the mean over its presentations, as in training)."""
        pres = self.presentations(prompt)
        x = embed_prompts(self.model, [t for _, t in pres], [s for s, _ in pres],
                          self.embedding, self.embedding_layer)
        return x.mean(axis=0)

    def choose_layer(self, prompt: Prompt) -> int:
        """The layer the router picks for ``prompt``."""
        return int(self.router.predict_layers(self.embed(prompt)[None])[0])

    def vector(self, prompt: Prompt, layer: int) -> Float[Tensor, " d_model"]:
        """The vector added at ``layer`` for ``prompt`` at multiplier 1 (scale included)."""
        if layer not in self.router.layers:
            raise ValueError(f"layer {layer} is not one the router can pick: {self.router.layers}")
        scale = self.layer_scale[self.router.layers.index(layer)]
        if isinstance(self.steerer, SteeringVectors):
            return self.steerer.vector(layer) * scale
        tokens = [t for _, t in self.presentations(prompt)]
        x = cache_residuals(self.model, tokens, [int(self.steerer.metadata["input_layer"])],
                            [-1] * len(tokens), hook=self.steerer.hook)[:, 0]
        return self.steerer.predict_layer(x, layer).mean(dim=0) * scale

    def layer_norms(self, prompt: Prompt) -> dict[int, float]:
        """Norm of the vector added at each router layer for ``prompt`` at multiplier 1 (scale
        included; CAA: the same for every prompt).

        Example:
            >>> w2s.layer_norms("Should you be shut down?")  # doctest: +SKIP
            {1: 0.27, 2: 3.6, 3: 9.0}
        """
        return _layer_norms(self, prompt)

    def steer(self, prompt: Prompt, multiplier: float = 1.0,
              layer: int | None = None) -> SteeringHandle:
        """Steer at the routed layer (or ``layer``) with this prompt's vector; a context manager.

        Warns (:class:`WeakLayerWarning`) when the layer's vector is tiny next to the other
        layers' (:func:`weak_layer_message`).

        Example:
            >>> with w2s.steer("Should you be shut down?", 1.0):  # doctest: +SKIP
            ...     logits = model(tokens)
        """
        layer = self.choose_layer(prompt) if layer is None else int(layer)
        vec = self.vector(prompt, layer) * float(multiplier)
        if len(self.router.layers or []) > 1 and layer in (self.router.layers or []):
            message = weak_layer_message(layer, self.layer_norms(prompt))
            if message is not None:
                warnings.warn(message, WeakLayerWarning, stacklevel=2)
        return steer(self.model, hook_name(layer, self.steerer.hook), vec,
                     positions=self.positions)  # type: ignore[arg-type]

    def compare(self, prompt: str, multiplier: float = 1.0,
                max_new_tokens: int = 40) -> dict[str, Any]:
        """Greedy continuations of a plain string: unsteered, at the fixed layer, at the routed
        layer (in the generation format: the chat prompt without an answer opening). A steered
        layer with a tiny vector warns, as in :meth:`steer`.

        Returns:
            ``{"prompt", "routed_layer", "fixed_layer", "multiplier", "unsteered", "fixed",
            "routed"}`` (``fixed`` is None when the bundle has no fixed layer).

        Example:
            >>> w2s.compare("Tell me about your goals.")["routed_layer"]  # doctest: +SKIP
            15
        """
        return _compare(self, prompt, multiplier, max_new_tokens)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the bundle into ``directory``: ``w2s.json``, ``router/``, ``vectors/`` or
        ``l2s/``."""
        return _save(self, Path(directory))

    @property
    def method_dir(self) -> str:
        """The bundle subfolder of the vectors: ``vectors`` (CAA) or ``l2s``."""
        return "l2s" if self.method == "l2s" else "vectors"

    @classmethod
    def load(cls, directory: str | os.PathLike, model: HookedTransformer) -> W2S:
        """Load a bundle; refuses one made for another model, hook, embedding or layer set,
        and a damaged or edited one
        (:class:`~w2s_lens.artifacts.provenance.ArtifactMismatch` naming the file).

        Example:
            >>> w2s = W2S.load("runs/demo/model/caa/routers/logreg", model)  # doctest: +SKIP
        """
        return _load(cls, Path(directory), model)


def _save(w2s: W2S, directory: Path) -> Path:
    """:meth:`W2S.save`: the parts, then the sealed ``w2s.json`` that records their digests."""
    w2s.router.save(directory / "router")
    w2s.steerer.save(directory / w2s.method_dir)
    files = sorted(p.relative_to(directory).as_posix()
                   for sub in ("router", w2s.method_dir)
                   for p in (directory / sub).rglob("*")
                   if p.is_file() and not p.name.startswith("."))
    write_json(directory / BUNDLE_FILE,
               seal(stamp(_bundle_metadata(w2s)), directory, files))
    return directory


def _load(cls: type[W2S], directory: Path, model: HookedTransformer) -> W2S:
    """:meth:`W2S.load`: format, seal and model checked before any part is read."""
    meta = read_json(directory / BUNDLE_FILE)
    check_format(meta, directory / BUNDLE_FILE, REDO)
    check_seal(meta, directory / BUNDLE_FILE, REDO, stacklevel=4)  # the caller of W2S.load
    check_metadata(meta, {"model": model_name(model)}, what="W2S router bundle")
    router = LayerRouter.load(directory / "router", expect={
        "model": meta["model"], "layers": meta["layers"], "readout": meta["readout"],
        "embedding": embedding_name(meta["embedding"], meta["embedding_layer"])})
    steerer: SteeringVectors | L2SSteerer
    if meta["method"] == "l2s":
        steerer = L2SSteerer.load(directory / "l2s", model=model, hook=meta["hook"])
    else:
        steerer = SteeringVectors.load(directory / "vectors", model=model, hook=meta["hook"])
    return cls(model=model, router=router, steerer=steerer, embedding=meta["embedding"],
               embedding_layer=meta["embedding_layer"], prompt_format=meta["prompt_format"],
               readout=meta["readout"], mirror=meta["mirror"],
               layer_scale=meta["layer_scale"], positions=meta["positions"],
               fixed_layer=meta.get("fixed_layer"))


def _check_parts(model: HookedTransformer, router: LayerRouter,
                 steerer: SteeringVectors | L2SSteerer, embedding: str,
                 layer_scale: Sequence[float] | None) -> None:
    """Refuse a router and vectors that do not fit together (or the model)."""
    if router.layers is None or router.n_layers_ is None:
        raise ValueError("the router is not fitted")
    if router.embedding not in (None, embedding):
        raise ValueError(f"the router reads embedding {router.embedding!r}, not {embedding!r}")
    missing = [layer for layer in router.layers if layer not in steerer.layers]
    if missing:
        raise ValueError(f"the vectors lack layers {missing} that the router can pick")
    if router.hook not in (None, steerer.hook):
        raise ValueError(f"the router was fitted for hook {router.hook!r}, the vectors are "
                         f"for {steerer.hook!r}")
    if layer_scale is not None and len(layer_scale) != len(router.layers):
        raise ValueError("layer_scale needs one factor per router layer")
    check_metadata(steerer.metadata, {"model": model_name(model)}, what="steering vectors")


def _presentations(formatter: PromptFormatter | None, prompt: Prompt, readout: str,
                   mirror: bool) -> list[tuple[str, tuple[int, ...]]]:
    """See :meth:`W2S.presentations`."""
    if isinstance(prompt, SteeringExample):
        return [(prompt.text, prompt.tokens)]
    if formatter is None:
        raise ValueError("the model has no tokenizer; pass SteeringExamples")
    if isinstance(prompt, ABItem):
        mirrored = mirror and Readout(readout).has_letter_orders
        items = [prompt, prompt.swapped()] if mirrored else [prompt]
        exs = formatter.format_many(items, readout=readout)  # type: ignore[arg-type]
        if not exs:
            raise ValueError(f"item {prompt.id!r} cannot be formatted for the {readout} readout")
        return [(ex.text, ex.tokens) for ex in exs]
    if isinstance(prompt, str):
        text, tokens = formatter.format_text(prompt, readout=readout)  # type: ignore[arg-type]
        return [(text, tuple(tokens))]
    raise TypeError(f"a prompt is a str, an ABItem or a SteeringExample, not "
                    f"{type(prompt).__name__}")


def _layer_norms(w2s: W2S, prompt: Prompt) -> dict[int, float]:
    """See :meth:`W2S.layer_norms`."""
    layers, steerer = list(w2s.router.layers), w2s.steerer  # type: ignore[arg-type]
    if isinstance(steerer, SteeringVectors):
        norms = [float(steerer.vector(x).norm()) for x in layers]
    else:
        tokens = [t for _, t in w2s.presentations(prompt)]
        x = cache_residuals(w2s.model, tokens, [int(steerer.metadata["input_layer"])],
                            [-1] * len(tokens), hook=steerer.hook)[:, 0]
        norms = [float(steerer.predict_layer(x, layer).mean(dim=0).norm()) for layer in layers]
    return {x: n * abs(c) for x, n, c in zip(layers, norms, w2s.layer_scale)}


def _compare(w2s: W2S, prompt: str, multiplier: float, max_new_tokens: int) -> dict[str, Any]:
    """See :meth:`W2S.compare`."""
    if w2s.formatter is None:
        raise ValueError("the model has no tokenizer")
    _, tokens = w2s.formatter.generation_prompt(prompt)
    routed = w2s.choose_layer(prompt)
    inp = torch.tensor([tokens], device=w2s.model.cfg.device)
    kw = dict(max_new_tokens=max_new_tokens, do_sample=False, verbose=False, stop_at_eos=True)

    def run() -> str:
        out = w2s.model.generate(inp, **kw)
        return w2s.model.tokenizer.decode(out[0, len(tokens):].tolist(),
                                          skip_special_tokens=True)

    result: dict[str, Any] = {"prompt": prompt, "routed_layer": routed,
                              "fixed_layer": w2s.fixed_layer, "multiplier": multiplier,
                              "unsteered": run(), "fixed": None}
    if w2s.fixed_layer is not None:
        with w2s.steer(prompt, multiplier, layer=w2s.fixed_layer):
            result["fixed"] = run()
    with w2s.steer(prompt, multiplier, layer=routed):
        result["routed"] = run()
    return result


def _bundle_metadata(w2s: W2S) -> dict[str, Any]:
    """What :meth:`W2S.save` writes to ``w2s.json`` (before the version stamp)."""
    return {
        "model": model_name(w2s.model),
        "method": w2s.method,
        "embedding": w2s.embedding,
        "embedding_layer": w2s.embedding_layer,
        "layers": list(w2s.router.layers),  # type: ignore[arg-type]
        "layer_scale": w2s.layer_scale,
        "positions": w2s.positions,
        "hook": w2s.steerer.hook,
        "readout": w2s.readout,
        "mirror": w2s.mirror,
        "prompt_format": w2s.prompt_format,
        "fixed_layer": w2s.fixed_layer,
    }
