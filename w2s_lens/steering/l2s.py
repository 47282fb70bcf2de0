"""L2S (Learn-to-Steer): predict an input-specific steering vector from the input itself.

Parekh et al. 2025 ("Learning to Steer: Input-dependent Steering for Multimodal LLMs",
arXiv 2508.12815), here for A/B contrast pairs:

* the **prompt-to-steer (P2S)** vector of a training input x at layer l is
  ``resid_l(x + matching answer) - resid_l(x + non-matching answer)`` at the answer position
  (:func:`w2s_lens.steering.activations.contrast_residuals`, ``.diffs``);
* **CAA is the mean P2S vector**: ``mean_x P2S_l(x)`` is exactly what
  :func:`w2s_lens.steering.vectors.train_caa` returns (the tests check this to 1e-5);
* a small 2-layer MLP ``g_l`` per steered layer learns ``h(x) -> P2S_l(x)``, where ``h(x)`` is
  the residual at the prompt's last token at ``input_layer`` (the input without its answer);
* at test time the model is steered with ``λ · g_l(h(x))`` (:meth:`L2SSteerer.apply`).

Design. Inputs are standardised with the training statistics. Each ``g_l`` predicts the
deviation from the training mean of the P2S vectors, in units of their spread:
``g_l(h) = mean_l + scale_l · MLP_l(standardise(h))`` with the MLP's output layer initialised
to zero, so the untrained steerer *is* CAA (fitted on the training part). Losses are therefore
"fraction of P2S variance unexplained" (1.0 = the CAA mean). The MLPs of all layers are trained
together as one stacked network, but they do not interact: the loss is a sum of per-layer
terms, AdamW acts per parameter, each MLP's initialisation is seeded by its layer number, and a
layer that has stopped no longer updates its best weights, so each MLP ends as it would if
trained alone (a test checks this). Early stopping is per layer, on a validation part of the
training data (split by item, so both letter orders of an item fall on the same side); each
layer keeps its best validation epoch (epoch 0, the CAA mean, included).

Files: ``l2s.safetensors`` (stacked MLP weights ``[L, ...]``, input mean/std, target mean and
scale) and ``l2s.json`` (model, hook, input_layer, layers, dataset, config, sizes, loss curves,
best epochs, format version and library versions).

Example:
    >>> import torch
    >>> X = torch.randn(200, 8); W = torch.randn(2, 8, 4)
    >>> Y = torch.einsum("nd,ldm->nlm", X, W)                  # input-dependent targets
    >>> s = L2SSteerer(L2SConfig(hidden=64, epochs=50)).fit(X, Y, layers=[3, 5])
    >>> s.predict(X).shape
    torch.Size([200, 2, 4])
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor, nn
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from w2s_lens.artifacts import (
    ArtifactMismatch,
    check_format,
    check_metadata,
    load_tensors,
    read_json,
    save_tensors,
    stamp,
    write_json,
)
from w2s_lens.data.examples import SteeringExample
from w2s_lens.steering.activations import (
    HOOKS,
    ContrastActivations,
    cache_residuals,
    contrast_residuals,
    hook_name,
)
from w2s_lens.steering.hooks import Positions, SteeringHandle, steer
from w2s_lens.steering.vectors import model_name

__all__ = ["L2SConfig", "L2SSteerer", "prompt_features", "train_l2s"]

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "l2s.safetensors"
META_FILE = "l2s.json"
TENSOR_KEYS = ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "x_mean", "x_std",
               "y_mean", "y_scale")


@dataclass(frozen=True)
class L2SConfig:
    """Hyper-parameters of :class:`L2SSteerer` (checked at construction).

    Attributes:
        input_layer: layer of ``h(x)``; ``None``: the model's middle layer, ``n_layers // 2``.
        hidden: width of each MLP's hidden layer.
        weight_decay: AdamW's decoupled weight decay (pulls each MLP towards the CAA mean).
        lr: AdamW learning rate.
        epochs: maximum number of epochs.
        batch_size: training rows per step.
        val_fraction: share of the training items held out for early stopping (0: none; then
            every layer keeps its last epoch).
        patience: epochs without a validation improvement before a layer stops counting.
        seed: seeds the split, the initialisation and the batch order.

    Example:
        >>> L2SConfig(hidden=128).hidden
        128
        >>> L2SConfig(lr=0)
        Traceback (most recent call last):
        ...
        ValueError: L2SConfig.lr must be > 0, got 0
    """

    input_layer: int | None = None
    hidden: int = 256
    weight_decay: float = 1e-2
    lr: float = 1e-3
    epochs: int = 300
    batch_size: int = 32
    val_fraction: float = 0.2
    patience: int = 30
    seed: int = 0

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> ValueError:
            return ValueError(f"L2SConfig.{name} must be {rule}, got {getattr(self, name)!r}")

        if self.input_layer is not None and (isinstance(self.input_layer, bool)
                                             or not isinstance(self.input_layer, int)
                                             or self.input_layer < 0):
            raise bad("input_layer", "None or an int >= 0")
        for name in ("hidden", "epochs", "batch_size", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(name, "an int >= 1")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise bad("seed", "an int")
        if not self.lr > 0:
            raise bad("lr", "> 0")
        if not self.weight_decay >= 0:
            raise bad("weight_decay", ">= 0")
        if not 0 <= self.val_fraction < 1:
            raise bad("val_fraction", "in [0, 1)")


class _StackedMLP(nn.Module):
    """L independent ``Linear -> ReLU -> Linear`` networks, evaluated as one batched op."""

    def __init__(self, layers: Sequence[int], d_in: int, hidden: int, d_out: int,
                 seed: int = 0) -> None:
        super().__init__()
        bound = 1.0 / d_in ** 0.5  # nn.Linear's default initialisation range
        w1, b1 = [], []
        for layer in layers:  # seeded by layer number: the same start alone or with others
            g = torch.Generator().manual_seed((seed * 1_000_003 + int(layer)) % 2 ** 63)
            w1.append((torch.rand(d_in, hidden, generator=g) * 2 - 1) * bound)
            b1.append((torch.rand(hidden, generator=g) * 2 - 1) * bound)
        self.fc1_weight = nn.Parameter(torch.stack(w1))
        self.fc1_bias = nn.Parameter(torch.stack(b1))
        # zero output layer: the untrained steerer predicts the training mean (CAA)
        self.fc2_weight = nn.Parameter(torch.zeros(len(w1), hidden, d_out))
        self.fc2_bias = nn.Parameter(torch.zeros(len(w1), d_out))

    def forward(self, x: Float[Tensor, "n d_in"]) -> Float[Tensor, "n layer d_out"]:
        h = torch.relu(torch.einsum("nd,ldh->lnh", x, self.fc1_weight) + self.fc1_bias[:, None])
        return (torch.einsum("lnh,lho->lno", h, self.fc2_weight)
                + self.fc2_bias[:, None]).transpose(0, 1)

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor]) -> _StackedMLP:
        n_layers, d_in, hidden = tensors["fc1.weight"].shape
        net = cls(range(n_layers), d_in, hidden, tensors["fc2.weight"].shape[2])
        with torch.no_grad():
            for key, value in net.tensors().items():
                value.copy_(tensors[key])
        return net

    def tensors(self) -> dict[str, Tensor]:
        return {"fc1.weight": self.fc1_weight, "fc1.bias": self.fc1_bias,
                "fc2.weight": self.fc2_weight, "fc2.bias": self.fc2_bias}


def _as_tensor(x: Any, what: str, ndim: int) -> Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x).detach()
    t = t.float().cpu()
    if t.ndim != ndim:
        raise ValueError(f"{what} must have {ndim} dimensions, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{what} contains NaN or infinite values")
    return t


def _split(groups: Sequence[str], val_fraction: float, gen: torch.Generator) -> tuple[Tensor,
                                                                                      Tensor]:
    """Row indices (train, val), whole groups on one side."""
    names = list(dict.fromkeys(groups))
    n_val = int(round(val_fraction * len(names)))
    if val_fraction > 0:
        n_val = max(1, n_val)
        if len(names) - n_val < 1:
            raise ValueError(f"L2SConfig.val_fraction={val_fraction} leaves no training item "
                             f"among {len(names)} item(s); use more items or val_fraction=0")
    order = torch.randperm(len(names), generator=gen).tolist()
    val_names = {names[i] for i in order[:n_val]}
    is_val = torch.tensor([g in val_names for g in groups])
    return torch.nonzero(~is_val)[:, 0], torch.nonzero(is_val)[:, 0]


def _train(net: _StackedMLP, x_tr: Tensor, y_tr: Tensor, x_va: Tensor, y_va: Tensor,
           cfg: L2SConfig, gen: torch.Generator, progress: bool) -> dict[str, Any]:
    """Train in place with per-layer early stopping; ``net`` ends with each layer's best."""
    n_layers = y_tr.shape[1]
    has_val = len(x_va) > 0
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def losses(x: Tensor, y: Tensor) -> Tensor:  # [L]: per-layer MSE (standardised units)
        with torch.no_grad():
            return ((net(x) - y) ** 2).mean(dim=(0, 2))

    train_curve, val_curve = [losses(x_tr, y_tr)], [losses(x_va, y_va)] if has_val else []
    best = val_curve[0].clone() if has_val else None
    best_epoch = torch.zeros(n_layers, dtype=torch.long)
    stop_epoch = torch.full((n_layers,), -1, dtype=torch.long)  # -1: still training
    best_state = {k: v.detach().clone() for k, v in net.tensors().items()}
    epoch = 0
    for epoch in tqdm(range(1, cfg.epochs + 1), desc="L2S", unit="epoch", disable=not progress):
        perm = torch.randperm(len(x_tr), generator=gen)
        for start in range(0, len(x_tr), cfg.batch_size):
            rows = perm[start:start + cfg.batch_size]
            # a sum of per-layer means: each layer's MLP gets only its own gradient
            loss = ((net(x_tr[rows]) - y_tr[rows]) ** 2).mean(dim=(0, 2)).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        train_curve.append(losses(x_tr, y_tr))
        if not has_val:
            best_epoch[:] = epoch
            continue
        val_curve.append(losses(x_va, y_va))
        # a stopped layer keeps its best even if it improves later, so each layer's result
        # does not depend on how long the other layers train
        improved = (val_curve[-1] < best) & (stop_epoch < 0)
        best = torch.where(improved, val_curve[-1], best)
        best_epoch[improved] = epoch
        for key, value in net.tensors().items():
            best_state[key][improved] = value.detach()[improved]
        stop_epoch[(stop_epoch < 0) & (epoch - best_epoch >= cfg.patience)] = epoch
        if bool((stop_epoch >= 0).all()):
            break
    if has_val:
        with torch.no_grad():
            for key, value in net.tensors().items():
                value.copy_(best_state[key])
    stop_epoch[stop_epoch < 0] = epoch
    return {"epochs_run": epoch, "best_epoch": best_epoch.tolist(),
            "stop_epoch": stop_epoch.tolist(),
            "train_loss": torch.stack(train_curve, 1).tolist(),
            "val_loss": torch.stack(val_curve, 1).tolist() if has_val else None}


def _standardisers(X: Tensor, Y: Tensor) -> dict[str, Tensor]:
    """Training statistics: per-feature input mean/std; per-layer target mean and one scale
    per layer (the RMS deviation from the mean, so directions are not distorted)."""
    x_mean, x_std = X.mean(0), X.std(0, unbiased=False)
    x_std = torch.where(x_std > 1e-6 * x_std.max().clamp_min(1e-30), x_std, 1.0)
    y_mean = Y.mean(0)
    y_scale = ((Y - y_mean) ** 2).mean(dim=(0, 2)).sqrt()
    y_scale = torch.where(y_scale > 0, y_scale, 1.0)
    return {"x_mean": x_mean, "x_std": x_std, "y_mean": y_mean, "y_scale": y_scale}


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
        self._net: _StackedMLP | None = None
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
        X, Y = _as_tensor(X, "X", 2), _as_tensor(Y, "Y", 3)
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
        tr, va = _split(groups, cfg.val_fraction, gen)
        self._stats = st = _standardisers(X[tr], Y[tr])
        xs, ys = (X - st["x_mean"]) / st["x_std"], (Y - st["y_mean"]) / st["y_scale"][:, None]
        self.layers = layers
        self._net = _StackedMLP(layers, X.shape[1], cfg.hidden, Y.shape[2], cfg.seed)
        result = _train(self._net, xs[tr], ys[tr], xs[va], ys[va], cfg, gen, progress)
        self.train_index_, self.val_index_ = tr.tolist(), va.tolist()
        self.metadata.update(
            input_layer=cfg.input_layer, layers=layers, d_in=int(X.shape[1]),
            d_model=int(Y.shape[2]), config=asdict(cfg), n_train=len(tr), n_val=len(va),
            loss_unit="MSE / training variance of the P2S vectors (1 = the CAA mean)",
            **result)
        logger.info("L2S fitted: %d train / %d val rows, best epochs %s", len(tr), len(va),
                    result["best_epoch"])
        return self

    def _check_fitted(self) -> _StackedMLP:
        if self._net is None:
            raise RuntimeError("this L2SSteerer is not fitted yet; call fit() or load()")
        return self._net

    def predict(self, X: Float[Tensor, "n d_in"]) -> Float[Tensor, "n layer d_model"]:
        """Predicted P2S vectors ``[n, L, d_model]`` for input representations ``X``."""
        net, st = self._check_fitted(), self._stats
        X = _as_tensor(X, "X", 2)
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
        write_json(directory / META_FILE, stamp(self.metadata))
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, model: HookedTransformer | None = None,
             hook: str | None = None, layers: Sequence[int] | None = None) -> L2SSteerer:
        """Load a saved steerer; refuse another model, hook or layer set when given."""
        directory = Path(directory)
        meta = read_json(directory / META_FILE)
        check_format(meta, directory / META_FILE, "retrain with w2s_lens.steering.l2s.train_l2s")
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
        cfg = L2SConfig(**meta["config"])
        out = cls(cfg, meta.get("model"), meta["hook"], meta.get("dataset"))
        out.metadata = copy.deepcopy(meta)
        out.layers = [int(x) for x in meta["layers"]]
        out._net = _StackedMLP.from_tensors(tensors)
        out._stats = {k: tensors[k] for k in ("x_mean", "x_std", "y_mean", "y_scale")}
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
