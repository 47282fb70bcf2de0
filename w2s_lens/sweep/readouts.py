"""Readouts: how much more the model prefers the matching answer, from its final residuals.

Propensity is a sum of weighted answer-token log-probabilities,

    propensity = Σ_j log p(m_j | ...) / k_m  −  Σ_j log p(n_j | ...) / k_n

over the matching continuation ``m`` (k_m tokens) and the non-matching one ``n``; the
``scoring`` (:data:`~w2s_lens.choices.SCORINGS`) says how: ``"sum"`` (``k = 1``), ``"mean"``
(``k`` = the continuation's token count) or ``"first"``: the one token of each at the first
position ``j`` where the two continuations differ, ``log p(m_j | m_<j) − log p(n_j | m_<j)``
(for most items ``j = 1``, both read at the last prompt token, so no continuation rows run).
The tokens before ``j`` are the same in both continuations and their terms cancel exactly in
the summed readout, so ``"first"`` is its first term that does not cancel: the cloze analogue
of a one-token readout. (Reading the first token of each even when they are equal would give
0 at every λ for those items.) Where one continuation is a prefix of the other, the longer
one's token at ``j`` is read alone. For the letter readout both continuations are one token
read at the same position, so every scoring gives the logit difference
``logit(matching) − logit(non-matching)``.

A :class:`ReadPlan` says, for one example, which token rows must run from the steering start
on (its *suffixes*) and which (row, position, token, weight) terms make up the propensity.
Where the weights at one position sum to zero (the letter readout, and the first token of two
continuations without length normalisation) the softmax normaliser cancels and only the answer
columns of the unembedding are computed; elsewhere the full log-softmax is. Readouts are
always computed in float32, whatever the model's dtype.

Example:
    >>> from w2s_lens.data.examples import SteeringExample
    >>> ex = SteeringExample("d:0", "", (1, 2, 3), 7, 8, "A")
    >>> plan = read_plan(ex, start=2)
    >>> plan.suffixes, plan.terms
    ([(3,)], [(0, 0, 7, 1.0), (0, 0, 8, -1.0)])
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from w2s_lens.choices import SCORINGS, ScoringName
from w2s_lens.data.examples import SteeringExample

__all__ = ["ReadPlan", "check_scoring", "read_plan", "plan_propensity", "slopes",
           "final_logits", "stack_rows"]

#: how the cloze readout scores an option (see the module docstring)

#: positions whose full-vocabulary log-softmax is computed at once (memory: chunk × vocab)
_NORM_CHUNK = 64


@dataclass(frozen=True)
class ReadPlan:
    """Rows to run for one example, and the terms of its propensity.

    Attributes:
        suffixes: token rows, each starting at the steering start (``tokens[start:]`` followed
            by a continuation without its last token).
        terms: ``(row, position in the row, token id, weight)``; propensity is
            ``Σ weight · log p(token | row[:position + 1])``.
    """

    suffixes: list[tuple[int, ...]]
    terms: list[tuple[int, int, int, float]]


def check_scoring(scoring: str) -> None:
    """Raise ``ValueError`` unless ``scoring`` is one of :data:`SCORINGS`.

    Example:
        >>> check_scoring("first")
        >>> check_scoring(True)
        Traceback (most recent call last):
        ...
        ValueError: scoring must be one of ('sum', 'mean', 'first'), got True
    """
    if not isinstance(scoring, str) or scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {SCORINGS}, got {scoring!r}")


def read_plan(example: SteeringExample, start: int, scoring: ScoringName = "sum") -> ReadPlan:
    """The :class:`ReadPlan` of ``example`` when steering starts at token ``start``.

    Args:
        example: a letter or cloze example.
        start: index of the first token of the rows (the first steered prompt token:
            ``len(tokens) - 1`` to steer from the last prompt token on, 0 to steer all
            positions or the prompt only).
        scoring: ``"sum"`` of each continuation's token log-probabilities, their ``"mean"``,
            or the ``"first"`` differing token's only (one row: the prompt from ``start`` and
            the tokens the continuations share before it).

    Example:
        >>> from w2s_lens.data.examples import SteeringExample
        >>> ex = SteeringExample("d:0", "", (1, 2), matching_continuation=(5, 6),
        ...                      non_matching_continuation=(7,))
        >>> read_plan(ex, start=1)
        ReadPlan(suffixes=[(2, 5)], terms=[(0, 0, 5, 1.0), (0, 0, 7, -1.0), (0, 1, 6, 1.0)])
        >>> read_plan(ex, start=0, scoring="first")
        ReadPlan(suffixes=[(1, 2)], terms=[(0, 1, 5, 1.0), (0, 1, 7, -1.0)])
        >>> shared = SteeringExample("d:1", "", (1, 2), matching_continuation=(5, 6, 9),
        ...                          non_matching_continuation=(5, 8))
        >>> read_plan(shared, start=1, scoring="first")  # the first token they differ at
        ReadPlan(suffixes=[(2, 5)], terms=[(0, 1, 6, 1.0), (0, 1, 8, -1.0)])
    """
    check_scoring(scoring)
    n = len(example.tokens)
    if not 0 <= start < n:
        raise ValueError(f"example {example.id!r}: steering start {start} outside its "
                         f"{n}-token prompt")
    head = tuple(example.tokens[start:])
    last = len(head) - 1
    m, k = example.continuations
    if scoring == "first":
        return _first_plan(head, m, k)
    wm = 1.0 / len(m) if scoring == "mean" else 1.0
    wk = 1.0 / len(k) if scoring == "mean" else 1.0
    # the first answer token of both continuations is read at the same position (the last
    # prompt token): one row carries it; a second row only for a longer non-matching answer
    suffixes = [head + m[:-1]]
    terms = [(0, last, m[0], wm), (0, last, k[0], -wk)]
    terms += [(0, last + j, m[j], wm) for j in range(1, len(m))]
    if len(k) > 1:
        suffixes.append(head + k[:-1])
        terms += [(1, last + j, k[j], -wk) for j in range(1, len(k))]
    return ReadPlan(suffixes, terms)


def _first_plan(head: tuple[int, ...], m: Sequence[int], k: Sequence[int]) -> ReadPlan:
    """The ``"first"`` scoring's plan: the terms at the first position where ``m`` and ``k``
    differ (see the module docstring), read on one row: ``head`` and their shared tokens."""
    j = 0
    while j < min(len(m), len(k)) and m[j] == k[j]:
        j += 1
    if j == len(m) == len(k):
        raise ValueError("the two continuations are the same tokens: nothing to tell apart")
    row = head + tuple(m[:j])
    at = len(head) - 1 + j
    terms = ([(0, at, m[j], 1.0)] if j < len(m) else []) + \
        ([(0, at, k[j], -1.0)] if j < len(k) else [])
    return ReadPlan([row], terms)


def stack_rows(plans: Sequence[ReadPlan]) -> tuple[list[int], list[tuple[int, ...]], list[int]]:
    """The suffix rows of several plans in one batch: ``(row -> example index, rows, the first
    row of each example)``.

    Example:
        >>> from w2s_lens.data.examples import SteeringExample
        >>> ex = SteeringExample("d:0", "", (1, 2), matching_continuation=(5, 6),
        ...                      non_matching_continuation=(7, 8))
        >>> stack_rows([read_plan(ex, 1), read_plan(ex, 1)])
        ([0, 0, 1, 1], [(2, 5), (2, 7), (2, 5), (2, 7)], [0, 2])
    """
    row_ex: list[int] = []
    rows: list[tuple[int, ...]] = []
    first_row: list[int] = []
    for i, plan in enumerate(plans):
        first_row.append(len(rows))
        rows.extend(plan.suffixes)
        row_ex.extend([i] * len(plan.suffixes))
    return row_ex, rows, first_row


def final_logits(
    model: HookedTransformer, resid: Float[Tensor, "rows d_model"], columns: Tensor | None
) -> Float[Tensor, "rows vocab"]:
    """float32 logits from final residuals: the final norm in the model's dtype, then the
    unembedding in float32 (only ``columns`` of it when given)."""
    if model.cfg.normalization_type is not None:
        resid = model.ln_final(resid[:, None, :])[:, 0]
    w_u, b_u = model.unembed.W_U, model.unembed.b_U
    if columns is not None:
        w_u, b_u = w_u[:, columns], b_u[columns]
    logits = resid.float() @ w_u.float() + b_u.float()
    cap = getattr(model.cfg, "output_logits_soft_cap", -1.0) or -1.0
    if cap > 0:
        logits = cap * torch.tanh(logits / cap)
    return logits


def plan_propensity(
    model: HookedTransformer,
    resid: Float[Tensor, "rows pos d_model"],
    row_terms: Sequence[Sequence[tuple[int, int, int, float]]],
) -> Float[Tensor, " groups"]:
    """Propensities from final residuals: one per group of terms.

    Args:
        model: the HookedTransformer (final norm and unembedding).
        resid: final residual stream of every row ``[rows, pos, d_model]``.
        row_terms: per output group, its terms ``(row, position, token, weight)`` with ``row``
            indexing ``resid``.

    Returns:
        float32 ``[len(row_terms)]``.
    """
    sites: dict[tuple[int, int], list[tuple[int, int, float]]] = defaultdict(list)
    for g, terms in enumerate(row_terms):
        for row, pos, tok, w in terms:
            sites[(row, pos)].append((g, tok, w))
    keys = list(sites)
    out = torch.zeros(len(row_terms), dtype=torch.float32, device=resid.device)
    if not keys:
        return out
    dev = resid.device
    at = resid[torch.tensor([r for r, _ in keys], device=dev),
               torch.tensor([p for _, p in keys], device=dev)]  # [sites, d_model]
    # each group's log-softmax normaliser at a site enters with the sum of its weights there;
    # where every group's weights cancel (letter readout, first answer token) it is skipped
    group_weight: dict[tuple[int, int], float] = defaultdict(float)
    for i, key in enumerate(keys):
        for g, _, w in sites[key]:
            group_weight[(g, i)] += w
    needs = sorted({i for (_, i), w in group_weight.items() if abs(w) > 1e-12})
    tokens = sorted({tok for key in keys for _, tok, _ in sites[key]})
    col = {t: j for j, t in enumerate(tokens)}
    small = final_logits(model, at, torch.tensor(tokens, device=dev))
    norm = torch.zeros(len(keys), dtype=torch.float32, device=dev)
    for start in range(0, len(needs), _NORM_CHUNK):  # full-vocab logits, a chunk at a time
        part = needs[start : start + _NORM_CHUNK]
        norm[part] = torch.logsumexp(final_logits(model, at[part], None), dim=-1)
    group_idx, site_idx, col_idx, weights = [], [], [], []
    for i, key in enumerate(keys):
        for g, tok, w in sites[key]:
            group_idx.append(g)
            site_idx.append(i)
            col_idx.append(col[tok])
            weights.append(w)
    w_t = torch.tensor(weights, dtype=torch.float32, device=dev)
    vals = w_t * small[torch.tensor(site_idx, device=dev), torch.tensor(col_idx, device=dev)]
    out.index_add_(0, torch.tensor(group_idx, device=dev), vals)
    if needs:
        g_idx = [g for (g, i), w in group_weight.items() if abs(w) > 1e-12]
        s_idx = [i for (g, i), w in group_weight.items() if abs(w) > 1e-12]
        gw = torch.tensor([w for w in group_weight.values() if abs(w) > 1e-12],
                          dtype=torch.float32, device=dev)
        out.index_add_(0, torch.tensor(g_idx, device=dev),
                       -gw * norm[torch.tensor(s_idx, device=dev)])
    return out


def slopes(propensity: np.ndarray, multipliers: Sequence[float]) -> np.ndarray:
    """Least-squares slope of propensity against the multiplier (last axis).

    Example:
        >>> slopes(np.array([[0.0, 1.0, 2.0]]), [-1.0, 0.0, 1.0]).tolist()
        [1.0]
    """
    x = np.asarray(multipliers, dtype=np.float64)
    if x.ndim != 1 or x.size < 2 or np.ptp(x) == 0:
        raise ValueError("need at least two distinct multipliers to fit a slope")
    p = np.asarray(propensity, dtype=np.float64)
    if p.shape[-1] != x.size:
        raise ValueError(f"propensity's last axis has {p.shape[-1]} values for {x.size} "
                         "multipliers")
    xc = x - x.mean()
    return (p - p.mean(axis=-1, keepdims=True)) @ xc / float(xc @ xc)
