"""The two sweep engines: propensity of every (example, layer, multiplier) of a chunk.

``naive``
    the reference: one full forward pass per steered run, steering with the public hook
    (:func:`w2s_lens.steering.hooks.steer`) and reading the full log-softmax.
``fast``
    reuses what steering cannot change. Its rows start at the last prompt token ``s``; steering
    from there on, the *prefix* ``tokens[:s]`` is unsteered, so it is
    computed once and its keys and values kept (:mod:`w2s_lens.sweep.prefix`); the
    presentations of one item (its two letter orders, same ``unit``) run their longest common
    prefix once and only their remainders apart. The *suffix* rows of an example (the tokens
    from ``s`` on, plus a continuation for the cloze readout;
    :func:`w2s_lens.sweep.readouts.read_plan`) run once unsteered to record
    their residual stream at every layer; then every (layer l, multiplier λ ≠ 0) row restarts
    from the recorded residual at l plus ``λ · v`` and runs through blocks l..L−1 attending to
    its prefix's keys and values, which are shared by all its rows, not copied per row
    (:mod:`w2s_lens.sweep.attention`; the batches: :mod:`w2s_lens.sweep.steered_rows`). Rows
    join the batch at their own layer's block. A zero
    multiplier reads the unsteered pass once for every layer. Without ``max_rows`` one item's
    rows (both letter orders) share a batch; with it, rows of several items do, up to
    ``max_rows`` rows. Only the answer columns of the unembedding are computed where the
    softmax normaliser cancels. Steering every position (``"all"``) or the prompt only
    (``"prompt"``), the prefix is steered too: per (example, layer l, λ) it runs once from its
    recorded residual at l plus ``λ · v`` (:func:`~w2s_lens.sweep.prefix.prefix_states`),
    beside the suffix rows, which attend to its keys and values at each block; an item's two
    continuation rows share it, so its prompt is not run twice. With ``"prompt"``, ``λ · v``
    is added to the prompt tokens only (the prefix and the last prompt token), not to the
    continuation tokens (:func:`steer_stop`), which see the steered prompt through attention
    alone.

Both take per-(example, layer) vectors ``[n, L, d_model]`` already multiplied by the
layer scale, so CAA (the same vector for every example) and L2S (one per example) run through
the same code. In float32 the engines agree to 1e-5 on tiny models (tests; the older tests
bound them at 1e-3); readouts are float32 whatever the model dtype.

Example:
    >>> prop, emb = fast_chunk(model, vecs, [1, 2], torch.tensor([-1., 0., 1.]), examples,
    ...                        "from_last")  # doctest: +SKIP
    >>> prop, _ = fast_chunk(model, vecs, [1, 2], torch.tensor([-1., 1.]), examples,
    ...                      "prompt", scoring="first")  # doctest: +SKIP
    >>> prop.shape  # [n_examples, n_layers, n_multipliers]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from w2s_lens.choices import POSITIONS, PositionsName, ScoringName
from w2s_lens.data.examples import SteeringExample
from w2s_lens.steering.activations import hook_name, pad_right
from w2s_lens.steering.hooks import Positions, steer
from w2s_lens.sweep.attention import check_block_supported
from w2s_lens.sweep.prefix import build_contexts, forward_rows, prefix_states, row_positions
from w2s_lens.sweep.readouts import plan_propensity, read_plan, stack_rows
from w2s_lens.sweep.steered_rows import SteeredPrefix, SteeredRuns, shift_terms

__all__ = ["FAST_POSITIONAL", "check_fast_supported",
           "fast_chunk", "naive_chunk", "steer_start", "steer_stop"]

#: the sweep's positions: from the last prompt token on (continuation tokens included), every
#: token, or the prompt only (every prompt token, none of the continuation's)


def steer_start(example: SteeringExample, positions: PositionsName) -> int:
    """Index of the first steered token of ``example``.

    Example:
        >>> ex = SteeringExample("d:0", "", (1, 2, 3), 7, 8, "A")
        >>> [steer_start(ex, p) for p in ("from_last", "all", "prompt")]
        [2, 0, 0]
    """
    return example.steer_from_position if positions == "from_last" else 0


def steer_stop(example: SteeringExample, positions: PositionsName) -> int | None:
    """Index after the last steered token of ``example`` (``None``: no end, continuation
    tokens are steered too).

    Example:
        >>> ex = SteeringExample("d:0", "", (1, 2, 3), 7, 8, "A")
        >>> [steer_stop(ex, p) for p in ("from_last", "all", "prompt")]
        [None, None, 3]
    """
    return len(example.tokens) if positions == "prompt" else None


#: Positional schemes the fast engine is tested on (against the naive engine). Others may give
#: wrong numbers: TransformerLens adds ALiBi by raw key index and ignores the attention mask,
#: so right-padded prefixes of different lengths get the wrong biases.
FAST_POSITIONAL = ("rotary", "standard")


def check_fast_supported(model: HookedTransformer, hook: str) -> None:
    """Refuse what the fast engine cannot do: steering elsewhere than ``resid_pre``, a
    positional scheme outside :data:`FAST_POSITIONAL`, or a block feature its attention does
    not reimplement (:func:`w2s_lens.sweep.attention.unsupported_features`).

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
    check_block_supported(model)


def _check_positions(positions: str) -> None:
    if positions not in POSITIONS:
        raise ValueError(f"positions must be one of {POSITIONS}, got {positions!r}")


@torch.inference_mode()
def fast_chunk(
    model: HookedTransformer,
    vectors: Float[Tensor, "n layer d_model"],
    layers: Sequence[int],
    multipliers: Float[Tensor, " mult"],
    examples: Sequence[SteeringExample],
    positions: PositionsName = "from_last",
    capture_layer: int | None = None,
    scoring: ScoringName = "sum",
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
        positions: ``"from_last"``, ``"all"`` or ``"prompt"`` (see :data:`POSITIONS`).
        capture_layer: also return each example's unsteered ``resid_pre`` at this layer at
            its last prompt token ``[n, d_model]`` (float32), for the router embedding.
        scoring: cloze readout: ``"sum"``, ``"mean"`` or ``"first"``
            (:func:`~w2s_lens.sweep.readouts.read_plan`).
        max_rows: rows of several examples share a batch up to this many rows (None: one
            example per batch). The rows counted are those from the last prompt token on;
            a steered prompt (``"all"``, ``"prompt"``) adds one prompt row per (example,
            layer, multiplier) beside them.

    Returns:
        ``(propensity, captured or None)`` as numpy arrays.

    Example:
        >>> prop, cap = fast_chunk(model, vecs, [1, 3], torch.tensor([-1.0, 0.0, 1.0]),
        ...                        examples, "prompt", capture_layer=2)  # doctest: +SKIP
        >>> prop.shape, cap.shape  # doctest: +SKIP
        ((8, 2, 3), (8, 896))
    """
    device, dtype = model.cfg.device, model.cfg.dtype
    layers = [int(x) for x in layers]
    n_mult = int(multipliers.shape[0])
    mults = multipliers.to(device, dtype)
    _check_positions(positions)
    # the rows start at the last prompt token whatever the positions; steering the prompt
    # ("all", "prompt"), the prefix before it is steered too, run once per (example, layer,
    # multiplier) and attended to by all the example's rows
    starts = [ex.steer_from_position for ex in examples]
    stops = [steer_stop(ex, positions) for ex in examples]
    # steered positions of a row, counted from its first token (None: all)
    spans = [None if e is None else e - s for s, e in zip(starts, stops)]
    plans = [read_plan(ex, s, scoring) for ex, s in zip(examples, starts)]
    prefixes = [ex.tokens[:s] for ex, s in zip(examples, starts)]
    prefix = None
    if positions == "from_last":
        ctx = build_contexts(model, prefixes, [ex.unit for ex in examples])
    else:
        ctx, pre_resid, pre_len = prefix_states(model, prefixes, layers)
        prefix = SteeredPrefix(pre_resid, pre_len)

    # unsteered suffix rows of every example: their residual stream at every needed layer
    row_ex, suffixes, first_row = stack_rows(plans)
    tokens, smask, _ = pad_right(suffixes)
    valid = smask.bool().to(device)
    pos = row_positions([starts[i] for i in row_ex], tokens.shape[1], device)
    rows_of = [torch.arange(first_row[i], first_row[i] + len(p.suffixes), device=device)
               for i, p in enumerate(plans)]
    # a zero multiplier does not steer: its readout is the unsteered one, at every layer
    zero = [k for k, m in enumerate(multipliers.tolist()) if m == 0]
    steered = [k for k in range(n_mult) if k not in zero]
    n_all = model.cfg.n_layers
    wanted = sorted(set(layers) | ({capture_layer} if capture_layer is not None else set())
                    | ({n_all} if zero else set()))
    _, grabbed = forward_rows(model, tokens.to(device), pos, valid,
                              lambda b: [c[b] for c in ctx], rows_of, min(max(wanted) + 1, n_all),
                              grab=wanted)
    out = np.empty((len(examples), len(layers), n_mult), dtype=np.float64)
    if zero:
        terms = [shift_terms(p, first_row[i]) for i, p in enumerate(plans)]
        plain = plan_propensity(model, grabbed.pop(n_all), terms).double().cpu().numpy()
        out[:, :, zero] = plain[:, None, None]
    captured = None
    if capture_layer is not None:
        at = torch.tensor([len(ex.tokens) - 1 - s for ex, s in zip(examples, starts)],
                          device=device)
        captured = grabbed[capture_layer][torch.tensor(first_row, device=device), at]
        captured = captured.float().cpu().numpy()

    # the steered runs: units (example, layer), n_mult rows per suffix row each; without
    # max_rows, one batch per item (its letter orders together)
    run = SteeredRuns(model, layers, mults[steered], steered, vectors, grabbed, ctx, plans,
                      first_row, starts, valid, spans, prefix)
    units = [(i, j) for i in range(len(examples)) for j in range(len(layers))] if steered else []
    batch: list[tuple[int, int]] = []
    size = 0
    for unit in units:
        r = len(steered) * len(plans[unit[0]].suffixes)
        full = max_rows is not None and batch and size + r > max_rows
        new_item = (max_rows is None and batch
                    and examples[batch[-1][0]].unit != examples[unit[0]].unit)
        if full or new_item:
            run.batch(batch, out)
            batch, size = [], 0
        batch.append(unit)
        size += r
    if batch:
        run.batch(batch, out)
    return out, captured


@torch.inference_mode()
def naive_chunk(
    model: HookedTransformer,
    vectors: Float[Tensor, "n layer d_model"],
    layers: Sequence[int],
    multipliers: Sequence[float],
    examples: Sequence[SteeringExample],
    positions: PositionsName = "from_last",
    hook: str = "resid_pre",
    scoring: ScoringName = "sum",
) -> np.ndarray:
    """Propensity ``[n, len(layers), n_mult]``: one full forward pass per steered run.

    Steering goes through the public hook (:func:`w2s_lens.steering.hooks.steer`; for
    ``"prompt"``, ``positions="prompt", stop=len(prompt)``); the readout uses the same terms
    as the fast engine, on full log-softmaxes.

    Example:
        >>> prop = naive_chunk(model, vecs, [1, 3], [-1.0, 1.0], examples, "prompt",
        ...                    scoring="first")  # doctest: +SKIP
        >>> prop.shape  # doctest: +SKIP
        (8, 2, 2)
    """
    _check_positions(positions)
    device = model.cfg.device
    out = np.empty((len(examples), len(layers), len(multipliers)), dtype=np.float64)
    for i, ex in enumerate(examples):
        start = steer_start(ex, positions)
        where: Positions = "prompt" if positions == "prompt" else start
        plan = read_plan(ex, start, scoring)
        prefix = tuple(ex.tokens[:start])
        tokens, mask, _ = pad_right([prefix + s for s in plan.suffixes])
        # read positions are relative to the steering start; shift them past the prefix
        terms = [[(r, len(prefix) + p, t, w) for r, p, t, w in plan.terms]]
        for j, layer in enumerate(layers):
            for k, mult in enumerate(multipliers):
                vec = vectors[i, j].to(device) * float(mult)
                with steer(model, hook_name(layer, hook), vec, positions=where,
                           stop=steer_stop(ex, positions)):
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
