"""The L2S steerer artifact: fit, predict, steer with, save and load per-layer L2S networks.

An :class:`L2SSteerer` holds one 2-layer MLP per steered layer (trained by
:mod:`w2s_lens.steering.l2s_training`) and predicts the P2S vector of an input from its
representation ``h(x)`` (:mod:`w2s_lens.steering.l2s` explains the method). Files:
``l2s.safetensors`` (stacked MLP weights ``[L, ...]``, input mean/std, target mean and scale)
and ``l2s.json`` (model, hook, input_layer, layers, dataset, config, sizes, loss curves, best
epochs, format version and library versions); loading executes no code. ``l2s.json`` is
sealed (:func:`w2s_lens.artifacts.seal`): loading refuses a damaged or edited pair and
non-finite weights, naming the file.

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
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from w2s_lens.artifacts import (
    INTEGRITY_KEY,
    ArtifactMismatch,
    check_format,
    check_metadata,
    check_seal,
    load_tensors,
    read_json,
    save_tensors,
    seal,
    stamp,
    write_json,
)
from w2s_lens.steering.activations import HOOKS, hook_name
from w2s_lens.steering.hooks import Positions, SteeringHandle, steer
from w2s_lens.steering.l2s_config import L2SConfig
from w2s_lens.steering.l2s_training import (
    StackedMLP,
    as_tensor,
    split_by_group,
    standardisers,
    train_stacked,
)
from w2s_lens.steering.vectors import check_values, model_name, shareable_paths

__all__ = ["META_FILE", "TENSOR_KEYS", "WEIGHTS_FILE", "L2SSteerer"]

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "l2s.safetensors"
META_FILE = "l2s.json"
TENSOR_KEYS = ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "x_mean", "x_std",
               "y_mean", "y_scale")
REDO = "retrain with w2s_lens.steering.l2s.train_l2s (or rerun the evaluation that made it)"


def _check_model(meta: dict[str, Any], model: HookedTransformer) -> None:
    """Refuse another model (by name, when one was recorded) or another width."""
    expect: dict[str, Any] = {}
    if meta.get("model") is not None:
        expect["model"] = model_name(model)
    expect["d_model"] = model.cfg.d_model
    check_metadata(meta, expect, what="L2S networks")


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
        :func:`~w2s_lens.steering.l2s.prompt_features` at ``metadata["input_layer"]``.
        """
        _check_model(self.metadata, model)
        vec = self.predict_layer(torch.as_tensor(x).reshape(1, -1), layer)[0]
        return steer(model, hook_name(layer, self.hook), vec * float(multiplier), positions)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``l2s.safetensors`` and ``l2s.json`` into ``directory``."""
        net = self._check_fitted()
        directory = Path(directory)
        tensors = {**{k: v.detach() for k, v in net.tensors().items()}, **self._stats}
        save_tensors(directory / WEIGHTS_FILE, tensors,
                     metadata={"model": str(self.metadata.get("model")), "hook": self.hook})
        meta = stamp(shareable_paths(self.metadata))
        write_json(directory / META_FILE, seal(meta, directory, [WEIGHTS_FILE]))
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, model: HookedTransformer | None = None,
             hook: str | None = None, layers: Sequence[int] | None = None) -> L2SSteerer:
        """Load a saved steerer; refuse another model, hook or layer set when given, and a
        damaged or edited file or non-finite weights (ArtifactMismatch naming the file).

        >>> steerer = L2SSteerer.load("runs/r/l2s", model=model)  # doctest: +SKIP
        """
        directory = Path(directory)
        meta = read_json(directory / META_FILE)
        check_format(meta, directory / META_FILE, REDO)
        check_seal(meta, directory / META_FILE, REDO)
        meta.pop(INTEGRITY_KEY, None)
        check_metadata(meta, {"hook": hook}, what="L2S networks")
        if layers is not None:
            check_metadata({"layers": sorted(meta["layers"])},
                           {"layers": sorted(int(x) for x in layers)}, what="L2S networks")
        if model is not None:
            _check_model(meta, model)
        tensors = load_tensors(directory / WEIGHTS_FILE)
        missing = [k for k in TENSOR_KEYS if k not in tensors]
        if missing:
            raise ArtifactMismatch(f"{directory / WEIGHTS_FILE} lacks tensors {missing}")
        check_values(torch.cat([tensors[k].flatten().float() for k in TENSOR_KEYS]),
                     directory / WEIGHTS_FILE, redo=REDO)
        cfg = L2SConfig(**meta["config"])
        out = cls(cfg, meta.get("model"), meta["hook"], meta.get("dataset"))
        out.metadata = copy.deepcopy(meta)
        out.layers = [int(x) for x in meta["layers"]]
        out._net = StackedMLP.from_tensors(tensors)
        out._stats = {k: tensors[k] for k in ("x_mean", "x_std", "y_mean", "y_scale")}
        return out
