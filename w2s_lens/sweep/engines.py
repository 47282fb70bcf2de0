"""The two sweep engines: propensity of every (example, layer, multiplier) of a chunk.

``naive``
    the reference: one full forward pass per steered run, steering with the public hook
    (:func:`w2s_lens.steering.hooks.steer`) and reading the full log-softmax.
``fast``
    reuses what steering cannot change. Steering starts at token ``s`` (the last prompt token,
    or 0 for all positions), so the *prefix* ``tokens[:s]`` is computed once per example and
    its keys and values cached. The *suffix* rows of an example (the tokens from ``s`` on, plus
    a continuation for the cloze readout; :func:`w2s_lens.sweep.readouts.read_plan`) run once
    unsteered to record their residual stream at every layer; then every (layer l, multiplier
    λ) row restarts from the recorded residual at l plus ``λ · v``, and runs through blocks
    l..L−1 attending to the cached prefix. Rows join the batch at their own layer's block.
    Rows of several examples share one batch (their prefixes padded, with an attention mask)
    up to ``max_rows`` rows; ``max_rows=None`` batches one example at a time. Only the answer
    columns of the unembedding are computed where the softmax normaliser cancels.

Both take per-(example, layer) vectors ``[n, L, d_model]`` already multiplied by the
layer scale, so CAA (the same vector for every example) and L2S (one per example) run through
the same code. Results agree to 1e-3 (tests); readouts are float32 whatever the model dtype.

Example:
    >>> prop, emb = fast_chunk(model, vecs, [1, 2], torch.tensor([-1., 0., 1.]), examples,
    ...                        "from_last")  # doctest: +SKIP
    >>> prop.shape  # [n_examples, n_layers, n_multipliers]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

try:  # TransformerLens 3.x
    from transformer_lens.cache.key_value_cache import (
        TransformerLensKeyValueCache as KVCache,
    )
    from transformer_lens.cache.key_value_cache_entry import (
        TransformerLensKeyValueCacheEntry as KVCacheEntry,
    )
except ImportError:  # TransformerLens 2.x
    from transformer_lens.past_key_value_caching import (  # type: ignore[no-redef]
        HookedTransformerKeyValueCache as KVCache,
    )
    from transformer_lens.past_key_value_caching import (  # type: ignore[no-redef]
        HookedTransformerKeyValueCacheEntry as KVCacheEntry,
    )

from w2s_lens.data.examples import SteeringExample
from w2s_lens.steering.activations import hook_name, pad_right
from w2s_lens.steering.hooks import steer
from w2s_lens.sweep.readouts import ReadPlan, plan_propensity, read_plan

__all__ = ["FAST_POSITIONAL", "SweepPositions", "check_fast_supported", "fast_chunk",
           "naive_chunk", "steer_start"]

SweepPositions = Literal["from_last", "all"]


def steer_start(example: SteeringExample, positions: SweepPositions) -> int:
    """Index of the first steered token of ``example``."""
    return example.steer_from_position if positions == "from_last" else 0


#: Positional schemes the fast engine is tested on (against the naive engine). Others may give
#: wrong numbers: TransformerLens adds ALiBi by raw key index and ignores the attention mask,
#: so right-padded prefixes of different lengths get the wrong biases.
FAST_POSITIONAL = ("rotary", "standard")


def check_fast_supported(model: HookedTransformer, hook: str) -> None:
    """Refuse what the fast engine cannot do: steering elsewhere than ``resid_pre``, or a
    positional scheme outside :data:`FAST_POSITIONAL`.

    Example:
        >>> check_fast_supported(model, "resid_pre")  # rotary or standard: fine  # doctest: +SKIP
        >>> check_fast_supported(alibi_model, "resid_pre")  # doctest: +SKIP
        Traceback (most recent call last):
        ...
        ValueError: the fast engine is tested on positional_embedding_type ... use engine="naive"
    """
    if hook != "resid_pre":
        raise ValueError(f'the fast engine steers at resid_pre; use engine="naive" for '
                         f"hook={hook!r}")
    kind = model.cfg.positional_embedding_type
    if kind not in FAST_POSITIONAL:
        raise ValueError(f"the fast engine is tested on positional_embedding_type "
                         f"{' or '.join(map(repr, FAST_POSITIONAL))} only, and "
                         f"{model.cfg.model_name!r} uses {kind!r}; use engine=\"naive\"")


def _shift_terms(plan: ReadPlan, row0: int) -> list[tuple[int, int, int, float]]:
    return [(row0 + r, p, t, w) for r, p, t, w in plan.terms]


class _Prefix:
    """Keys, values and mask of the unsteered prefixes of a chunk (one row per example)."""

    def __init__(self, model: HookedTransformer, prefixes: list[tuple[int, ...]]) -> None:
        device = model.cfg.device
        self.n = len(prefixes)
        self.width = max(len(p) for p in prefixes)
        self.cache = KVCache.init_cache(model.cfg, device, self.n)
        if self.width == 0:
            self.mask = torch.zeros((self.n, 0), dtype=torch.long, device=device)
            return
        # an empty prefix is padded with one masked dummy token
        tokens, mask, _ = pad_right([p if p else (0,) for p in prefixes])
        for i, p in enumerate(prefixes):
            if not p:
                mask[i] = 0
        self.mask = mask.to(device)
        model(tokens.to(device), attention_mask=self.mask, past_kv_cache=self.cache,
              return_type=None)

    def entry(self, block: int, rows: Tensor, single: int | None) -> KVCacheEntry:
        """Frozen cache entry of ``block`` for rows belonging to examples ``rows``."""
        src = self.cache.entries[block]
        if single is not None:
            n = rows.shape[0]
            keys = src.past_keys[single : single + 1].expand(n, -1, -1, -1)
            values = src.past_values[single : single + 1].expand(n, -1, -1, -1)
        else:
            keys = src.past_keys.index_select(0, rows)
            values = src.past_values.index_select(0, rows)
        return KVCacheEntry(past_keys=keys, past_values=values, frozen=True)

    def row_mask(self, rows: Tensor, single: int | None) -> Tensor:
        if single is not None:
            return self.mask[single : single + 1].expand(rows.shape[0], -1)
        return self.mask.index_select(0, rows)

    def frozen_cache(self, rows: Tensor) -> KVCache:
        cache = KVCache(entries=[self.entry(b, rows, None) for b in range(len(self.cache.entries))],
                        previous_attention_mask=self.row_mask(rows, None).int())
        cache.freeze()
        return cache


@torch.inference_mode()
def fast_chunk(
    model: HookedTransformer,
    vectors: Float[Tensor, "n layer d_model"],
    layers: Sequence[int],
    multipliers: Float[Tensor, " mult"],
    examples: Sequence[SteeringExample],
    positions: SweepPositions = "from_last",
    capture_layer: int | None = None,
    length_norm: bool = False,
    max_rows: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Propensity ``[n, len(layers), n_mult]`` of a chunk, by the fast engine.

    Args:
        model: the HookedTransformer.
        vectors: ``[n, len(layers), d_model]``: example i is steered at ``layers[j]`` with
            ``multipliers[k] * vectors[i, j]``.
        layers: ascending layer numbers.
        multipliers: the λ grid.
        examples: the chunk (letter or cloze examples).
        positions: ``"from_last"`` or ``"all"``.
        capture_layer: also return each example's unsteered ``resid_pre`` at this layer at
            its last prompt token ``[n, d_model]`` (float32), for the router embedding.
        length_norm: cloze readout: divide each continuation's log-probability by its length.
        max_rows: rows of several examples share a batch up to this many rows (None: one
            example per batch).

    Returns:
        ``(propensity, captured or None)`` as numpy arrays.
    """
    device, dtype = model.cfg.device, model.cfg.dtype
    layers = [int(x) for x in layers]
    n_all, n_mult = model.cfg.n_layers, int(multipliers.shape[0])
    mults = multipliers.to(device, dtype)
    starts = [steer_start(ex, positions) for ex in examples]
    plans = [read_plan(ex, s, length_norm) for ex, s in zip(examples, starts)]
    prefix = _Prefix(model, [ex.tokens[:s] for ex, s in zip(examples, starts)])

    # unsteered suffix rows of every example: their residual stream at every needed layer
    row_ex, suffixes = [], []
    first_row = []
    for i, plan in enumerate(plans):
        first_row.append(len(suffixes))
        suffixes.extend(plan.suffixes)
        row_ex.extend([i] * len(plan.suffixes))
    row_ex_t = torch.tensor(row_ex, device=device)
    tokens, smask, _ = pad_right(suffixes)
    smask = smask.to(device)
    wanted = sorted(set(layers) | ({capture_layer} if capture_layer is not None else set()))
    grabbed: dict[int, Tensor] = {}

    def grab(act: Tensor, hook) -> None:
        grabbed[int(hook.name.split(".")[1])] = act.detach()

    with model.hooks(fwd_hooks=[(hook_name(b), grab) for b in wanted]):
        model(tokens.to(device), attention_mask=smask, past_kv_cache=prefix.frozen_cache(row_ex_t),
              return_type=None, stop_at_layer=None if max(wanted) + 1 >= n_all
              else max(wanted) + 1)
    captured = None
    if capture_layer is not None:
        pos = torch.tensor([len(ex.tokens) - 1 - s for ex, s in zip(examples, starts)],
                           device=device)
        captured = grabbed[capture_layer][torch.tensor(first_row, device=device), pos]
        captured = captured.float().cpu().numpy()

    # the steered runs: units (example, layer), n_mult rows per suffix row each
    units = [(i, j) for i in range(len(examples)) for j in range(len(layers))]
    unit_rows = [n_mult * len(plans[i].suffixes) for i, _ in units]
    out = np.empty((len(examples), len(layers), n_mult), dtype=np.float64)
    batch: list[tuple[int, int]] = []
    size = 0
    for unit, r in zip(units, unit_rows):
        full = max_rows is not None and batch and size + r > max_rows
        new_example = max_rows is None and batch and batch[-1][0] != unit[0]
        if full or new_example:
            _steered_batch(model, batch, layers, mults, vectors, grabbed, prefix, plans,
                           first_row, smask, out)
            batch, size = [], 0
        batch.append(unit)
        size += r
    if batch:
        _steered_batch(model, batch, layers, mults, vectors, grabbed, prefix, plans, first_row,
                       smask, out)
    return out, captured


def _steered_batch(
    model: HookedTransformer,
    batch: list[tuple[int, int]],
    layers: list[int],
    mults: Tensor,
    vectors: Tensor,
    grabbed: dict[int, Tensor],
    prefix: _Prefix,
    plans: list[ReadPlan],
    first_row: list[int],
    smask: Tensor,
    out: np.ndarray,
) -> None:
    """Run one batch of (example, layer) units from their layers to the end; fill ``out``."""
    device = model.cfg.device
    n_mult = mults.shape[0]
    examples_in = {i for i, _ in batch}
    single = next(iter(examples_in)) if len(examples_in) == 1 else None
    by_layer: dict[int, list[tuple[int, int]]] = {}
    for i, j in batch:
        by_layer.setdefault(layers[j], []).append((i, j))
    residual: Tensor | None = None
    row_mask: Tensor | None = None
    rows_ex: list[int] = []
    groups: list[list[tuple[int, int, int, float]]] = []
    where: list[tuple[int, int, int]] = []
    for b in range(min(by_layer), model.cfg.n_layers):
        for i, j in by_layer.get(b, []):
            n_rows = len(plans[i].suffixes)
            base = grabbed[b][first_row[i] : first_row[i] + n_rows]  # [r, S, d]
            vec = vectors[i, j].to(device, base.dtype)
            new = (base[None] + mults[:, None, None, None] * vec).reshape(
                n_mult * n_rows, *base.shape[1:])  # rows ordered (multiplier, suffix row)
            m = smask[first_row[i] : first_row[i] + n_rows]
            m = m[None].expand(n_mult, -1, -1).reshape(n_mult * n_rows, -1)
            for k in range(n_mult):
                groups.append(_shift_terms(plans[i], len(rows_ex) + k * n_rows))
                where.append((i, j, k))
            rows_ex.extend([i] * (n_mult * n_rows))
            residual = new if residual is None else torch.cat([residual, new], dim=0)
            row_mask = m if row_mask is None else torch.cat([row_mask, m], dim=0)
        assert residual is not None and row_mask is not None
        rows_t = torch.tensor(rows_ex, device=device)
        mask = torch.cat([prefix.row_mask(rows_t, single), row_mask], dim=1)
        residual = model.blocks[b](residual, past_kv_cache_entry=prefix.entry(b, rows_t, single),
                                   attention_mask=mask)
    assert residual is not None
    props = plan_propensity(model, residual, groups).double().cpu().numpy()
    for (i, j, k), v in zip(where, props):
        out[i, j, k] = v


@torch.inference_mode()
def naive_chunk(
    model: HookedTransformer,
    vectors: Float[Tensor, "n layer d_model"],
    layers: Sequence[int],
    multipliers: Sequence[float],
    examples: Sequence[SteeringExample],
    positions: SweepPositions = "from_last",
    hook: str = "resid_pre",
    length_norm: bool = False,
) -> np.ndarray:
    """Propensity ``[n, len(layers), n_mult]``: one full forward pass per steered run.

    Steering goes through the public hook (:func:`w2s_lens.steering.hooks.steer`); the readout uses
    the same terms as the fast engine, on full log-softmaxes.
    """
    device = model.cfg.device
    out = np.empty((len(examples), len(layers), len(multipliers)), dtype=np.float64)
    for i, ex in enumerate(examples):
        start = steer_start(ex, positions)
        plan = read_plan(ex, start, length_norm)
        prefix = tuple(ex.tokens[:start])
        tokens, mask, _ = pad_right([prefix + s for s in plan.suffixes])
        # read positions are relative to the steering start; shift them past the prefix
        terms = [[(r, len(prefix) + p, t, w) for r, p, t, w in plan.terms]]
        for j, layer in enumerate(layers):
            for k, mult in enumerate(multipliers):
                vec = vectors[i, j].to(device) * float(mult)
                with steer(model, hook_name(layer, hook), vec, positions=start):
                    resid = _final_resid(model, tokens.to(device), mask.to(device))
                out[i, j, k] = float(plan_propensity(model, resid, terms)[0])
    return out


def _final_resid(model: HookedTransformer, tokens: Tensor, mask: Tensor) -> Tensor:
    """The residual stream after the last block (before the final norm), ``[b, pos, d]``."""
    got: dict[str, Tensor] = {}

    def grab(act: Tensor, hook) -> None:
        got["x"] = act

    name = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    with model.hooks(fwd_hooks=[(name, grab)]):
        model(tokens, attention_mask=mask, return_type=None)
    return got["x"]
