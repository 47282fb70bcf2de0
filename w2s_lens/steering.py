"""Adding a vector to the residual stream: the steering hook, as a context manager.

``steer(model, hook_name, vector)`` registers a forward hook on a TransformerLens hook point
that adds ``vector`` at the chosen positions, and returns a :class:`SteeringHandle`. Use it
as a context manager, or keep the handle and call ``.remove()`` yourself. Only this hook is
removed: hooks the user added stay in place.

Positions:
    * ``"from_last"`` (default): the last token of the prompt and every token after it. On the
      first call (the prompt pass) the hook remembers where the prompt ends; later calls with
      one new token at a time (generation with a key/value cache) are steered too, and later
      full-sequence calls (generation without a cache) are steered from the remembered index.
    * ``"all"``: every position.
    * an ``int`` k: every position ``>= k``.

Example:
    >>> with steer(model, "blocks.3.hook_resid_pre", 2.0 * v):  # doctest: +SKIP
    ...     logits = model(tokens)
"""

from __future__ import annotations

from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

__all__ = ["Positions", "SteeringHandle", "steer"]

Positions = Literal["from_last", "all"] | int


class SteeringHandle:
    """A registered steering hook; ``remove()`` undoes it (idempotent)."""

    def __init__(self, handle: torch.utils.hooks.RemovableHandle, hook_name: str) -> None:
        self._handle = handle
        self.hook_name = hook_name
        self.active = True

    def remove(self) -> None:
        """Remove the hook. Calling it twice is harmless."""
        if self.active:
            self._handle.remove()
            self.active = False

    def __enter__(self) -> SteeringHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def _check_positions(positions: Positions) -> None:
    if isinstance(positions, bool) or not (
        positions in ("from_last", "all") or isinstance(positions, int)
    ):
        raise ValueError(f"positions must be 'from_last', 'all' or an int, got {positions!r}")


def steer(
    model: HookedTransformer,
    hook_name: str,
    vector: Float[Tensor, " d_model"],
    positions: Positions = "from_last",
) -> SteeringHandle:
    """Add ``vector`` to the activation at ``hook_name`` (already multiplied by the caller).

    Args:
        model: the HookedTransformer.
        hook_name: e.g. ``"blocks.14.hook_resid_pre"``.
        vector: ``[d_model]``, the exact vector to add.
        positions: ``"from_last"``, ``"all"`` or a start index (see the module docstring).

    Returns:
        a :class:`SteeringHandle` (a context manager).
    """
    _check_positions(positions)
    if hook_name not in model.hook_dict:
        raise KeyError(f"{hook_name!r} is not a hook point of this model")
    if vector.ndim != 1 or vector.shape[0] != model.cfg.d_model:
        raise ValueError(
            f"vector must have shape [{model.cfg.d_model}], got {tuple(vector.shape)}"
        )
    state: dict[str, int] = {}

    def hook(module, inputs, output: Tensor) -> Tensor:
        vec = vector.to(device=output.device, dtype=output.dtype)
        seq = output.shape[1]
        if positions == "all":
            start = 0
        elif positions == "from_last":
            if "start" not in state:
                state["start"] = seq - 1
                start = seq - 1
            else:
                # one token at a time (cached generation) is always past the prompt
                start = 0 if seq == 1 else state["start"]
        else:
            start = int(positions)
        if start >= seq:
            return output
        out = output.clone()
        out[:, start:] += vec
        return out

    handle = model.hook_dict[hook_name].register_forward_hook(hook)
    return SteeringHandle(handle, hook_name)
