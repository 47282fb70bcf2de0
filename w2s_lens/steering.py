"""Adding a vector to the residual stream: the steering hook, as a context manager.

``steer(model, hook_name, vector)`` registers a forward hook on a TransformerLens hook point
that adds ``vector`` at the chosen positions, and returns a :class:`SteeringHandle`. Use it
as a context manager, or keep the handle and call ``.remove()`` yourself. Only this hook is
removed: hooks the user added stay in place.

Positions:
    * ``"from_last"`` (default): the last token of the prompt and every token after it.
    * ``"all"``: every position.
    * an ``int`` k: every position ``>= k``.

    Positions are absolute: the hook follows generation with a key/value cache (one new token
    per call after the prompt) and without one (each call one token longer than the last), so
    new tokens are steered as the positions say. Any other call starts a new prompt (so one
    handle can serve several prompts, one at a time). Batched prompts must be right-aligned
    to the same length for ``"from_last"`` to mean each prompt's last token.

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
        seq = output.shape[1]
        # Where does this call sit in the sequence? One token after earlier calls continues a
        # cached generation; a pass one token longer than the sequence so far continues an
        # uncached generation; anything else starts a new prompt.
        if state and seq == 1:
            offset = state["total"]
        elif state and seq == state["total"] + 1:
            offset = 0
        else:
            offset = 0
            state["prompt_last"] = seq - 1
        state["total"] = offset + seq
        if positions == "all":
            start = 0
        elif positions == "from_last":
            start = state["prompt_last"]
        else:
            start = int(positions)
        local = max(0, start - offset)
        if local >= seq:
            return output
        out = output.clone()
        out[:, local:] += vector.to(device=output.device, dtype=output.dtype)
        return out

    handle = model.hook_dict[hook_name].register_forward_hook(hook)
    return SteeringHandle(handle, hook_name)
