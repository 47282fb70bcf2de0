"""The fast engine's steered runs: (example, layer) units run from their layer to the end.

:func:`w2s_lens.sweep.engines.fast_chunk` records each example's unsteered residual stream at
every swept layer, then hands :class:`SteeredRuns` the batches of (example, layer) units. Each
unit's rows (one per multiplier and suffix row) restart from the recorded residual at their
layer plus ``λ · v``, join the batch at that layer's block, and attend to their example's
prefix keys and values, shared by all its rows (:mod:`w2s_lens.sweep.attention`). When the
prompt is steered too (positions ``"all"`` or ``"prompt"``), :class:`SteeredPrefix` holds the
prefixes' unsteered residuals and :class:`PrefixRows` runs one steered prefix row per (unit,
multiplier) beside the suffix rows, a block at a time. Internal to the fast engine; its tests
are the engine's (``tests/sweep/test_engines.py``, ``tests/sweep/test_prompt_only.py``).

Example:
    >>> run = SteeredRuns(model, layers, mults, [0, 1], vecs, grabbed, ctx, plans, first_row,
    ...                   starts, valid, spans)  # doctest: +SKIP
    >>> run.batch([(0, 0), (0, 1)], out)  # fills out[0, :2]  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from transformer_lens import HookedTransformer

from w2s_lens.sweep.attention import KV, block_step
from w2s_lens.sweep.prefix import row_positions
from w2s_lens.sweep.readouts import ReadPlan, plan_propensity

__all__ = ["PrefixRows", "SteeredPrefix", "SteeredRuns", "shift_terms"]


def shift_terms(plan: ReadPlan, row0: int) -> list[tuple[int, int, int, float]]:
    """``plan``'s readout terms with their rows counted from ``row0`` (where the plan's first
    row sits in a batch)."""
    return [(row0 + r, p, t, w) for r, p, t, w in plan.terms]


@dataclass(frozen=True)
class SteeredPrefix:
    """Steered prefixes (positions ``"all"`` or ``"prompt"``): each example's unsteered
    residual stream entering the swept blocks ``[n, width, d_model]`` and its prefix length."""

    resid: dict[int, Tensor]
    lengths: list[int]


class SteeredRuns:
    """The steered runs of a chunk: everything a batch of (example, layer) units needs."""

    def __init__(self, model: HookedTransformer, layers: list[int], mults: Tensor,
                 mult_index: list[int], vectors: Tensor, grabbed: dict[int, Tensor],
                 ctx: list[list[KV]], plans: list[ReadPlan], first_row: list[int],
                 starts: list[int], valid: Tensor, spans: list[int | None],
                 prefix: SteeredPrefix | None = None) -> None:
        self.model, self.layers, self.mults, self.vectors = model, layers, mults, vectors
        self.mult_index = mult_index  # column of out for each of ``mults``
        self.grabbed, self.ctx, self.plans, self.first_row = grabbed, ctx, plans, first_row
        self.starts, self.valid, self.spans, self.prefix = starts, valid, spans, prefix

    def batch(self, batch: list[tuple[int, int]], out: np.ndarray) -> None:
        """Run one batch of (example, layer) units from their layers to the end; fill ``out``.

        Rows join at their own layer's block; every row of example i attends to its prefix's
        keys and values (shared, not copied per row). A steered prefix (``self.prefix``) runs
        as one row per (unit, multiplier) beside the suffix rows, and the suffix rows attend
        to the keys and values it has at each block.
        """
        model, device = self.model, self.model.cfg.device
        n_mult = self.mults.shape[0]
        # pad this batch's rows to its own longest suffix row, not the chunk's
        width = max(len(r) for i, _ in batch for r in self.plans[i].suffixes)
        pre = PrefixRows(self.prefix, [i for i, _ in batch], device) if self.prefix else None
        by_layer: dict[int, list[tuple[int, int]]] = {}
        for i, j in batch:
            by_layer.setdefault(self.layers[j], []).append((i, j))
        parts: list[tuple[Tensor, Tensor]] = []
        rows_ex: list[int] = []
        groups: list[list[tuple[int, int, int, float]]] = []
        where: list[tuple[int, int, int]] = []
        residual = valid = pos = None
        members: list[int] = []
        index: list[Tensor] = []
        for b in range(min(by_layer), model.cfg.n_layers):
            joining = by_layer.get(b, [])
            for i, j in joining:
                n_rows = len(self.plans[i].suffixes)
                lo = self.first_row[i]
                base = self.grabbed[b][lo : lo + n_rows, :width]  # [r, S, d]
                vec = self.vectors[i, j].to(device, base.dtype)
                if self.spans[i] is not None:  # the prompt only: not its continuation tokens
                    on = torch.arange(width, device=device) < self.spans[i]
                    vec = vec * on[:, None].to(base.dtype)  # [S, d]
                new = (base[None] + self.mults[:, None, None, None] * vec).reshape(
                    n_mult * n_rows, *base.shape[1:])  # rows ordered (multiplier, suffix row)
                m = self.valid[lo : lo + n_rows, :width][None].expand(n_mult, -1, -1)
                parts.append((new, m.reshape(n_mult * n_rows, width)))
                if pre is not None:
                    pre.join(i, b, self.mults, self.vectors[i, j], n_rows)
                for k in range(n_mult):
                    groups.append(shift_terms(self.plans[i], len(rows_ex) + k * n_rows))
                    where.append((i, j, self.mult_index[k]))
                rows_ex.extend([i] * (n_mult * n_rows))
            if joining:
                old = [] if residual is None else [(residual, valid)]
                residual = torch.cat([x for x, _ in old + parts])
                valid = torch.cat([m for _, m in old + parts])
                parts = []
                pos = row_positions([self.starts[i] for i in rows_ex], width, device)
                row_t = torch.tensor(rows_ex, device=device)
                members = sorted(set(rows_ex))
                index = [torch.nonzero(row_t == i).flatten() for i in members]
            if pre is None:
                residual, _ = block_step(model, b, residual, pos, valid,
                                         [self.ctx[i][b] for i in members], index)
            else:
                ctx, attending = pre.step(model, b)
                residual, _ = block_step(model, b, residual, pos, valid, ctx, attending)
        props = plan_propensity(model, residual, groups).double().cpu().numpy()
        for (i, j, k), v in zip(where, props):
            out[i, j, k] = v


class PrefixRows:
    """The steered prefix rows of one batch: one per joined (unit, multiplier), in the order
    the suffix rows join (multiplier-major within a unit, like them), run a block at a time
    before the suffix rows that attend to them."""

    def __init__(self, prefix: SteeredPrefix, examples: list[int], device) -> None:
        self.prefix, self.device = prefix, device
        self.width = max(max(prefix.lengths[i] for i in examples), 1)
        self.parts: list[tuple[Tensor, Tensor]] = []
        self.lengths: list[int] = []
        self.owner: list[int] = []  # per suffix row (in joining order), its prefix row
        self.resid: Tensor | None = None
        self.valid: Tensor | None = None
        self.groups: list[Tensor] = []
        self.pos: Tensor | None = None

    def join(self, i: int, block: int, mults: Tensor, vec: Tensor, n_rows: int) -> None:
        """Add example ``i``'s prefix, steered at ``block`` with ``mults · vec`` (every prefix
        token is a prompt token), for a unit whose ``n_rows`` suffix rows per multiplier join
        the batch at the same block."""
        n = self.prefix.lengths[i]
        base = self.prefix.resid[block][i, : self.width]  # [W, d]
        vec = vec.to(self.device, base.dtype)
        self.parts.append((base[None] + mults[:, None, None] * vec,
                           (torch.arange(self.width, device=self.device) < n)[None]
                           .expand(mults.shape[0], -1)))
        first = len(self.lengths)
        for k in range(mults.shape[0]):
            self.owner.extend([first + k] * n_rows)
        self.lengths.extend([n] * mults.shape[0])
        self.groups = []

    def step(self, model: HookedTransformer, block: int) -> tuple[list[KV], list[Tensor]]:
        """Run the prefix rows through ``block``; return each one's keys and values there
        and the suffix rows that attend to it."""
        if self.parts:
            old = [] if self.resid is None else [(self.resid, self.valid)]
            self.resid = torch.cat([x for x, _ in old + self.parts])
            self.valid = torch.cat([m for _, m in old + self.parts])
            self.parts = []
        if not self.groups:  # rows joined since the last block: regroup, new positions
            owner = torch.tensor(self.owner, device=self.device)
            self.groups = [torch.nonzero(owner == g).flatten() for g in range(len(self.lengths))]
            self.pos = row_positions([0] * len(self.lengths), self.width, self.device)
        self.resid, kv = block_step(model, block, self.resid, self.pos, self.valid, want_kv=True)
        keys, values = kv
        ctx = [(keys[g, :n].transpose(0, 1), values[g, :n].transpose(0, 1))
               for g, n in enumerate(self.lengths)]
        return ctx, self.groups
