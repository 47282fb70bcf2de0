"""Adding a vector to the residual stream: the steering hook, as a context manager.

``steer(model, hook_name, vector)`` adds ``vector`` at a TransformerLens hook point through
TransformerLens's own bookkeeping (``HookPoint.add_hook``), so ``model.reset_hooks()`` removes
a steering hook that was never undone, and returns a :class:`SteeringHandle`. Use it as a
context manager, or keep the handle and call ``.remove()`` yourself (idempotent). Only this
hook is removed: hooks the user added stay in place.

Positions:
    * ``"from_last"`` (default): the last token of the prompt and every token after it.
    * ``"all"``: every position.
    * ``"prompt"``: the prompt only, up to and including its last token; tokens generated
      after it are not steered (they see the steered prompt through attention only). One pass
      over a prompt *and* a continuation is one prompt to the hook: give ``stop`` (the prompt's
      length) to leave the continuation unsteered.
    * an ``int`` k: every position ``>= k``.

    ``stop`` (an ``int``, optional) ends any of these: positions ``>= stop`` are not steered.

    Positions are absolute. Where a call sits in the sequence is read from the model's
    key/value cache (a cached generation step continues the prompt at the cache's length);
    without a cache, a call continues the previous one only if its input is the previous
    call's plus one token (an uncached generation step; a new prompt that happens to be the
    previous prompt plus one token is read as such a step too). Any other call starts a new prompt,
    so one handle can serve several prompts, one at a time. Batched prompts must be
    right-aligned to the same length for ``"from_last"`` and ``"prompt"`` to mean each
    prompt's last token.

Example:
    >>> with steer(model, "blocks.3.hook_resid_pre", 2.0 * v):  # doctest: +SKIP
    ...     logits = model(tokens)
    >>> handle = steer(model, "blocks.3.hook_resid_pre", v)  # doctest: +SKIP
    >>> model.reset_hooks()  # also removes the steering hook  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from w2s_lens.choices import POSITIONS, PositionsName

__all__ = ["Positions", "SteeringHandle", "steer"]

#: where to steer: a named position of :data:`w2s_lens.choices.POSITIONS`, or an ``int`` start
Positions = PositionsName | int


class _CallTracker:
    """Reads, before every pass through the first block, where the pass sits in the sequence.

    A forward pre-hook on ``model.blocks[0]``: it sees the block's ``past_kv_cache_entry`` (the
    number of cached positions) and its input residual, which the hook points do not, and it
    fires for ``model(...)``, ``run_with_hooks`` and ``model.generate`` alike (``generate``
    calls ``forward`` directly, past any hook on the model itself). It removes itself once its
    steering hook is gone, e.g. after ``model.reset_hooks()``.
    """

    def __init__(self, model: HookedTransformer, alive) -> None:
        self.alive = alive
        self.offset = 0
        self.prompt_last: int | None = None
        self._prev: Tensor | None = None
        self._handle = model.blocks[0].register_forward_pre_hook(self._pre, with_kwargs=True)

    def _pre(self, module: Any, args: tuple, kwargs: dict) -> None:
        if not self.alive():
            self.remove()
            return
        resid = args[0] if args else kwargs["resid_pre"]
        entry = kwargs.get("past_kv_cache_entry")
        cached = 0 if entry is None else int(entry.past_keys.shape[1])
        seq = int(resid.shape[1])
        prev = self._prev
        if cached > 0 and self.prompt_last is not None:
            self.offset = cached  # a cached generation step
        elif (cached == 0 and prev is not None and prev.shape[0] == resid.shape[0]
              and seq == prev.shape[1] + 1 and torch.equal(resid[:, :-1], prev)):
            self.offset = 0  # an uncached generation step: the same sequence plus one token
        else:
            self.offset = cached
            self.prompt_last = cached + seq - 1
        self._prev = resid.detach() if cached == 0 else None

    def remove(self) -> None:
        self._handle.remove()


class SteeringHandle:
    """A registered steering hook; ``remove()`` undoes it (idempotent).

    Example:
        >>> h = steer(model, "blocks.0.hook_resid_pre", v)  # doctest: +SKIP
        >>> h.remove(); h.active  # doctest: +SKIP
        False
    """

    def __init__(self, model: HookedTransformer, hook_name: str, fn, tracker: _CallTracker) -> None:
        self._model = model
        self._fn = fn
        self._tracker = tracker
        self.hook_name = hook_name

    @property
    def active(self) -> bool:
        """Whether the hook is still registered (False after remove() or reset_hooks())."""
        point = self._model.hook_dict[self.hook_name]
        return any(h.user_hook is self._fn for h in point.fwd_hooks)

    def remove(self) -> None:
        """Remove the hook. Calling it twice is harmless."""
        point = self._model.hook_dict[self.hook_name]
        keep = []
        for h in point.fwd_hooks:
            if h.user_hook is self._fn:
                h.hook.remove()
            else:
                keep.append(h)
        point.fwd_hooks = keep
        self._tracker.remove()

    def __enter__(self) -> SteeringHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def _check_positions(positions: Positions, stop: int | None) -> None:
    if isinstance(positions, bool) or not (
        positions in POSITIONS or isinstance(positions, int)
    ):
        raise ValueError(f"positions must be one of {POSITIONS} or an int, got "
                         f"{positions!r}")
    if stop is not None and (isinstance(stop, bool) or not isinstance(stop, int) or stop < 0):
        raise ValueError(f"stop must be a non-negative int or None, got {stop!r}")


def steer(
    model: HookedTransformer,
    hook_name: str,
    vector: Float[Tensor, " d_model"],
    positions: Positions = "from_last",
    stop: int | None = None,
) -> SteeringHandle:
    """Add ``vector`` to the activation at ``hook_name`` (already multiplied by the caller).

    Args:
        model: the HookedTransformer.
        hook_name: e.g. ``"blocks.14.hook_resid_pre"``.
        vector: ``[d_model]``, the exact vector to add.
        positions: ``"from_last"``, ``"all"``, ``"prompt"`` or a start index (see the module
            docstring).
        stop: if given, positions ``>= stop`` (absolute) are never steered, e.g. the
            continuation tokens of a prompt scored in the same pass.

    Returns:
        a :class:`SteeringHandle` (a context manager).

    Example:
        >>> with steer(model, "blocks.2.hook_resid_pre", torch.ones(32)):  # doctest: +SKIP
        ...     steered = model(tokens)
        >>> # the 5-token prompt only, not the continuation scored after it
        >>> with steer(model, "blocks.2.hook_resid_pre", v, "prompt", stop=5):  # doctest: +SKIP
        ...     logits = model(prompt_and_continuation)
    """
    _check_positions(positions, stop)
    if hook_name not in model.hook_dict:
        raise KeyError(f"{hook_name!r} is not a hook point of this model")
    if vector.ndim != 1 or vector.shape[0] != model.cfg.d_model:
        raise ValueError(
            f"vector must have shape [{model.cfg.d_model}], got {tuple(vector.shape)}"
        )
    point = model.hook_dict[hook_name]
    fn_ref: list[Any] = []
    tracker = _CallTracker(model, lambda: any(h.user_hook is fn_ref[0] for h in point.fwd_hooks))

    def steering_hook(output: Tensor, hook) -> Tensor:
        seq = output.shape[1]
        offset = tracker.offset
        last = tracker.prompt_last if tracker.prompt_last is not None else offset + seq - 1
        end = offset + seq  # absolute, exclusive
        if positions in ("all", "prompt"):
            begin = 0
        elif positions == "from_last":
            begin = last
        else:
            begin = int(positions)
        if positions == "prompt":
            end = min(end, last + 1)
        if stop is not None:
            end = min(end, stop)
        lo, hi = max(0, begin - offset), end - offset
        if lo >= hi:
            return output
        out = output.clone()
        out[:, lo:hi] += vector.to(device=output.device, dtype=output.dtype)
        return out

    fn_ref.append(steering_hook)
    point.add_hook(steering_hook, dir="fwd")
    return SteeringHandle(model, hook_name, steering_hook, tracker)
