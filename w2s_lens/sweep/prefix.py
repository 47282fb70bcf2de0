"""Unsteered prefixes, computed once per item: keys and values every steered row attends to.

Steering from a presentation's last prompt token ``s`` on, its prefix ``tokens[:s]`` is the
same in every steered run. The two letter orders of an item (examples
with the same ``unit``) share much more: everything up to the ``Choices:`` block. So
:func:`build_contexts` groups a chunk's presentations by unit, runs the *longest common
prefix* of the group once, then only each presentation's remainder (attending to the shared
keys and values), and returns per presentation and block its keys (rotated) and values
``[n_kv_heads, s, d_head]``. A presentation alone in its unit is its own shared prefix.

:func:`forward_rows` runs token rows through blocks
(:func:`~w2s_lens.sweep.attention.block_step`), attending to such contexts, and keeps what
the caller asks for (keys and values, or the residual stream entering chosen blocks).

When the prefix itself is to be steered (steering every prompt position),
:func:`prefix_states` runs each presentation's prefix alone (nothing shared: each will be
steered with its own vector) and keeps, besides its unsteered keys and values, the residual
stream entering the blocks where steered runs start.

Example:
    >>> kv = build_contexts(model, [(1, 2, 3, 4), (1, 2, 9)], ["u", "u"])  # doctest: +SKIP
    >>> kv[0][5][0].shape  # presentation 0, block 5: keys [n_kv_heads, 4, d_head]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from w2s_lens.steering.activations import pad_right
from w2s_lens.sweep.attention import KV, block_step, embed_rows

__all__ = ["build_contexts", "common_prefix_length", "forward_rows", "prefix_states",
           "row_positions"]


def common_prefix_length(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest common prefix of ``seqs``.

    Example:
        >>> common_prefix_length([(1, 2, 3), (1, 2, 4, 5)]), common_prefix_length([(1,), ()])
        (2, 0)
    """
    if not seqs:
        return 0
    n = min(len(s) for s in seqs)
    first = seqs[0]
    for j in range(n):
        if any(s[j] != first[j] for s in seqs[1:]):
            return j
    return n


def row_positions(starts: Sequence[int], width: int, device) -> Tensor:
    """Absolute positions ``[rows, width]`` of rows whose first token is at ``starts[r]``.

    Example:
        >>> row_positions([0, 3], 2, "cpu").tolist()
        [[0, 1], [3, 4]]
    """
    return torch.tensor(list(starts), device=device)[:, None] + torch.arange(width, device=device)


def forward_rows(
    model: HookedTransformer,
    tokens: Tensor,
    pos: Tensor,
    valid: Tensor,
    ctx_of_block: Callable[[int], Sequence[KV]],
    groups: Sequence[Tensor],
    n_blocks: int,
    want_kv: bool = False,
    grab: Sequence[int] = (),
    steer: Callable[[int, Tensor], Tensor] | None = None,
) -> tuple[list[KV], dict[int, Tensor]]:
    """Run token rows through blocks ``0..n_blocks-1`` (unsteered unless ``steer`` is given).

    Args:
        model: the HookedTransformer.
        tokens, pos, valid: ``[rows, width]`` token ids, absolute positions, False at padding.
        ctx_of_block: block -> the contexts' keys and values (``groups[g]`` attends to ``g``).
        groups: row indices per context.
        n_blocks: how many blocks to run.
        want_kv: keep each block's keys and values ``[rows, width, n_kv, d_head]``.
        grab: keep the residual stream entering these blocks ``[rows, width, d_model]``
            (``n_blocks``: the residual after the last block run).
        steer: ``(block, resid_pre) -> resid_pre`` applied before each block (before
            ``grab`` records it), e.g. adding ``α · v`` with ``α`` a tensor that requires
            grad (:mod:`w2s_lens.sweep.first_order`). Nothing here is in-place or under
            ``inference_mode``, so gradients flow when the caller enables them.

    Returns:
        ``(per-block keys and values or [], {block: resid_pre})``.

    Example:
        >>> _, got = forward_rows(model, toks, pos, valid, lambda b: [], [], 4,
        ...                       grab=[4])  # doctest: +SKIP
        >>> got[4].shape  # the residual after block 3: [rows, width, d_model]  # doctest: +SKIP
    """
    resid = embed_rows(model, tokens, pos)
    kvs: list[KV] = []
    grabbed: dict[int, Tensor] = {}
    for b in range(n_blocks):
        if steer is not None:
            resid = steer(b, resid)
        if b in grab:
            grabbed[b] = resid
        resid, kv = block_step(model, b, resid, pos, valid, ctx_of_block(b), groups, want_kv)
        if kv is not None:
            kvs.append(kv)
    if n_blocks in grab:
        grabbed[n_blocks] = resid
    return kvs, grabbed


def _heads_first(x: Tensor) -> Tensor:
    """``[P, n_kv, d]`` -> ``[n_kv, P, d]``, contiguous."""
    return x.transpose(0, 1).contiguous()


def build_contexts(
    model: HookedTransformer, prefixes: Sequence[Sequence[int]], units: Sequence[str]
) -> list[list[KV]]:
    """Keys and values of every presentation's unsteered prefix, per block, sharing each unit's
    longest common prefix.

    Args:
        model: the HookedTransformer.
        prefixes: per presentation, its tokens before the steering start (may be empty).
        units: per presentation, its item (presentations of one unit share their common
            prefix's computation).

    Returns:
        ``[presentation][block] -> (keys, values)``, each ``[n_kv_heads, len(prefix), d_head]``
        (keys rotated for rotary models).

    Example:
        >>> kv = build_contexts(model, [(1, 2, 3), (1, 2)], ["u", "u"])  # doctest: +SKIP
        >>> [kv[i][0][0].shape[1] for i in range(2)]  # doctest: +SKIP
        [3, 2]
    """
    device = model.cfg.device
    n_blocks = model.cfg.n_layers
    order: dict[str, list[int]] = {}
    for i, u in enumerate(units):
        order.setdefault(u, []).append(i)
    members = list(order.values())
    shared = [common_prefix_length([prefixes[i] for i in m]) for m in members]
    empty = _empty_kv(model)
    shared_kv: list[list[KV]] = [[empty] * n_blocks for _ in members]
    run = [g for g, c in enumerate(shared) if c > 0]
    if run:
        toks, mask, _ = pad_right([tuple(prefixes[members[g][0]][: shared[g]]) for g in run])
        kvs, _ = forward_rows(model, toks.to(device), row_positions([0] * len(run),
                              toks.shape[1], device), mask.bool().to(device),
                              lambda b: (), (), n_blocks, want_kv=True)
        for r, g in enumerate(run):
            shared_kv[g] = [(_heads_first(k[r, : shared[g]]), _heads_first(v[r, : shared[g]]))
                            for k, v in kvs]
    out: list[list[KV]] = [[] for _ in prefixes]
    rest = []  # (presentation, group) with tokens after the shared part
    for g, m in enumerate(members):
        for i in m:
            if len(prefixes[i]) > shared[g]:
                rest.append((i, g))
            else:
                out[i] = shared_kv[g]
    if not rest:
        return out
    toks, mask, _ = pad_right([tuple(prefixes[i][shared[g]:]) for i, g in rest])
    ctx_groups = sorted({g for _, g in rest if shared[g] > 0})
    rows = [torch.tensor([r for r, (_, g) in enumerate(rest) if g == cg], device=device)
            for cg in ctx_groups]
    kvs, _ = forward_rows(model, toks.to(device),
                          row_positions([shared[g] for _, g in rest], toks.shape[1], device),
                          mask.bool().to(device),
                          lambda b: [shared_kv[g][b] for g in ctx_groups], rows, n_blocks,
                          want_kv=True)
    for r, (i, g) in enumerate(rest):
        n = len(prefixes[i]) - shared[g]
        out[i] = [(torch.cat([shared_kv[g][b][0], _heads_first(k[r, :n])], dim=1),
                   torch.cat([shared_kv[g][b][1], _heads_first(v[r, :n])], dim=1))
                  for b, (k, v) in enumerate(kvs)]
    return out


def prefix_states(
    model: HookedTransformer, prefixes: Sequence[Sequence[int]], grab: Sequence[int]
) -> tuple[list[list[KV]], dict[int, Float[Tensor, "n width d_model"]], list[int]]:
    """Unsteered keys and values of every presentation's prefix (as :func:`build_contexts`,
    without sharing), and the residual stream entering each block of ``grab``.

    Args:
        model: the HookedTransformer.
        prefixes: per presentation, its tokens before the rows' start (may be empty).
        grab: blocks whose input residual stream is kept.

    Returns:
        ``(kv, resid, lengths)``: ``kv[presentation][block]`` keys and values
        ``[n_kv_heads, len(prefix), d_head]``; ``resid[block]`` ``[n, width, d_model]``, right
        padded to the longest prefix (width at least 1: the padding of an empty prefix is never
        attended to); ``lengths`` the prefixes' token counts.

    Example:
        >>> kv, resid, lengths = prefix_states(model, [(1, 2, 3), (4,)], [2])  # doctest: +SKIP
        >>> resid[2].shape, lengths  # doctest: +SKIP
        (torch.Size([2, 3, 896]), [3, 1])
    """
    device = model.cfg.device
    lengths = [len(p) for p in prefixes]
    width = max(max(lengths, default=0), 1)
    tokens = torch.zeros((len(prefixes), width), dtype=torch.long)
    for r, p in enumerate(prefixes):
        tokens[r, : len(p)] = torch.as_tensor(list(p), dtype=torch.long)
    valid = torch.arange(width)[None] < torch.tensor(lengths)[:, None]
    kvs, resid = forward_rows(model, tokens.to(device),
                              row_positions([0] * len(prefixes), width, device),
                              valid.to(device), lambda b: (), (), model.cfg.n_layers,
                              want_kv=True, grab=grab)
    kv = [[(_heads_first(k[r, :n]), _heads_first(v[r, :n])) for k, v in kvs]
          for r, n in enumerate(lengths)]
    return kv, resid, lengths


def _empty_kv(model: HookedTransformer) -> KV:
    cfg = model.cfg
    n_kv = getattr(cfg, "n_key_value_heads", None) or cfg.n_heads
    z = torch.zeros((n_kv, 0, cfg.d_head), dtype=cfg.dtype, device=cfg.device)
    return z, z
