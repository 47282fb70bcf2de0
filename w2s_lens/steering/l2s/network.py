"""The L2S networks and their files.

One ``Linear -> ReLU -> Linear`` network per steered layer, evaluated as one batched op
(:class:`StackedMLP`), on the finite float32 tensors of :func:`as_tensor`. Files (written and
read here, for :class:`~w2s_lens.steering.l2s.steerer.L2SSteerer`): ``l2s.safetensors`` (the
stacked weights ``[L, ...]``, input mean/std, target mean and scale: :data:`TENSOR_KEYS`) and
``l2s.json`` (model, hook, input_layer, layers, dataset, config, sizes, loss curves, best
epochs, format version and library versions); loading executes no code. ``l2s.json`` is sealed
(:func:`w2s_lens.artifacts.seals.seal`): :func:`read_networks` refuses a damaged or edited pair and
non-finite weights, naming the file. Neither file records a module or class path, so files
written before the L2S modules moved load unchanged.

Example:
    >>> net = StackedMLP([3, 5], d_in=8, hidden=16, d_out=4)
    >>> net(torch.randn(10, 8)).shape  # [n, layer, d_out]; 0 until trained
    torch.Size([10, 2, 4])
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor, nn
from transformer_lens import HookedTransformer

from w2s_lens.artifacts.json_files import read_json, write_json
from w2s_lens.artifacts.provenance import ArtifactMismatch, check_format, check_metadata, stamp
from w2s_lens.artifacts.seals import INTEGRITY_KEY, check_seal, seal
from w2s_lens.artifacts.tensors import load_tensors, save_tensors
from w2s_lens.steering.vectors import check_values, model_name, shareable_paths

__all__ = ["META_FILE", "STAT_KEYS", "TENSOR_KEYS", "WEIGHTS_FILE", "StackedMLP", "as_tensor",
           "check_model_matches", "read_networks", "write_networks"]

WEIGHTS_FILE = "l2s.safetensors"
META_FILE = "l2s.json"
#: The training statistics stored beside the weights (input mean/std, target mean and scale).
STAT_KEYS = ("x_mean", "x_std", "y_mean", "y_scale")
TENSOR_KEYS = ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", *STAT_KEYS)
REDO = ("retrain with w2s_lens.steering.l2s.steerer.train_l2s (or rerun the evaluation that "
        "made it)")


class StackedMLP(nn.Module):
    """L independent ``Linear -> ReLU -> Linear`` networks, evaluated as one batched op.

    The output layer starts at zero, so the untrained networks predict 0 (in standardised
    units: the training mean of the targets, i.e. CAA). Each network's first layer is seeded
    by its layer number, so it starts the same alone or next to others.

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


def check_model_matches(meta: dict[str, Any], model: HookedTransformer) -> None:
    """Refuse another model than the networks' (by name, when one was recorded) or another
    width (:class:`~w2s_lens.artifacts.provenance.ArtifactMismatch`)."""
    expect: dict[str, Any] = {}
    if meta.get("model") is not None:
        expect["model"] = model_name(model)
    expect["d_model"] = model.cfg.d_model
    check_metadata(meta, expect, what="L2S networks")


def write_networks(directory: str | os.PathLike, net: StackedMLP, stats: dict[str, Tensor],
                   metadata: dict[str, Any]) -> Path:
    """Write ``l2s.safetensors`` (the weights of ``net`` and the training ``stats``) and the
    sealed ``l2s.json`` (``metadata``, stamped) into ``directory``; returns it.

    Example:
        >>> write_networks("runs/r/l2s", net, stats, steerer.metadata)  # doctest: +SKIP
    """
    directory = Path(directory)
    tensors = {**{k: v.detach() for k, v in net.tensors().items()}, **stats}
    save_tensors(directory / WEIGHTS_FILE, tensors,
                 metadata={"model": str(metadata.get("model")), "hook": str(metadata["hook"])})
    meta = stamp(shareable_paths(metadata))
    write_json(directory / META_FILE, seal(meta, directory, [WEIGHTS_FILE]))
    return directory


def read_networks(directory: str | os.PathLike, model: HookedTransformer | None = None,
                  hook: str | None = None, layers: Sequence[int] | None = None
                  ) -> tuple[dict[str, Any], StackedMLP, dict[str, Tensor]]:
    """``(metadata, network, training statistics)`` read from ``directory``; refuses another
    model, hook or layer set when given, and a damaged or edited file or non-finite weights
    (:class:`~w2s_lens.artifacts.provenance.ArtifactMismatch` naming the file).

    Example:
        >>> meta, net, stats = read_networks("runs/r/l2s", model=model)  # doctest: +SKIP
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
        check_model_matches(meta, model)
    tensors = load_tensors(directory / WEIGHTS_FILE)
    missing = [k for k in TENSOR_KEYS if k not in tensors]
    if missing:
        raise ArtifactMismatch(f"{directory / WEIGHTS_FILE} lacks tensors {missing}")
    check_values(torch.cat([tensors[k].flatten().float() for k in TENSOR_KEYS]),
                 directory / WEIGHTS_FILE, redo=REDO)
    return meta, StackedMLP.from_tensors(tensors), {k: tensors[k] for k in STAT_KEYS}
