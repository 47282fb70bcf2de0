"""What an evaluation will cost, said before its first sweep.

:func:`estimate_cost` counts the sweeps' work in *forward-equivalents*: one presentation
(a prompt in one letter order) steered at one layer with one non-zero multiplier is one
steered run. Per method it counts the training sweep, every test variant and, when the retest
runs, the two retest sweeps of the (capped) base test items:

    n = Σ_sweeps  presentations × swept layers × non-zero multipliers

A resumed run counts only the presentations whose chunks are not on disk yet (the chunk records
of each sweep folder's manifest, for the same layers and multipliers). The seconds come from a
short timing of real work on the actual model: the training item with the shortest prompts (its
letter orders) run unsteered, then steered at the middle swept layer (nothing written), which
separates the unsteered pass (per prompt token) from the per-layer steered runs. Steering from
the last prompt token on, the steered rows are one prompt token plus the options, short, and
their cost is taken per presentation (the `self-awareness-text-model` ablation baseline: sweeps
estimated at 1 h 07 min, the whole run 82 min beside another job). Steering the prompt
(``--positions prompt`` or ``all``) the whole prompt runs steered, once per presentation,
layer and multiplier, so the steered cost is scaled by each sweep's *steered tokens* per
presentation against the timed item's (:func:`steered_tokens`: the prompt and the rows from
the last prompt token on, continuations included): per presentation alone, the `prompt-only`
corrigible-neutral-HHH ablation row was estimated at 1 h 28 min and swept about 8 items per
6.5 min (~4 h, when each option row still carried the whole prompt), its presentations'
steered tokens being 2.7 times the timed item's. Only the sweeps are estimated
(the contrast pass is done by then; routers, embeddings and the bootstrap are not counted).
Measured on a busy 2-core CPU (one thread), the estimate was 1.2-2.1x the sweeps' wall time
(SmolLM2-135M, 8+8 items, 5 layers; Qwen2.5 0.5B, 4+4 items, 3 layers): a sweep chunk batches
the prompts of several items, the timing one item's. The timing took 3 s (SmolLM2) and 10-16 s
(Qwen 0.5B) there.

Example:
    >>> cost = estimate_cost(ctx)  # doctest: +SKIP
    >>> cost.text  # doctest: +SKIP
    'cost: 1,440 forward-equivalents (presentations × 5 layers × 6 non-zero multipliers; caa:
    train 16, base 16, retest-1 8, retest-2 8 presentations) ≈ 1 min 16 s of sweeps, timed on
    one training item'
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformer_lens import HookedTransformer

from w2s_lens.artifacts.json_files import read_json
from w2s_lens.data.examples import SteeringExample
from w2s_lens.evaluation.headroom.run import RETEST_SPLITS, retest_units
from w2s_lens.steering.vectors import SteeringVectors
from w2s_lens.sweep.chunks import CHUNKS_DIR, MANIFEST_FILE
from w2s_lens.sweep.engines import fast_chunk
from w2s_lens.sweep.readouts import read_plan
from w2s_lens.sweep.runner import run_sweep

if TYPE_CHECKING:
    from w2s_lens.evaluation.config import EvalConfig
    from w2s_lens.evaluation.context import EvalContext

__all__ = ["HOUR_S", "CostEstimate", "SweepCount", "count_sweeps",
           "effective_tokens", "estimate_cost", "format_seconds", "log_cost", "steered_tokens",
           "sweep_cost"]

log = logging.getLogger(__name__)

#: Above this estimate (seconds) the line says how to shrink the run.
HOUR_S = 3600.0


@dataclass(frozen=True)
class SweepCount:
    """One sweep of the run: where it goes and how many presentations it holds.

    Attributes:
        method: ``"caa"`` or ``"l2s"``.
        split: ``"train"``, a variant, or a retest half.
        n_presentations: the presentations it sweeps.
        n_done: those whose chunks are already on disk (a resumed run).
        n_tokens: the prompt tokens its unsteered pass runs (:func:`effective_tokens`).
        n_steered_tokens: the tokens of its steered rows, per layer and multiplier
            (:func:`steered_tokens`; 0: not counted, the steered part is per presentation).
    """

    method: str
    split: str
    n_presentations: int
    n_done: int = 0
    n_tokens: int = 0
    n_steered_tokens: int = 0

    @property
    def n_left(self) -> int:
        """Presentations still to sweep."""
        return max(self.n_presentations - self.n_done, 0)


@dataclass(frozen=True)
class CostEstimate:
    """What the run's sweeps will cost.

    Attributes:
        n_forward_equivalents: steered runs still to do (presentation × layer × non-zero λ).
        seconds_estimate: their estimated wall time on this machine (0 when nothing is left).
        text: the one line logged before the first sweep.
        n_total: the forward-equivalents of the whole run (a resumed run: more than left).
        sweeps: each sweep's count.
        warning: the sentence added above an hour, else None.
    """

    n_forward_equivalents: int
    seconds_estimate: float
    text: str
    n_total: int = 0
    sweeps: tuple[SweepCount, ...] = field(default_factory=tuple)
    warning: str | None = None


def format_seconds(s: float) -> str:
    """A duration for people.

    Example:
        >>> format_seconds(42.4), format_seconds(125), format_seconds(3 * 3600 + 600)
        ('42 s', '2 min 05 s', '3 h 10 min')
    """
    s = int(round(max(s, 0.0)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def _done(folder: Path | None, layers: Sequence[int], mults: Sequence[float], n: int) -> int:
    """Presentations of the sweep in ``folder`` whose chunks are recorded on disk."""
    if folder is None:
        return 0
    manifest = folder / CHUNKS_DIR / MANIFEST_FILE
    if not manifest.is_file():
        return 0
    try:
        head = read_json(manifest)
    except (OSError, ValueError):
        return 0
    cfg = head.get("config") or {}
    if list(cfg.get("layers") or []) != list(layers) or \
            [float(m) for m in cfg.get("multipliers") or []] != [float(m) for m in mults]:
        return 0  # another grid: recomputed
    done = 0
    for name in head.get("chunks") or {}:
        try:
            start, stop = (int(x) for x in name.split(".")[0].split("-"))
        except ValueError:
            continue
        done += max(min(stop, n) - start, 0)
    return min(done, n)


def count_sweeps(ctx: EvalContext) -> list[SweepCount]:
    """Every sweep the evaluation of ``ctx`` will run, with its presentations (and those on
    disk when ``ctx.rd`` holds a resumed run).

    Example:
        >>> [(s.split, s.n_presentations) for s in count_sweeps(ctx)]  # doctest: +SKIP
        [('train', 48), ('base', 24), ('retest-1', 24), ('retest-2', 24)]
    """
    cfg, exs = ctx.config, ctx.exs
    layers = sorted(ctx.layers)
    retest: list[SteeringExample] = []
    if cfg.statistics.retest and ctx.acts is not None and len(ctx.train_units) >= 2:
        base = exs.test.get("base") or []
        keep = (set(retest_units(base, cfg.statistics.retest_max_items, cfg.data.seed))
                if base else set())
        retest = [ex for ex in base if ex.unit in keep]
    out: list[SweepCount] = []
    for method in cfg.methods:
        plan = [("train", exs.sweep_train), *exs.test.items()]
        plan += [(split, retest) for split in RETEST_SPLITS if retest]
        for split, swept in plan:
            n = len(swept)
            folder = None if ctx.rd is None else ctx.rd.sweep_dir(split, method)
            out.append(SweepCount(method, split, n, _done(folder, layers, cfg.sweep.multipliers, n),
                                  effective_tokens(swept),
                                  steered_tokens(swept, cfg.sweep.positions, cfg.sweep.scoring)))
    return out


def _by_unit(exs: Sequence[SteeringExample]) -> list[list[SteeringExample]]:
    units: dict[str, list[SteeringExample]] = {}
    for ex in exs:
        units.setdefault(ex.unit, []).append(ex)
    return list(units.values())


def _common(group: Sequence[SteeringExample]) -> int:
    """Length of the common prefix of a group's prompts (0 for a single presentation)."""
    if len(group) < 2:
        return 0
    n = min(len(ex.tokens) for ex in group)
    first = group[0].tokens
    return next((i for i in range(n) if any(ex.tokens[i] != first[i] for ex in group)), n)


def effective_tokens(exs: Sequence[SteeringExample]) -> int:
    """The prompt tokens a sweep of ``exs`` runs unsteered: per item, the common prefix of its
    presentations once and their remainders apart (as the fast engine runs them).

    Example:
        >>> exs = [SteeringExample("d:0", "", (1, 2, 3, 4), 7, 8, "A"),
        ...        SteeringExample("d:0~swap", "", (1, 2, 5, 6), 7, 8, "B")]
        >>> effective_tokens(exs), effective_tokens(exs[:1])
        (6, 4)
    """
    return sum(_common(g) + sum(len(ex.tokens) - _common(g) for ex in g)
               for g in _by_unit(exs))


def steered_tokens(exs: Sequence[SteeringExample], positions: str = "from_last",
                   scoring: str = "sum") -> int:
    """The tokens the fast engine runs steered for ``exs``, per layer and multiplier: each
    presentation's read-plan rows from its last prompt token (continuations included), plus,
    where the prompt is steered (``"all"``, ``"prompt"``), the prompt tokens before it once.

    Example:
        >>> ex = SteeringExample("d:0", "", (1, 2, 3, 4), matching_continuation=(5, 6, 8),
        ...                      non_matching_continuation=(7, 9))
        >>> steered_tokens([ex], "from_last"), steered_tokens([ex], "prompt")
        (5, 8)
    """
    prefix = 0 if positions == "from_last" else 1
    return sum(prefix * ex.steer_from_position
               + sum(map(len, read_plan(ex, ex.steer_from_position, scoring).suffixes))
               for ex in exs)


def _timing_item(exs: Sequence[SteeringExample]) -> list[SteeringExample]:
    """The presentations of the training item with the fewest effective tokens (its letter
    orders run together in a sweep, so they are timed together; deterministic). Timing one
    presentation alone, or a prompt cut shorter, was tried and overestimated more (2.9-3.7x):
    fixed per-call costs weigh more on a smaller batch."""
    return min(_by_unit(exs), key=lambda g: (effective_tokens(g), g[0].unit))


def _timed_costs(model: HookedTransformer, vectors: SteeringVectors, scale: float,
                 layers: Sequence[int], config: EvalConfig, pool: Sequence[SteeringExample],
                 clock: Callable[[], float]) -> tuple[float, float, int]:
    """``(seconds per prompt token of a presentation, seconds per presentation and swept
    layer, the timed presentations' steered tokens)`` from one item of ``pool``
    (:func:`_timing_item`) timed on the model, nothing written; the steering vector is
    ``vectors``' at the middle swept layer, times ``scale`` (the run's scale there). The
    steered tokens are 0 for the naive engine (a full forward per run, per presentation).

    Fast engine: the unsteered pass alone (multiplier 0: prefix and suffix once), then the
    item steered at the middle swept layer with the run's multipliers; the difference is one
    layer's steered runs, scaled by the mean depth of the swept layers (a row steered at layer
    l runs blocks l..L-1); the unsteered pass is per prompt token (it grows with the prompt,
    the steered rows hardly do). Naive engine: a full forward per multiplier at any layer,
    timed at the middle layer after a warm-up.
    """
    cfg = config
    item = _timing_item(pool)
    layers = sorted(layers)
    mid = layers[len(layers) // 2]
    n_all = model.cfg.n_layers
    depth = sum(n_all - x for x in layers) / len(layers) / (n_all - mid)
    vecs = (vectors.vector(mid) * scale).float()[None, None].expand(len(item), 1, -1)

    def timed(mults: Sequence[float]) -> float:
        t0 = clock()
        if cfg.sweep.engine == "fast":
            fast_chunk(model, vecs, [mid], torch.tensor(mults, dtype=torch.float32), item,
                       cfg.sweep.positions, None, cfg.sweep.scoring, cfg.compute.max_rows)
        else:
            run_sweep(model, vectors, item, layers=[mid], multipliers=mults,
                      engine=cfg.sweep.engine, positions=cfg.sweep.positions,
                      layer_scale=[scale], progress=False, scoring=cfg.sweep.scoring)
        return (clock() - t0) / len(item)

    if cfg.sweep.engine != "fast":
        timed(cfg.sweep.multipliers)  # warm-up
        return 0.0, timed(cfg.sweep.multipliers), 0
    # no warm-up: the contrast pass (or the router embedding) has run the model already
    base = timed([0.0])
    steered = timed(cfg.sweep.multipliers)
    rows = steered_tokens(item, cfg.sweep.positions, cfg.sweep.scoring)
    if steered <= base:  # timer noise on a tiny model: no split of the two parts
        return 0.0, steered * depth, rows
    return base * len(item) / effective_tokens(item), (steered - base) * depth, rows


def _detail(sweeps: Sequence[SweepCount]) -> str:
    parts = []
    for method in dict.fromkeys(s.method for s in sweeps):
        own = ", ".join(f"{s.split} {s.n_presentations}" for s in sweeps if s.method == method)
        parts.append(f"{method}: {own}")
    return "; ".join(parts)


def estimate_cost(ctx: EvalContext,
                  clock: Callable[[], float] = time.perf_counter) -> CostEstimate:
    """Count the sweeps of the evaluation of ``ctx`` and time a short piece of them.

    Args:
        ctx: the run's context (built, no sweep run yet).
        clock: seconds (tests pass a fake clock; the timing calls run either way).

    Returns:
        :class:`CostEstimate`; nothing is timed when no sweep is left (a finished run).

    Example:
        >>> cost = estimate_cost(ctx)  # doctest: +SKIP
        >>> cost.n_forward_equivalents, round(cost.seconds_estimate)  # doctest: +SKIP
        (4320, 65)
    """
    return _estimate(count_sweeps(ctx), ctx.model, ctx.caa, ctx.scales, ctx.layers, ctx.config,
                     ctx.exs.sweep_train, clock)


def sweep_cost(model: HookedTransformer, vectors: SteeringVectors, scales: Sequence[float],
               layers: Sequence[int], examples: Sequence[SteeringExample], config: EvalConfig,
               folder: Path | None = None, split: str = "test",
               clock: Callable[[], float] = time.perf_counter) -> CostEstimate:
    """What one sweep of ``examples`` (``w2s-lens sweep``) will cost: the same count and timing
    as :func:`estimate_cost`, for that sweep alone (its chunks already in ``folder`` not
    counted).

    Example:
        >>> sweep_cost(model, vectors, scales, [3, 7], exs, EvalConfig()).text  # doctest: +SKIP
        'cost: 168 forward-equivalents (presentations × 2 layers × 6 non-zero multipliers; caa:
        test 14 presentations) ≈ 21 s of sweeps (timed on one item; ...)'
    """
    layers = list(layers)
    n = len(examples)
    count = SweepCount("caa", split, n, _done(folder, sorted(layers), config.sweep.multipliers, n),
                       effective_tokens(examples),
                       steered_tokens(examples, config.sweep.positions, config.sweep.scoring))
    return _estimate([count], model, vectors, scales, layers, config, examples, clock)


def _estimate(sweeps: Sequence[SweepCount], model: HookedTransformer,
              vectors: SteeringVectors, scales: Sequence[float], layers: Sequence[int],
              config: EvalConfig, pool: Sequence[SteeringExample],
              clock: Callable[[], float]) -> CostEstimate:
    """The :class:`CostEstimate` of ``sweeps``, timed on one item of ``pool``."""
    cfg = config
    n_layers = len(layers)
    n_mult = sum(float(m) != 0.0 for m in cfg.sweep.multipliers)
    n_total = sum(s.n_presentations for s in sweeps) * n_layers * n_mult
    pres_left = sum(s.n_left for s in sweeps)
    n_left = pres_left * n_layers * n_mult
    seconds = 0.0
    if pres_left:
        mid = sorted(layers)[len(layers) // 2]
        scale = float(scales[list(layers).index(mid)])
        per_token, per_layer, rows = _timed_costs(model, vectors, scale, layers, cfg, pool,
                                                  clock)
        item = len(_timing_item(pool))

        def steered_share(s: SweepCount) -> float:
            """A presentation of ``s`` against a timed one, by their steered rows' tokens
            (steering from the last prompt token on: 1, the rows are short and per-call costs
            dominate them)."""
            if cfg.sweep.positions == "from_last" or not rows or not s.n_steered_tokens:
                return 1.0
            return (s.n_steered_tokens / max(s.n_presentations, 1)) / (rows / item)

        seconds = sum(s.n_left * (s.n_tokens / max(s.n_presentations, 1) * per_token
                                  + n_layers * per_layer * steered_share(s)) for s in sweeps)
    resumed = n_left < n_total
    text = (f"cost: {n_left:,} forward-equivalents (presentations × {n_layers} layers × "
            f"{n_mult} non-zero multipliers; {_detail(sweeps)} presentations)")
    if resumed:
        text += f", {n_total - n_left:,} of {n_total:,} already on disk"
    text += (f" ≈ {format_seconds(seconds)} of sweeps (timed on one item; sweeps "
             "that batch several items usually take less)" if pres_left
             else "; nothing left to sweep")
    warning = None
    if seconds > HOUR_S:
        warning = (f"this run would take about {format_seconds(seconds)}; to shrink it: fewer "
                   "items (--n-train/--n-test), fewer layers (--layers), a smaller retest "
                   "(--retest-items, or --no-retest), the base variant only (--variants base)")
    return CostEstimate(n_left, seconds, text, n_total, tuple(sweeps), warning)


def log_cost(ctx: EvalContext, clock: Callable[[], float] = time.perf_counter) -> CostEstimate:
    """Estimate the run's cost (:func:`estimate_cost`) and log it: the line at INFO, the
    over-an-hour sentence as a warning (the CLI prints both to stderr).

    Example:
        >>> log_cost(ctx).n_forward_equivalents  # doctest: +SKIP
        4320
    """
    cost = estimate_cost(ctx, clock)
    log.info("%s", cost.text)
    if cost.warning:
        log.warning("%s", cost.warning)
    return cost
