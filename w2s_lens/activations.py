"""Residual-stream caching: one forward pass per prompt, every layer, chosen positions.

Prompts of different lengths are batched with right padding. Under causal attention a real
token never attends to the pads that follow it, and its position index is unchanged, so a
batched result equals the one-by-one result (up to float round-off). An explicit attention
mask is always passed, so TransformerLens never guesses padding from a pad-token id (which
may also occur inside a chat prompt, e.g. ``<|im_end|>``).

Only the requested positions are kept, so memory stays ``n × layers × d_model`` however
long the prompts are; prompts are processed in batches (streamed).

Example:
    >>> resid = cache_residuals(model, [[1, 2, 3], [4, 5]], layers=[0, 2],
    ...                         positions=[-1, -1])  # doctest: +SKIP
    >>> resid.shape  # [n_prompts, n_layers, d_model]  # doctest: +SKIP
    torch.Size([2, 2, 32])
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

__all__ = ["HOOKS", "hook_name", "pad_right", "cache_residuals", "batches"]

#: Residual-stream hook points a steering vector can be read from / added to.
HOOKS = ("resid_pre", "resid_mid", "resid_post")


def hook_name(layer: int, hook: str = "resid_pre") -> str:
    """The TransformerLens hook name for ``layer``.

    >>> hook_name(14)
    'blocks.14.hook_resid_pre'
    """
    if hook not in HOOKS:
        raise ValueError(f"hook must be one of {HOOKS}, got {hook!r}")
    return f"blocks.{int(layer)}.hook_{hook}"


def pad_right(
    token_seqs: Sequence[Sequence[int]], pad_id: int = 0
) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch pos"], Int[Tensor, " batch"]]:
    """Right-pad token sequences.

    Returns:
        tokens, attention_mask (1 for real tokens) and lengths.

    >>> t, m, n = pad_right([[5, 6, 7], [8]])
    >>> t.tolist(), m.tolist(), n.tolist()
    ([[5, 6, 7], [8, 0, 0]], [[1, 1, 1], [1, 0, 0]], [3, 1])
    """
    if len(token_seqs) == 0:
        raise ValueError("no token sequences given")
    lengths = torch.tensor([len(s) for s in token_seqs], dtype=torch.long)
    if int(lengths.min()) == 0:
        raise ValueError("an empty token sequence was given")
    width = int(lengths.max())
    tokens = torch.full((len(token_seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(token_seqs), width), dtype=torch.long)
    for i, seq in enumerate(token_seqs):
        tokens[i, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
        mask[i, : len(seq)] = 1
    return tokens, mask, lengths


def batches(n: int, batch_size: int) -> Iterator[range]:
    """Consecutive index ranges of at most ``batch_size`` covering ``range(n)``."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    for start in range(0, n, batch_size):
        yield range(start, min(n, start + batch_size))


def _absolute_positions(lengths: Tensor, positions: Sequence[int]) -> Tensor:
    pos = torch.as_tensor(list(positions), dtype=torch.long)
    pos = torch.where(pos < 0, lengths + pos, pos)
    if bool(((pos < 0) | (pos >= lengths)).any()):
        raise IndexError("a requested position lies outside its prompt")
    return pos


@torch.inference_mode()
def cache_residuals(
    model: HookedTransformer,
    token_seqs: Sequence[Sequence[int]],
    layers: Sequence[int],
    positions: Sequence[int],
    hook: str = "resid_pre",
    batch_size: int = 8,
    progress: bool = False,
) -> Float[Tensor, "n layer d_model"]:
    """Residual stream of each prompt at ``layers``, read at one position per prompt.

    Args:
        model: the HookedTransformer.
        token_seqs: one token-id sequence per prompt (BOS included if the model wants one).
        layers: layer indices to read.
        positions: one position per prompt; negative values count from that prompt's end.
        hook: ``"resid_pre"`` (default), ``"resid_mid"`` or ``"resid_post"``.
        batch_size: prompts per forward pass.
        progress: show a progress bar.

    Returns:
        float32 tensor ``[n_prompts, len(layers), d_model]`` on the CPU.
    """
    if len(positions) != len(token_seqs):
        raise ValueError("give exactly one position per prompt")
    layers = [int(x) for x in layers]
    for layer in layers:
        if not 0 <= layer < model.cfg.n_layers:
            raise ValueError(f"layer {layer} outside 0..{model.cfg.n_layers - 1}")
    names = [hook_name(layer, hook) for layer in layers]
    out = torch.empty((len(token_seqs), len(layers), model.cfg.d_model), dtype=torch.float32)
    stop = max(layers) + 1
    bar = tqdm(total=len(token_seqs), desc="residuals", unit="prompt", disable=not progress)
    # batch prompts of similar length together: less padding, same results
    order = sorted(range(len(token_seqs)), key=lambda i: len(token_seqs[i]))
    for span in batches(len(token_seqs), batch_size):
        idx = [order[k] for k in span]
        seqs = [token_seqs[i] for i in idx]
        tokens, mask, lengths = pad_right(seqs)
        pos = _absolute_positions(lengths, [positions[i] for i in idx])
        rows = torch.arange(len(idx))
        grabbed: dict[str, Tensor] = {}

        def grab(act: Tensor, hook, rows=rows, pos=pos, grabbed=grabbed) -> None:
            grabbed[hook.name] = act[rows, pos].detach().float().cpu()

        # stop_at_layer skips the blocks (and the unembedding) nobody reads; the hooks of
        # block `max(layers)` fire inside that block, so it still runs.
        stop_at = None if stop >= model.cfg.n_layers else stop
        with model.hooks(fwd_hooks=[(n, grab) for n in names]):
            model(
                tokens.to(model.cfg.device),
                attention_mask=mask.to(model.cfg.device),
                stop_at_layer=stop_at,
                return_type=None,
            )
        for j, name in enumerate(names):
            out[idx, j] = grabbed[name]
        bar.update(len(idx))
    bar.close()
    return out
