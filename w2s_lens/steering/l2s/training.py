"""How the L2S networks are trained: the split by item, the standardisation and the loop.

The MLPs of all steered layers are trained together as one stacked network
(:class:`~w2s_lens.steering.l2s.network.StackedMLP`), but they do not interact: the loss is a
sum of per-layer terms, AdamW acts per parameter, each MLP's initialisation is seeded by its
layer number, and a layer that has stopped no longer updates its best weights, so each MLP
ends as it would if trained alone. Early stopping is per layer (:func:`train_stacked`), on a
validation part split by group (:func:`split_by_group`); inputs and targets are standardised
with the training statistics (:func:`standardisers`).
:meth:`~w2s_lens.steering.l2s.steerer.L2SSteerer.fit` puts these together.

Example:
    >>> x, y = torch.randn(20, 4), torch.randn(20, 2, 3)
    >>> net = StackedMLP([0, 1], 4, 8, 3)
    >>> train_stacked(net, x, y, x[:0], y[:0], L2SConfig(epochs=2), torch.Generator(),
    ...               progress=False)["epochs_run"]
    2
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from w2s_lens.steering.l2s.config import L2SConfig
from w2s_lens.steering.l2s.network import StackedMLP

__all__ = ["split_by_group", "standardisers", "train_stacked"]


def split_by_group(groups: Sequence[str], val_fraction: float,
                   gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Row indices (train, val), whole groups on one side.

    Example:
        >>> groups = ["a", "a", "b", "b", "c"]
        >>> tr, va = split_by_group(groups, 0.4, torch.Generator().manual_seed(0))
        >>> len(tr) + len(va), {groups[i] for i in va} & {groups[i] for i in tr}
        (5, set())
    """
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


def train_stacked(net: StackedMLP, x_tr: Tensor, y_tr: Tensor, x_va: Tensor, y_va: Tensor,
                  cfg: L2SConfig, gen: torch.Generator, progress: bool) -> dict[str, Any]:
    """Train in place with per-layer early stopping; ``net`` ends with each layer's best.

    Returns the record kept in the steerer's metadata: ``epochs_run``, per layer
    ``best_epoch`` and ``stop_epoch``, and the ``train_loss``/``val_loss`` curves (epoch 0
    first; ``val_loss`` is ``None`` without validation rows).

    Example:
        >>> x, y = torch.randn(20, 4), torch.randn(20, 2, 3)
        >>> net = StackedMLP([0, 1], 4, 8, 3)
        >>> rec = train_stacked(net, x, y, x[:0], y[:0], L2SConfig(epochs=3), torch.Generator(),
        ...                     progress=False)
        >>> rec["epochs_run"], rec["best_epoch"], rec["val_loss"]
        (3, [3, 3], None)
    """
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


def standardisers(X: Float[Tensor, "n d_in"],
                  Y: Float[Tensor, "n layer d_out"]) -> dict[str, Tensor]:
    """Training statistics: per-feature input mean/std; per-layer target mean and one scale
    per layer (the RMS deviation from the mean, so directions are not distorted).

    Example:
        >>> st = standardisers(torch.randn(10, 4), torch.randn(10, 2, 3))
        >>> {k: tuple(v.shape) for k, v in st.items()}
        {'x_mean': (4,), 'x_std': (4,), 'y_mean': (2, 3), 'y_scale': (2,)}
    """
    x_mean, x_std = X.mean(0), X.std(0, unbiased=False)
    x_std = torch.where(x_std > 1e-6 * x_std.max().clamp_min(1e-30), x_std, 1.0)
    y_mean = Y.mean(0)
    y_scale = ((Y - y_mean) ** 2).mean(dim=(0, 2)).sqrt()
    y_scale = torch.where(y_scale > 0, y_scale, 1.0)
    return {"x_mean": x_mean, "x_std": x_std, "y_mean": y_mean, "y_scale": y_scale}
