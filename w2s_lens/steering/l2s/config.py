"""The hyper-parameters of an L2S steerer (:mod:`w2s_lens.steering.l2s`), checked on creation.

Example:
    >>> L2SConfig(hidden=64, epochs=50).hidden
    64
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["L2SConfig"]


@dataclass(frozen=True)
class L2SConfig:
    """Hyper-parameters of :class:`~w2s_lens.steering.l2s.steerer.L2SSteerer` (checked at
    construction).

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
