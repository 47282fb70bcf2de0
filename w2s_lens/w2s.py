"""Steering with a router at inference: embed the prompt, pick its layer, steer there.

A :class:`W2S` bundles what inference needs: the steering vectors, a fitted
:class:`~w2s_lens.router.LayerRouter`, the embedding it reads, and the multiplier scale.
Saved as one directory: ``router.json`` + ``router.joblib``, ``vectors.safetensors`` +
``vectors.json``, and ``w2s.json`` (embedding kind and layer, per-layer scale, positions,
model). Loading refuses a bundle made for another model.

Example:
    >>> w2s = W2S.load("runs/demo/routers/logreg", model)  # doctest: +SKIP
    >>> layer = w2s.choose_layer(prompt_tokens)  # doctest: +SKIP
    >>> with w2s.steer(prompt_tokens, multiplier=1.0):  # doctest: +SKIP
    ...     out = model.generate(torch.tensor([prompt_tokens]), max_new_tokens=40)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from transformer_lens import HookedTransformer

from w2s_lens.artifacts import check_metadata, library_versions, read_json, write_json
from w2s_lens.embeddings import default_layer, embed_examples, embedding_name
from w2s_lens.examples import SteeringExample
from w2s_lens.router import LayerRouter
from w2s_lens.steering import SteeringHandle
from w2s_lens.vectors import SteeringVectors, model_name

__all__ = ["W2S"]

BUNDLE_FILE = "w2s.json"


class W2S:
    """A router plus the vectors it routes.

    Args:
        model: the HookedTransformer.
        vectors: steering vectors (covering the router's layers).
        router: a fitted router.
        embedding: embedding kind (``resid-last``, ``resid-mean`` or ``minilm``).
        embedding_layer: residual layer of the embedding (``resid-*`` kinds; None: the
            middle layer, as in :func:`w2s_lens.embeddings.default_layer`).
        layer_scale: per-layer factor c_l (see :mod:`w2s_lens.scales`), one per router layer.
        positions: where to steer (``"from_last"`` or ``"all"``).
    """

    def __init__(
        self,
        model: HookedTransformer,
        vectors: SteeringVectors,
        router: LayerRouter,
        embedding: str,
        embedding_layer: int | None,
        layer_scale: Sequence[float] | None = None,
        positions: str = "from_last",
    ) -> None:
        vectors.check_model(model)
        if embedding != "minilm" and embedding_layer is None:
            embedding_layer = default_layer(model)
        if router.layers is None:
            raise ValueError("the router is not fitted")
        want = embedding_name(embedding, embedding_layer)
        if router.embedding not in (None, want):
            raise ValueError(f"the router reads embedding {router.embedding!r}, not {want!r}")
        missing = [layer for layer in router.layers if layer not in vectors.layers]
        if missing:
            raise ValueError(f"the vectors lack layers {missing} that the router can pick")
        if router.hook not in (None, vectors.hook):
            raise ValueError(f"the router was fitted for hook {router.hook!r}, the vectors are "
                             f"for {vectors.hook!r}")
        if layer_scale is not None and len(layer_scale) != len(router.layers):
            raise ValueError("layer_scale needs one factor per router layer")
        self.model = model
        self.vectors = vectors
        self.router = router
        self.embedding = embedding
        self.embedding_layer = embedding_layer
        self.layer_scale = ([1.0] * len(router.layers) if layer_scale is None
                            else [float(x) for x in layer_scale])
        self.positions = positions

    def _tokens(self, prompt: str | Sequence[int] | SteeringExample) -> SteeringExample:
        if isinstance(prompt, SteeringExample):
            return prompt
        if isinstance(prompt, str):
            if self.model.tokenizer is None:
                raise ValueError("the model has no tokenizer; pass token ids")
            tokens = self.model.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            text = prompt
        else:
            tokens = [int(t) for t in prompt]
            text = ""
        # answer ids are irrelevant for routing; any two distinct ids will do
        return SteeringExample(id="prompt", text=text, tokens=tuple(tokens),
                               matching_token_id=0, non_matching_token_id=1,
                               matching_letter="A")

    def choose_layer(self, prompt: str | Sequence[int] | SteeringExample) -> int:
        """The layer the router picks for ``prompt`` (text is tokenised without BOS)."""
        ex = self._tokens(prompt)
        x = embed_examples(self.model, [ex], self.embedding, self.embedding_layer)
        return int(self.router.predict_layers(x)[0])

    def steer(
        self,
        prompt: str | Sequence[int] | SteeringExample,
        multiplier: float = 1.0,
        layer: int | None = None,
    ) -> SteeringHandle:
        """Context manager: steer at the routed layer for this prompt.

        Pass ``layer`` (from :meth:`choose_layer`) to skip routing the prompt again.
        """
        layer = self.choose_layer(prompt) if layer is None else int(layer)
        if layer not in self.router.layers:
            raise ValueError(f"layer {layer} is not one the router can pick: {self.router.layers}")
        scale = self.layer_scale[self.router.layers.index(layer)]
        return self.vectors.apply(self.model, layer, multiplier, positions=self.positions,
                                  scale=scale)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the bundle (router, vectors, ``w2s.json``) into ``directory``."""
        directory = Path(directory)
        self.router.save(directory)
        self.vectors.save(directory)
        write_json(directory / BUNDLE_FILE, {
            "model": model_name(self.model),
            "embedding": self.embedding,
            "embedding_layer": self.embedding_layer,
            "layers": list(self.router.layers),
            "layer_scale": self.layer_scale,
            "positions": self.positions,
            "hook": self.vectors.hook,
            "versions": library_versions(),
        })
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, model: HookedTransformer) -> W2S:
        """Load a bundle; refuses one made for another model."""
        directory = Path(directory)
        meta = read_json(directory / BUNDLE_FILE)
        check_metadata(meta, {"model": model_name(model)}, what="W2S router bundle")
        vectors = SteeringVectors.load(directory, model=model, hook=meta["hook"])
        router = LayerRouter.load(directory, expect={
            "model": meta["model"], "layers": meta["layers"],
            "embedding": embedding_name(meta["embedding"], meta["embedding_layer"])})
        return cls(model, vectors, router, meta["embedding"], meta["embedding_layer"],
                   meta["layer_scale"], meta["positions"])

    def route_many(self, examples: Sequence[SteeringExample]) -> np.ndarray:
        """Routed layer numbers for many examples at once."""
        x = embed_examples(self.model, examples, self.embedding, self.embedding_layer)
        return self.router.predict_layers(x)
