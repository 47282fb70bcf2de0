"""The numerics of an L2S steerer: the stacked per-layer MLPs and their training loop.

The MLPs of all steered layers are trained together as one stacked network
(:class:`StackedMLP`), but they do not interact: the loss is a sum of per-layer terms, AdamW
acts per parameter, each MLP's initialisation is seeded by its layer number, and a layer that
has stopped no longer updates its best weights, so each MLP ends as it would if trained alone.
Early stopping is per layer (:func:`train_stacked`), on a validation part split by group
(:func:`split_by_group`); inputs and targets are standardised with the training statistics
(:func:`standardisers`). :class:`~w2s_lens.steering.l2s_steerer.L2SSteerer` puts these together.

Example:
    >>> net = StackedMLP([3, 5], d_in=8, hidden=16, d_out=4)
    >>> net(torch.randn(10, 8)).shape  # [n, layer, d_out]; 0 until trained
    torch.Size([10, 2, 4])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor, nn
from tqdm.auto import tqdm

from w2s_lens.steering.l2s_config import L2SConfig

__all__ = ["StackedMLP", "as_tensor", "split_by_group", "standardisers", "train_stacked"]


class StackedMLP(nn.Module):
    """L independent ``Linear -> ReLU -> Linear`` networks, evaluated as one batched op.

    The output layer starts at zero, so the untrained networks predict 0 (in standardised
    units: the training mean of the targets, i.e. CAA).

    Example:
        >>> net = StackedMLP([3, 5], d_in=8, hidden=16, d_out=4)
        >>> sorted(net.tensors()), bool(net(torch.randn(2, 8)).eq(0).all())
        (['fc1.bias', 'fc1.weight', 'fc2.bias', 'fc2.weight'], True)
    """

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
    def from_tensors(cls, tensors: dict[str, Tensor]) -> StackedMLP:
        """A network holding ``tensors`` (as :meth:`tensors` returns them)."""
        n_layers, d_in, hidden = tensors["fc1.weight"].shape
        net = cls(range(n_layers), d_in, hidden, tensors["fc2.weight"].shape[2])
        with torch.no_grad():
            for key, value in net.tensors().items():
                value.copy_(tensors[key])
        return net

    def tensors(self) -> dict[str, Tensor]:
        """The parameters under their file names (``fc1.weight`` ...), stacked ``[L, ...]``."""
        return {"fc1.weight": self.fc1_weight, "fc1.bias": self.fc1_bias,
                "fc2.weight": self.fc2_weight, "fc2.bias": self.fc2_bias}


def as_tensor(x: Any, what: str, ndim: int) -> Tensor:
    """``x`` as a finite float32 CPU tensor of ``ndim`` dimensions; errors name ``what``.

    Example:
        >>> as_tensor([[1, 2]], "X", 2).dtype
        torch.float32
        >>> as_tensor([1.0], "X", 2)
        Traceback (most recent call last):
        ...
        ValueError: X must have 2 dimensions, got shape (1,)
    """
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x).detach()
    t = t.float().cpu()
    if t.ndim != ndim:
        raise ValueError(f"{what} must have {ndim} dimensions, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{what} contains NaN or infinite values")
    return t


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
