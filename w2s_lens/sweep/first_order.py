"""First-order steerability: every layer's slope from one forward and one backward pass.

The sweep (:mod:`w2s_lens.sweep.runner`) measures, per (example, layer l), the least-squares
slope of the propensity against λ. Its first-order form is the derivative at λ = 0: add
``α_l · c_l · v_l`` at every swept layer at once (``α`` a ``[n, L]`` leaf tensor of zeros, one
row per example), compute the propensity with the readout's own terms
(:mod:`w2s_lens.sweep.readouts`, float32), backpropagate: ``∂p_i/∂α_il`` is the first-order
steerability of example i at layer l (at α = 0 the other layers are unsteered, so it is the
derivative of steering at l alone). Same inputs and ``[n_examples, n_layers]`` output as
:attr:`SweepResult.steerability <w2s_lens.sweep.result.SweepResult.steerability>`.

Engines:

``reference``
    one example at a time, a full forward pass with TransformerLens hooks adding ``α_l v_l``
    at the steered positions, and ``torch.autograd``. Any residual hook.
``fast``
    steering starts at token ``s``, so the keys and values of ``tokens[:s]`` do not depend on
    α: they are computed once without gradients, shared by an item's letter orders
    (:func:`~w2s_lens.sweep.prefix.build_contexts`), and only the chunk's suffix rows (the
    tokens from ``s`` on plus the continuations, :func:`~w2s_lens.sweep.readouts.read_plan`)
    run with autograd, all in one batch (:func:`~w2s_lens.sweep.prefix.forward_rows` with a
    steering callback). Agrees with ``reference`` to 1e-5 on tiny models (tests).

Curvature (``curvature=True``). On a grid symmetric about 0 the even-order terms of
``p(λ)`` do not move the OLS slope; the gap between ``p'(0)`` and the OLS slope is the odd
terms of order ≥ 3. Two steered passes per layer at the grid's ends (the sweep's own engine,
:func:`~w2s_lens.sweep.engines.fast_chunk`) give :attr:`FirstOrderResult.endpoint_slope`
``(p(hi) − p(lo)) / (hi − lo)`` and, with ``p(0)`` and ``p'(0)``, the cubic through those
four facts, whose OLS slope over the grid is :attr:`FirstOrderResult.cubic_slope` (exact for
any ``p`` of degree ≤ 4 on a symmetric grid; ``2/9 p'(0) + 7/9 endpoint`` on the default
grid). Costs two steered runs per layer (a third of the sweep's six) plus the prefix again.

Measured (mean |estimate − OLS slope| / mean |OLS slope|, λ ∈ {−1.5…1.5}, all layers):
on the 4-layer tiny random models with their own CAA vectors (norms 0.8–2.5; 6 inputs,
``curvature_gaps`` in tests/sweep/test_first_order.py) the derivative is off by 12–24 %, the
end-point slope by 3–6 %, the cubic-corrected slope by 0.4–2 %: the correction closes 90–97 %
of the gap there. With real CAA vectors (``analysis/bench_sweep.py --cases first_order``,
corrigible-neutral-HHH, all layers; analysis/results/bench_first_order_*.txt) the derivative
is off by 4.5 % (letter) and 2.6 % (cloze) on Qwen2.5-Coder-0.5B (2 inputs), the cubic-
corrected slope by 0.9 % and 0.1 %; on SmolLM2-135M (6 inputs) by 0.3–0.4 % and < 0.05 %.
Cost (CPU, one thread): all layers of one cloze input 11x cheaper than the fast all-layer
sweep on Qwen (2.2 s vs 24 s; 1.0 plain forwards of the prompt, options of 12 tokens) and
16.6x on SmolLM2 (2.4 s vs 40 s; options of 46 tokens); letter readout 1.4–1.6x (the
sweep's steered rows are one token there, and the prefix dominates both).

Label-free scores (:mod:`w2s_lens.sweep.label_free`) use the same engines with a
``direction``: the final residual's projection on it at the last prompt token replaces
the propensity (:func:`first_order_chunk`, :func:`final_projection`).

Example:
    >>> fo = first_order(model, vectors, examples)  # doctest: +SKIP
    >>> fo.steerability.shape  # [n_examples, n_layers] as a sweep's  # doctest: +SKIP
    >>> fo.mirrored().steerability.shape  # [n_items, n_layers]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from w2s_lens.choices import DEFAULT_MULTIPLIERS, POSITIONS, PositionsName, ScoringName
from w2s_lens.data.examples import SteeringExample
from w2s_lens.steering.activations import hook_name, pad_right
from w2s_lens.steering.vectors import InputVectors, SteeringVectors
from w2s_lens.sweep import engines
from w2s_lens.sweep.engines import steer_start, steer_stop
from w2s_lens.sweep.first_order_result import FirstOrderResult
from w2s_lens.sweep.prefix import build_contexts, forward_rows, row_positions
from w2s_lens.sweep.readouts import (
    ReadPlan,
    check_scoring,
    plan_propensity,
    read_plan,
    slopes,
    stack_rows,
)
from w2s_lens.sweep.runner import check_examples, steer_vectors, sweep_grid

__all__ = ["FirstOrderEngine", "final_projection", "first_order", "first_order_chunk",
           "plan_batches"]

FirstOrderEngine = Literal["fast", "reference"]


def _span(example: SteeringExample, positions: PositionsName) -> tuple[int, int | None]:
    """``(start, stop)``: the steered token indices, as the sweep engines steer them."""
    return steer_start(example, positions), steer_stop(example, positions)


def _prompt_plan(example: SteeringExample, start: int) -> ReadPlan:
    """The label-free read: one row, the prompt from ``start`` on; no answer terms."""
    return ReadPlan([tuple(example.tokens[start:])], [])


def final_projection(resid: Float[Tensor, "rows pos d_model"], sites: Sequence[tuple[int, int]],
                     direction: Float[Tensor, " d_model"]) -> Float[Tensor, " sites"]:
    """``resid[row, pos] · direction`` at each ``(row, pos)`` site, in float32 (the
    label-free readout: the final residual, before the final norm).

    Example:
        >>> x = torch.arange(12.0).reshape(1, 3, 4)
        >>> final_projection(x, [(0, 2), (0, 0)], torch.tensor([1.0, 0, 0, 0])).tolist()
        [8.0, 0.0]
    """
    dev = resid.device
    at = resid[torch.tensor([r for r, _ in sites], device=dev),
               torch.tensor([q for _, q in sites], device=dev)]
    return at.float() @ direction.to(dev, torch.float32)


def _reference(model: HookedTransformer, vecs: Tensor, layers: list[int],
               ex: SteeringExample, positions: PositionsName, scoring: ScoringName,
               hook: str, direction: Tensor | None = None) -> tuple[np.ndarray, float]:
    """One example: full forward with hooks adding ``α_l v_l``; ``(∂p/∂α [L], p(0))`` (``p``
    the projection on ``direction`` at the last prompt token when given)."""
    device = model.cfg.device
    start, stop = _span(ex, positions)
    plan = read_plan(ex, start, scoring) if direction is None else _prompt_plan(ex, start)
    prefix = tuple(ex.tokens[:start])
    tokens, mask, _ = pad_right([prefix + s for s in plan.suffixes])
    terms = [[(r, len(prefix) + p, t, w) for r, p, t, w in plan.terms]]
    where = torch.zeros(tokens.shape[1], device=device)
    where[start:stop] = 1.0
    alpha = torch.zeros(len(layers), device=device, requires_grad=True)
    vecs = vecs.to(device, torch.float32)
    got: dict[str, Tensor] = {}

    def adder(j: int):
        def add(act: Tensor, hook) -> Tensor:
            return act + (where[:, None] * (alpha[j] * vecs[j])).to(act.dtype)
        return add

    def grab(act: Tensor, hook) -> None:
        got["x"] = act

    fwd = [(hook_name(layer, hook), adder(j)) for j, layer in enumerate(layers)]
    fwd.append((f"blocks.{model.cfg.n_layers - 1}.hook_resid_post", grab))
    with model.hooks(fwd_hooks=fwd):
        model(tokens.to(device), attention_mask=mask.to(device), return_type=None)
    if direction is None:
        prop = plan_propensity(model, got["x"], terms)[0]
    else:
        prop = final_projection(got["x"], [(0, len(ex.tokens) - 1)], direction)[0]
    (grad,) = torch.autograd.grad(prop, alpha)
    return grad.double().cpu().numpy(), float(prop.detach())


def _fast(model: HookedTransformer, vecs: Tensor, layers: list[int],
          examples: Sequence[SteeringExample], positions: PositionsName,
          scoring: ScoringName, direction: Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The chunk at once: prefixes without gradients, suffix rows with autograd."""
    device = model.cfg.device
    spans = [_span(ex, positions) for ex in examples]
    plans = [read_plan(ex, s, scoring) if direction is None else _prompt_plan(ex, s)
             for ex, (s, _) in zip(examples, spans)]
    with torch.no_grad():  # not inference_mode: these keys and values enter the graph
        ctx = build_contexts(model, [ex.tokens[:s] for ex, (s, _) in zip(examples, spans)],
                             [ex.unit for ex in examples])
    row_ex, suffixes, first_row = stack_rows(plans)
    tokens, smask, _ = pad_right(suffixes)
    valid = smask.bool().to(device)
    pos = row_positions([spans[i][0] for i in row_ex], tokens.shape[1], device)
    stops = torch.tensor([spans[i][1] if spans[i][1] is not None else 1 << 30
                          for i in row_ex], device=device)
    steered = (valid & (pos < stops[:, None]))[..., None].float()  # [rows, width, 1]
    rows_of = [torch.arange(first_row[i], first_row[i] + len(p.suffixes), device=device)
               for i, p in enumerate(plans)]
    terms = [[(first_row[i] + r, p, t, w) for r, p, t, w in plan.terms]
             for i, plan in enumerate(plans)]
    row_t = torch.tensor(row_ex, device=device)
    vecs = vecs.to(device, torch.float32)[row_t]  # [rows, L, d]
    alpha = torch.zeros(len(examples), len(layers), device=device, requires_grad=True)
    col = {layer: j for j, layer in enumerate(layers)}

    def steer(b: int, resid: Tensor) -> Tensor:
        if b not in col:
            return resid
        add = alpha[row_t, col[b], None] * vecs[:, col[b]]  # [rows, d]
        return resid + (steered * add[:, None, :]).to(resid.dtype)

    n_all = model.cfg.n_layers
    _, got = forward_rows(model, tokens.to(device), pos, valid, lambda b: [c[b] for c in ctx],
                          rows_of, n_all, grab=[n_all], steer=steer)
    if direction is None:
        props = plan_propensity(model, got[n_all], terms)
    else:  # each example's one row, at its last prompt token
        props = final_projection(got[n_all], [(first_row[i], len(p.suffixes[0]) - 1)
                                              for i, p in enumerate(plans)], direction)
    (grad,) = torch.autograd.grad(props.sum(), alpha)
    return grad.double().cpu().numpy(), props.detach().double().cpu().numpy()


def first_order_chunk(
    model: HookedTransformer,
    vectors: Float[Tensor, "n layer d_model"],
    layers: Sequence[int],
    examples: Sequence[SteeringExample],
    positions: PositionsName = "from_last",
    scoring: ScoringName = "sum",
    engine: FirstOrderEngine = "fast",
    hook: str = "resid_pre",
    direction: Float[Tensor, " d_model"] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """First-order steerability ``[n, len(layers)]`` and unsteered propensity ``[n]`` of a
    chunk (the engines' arguments: ``vectors`` already times the layer scale).

    With ``direction``, the label-free readout instead of the propensity: the final
    residual's projection on ``direction`` (as given, not normalised) at the last prompt
    token (:func:`~w2s_lens.sweep.label_free.label_free`); ``scoring`` and the answers are
    then unused.

    Example:
        >>> grad, p0 = first_order_chunk(model, vecs, [1, 2], examples)  # doctest: +SKIP
        >>> grad.shape  # [n_examples, 2]  # doctest: +SKIP
    """
    layers = [int(x) for x in layers]
    if positions not in POSITIONS:
        raise ValueError(f"positions must be one of {POSITIONS}, got {positions!r}")
    check_scoring(scoring)
    if engine not in ("fast", "reference"):
        raise ValueError(f"engine must be 'fast' or 'reference', got {engine!r}")
    with torch.inference_mode(False), torch.enable_grad():
        if engine == "fast":
            try:
                engines.check_fast_supported(model, hook)
            except ValueError as err:
                raise ValueError(str(err).replace('engine="naive"', 'engine="reference"')
                                 ) from None
            return _fast(model, vectors, layers, examples, positions, scoring, direction)
        out = [_reference(model, vectors[i], layers, ex, positions, scoring, hook, direction)
               for i, ex in enumerate(examples)]
    return np.stack([g for g, _ in out]), np.array([p for _, p in out])


def _endpoints(model: HookedTransformer, vecs: Tensor, layers: list[int], ends: list[float],
               examples: Sequence[SteeringExample], positions: PositionsName,
               scoring: ScoringName, engine: str, hook: str) -> np.ndarray:
    """Propensity ``[n, L, 2]`` steered at λ = ``ends``, by the sweep's own engines."""
    if engine == "fast":
        out, _ = engines.fast_chunk(model, vecs, layers, torch.tensor(ends), examples,
                                    positions, scoring=scoring)
        return out
    return engines.naive_chunk(model, vecs, layers, ends, examples, positions, hook, scoring)


def plan_batches(examples: Sequence[SteeringExample], positions: PositionsName,
             scoring: ScoringName | None, chunk_size: int,
             max_tokens: int) -> list[tuple[int, int]]:
    """``(lo, hi)`` example ranges: whole units while they fit ``chunk_size`` examples and
    ``max_tokens`` steered tokens, a unit split only where it alone does not fit
    (``scoring=None``: the label-free rows, the prompt from the steering start)."""
    cost = []
    for ex in examples:
        start = steer_start(ex, positions)
        plan = _prompt_plan(ex, start) if scoring is None else read_plan(ex, start, scoring)
        cost.append(sum(len(r) for r in plan.suffixes))
    out: list[tuple[int, int]] = []
    lo = size = 0
    for i, ex in enumerate(examples):
        new_unit = i == 0 or ex.unit != examples[i - 1].unit
        if i > lo and (i - lo >= chunk_size or size + cost[i] > max_tokens):
            cut = i
            if not new_unit:  # move the cut back to the unit's start when that leaves some
                while cut > lo and examples[cut - 1].unit == ex.unit:
                    cut -= 1
                cut = cut if cut > lo else i
            out.append((lo, cut))
            lo, size = cut, sum(cost[cut:i])
        size += cost[i]
    out.append((lo, len(examples)))
    return out


def first_order(
    model: HookedTransformer,
    vectors: SteeringVectors | InputVectors,
    examples: Sequence[SteeringExample],
    layers: Sequence[int] | None = None,
    positions: PositionsName = "from_last",
    layer_scale: Sequence[float] | None = None,
    scoring: ScoringName = "sum",
    engine: FirstOrderEngine = "fast",
    curvature: bool = False,
    multipliers: Sequence[float] = DEFAULT_MULTIPLIERS,
    chunk_size: int = 8,
    max_tokens: int = 1024,
) -> FirstOrderResult:
    """First-order steerability of every example at every layer (the sweep's inputs).

    Args:
        model, vectors, examples, layers, positions, layer_scale, scoring: as
            :func:`~w2s_lens.sweep.runner.run_sweep`.
        engine: ``"fast"`` (prefix once, autograd on the steered rows only) or
            ``"reference"`` (full forward with hooks; any residual hook).
        curvature: also steer each layer at the grid's two ends (two steered runs per
            layer, by the sweep engine): :attr:`FirstOrderResult.endpoint_slope`,
            :attr:`FirstOrderResult.cubic_slope`.
        multipliers: the grid whose OLS slope is estimated (its ends for ``curvature``).
        chunk_size: at most this many examples per forward/backward batch.
        max_tokens: and at most this many steered tokens (suffix rows × their lengths; at
            least one example): the backward pass keeps every steered token's activations
            (and its full-vocabulary logits where the cloze readout needs them), so long
            options would otherwise need gigabytes. An item's presentations stay together
            where they fit (they share their prefix).

    Returns:
        :class:`FirstOrderResult`, rows in the order of ``examples`` and columns in ascending
        layer order (as :func:`~w2s_lens.sweep.runner.run_sweep`).

    Example:
        >>> fo = first_order(model, vectors, examples, curvature=True)  # doctest: +SKIP
        >>> fo.steerability.shape, fo.cubic_slope.shape  # doctest: +SKIP
    """
    readout = check_examples(examples)
    if positions not in POSITIONS:
        raise ValueError(f"positions must be one of {POSITIONS}, got {positions!r}")
    check_scoring(scoring)
    vectors.check_model(model)
    per_input = isinstance(vectors, InputVectors)
    if per_input and vectors.ids != [ex.id for ex in examples]:
        raise ValueError("InputVectors.ids must be the examples' ids, in order")
    layers, scales = sweep_grid(vectors, layers, layer_scale)
    mults = [float(m) for m in multipliers]
    slopes(np.zeros(len(mults)), mults)  # a bad grid fails now
    vecs = steer_vectors(vectors, layers, scales, len(examples))
    grads, props, ends = [], [], []
    for lo, hi in plan_batches(examples, positions, scoring, chunk_size, max_tokens):
        chunk, v = examples[lo:hi], vecs[lo:hi]
        g, p = first_order_chunk(model, v, layers, chunk, positions, scoring, engine,
                                 vectors.hook)
        grads.append(g)
        props.append(p)
        if curvature:
            ends.append(_endpoints(model, v, layers, [min(mults), max(mults)], chunk,
                                   positions, scoring, engine, vectors.hook))
    meta = {"model": vectors.metadata.get("model"), "hook": vectors.hook, "layers": layers,
            "positions": positions, "readout": readout, "scoring": scoring,
            "layer_scale": scales, "engine": engine,
            "vector_kind": "per-input" if per_input else "per-layer",
            "dtype": str(model.cfg.dtype).replace("torch.", "")}
    return FirstOrderResult(
        gradient=np.concatenate(grads), propensity=np.concatenate(props), layers=layers,
        multipliers=mults, ids=[ex.id for ex in examples], units=[ex.unit for ex in examples],
        matching_letters=[ex.matching_letter for ex in examples],
        groups=[ex.group for ex in examples],
        endpoints=np.concatenate(ends) if curvature else None, metadata=meta)
