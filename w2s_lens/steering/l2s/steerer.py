"""The L2S steerer: per-layer networks that predict an input's steering vector, and steer.

An :class:`L2SSteerer` holds one 2-layer MLP per steered layer
(:mod:`w2s_lens.steering.l2s.network`, trained as :mod:`w2s_lens.steering.l2s.training` says)
and predicts the P2S vector of an input from its representation ``h(x)``
(:mod:`w2s_lens.steering.l2s` explains the method). :func:`train_l2s` makes one from a model
and contrast pairs (the targets and ``h(x)`` in one pass per sequence), :func:`prompt_features`
reads ``h(x)`` of new prompts, :meth:`L2SSteerer.apply` steers with ``λ · g_l(h(x))``, and
:meth:`L2SSteerer.save` / :meth:`L2SSteerer.load` write and read its files
(``l2s.safetensors`` + ``l2s.json``, sealed; see :mod:`w2s_lens.steering.l2s.network`).

Example:
    >>> X = torch.randn(50, 8); Y = torch.randn(50, 2, 4)
    >>> s = L2SSteerer(L2SConfig(hidden=16, epochs=3)).fit(X, Y, layers=[3, 5])
    >>> s.predict_layer(X[:2], 5).shape
    torch.Size([2, 4])
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from w2s_lens.data.examples import SteeringExample
from w2s_lens.steering.activations import (
    HOOKS,
    ContrastActivations,
    cache_residuals,
    contrast_residuals,
    hook_name,
)
from w2s_lens.steering.hooks import Positions, SteeringHandle, steer
from w2s_lens.steering.l2s.config import L2SConfig
from w2s_lens.steering.l2s.network import (
    StackedMLP,
    as_tensor,
    check_model_matches,
    read_networks,
    write_networks,
)
from w2s_lens.steering.l2s.training import split_by_group, standardisers, train_stacked
from w2s_lens.steering.vectors import model_name

__all__ = ["L2SSteerer", "prompt_features", "train_l2s"]

logger = logging.getLogger(__name__)


class L2SSteerer:
    """One 2-layer MLP per steered layer, predicting P2S vectors from ``h(x)``.

    Args:
        config: hyper-parameters (:class:`L2SConfig`).
        model_name: the model the targets came from (recorded; checked on load and apply).
        hook: the residual hook of the targets and of steering.
        dataset: recorded in the metadata.

    Attributes (after :meth:`fit`): ``layers``, ``d_in``, ``d_model``, ``metadata`` (incl. the
    per-layer ``train_loss``/``val_loss`` curves, epoch 0 first, and ``best_epoch``),
    ``train_index_``/``val_index_`` (rows of the fitted data).

    Example:
        >>> s = L2SSteerer(L2SConfig(epochs=20)).fit(X, Y, layers=[10, 14])  # doctest: +SKIP
        >>> s.predict_layer(X_new, 14).shape  # [n, d_model]  # doctest: +SKIP
    """

    def __init__(self, config: L2SConfig | None = None, model_name: str | None = None,
                 hook: str = "resid_pre", dataset: str | None = None) -> None:
        if hook not in HOOKS:
            raise ValueError(f"hook must be one of {HOOKS}, got {hook!r}")
        self.config = config or L2SConfig()
        self.metadata: dict[str, Any] = {"model": model_name, "hook": hook, "dataset": dataset}
        self.layers: list[int] = []
        self._net: StackedMLP | None = None
        self._stats: dict[str, Tensor] = {}

    def __repr__(self) -> str:
        return (f"L2SSteerer(model={self.metadata.get('model')!r}, hook={self.hook!r}, "
                f"layers={self.layers}, input_layer={self.metadata.get('input_layer')})")

    @property
    def hook(self) -> str:
        """The residual hook of the targets and of steering."""
        return str(self.metadata["hook"])

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The configuration as a dict (scikit-learn style)."""
        return asdict(self.config)

    def fit(self, X: Float[Tensor, "n d_in"], Y: Float[Tensor, "n layer d_model"],
            layers: Sequence[int], groups: Sequence[str] | None = None,
            progress: bool = False) -> L2SSteerer:
        """Train the per-layer MLPs on ``h(x) -> P2S``; returns ``self``.

        Args:
            X: ``[n, d_in]`` input representations.
            Y: ``[n, L, d_model]`` P2S targets, ``Y[:, j]`` for ``layers[j]``.
            layers: the layer of each target column (distinct).
            groups: per row, the item it belongs to (rows of one item stay on one side of the
                validation split); default: every row its own item.
            progress: show a progress bar over epochs.
        """
        cfg = self.config
        X, Y = as_tensor(X, "X", 2), as_tensor(Y, "Y", 3)
        layers = [int(x) for x in layers]
        if len(X) != len(Y) or len(X) < 2:
            raise ValueError(f"X and Y need the same number (>= 2) of rows; got {len(X)} and "
                             f"{len(Y)}")
        if Y.shape[1] != len(layers) or len(set(layers)) != len(layers):
            raise ValueError(f"Y has {Y.shape[1]} layer columns; layers must name each once, "
                             f"got {layers}")
        groups = [str(i) for i in range(len(X))] if groups is None else [str(g) for g in groups]
        if len(groups) != len(X):
            raise ValueError(f"groups has {len(groups)} entries for {len(X)} rows")
        gen = torch.Generator().manual_seed(cfg.seed)
        tr, va = split_by_group(groups, cfg.val_fraction, gen)
        self._stats = st = standardisers(X[tr], Y[tr])
        xs, ys = (X - st["x_mean"]) / st["x_std"], (Y - st["y_mean"]) / st["y_scale"][:, None]
        self.layers = layers
        self._net = StackedMLP(layers, X.shape[1], cfg.hidden, Y.shape[2], cfg.seed)
        result = train_stacked(self._net, xs[tr], ys[tr], xs[va], ys[va], cfg, gen, progress)
        self.train_index_, self.val_index_ = tr.tolist(), va.tolist()
        self.metadata.update(
            input_layer=cfg.input_layer, layers=layers, d_in=int(X.shape[1]),
            d_model=int(Y.shape[2]), config=asdict(cfg), n_train=len(tr), n_val=len(va),
            loss_unit="MSE / training variance of the P2S vectors (1 = the CAA mean)",
            **result)
        logger.info("L2S fitted: %d train / %d val rows, best epochs %s", len(tr), len(va),
                    result["best_epoch"])
        return self

    def _check_fitted(self) -> StackedMLP:
        if self._net is None:
            raise RuntimeError("this L2SSteerer is not fitted yet; call fit() or load()")
        return self._net

    def predict(self, X: Float[Tensor, "n d_in"]) -> Float[Tensor, "n layer d_model"]:
        """Predicted P2S vectors ``[n, L, d_model]`` for input representations ``X``."""
        net, st = self._check_fitted(), self._stats
        X = as_tensor(X, "X", 2)
        if X.shape[1] != st["x_mean"].shape[0]:
            raise ValueError(f"X has {X.shape[1]} features; this steerer was fitted on "
                             f"{st['x_mean'].shape[0]}")
        with torch.no_grad():
            out = net((X - st["x_mean"]) / st["x_std"])
        return st["y_mean"] + out * st["y_scale"][:, None]

    def predict_layer(self, X: Float[Tensor, "n d_in"], layer: int) -> Float[Tensor, "n d_model"]:
        """Predicted P2S vectors ``[n, d_model]`` at one of the fitted ``layers``."""
        if int(layer) not in self.layers:
            raise KeyError(f"no L2S network for layer {layer}; fitted layers: {self.layers}")
        return self.predict(X)[:, self.layers.index(int(layer))]

    def apply(self, model: HookedTransformer, x: Float[Tensor, " d_in"], layer: int,
              multiplier: float, positions: Positions = "from_last") -> SteeringHandle:
        """Steer ``model`` at ``layer`` with ``multiplier · g_layer(x)`` for one input ``x``.

        A context manager (see :func:`w2s_lens.steering.hooks.steer`); ``x`` comes from
        :func:`prompt_features` at ``metadata["input_layer"]``.
        """
        check_model_matches(self.metadata, model)
        vec = self.predict_layer(torch.as_tensor(x).reshape(1, -1), layer)[0]
        return steer(model, hook_name(layer, self.hook), vec * float(multiplier), positions)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``l2s.safetensors`` and ``l2s.json`` into ``directory``
        (:func:`~w2s_lens.steering.l2s.network.write_networks`)."""
        return write_networks(directory, self._check_fitted(), self._stats, self.metadata)

    @classmethod
    def load(cls, directory: str | os.PathLike, model: HookedTransformer | None = None,
             hook: str | None = None, layers: Sequence[int] | None = None) -> L2SSteerer:
        """Load a saved steerer; refuse another model, hook or layer set when given, and a
        damaged or edited file or non-finite weights (ArtifactMismatch naming the file;
        :func:`~w2s_lens.steering.l2s.network.read_networks`).

        >>> steerer = L2SSteerer.load("runs/r/l2s", model=model)  # doctest: +SKIP
        """
        meta, net, stats = read_networks(directory, model=model, hook=hook, layers=layers)
        out = cls(L2SConfig(**meta["config"]), meta.get("model"), meta["hook"],
                  meta.get("dataset"))
        out.metadata = copy.deepcopy(meta)
        out.layers = [int(x) for x in meta["layers"]]
        out._net, out._stats = net, stats
        return out


def prompt_features(
    model: HookedTransformer,
    token_seqs: Sequence[Sequence[int]],
    input_layer: int,
    hook: str = "resid_pre",
    batch_size: int = 8,
) -> Float[Tensor, "n d_model"]:
    """``h(x)``: the residual at ``input_layer`` at each prompt's last token.

    Use it for prompts of any format (e.g. a cloze prompt of a test item).

    Example:
        >>> X = prompt_features(model, [ex.tokens for ex in test], input_layer=12)  # doctest: +SKIP
    """
    return cache_residuals(model, token_seqs, [input_layer], [-1] * len(token_seqs), hook=hook,
                           batch_size=batch_size)[:, 0]


def train_l2s(
    model: HookedTransformer,
    examples: Sequence[SteeringExample],
    layers: Sequence[int] | None = None,
    config: L2SConfig | None = None,
    hook: str = "resid_pre",
    dataset: str | None = None,
    progress: bool = False,
    batch_size: int = 8,
) -> tuple[L2SSteerer, ContrastActivations]:
    """Compute P2S targets and ``h(x)`` in one pass per sequence, then fit an L2S steerer.

    Rows of one item (both letter orders) stay on one side of the validation split. The
    returned activations give the CAA vectors too: ``acts.mean_diff()``.

    Args:
        model: the HookedTransformer.
        examples: training contrast pairs (both letter orders recommended, as for CAA).
        layers: steered layers (default: all), ascending.
        config: :class:`L2SConfig`; ``input_layer=None`` becomes ``n_layers // 2``.
        hook: residual hook of the targets, of ``h(x)`` and of steering.
        dataset: recorded in the metadata.
        progress: progress bars.
        batch_size: sequences per forward pass.

    Example:
        >>> steerer, acts = train_l2s(model, fmt.format_many(balanced(train)))  # doctest: +SKIP
        >>> steerer.save("runs/l2s")  # doctest: +SKIP
    """
    config = config or L2SConfig()
    acts = contrast_residuals(model, examples, layers=layers, hook=hook,
                              input_layer=config.input_layer, batch_size=batch_size,
                              progress=progress)
    config = replace(config, input_layer=acts.input_layer)
    steerer = L2SSteerer(config, model_name=model_name(model), hook=hook, dataset=dataset)
    steerer.fit(acts.prompt_resid, acts.diffs, acts.layers, groups=acts.units, progress=progress)
    steerer.metadata["n_pairs"] = len(examples)
    return steerer, acts
